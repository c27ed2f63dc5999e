"""`GET /v1/metrics` and `/v1/metrics/{name}`: values by segment with intervals, CSV, errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.serving.metrics_refresh import refresh_metrics
from app.serving.runtime import Runtime
from app.storage.db import Pool
from app.storage.keys import create_api_key
from tests.conftest import run_cairn

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def _events(tenant: str, plan: str, users: int, activated: int) -> list[dict[str, Any]]:
    """Users who signed up 35 days ago; the first `activated` reach three activation steps."""
    start = NOW - timedelta(days=35)
    out: list[dict[str, Any]] = [
        {"type": "group", "messageId": f"{tenant}-g", "userId": "u0", "groupId": tenant,
         "traits": {"plan": plan, "seats": 12}, "timestamp": start.isoformat()},
    ]  # fmt: skip
    for n in range(users):
        user = f"u{n}"
        at = start + timedelta(minutes=n)

        def track(
            event: str, hours: float, user: str = user, at: datetime = at, **props: Any
        ) -> dict[str, Any]:
            return {
                "type": "track",
                "messageId": f"{tenant}-{user}-{event}",
                "tenantId": tenant,
                "userId": user,
                "event": event,
                "properties": props,
                "timestamp": (at + timedelta(hours=hours)).isoformat(),
            }

        out.append(
            {"type": "identify", "messageId": f"{tenant}-{user}-i", "tenantId": tenant,
             "userId": user, "traits": {"role": "maker"}, "timestamp": at.isoformat()}
        )  # fmt: skip
        out.append(track("signed_up", 0))
        if n < activated:
            out += [
                track("template_used", 1, template="t1"),
                track("report_created", 2),
                track("automation_created", 3),
            ]
    return out


@pytest.fixture
async def refreshed(
    client: AsyncTestClient[Any], runtime: Runtime, pool: Pool, secret_headers: dict[str, str]
) -> Runtime:
    batch = _events("acme", "trial", 10, 6) + _events("globex", "pro", 4, 1)
    r = await client.post("/v1/events", json={"batch": batch}, headers=secret_headers)
    assert r.status_code == 200, r.text
    await refresh_metrics(pool, runtime.layouts)
    return runtime


async def test_metrics_are_listed_with_their_definitions(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/metrics", headers=secret_headers)
    assert r.status_code == 200
    metrics = {m["name"]: m for m in r.json()["metrics"]}
    assert metrics["activation_14d"]["kind"] == "conversion"
    assert metrics["activation_14d"]["definition"]["within_days"] == 14
    assert metrics["trial_to_paid_30d"]["unit"] == "tenant"


async def test_a_rate_by_plan_has_counts_values_and_wilson_intervals(
    client: AsyncTestClient[Any], refreshed: Runtime, secret_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/metrics/activation_14d?by=plan", headers=secret_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["metric"], body["unit"], body["by"]) == ("activation_14d", "user", ["plan"])
    assert body["refreshed_at"] is not None
    groups = {g["key"]["plan"]: g for g in body["groups"]}
    assert (groups["trial"]["n"], groups["trial"]["value"]) == (10, 0.6)
    assert (groups["pro"]["n"], groups["pro"]["value"]) == (4, 0.25)
    low, high = groups["trial"]["ci"]
    assert low < 0.6 < high and (round(low, 3), round(high, 3)) == (0.313, 0.832)  # Wilson
    assert groups["trial"]["small"] is True  # 10 users: read the interval, not the point


async def test_the_same_answer_as_csv(
    client: AsyncTestClient[Any], refreshed: Runtime, secret_headers: dict[str, str]
) -> None:
    r = await client.get(
        "/v1/metrics/activation_14d", params={"by": "plan,role"},
        headers={**secret_headers, "Accept": "text/csv"},
    )  # fmt: skip
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    trial = next(row for row in rows if row["plan"] == "trial")
    assert (trial["role"], trial["n"], trial["value"]) == ("maker", "10", "0.6")


async def test_a_tenant_scoped_key_sees_its_tenant_only(
    client: AsyncTestClient[Any], refreshed: Runtime, pool: Pool
) -> None:
    key = await create_api_key(pool, "globex", "secret")
    r = await client.get("/v1/metrics/activation_14d", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    (only,) = r.json()["groups"]
    assert (only["n"], only["value"]) == (4, 0.25)


async def test_time_to_counts_units_that_never_got_there(
    client: AsyncTestClient[Any], refreshed: Runtime, secret_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/metrics/time_to_first_value?by=plan", headers=secret_headers)
    groups = {g["key"]["plan"]: g for g in r.json()["groups"]}
    trial = groups["trial"]
    assert (trial["n"], trial["reached"]) == (10, 6)  # 4 never got there, and are counted
    assert trial["value"] == 3600.0  # the median: their first value event an hour in
    assert groups["pro"]["value"] is None  # 1 of 4 got there: the median is never reached


async def test_exposure_breakdowns_say_they_are_observational(
    client: AsyncTestClient[Any], refreshed: Runtime, secret_headers: dict[str, str]
) -> None:
    r = await client.get(
        "/v1/metrics/activation_14d?by=exposure:next_step_card", headers=secret_headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["note"].startswith("Observational")
    assert {g["key"]["exposure"] for g in body["groups"]} == {"not shown"}


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        ("/v1/metrics/no_such_metric", 404, "unknown_metric", "name"),
        ("/v1/metrics/activation_14d?by=colour", 400, "invalid_request", "by"),
        ("/v1/metrics/activation_14d?by=plan,plan", 400, "invalid_request", "by"),
        ("/v1/metrics/trial_to_paid_30d?by=role", 400, "invalid_request", "by"),
        ("/v1/metrics/activation_14d?by=exposure:nothing", 400, "invalid_request", "by"),
        ("/v1/metrics/activation_14d?from=yesterday", 400, "invalid_request", "from"),
        (
            "/v1/metrics/activation_14d?from=2026-10-02&to=2026-10-01",
            400,
            "invalid_request",
            "from",
        ),
        ("/v1/metrics/activation_14d?interval=day", 400, "invalid_request", "interval"),
    ],
)
async def test_bad_questions_are_clear_4xx(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    query: str,
    status: int,
    code: str,
    field: str,
) -> None:
    r = await client.get(query, headers=secret_headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["field"] == field


async def test_browser_keys_cannot_read_metrics(
    client: AsyncTestClient[Any], browser_headers: Any
) -> None:
    r = await client.get("/v1/metrics", headers=browser_headers("acme", "u1"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "secret_key_required"


async def test_a_weekly_series_per_group(
    client: AsyncTestClient[Any], refreshed: Runtime, secret_headers: dict[str, str]
) -> None:
    """`interval=week`: each group's value per sign-up week, the weeks adding up to the group."""
    r = await client.get("/v1/metrics/activation_14d?by=plan&interval=week", headers=secret_headers)
    assert r.status_code == 200, r.text
    groups = {g["key"]["plan"]: g for g in r.json()["groups"]}
    trial = groups["trial"]["series"]
    assert trial and all(p["week"] for p in trial)
    assert sum(p["n"] for p in trial) == groups["trial"]["n"] == 10
    converted = sum(round((p["value"] or 0) * p["n"]) for p in trial)
    assert converted == 6


async def test_the_command_line_lists_shows_and_refreshes(
    refreshed: Runtime,
    database_dsn: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setenv("DATABASE_URL", database_dsn)
    monkeypatch.setenv("CAIRN_LAYOUTS_DIR", str(refreshed.settings.layouts_dir))
    assert await run_cairn("metrics", "list") == 0
    assert "activation_14d" in capsys.readouterr().out
    assert await run_cairn("metrics", "refresh") == 0
    assert "refreshed" in capsys.readouterr().out
    assert await run_cairn("metrics", "show", "activation_14d", "--by", "plan", "--json") == 0
    shown = __import__("json").loads(capsys.readouterr().out)
    assert {g["key"]["plan"]: g["n"] for g in shown["groups"]} == {"trial": 10, "pro": 4}
