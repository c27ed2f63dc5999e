"""The admin's experiments page in Chromium, on a server running an experiment with results.

A second `cairn serve` reads a copy of the shipped layouts with one experiment running; sixty
admins were enrolled ten days ago and shown the widget it changes; the treated arm's users hit
errors in the week after, so its error guardrail is breached.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.config.layouts import load_layouts
from app.engine.experiments import propose
from e2e.conftest import ROOT, Server, serving
from e2e.page_helpers import axe
from tests.conftest import run_sync

pytestmark = pytest.mark.e2e

EXPERIMENTS = """
experiments:
  checklist_first:
    description: The setup checklist first on an admin's home.
    when: "user.role == 'admin'"
    arms:
      - {id: control, weight: 50}
      - id: lifted
        weight: 50
        set: {widget: activation_checklist, priority: 99}
    metrics:
      primary: error_rate
      guardrails: [{metric: error_rate, threshold: 0.1}]
    analysis: {sequential: true}
"""


@pytest.fixture(scope="module")
def experiment_server(
    server: Server, database_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    layouts = tmp_path_factory.mktemp("experiment") / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    (layouts / "experiments.yaml").write_text(EXPERIMENTS)
    exp = load_layouts(layouts).experiments.experiments["checklist_first"]
    secret = {"Authorization": f"Bearer {server.settings.secret_key}"}
    then = datetime.now(UTC) - timedelta(days=10)
    users = {f"e{i}": propose(exp, "exp-page", f"e{i}") for i in range(60)}
    batch: list[dict[str, Any]] = []
    for user, arm in users.items():
        batch += [
            {"type": "identify", "userId": user, "traits": {"role": "admin"}},
            {"type": "track", "event": "widget_viewed", "userId": user,
             "properties": {"widget_id": "activation_checklist"},
             "timestamp": (then + timedelta(hours=1)).isoformat()},
        ]  # fmt: skip
        batch += [
            {"type": "track", "event": "error_shown", "userId": user,
             "properties": {"feature": "reports", "message": "x"},
             "timestamp": (then + timedelta(days=1, minutes=k)).isoformat()}
            for k in range(5 if arm == "lifted" else int(user[1:]) % 2)
        ]  # fmt: skip
    for i, event in enumerate(batch):
        event.update(messageId=f"exp-page-{i}", tenantId="exp-page")
    r = httpx.post(f"{server.base}/v1/events", json={"batch": batch}, headers=secret)
    assert r.status_code == 200, r.text

    async def assign() -> None:
        import asyncpg

        conn = await asyncpg.connect(database_dsn)
        try:
            await conn.executemany(
                "INSERT INTO experiment_assignments"
                " (tenant_id, experiment, unit_id, arm, assigned_at, exposed_at)"
                " VALUES ('exp-page', 'checklist_first', $1, $2, $3, $4) ON CONFLICT DO NOTHING",
                [(user, arm, then, then + timedelta(hours=1)) for user, arm in users.items()],
            )
        finally:
            await conn.close()

    run_sync(assign())
    env = {**os.environ, "CAIRN_SECRET_KEY": server.settings.secret_key,
           "CAIRN_PUBLISHABLE_KEY": server.settings.publishable_key,
           "CAIRN_IDENTITY_SECRET": server.settings.identity_secret,
           "DATABASE_URL": database_dsn, "CAIRN_LAYOUTS_DIR": str(layouts),
           "CAIRN_DATA_DIR": str(layouts.parent), "CAIRN_RELOAD_LAYOUTS": "0",
           "CAIRN_RECOMMENDER": "0", "CAIRN_GUARDRAIL_INTERVAL_S": "0",
           "CAIRN_HOLDOUT_PERCENT": "5"}  # fmt: skip
    with serving(env) as base:
        yield Server(base, server.settings)


def test_the_experiments_page_shows_lifts_guardrails_and_a_chart(
    page: Page, experiment_server: Server, axe_script: Path
) -> None:
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    token = base64.b64encode(f"{experiment_server.settings.secret_key}:".encode()).decode()
    page.context.set_extra_http_headers({"Authorization": f"Basic {token}"})
    response = page.goto(f"{experiment_server.base}/admin/experiments")
    assert response is not None and response.status == 200
    holdout = page.get_by_role("region", name="Personalization's total lift")
    expect(holdout).to_contain_text("Activated within 14 days")
    section = page.get_by_role("region", name="checklist_first (running)")
    expect(section).to_contain_text("no mismatch")
    chart = section.locator("#chart-checklist_first-error_rate svg[aria-label]")
    expect(chart).to_be_visible()
    assert "relative lift against control" in (chart.get_attribute("aria-label") or "")
    assert section.locator("#chart-checklist_first-error_rate circle").count() == 1
    guardrails = section.get_by_role("table", name="Guardrails")
    expect(guardrails).to_contain_text("breached")
    lifted = section.get_by_role("row").filter(has=page.get_by_role("rowheader", name="lifted"))
    expect(lifted.first).to_contain_text("%")
    assert console == []
    checked = frozenset({"color-contrast", "link-name", "th-has-data-cells"})
    assert axe(page, axe_script, must_check=checked) == []
