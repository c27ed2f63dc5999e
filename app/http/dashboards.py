"""`/admin/metrics`: the growth analyst's morning view, and its CSV exports.

Every chart is drawn in the browser by Observable Plot (bundled into /admin/assets/metrics.js,
served by Cairn itself) from the same answer the page's table shows, so the numbers can be read
and copied without the chart. Filters (dates, a breakdown, a plan or industry) reload the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import yaml
from litestar import Request, Response, get

from app.errors import CairnError
from app.http.admin import admin_or_challenge, json_island, page
from app.http.dependencies import RuntimeDep
from app.http.metrics import to_csv
from app.http.ops import SDK_ASSETS, SDK_CACHE
from app.serving.metrics import MetricAnswer, question
from app.serving.runtime import Runtime

Req = Request[Any, Any, Any]


@dataclass(frozen=True)
class Chart:
    metric: str
    chart: str = "bars"  # bars | heatmap | funnel
    by: str | None = None  # a fixed breakdown (the heatmap's sign-up weeks), else the page's


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    charts: tuple[Chart, ...]


SECTIONS = (
    Section("activation", "Activation and time to first value",
            (Chart("activation_14d"), Chart("time_to_first_value"))),
    Section("adoption", "Adoption depth and integration breadth",
            (Chart("feature_adoption_30d"), Chart("integration_breadth"))),
    Section("upgrades", "Trial to paid, and upgrades after an upgrade gate",
            (Chart("trial_to_paid_30d"), Chart("gate_influenced_upgrade_7d"))),
    Section("deflection", "Help deflection", (Chart("help_deflection_1d"),)),
    Section("retention", "Retention by sign-up week",
            (Chart("retention_weekly", "heatmap", by="cohort"),)),
    Section("funnel", "Activation funnel", (Chart("activation_funnel", "funnel", by=""),)),
)  # fmt: skip
BREAKDOWNS = ("plan", "industry", "role", "stage", "seat_band")
FILTERS = ("plan", "industry")


def _options(runtime: Runtime) -> dict[str, list[str]]:
    vocab = runtime.layouts.vocabulary
    return {
        "plan": sorted(vocab.signals.plans),
        "industry": sorted(vocab.presets.industries),
    }


async def _answer(
    runtime: Runtime, chart: Chart, *, start: str, end: str, by: str, where: dict[str, str]
) -> tuple[MetricAnswer | None, str | None]:
    """The chart's answer, or why there is none. Breakdowns and filters a metric's unit does not
    have (a tenant has no role) are left out of its question, and the chart says so."""
    metric = runtime.layouts.metrics[chart.metric]
    breakdown = chart.by if chart.by is not None else by
    skipped = []
    if breakdown in ("role", "stage") and metric.unit == "tenant":
        skipped.append(breakdown)
        breakdown = ""
    now = datetime.now(UTC)
    try:
        q = question(
            runtime.layouts, chart.metric, start=start, end=end,
            by=[breakdown] if breakdown else [], interval=None, tenant_id=None,
            where=where, today=now.date(),
        )  # fmt: skip
    except CairnError as exc:
        return None, exc.message
    note = f"Per {metric.unit}: not broken down by {', '.join(skipped)}." if skipped else None
    return await runtime.metrics.answer(runtime.layouts, q, now), note


@get("/admin/metrics", include_in_schema=False)
async def metrics_dashboard(request: Req, runtime: RuntimeDep) -> Response[str]:
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    params = request.query_params
    today = datetime.now(UTC).date()
    start = params.get("from") or (today - timedelta(days=90)).isoformat()
    end = params.get("to") or today.isoformat()
    by = params.get("by", "plan")
    if by not in BREAKDOWNS:
        by = "plan"
    where = {k: params[k] for k in FILTERS if params.get(k)}
    error = None
    try:
        date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        error = "Dates are days such as 2026-11-01; the last 90 days are shown."
        start, end = (today - timedelta(days=90)).isoformat(), today.isoformat()
    sections = []
    charts: list[dict[str, Any]] = []
    refreshed_at: str | None = None
    metrics = runtime.layouts.metrics
    for section in SECTIONS:
        shown = []
        for chart in section.charts:
            if chart.metric not in metrics:
                continue
            answer, note = await _answer(runtime, chart, start=start, end=end, by=by, where=where)
            spec = metrics[chart.metric]
            entry = {
                "id": chart.metric,
                "metric": chart.metric,
                "label": spec.label,
                "description": spec.description,
                "kind": str(spec.__struct_config__.tag),
                "format": spec.format,
                "chart": chart.chart,
                "unit": spec.unit,
                "note": note,
                "answer": answer,
                "definition": yaml.safe_dump(
                    {chart.metric: msgspec.to_builtins(spec)}, sort_keys=False
                ),
                "csv": f"/admin/metrics/csv/{chart.metric}?" + _query(start, end, chart, by, where),
            }
            shown.append(entry)
            if answer is not None:
                refreshed_at = refreshed_at or answer.refreshed_at
                charts.append({
                    "id": chart.metric, "metric": chart.metric, "label": spec.label,
                    "kind": entry["kind"], "format": spec.format, "chart": chart.chart,
                    "groups": msgspec.to_builtins(answer.groups),
                })  # fmt: skip
        if shown:
            sections.append({"id": section.id, "title": section.title, "charts": shown})
    return page(
        "admin_metrics.html",
        sections=sections,
        charts_json=json_island(charts),
        start=start,
        end=end,
        by=by,
        breakdowns=BREAKDOWNS,
        where=where,
        options=_options(runtime),
        error=error,
        refresh_error=runtime.metrics_error,
        refreshed_at=refreshed_at,
    )


def _query(start: str, end: str, chart: Chart, by: str, where: dict[str, str]) -> str:
    from urllib.parse import urlencode

    breakdown = chart.by if chart.by is not None else by
    return urlencode(
        {"from": start, "to": end, **({"by": breakdown} if breakdown else {}), **where}
    )


@get("/admin/metrics/csv/{name:str}", include_in_schema=False)
async def metrics_csv(request: Req, runtime: RuntimeDep, name: str) -> Response[str]:
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    params = request.query_params
    now = datetime.now(UTC)
    q = question(
        runtime.layouts, name, start=params.get("from"), end=params.get("to"),
        by=[b for b in params.get("by", "").split(",") if b], interval=None, tenant_id=None,
        where={k: params[k] for k in FILTERS if params.get(k)}, today=now.date(),
    )  # fmt: skip
    answer = await runtime.metrics.answer(runtime.layouts, q, now)
    return Response(
        content=to_csv(answer),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@get("/admin/assets/metrics.js", include_in_schema=False)
async def dashboard_script() -> Response[bytes]:
    """The dashboards' charts (Observable Plot, bundled; nothing is loaded from elsewhere)."""
    return Response(
        content=(SDK_ASSETS / "admin" / "metrics.js").read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": SDK_CACHE},
    )


ROUTES = [metrics_dashboard, metrics_csv, dashboard_script]
