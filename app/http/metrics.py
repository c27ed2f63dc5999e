"""`GET /v1/metrics` and `GET /v1/metrics/{name}`: the metric layer, for analysts and dashboards.

Secret keys only. A key scoped to one tenant sees that tenant's units alone. `Accept: text/csv`
gives the same answer as CSV, one row per group (and per point of its series, weeks or steps).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get

from app.http.auth import Caller
from app.http.contract import KEYED, TEXT, documented
from app.http.dependencies import RuntimeDep
from app.serving.metrics import Group, MetricAnswer, MetricInfo, Point, describe, question


class MetricList(msgspec.Struct):
    metrics: list[MetricInfo]


Req = Request[Any, Any, Any]

_FILTERS = ("plan", "role", "industry", "stage", "seat_band", "cohort")


@get("/v1/metrics", opt=documented("The metrics defined", ok=MetricList))
async def list_metrics(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    principal.require_secret()
    body = msgspec.json.encode(MetricList(describe(runtime.layouts)))
    return Response(content=body, media_type=MediaType.JSON)


@get(
    "/v1/metrics/{name:str}",
    opt=documented(
        "One metric by segment, with confidence intervals (CSV with `Accept: text/csv`)",
        ok=MetricAnswer,
        alternatives={"text/csv": TEXT},
        errors=(*KEYED, 400),
    ),
)
async def get_metric(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    name: str,
    by: list[str] | None = None,
    interval: str | None = None,
) -> Response[bytes]:
    principal.require_secret()
    params = request.query_params
    now = datetime.now(UTC)
    q = question(
        runtime.layouts,
        name,
        start=params.get("from"),
        end=params.get("to"),
        by=[part.strip() for value in by or () for part in value.split(",") if part.strip()],
        interval=interval,
        tenant_id=principal.tenant_id,
        where={key: params[key] for key in _FILTERS if params.get(key)},
        today=now.date(),
    )
    answer = await runtime.metrics.answer(runtime.layouts, q, now)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            content=to_csv(answer).encode(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(content=msgspec.json.encode(answer), media_type=MediaType.JSON)


def to_csv(answer: MetricAnswer) -> str:
    """One row per group, and one per point of its series, retention weeks or funnel steps."""
    keys = list(dict.fromkeys(k for g in answer.groups for k in g.key))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["metric", *keys, "point", "n", "value", "ci_low", "ci_high", "small", "reached"]
    )
    for g in answer.groups:
        cells = [g.key.get(k, "") for k in keys]
        writer.writerow([answer.metric, *cells, "", *_numbers(g), g.reached or ""])
        for point in (*(g.series or ()), *(g.weeks or ()), *(g.steps or ())):
            writer.writerow([answer.metric, *cells, _point_name(point), *_numbers(point), ""])
    return out.getvalue()


def _numbers(p: Group | Point) -> list[object]:
    low, high = p.ci if p.ci is not None else ("", "")
    return [p.n, "" if p.value is None else p.value, _cell(low), _cell(high), str(p.small).lower()]


def _cell(value: float | str | None) -> object:
    return "" if value is None else value


def _point_name(p: Point) -> str:
    if p.week is not None:
        return f"week of {p.week}"
    if p.week_n is not None:
        return f"week {p.week_n}"
    return f"step {p.step}: {p.label}"


ROUTES = [list_metrics, get_metric]
