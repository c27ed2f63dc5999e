"""The metrics dashboard in Chromium: charts drawn from the demo data, filters that change them,
tables and definitions beside them, CSV exports, and no WCAG 2.2 AA violations."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import ARTIFACTS, Server
from e2e.page_helpers import axe
from tests.conftest import run_sync

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def refreshed(server: Server, database_dsn: str) -> Server:
    """The server's database with its metrics computed (as `cairn metrics refresh` does)."""
    from app.config.layouts import load_layouts
    from app.serving.metrics_refresh import refresh_metrics
    from app.storage.db import create_pool

    async def run() -> None:
        pool = await create_pool(database_dsn, min_size=1, max_size=3)
        try:
            await refresh_metrics(pool, load_layouts(server.settings.layouts_dir))
        finally:
            await pool.close()

    run_sync(run())
    return server


def sign_in(page: Page, server: Server) -> None:
    token = base64.b64encode(f"{server.settings.secret_key}:".encode()).decode()
    page.context.set_extra_http_headers({"Authorization": f"Basic {token}"})


def open_dashboard(page: Page, server: Server, query: str = "") -> list[str]:
    console: list[str] = []
    page.on(
        "console",
        lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    sign_in(page, server)
    response = page.goto(f"{server.base}/admin/metrics{query}")
    assert response is not None and response.status == 200
    expect(page.locator("#chart-activation_14d svg[aria-label]")).to_be_visible()
    return console


def y_labels(page: Page, metric: str) -> list[str]:
    """The bars' names, as the chart draws them (its y axis's tick labels)."""
    labels: list[str] = page.eval_on_selector_all(
        f"#chart-{metric} svg[aria-label] [data-mark='y-axis tick label'] text",
        "els => els.map(e => e.textContent)",
    )
    return labels


def test_the_dashboard_draws_every_chart_from_data(
    page: Page, refreshed: Server, axe_script: Path
) -> None:
    console = open_dashboard(page, refreshed)
    for metric in ("activation_14d", "time_to_first_value", "feature_adoption_30d",
                   "integration_breadth", "retention_weekly", "activation_funnel"):  # fmt: skip
        chart = page.locator(f"#chart-{metric} svg[aria-label]")  # the plot (legends are apart)
        expect(chart).to_have_count(1)
        assert chart.locator("rect").count() > 0, metric  # bars or cells: data, not an empty frame
    # The heatmap has a cell per sign-up week and week after it; its table lists them all.
    cells = page.locator("#chart-retention_weekly svg[aria-label] rect").count()
    table_cells = page.locator("#h-retention_weekly ~ .metric-body table tbody td").count()
    assert cells > 10 and table_cells > cells
    # Every chart has its table, its definition and its CSV.
    articles = page.locator("article.metric")
    assert articles.count() >= 8
    for i in range(articles.count()):
        article = articles.nth(i)
        assert article.locator("details summary").count() == 1
        assert article.locator("a[download]").count() == 1
    page.locator("#h-activation_14d ~ details summary").click()
    expect(page.locator("#h-activation_14d ~ details pre")).to_contain_text("kind: conversion")
    assert console == []
    violations = axe(page, axe_script)
    assert violations == [], violations
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-metrics.png"), full_page=True)


def test_filters_change_the_charts(page: Page, refreshed: Server) -> None:
    open_dashboard(page, refreshed)
    by_plan = y_labels(page, "activation_14d")
    assert by_plan and set(by_plan) <= {"free", "trial", "pro", "enterprise"}
    page.get_by_label("Break down by").select_option("role")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_label("Break down by")).to_have_value("role")
    by_role = y_labels(page, "activation_14d")
    assert by_role and set(by_role) <= {"admin", "maker", "end_user", "(none)", ""}
    # A tenant metric has no role: it says so instead of breaking down by it.
    expect(page.locator("#h-integration_breadth ~ p em")).to_contain_text("not broken down by role")
    # A plan filter narrows every chart to that plan.
    page.get_by_label("Plan").select_option("pro")
    page.get_by_label("Break down by").select_option("plan")
    page.get_by_role("button", name="Show").click()
    assert set(y_labels(page, "activation_14d")) == {"pro"}


def test_each_chart_exports_its_table_as_csv(page: Page, refreshed: Server) -> None:
    open_dashboard(page, refreshed)
    href = page.locator("#h-activation_14d ~ p a[download]").get_attribute("href")
    assert href is not None
    body = page.evaluate("url => fetch(url).then(r => r.text())", href)
    rows = list(csv.DictReader(io.StringIO(body)))
    shown = page.locator("#h-activation_14d ~ .metric-body table tbody tr")
    assert len(rows) == shown.count() > 0
    assert {row["metric"] for row in rows} == {"activation_14d"}
