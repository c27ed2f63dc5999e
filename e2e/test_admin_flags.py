"""The admin's flags page in Chromium: every flag with its rules and what it served, axe-clean."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import Server
from e2e.page_helpers import axe

pytestmark = pytest.mark.e2e


def test_the_flags_page_lists_rules_rollouts_and_counts(
    page: Page, server: Server, axe_script: Path
) -> None:
    secret = {"Authorization": f"Bearer {server.settings.secret_key}"}
    for user in ("fa", "fb", "fc"):
        r = httpx.post(
            f"{server.base}/ofrep/v1/evaluate/flags/new_editor",
            json={"context": {"targetingKey": user, "tenant_id": "flags-page"}},
            headers=secret,
        )
        assert r.status_code == 200
    token = base64.b64encode(f"{server.settings.secret_key}:".encode()).decode()
    page.context.set_extra_http_headers({"Authorization": f"Basic {token}"})
    response = page.goto(f"{server.base}/admin/flags")
    assert response is not None and response.status == 200
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="new_editor"))
    expect(row).to_contain_text("rollout on 10%, off 90%")
    expect(row).to_contain_text("when tenant.plan == 'trial' && user.role == 'admin': serve on")
    expect(row).to_contain_text("sent to clients")
    expect(row).to_contain_text("expires 2027-06-30")
    served = row.get_by_role("cell").nth(3)
    counts = served.inner_text()
    assert "off" in counts or "on" in counts  # the three evaluations above, counted
    kill = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="adaptive_help"))
    expect(kill).to_contain_text("read by layouts")
    # A page of tables and links: no buttons or selects for axe to check.
    checked = frozenset({"color-contrast", "link-name", "th-has-data-cells", "target-size"})
    assert axe(page, axe_script, must_check=checked) == []
