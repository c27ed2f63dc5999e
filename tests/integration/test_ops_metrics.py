"""`GET /metrics`: the process's operational metrics in Prometheus's format, from the
OpenTelemetry instruments the requests themselves moved."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, its labels but OpenTelemetry's scope) → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_")))
            out[(s.name, labels)] = s.value
    return out


async def test_metrics_count_what_the_requests_did(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    batch = {"batch": [{"type": "track", "event": "feature_used", "tenantId": "acme",
                        "userId": "u1", "messageId": f"m{i}"} for i in range(3)]}  # fmt: skip
    assert (await client.post("/v1/events", json=batch, headers=secret_headers)).status_code == 200
    assert (await client.post("/v1/events", json=batch, headers=secret_headers)).status_code == 200
    params = {"tenant_id": "acme", "user_id": "u1"}
    for _ in range(2):
        r = await client.get("/v1/layouts/home", params=params, headers=secret_headers)
        assert r.status_code == 200

    r = await client.get("/metrics", headers=secret_headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    got = _samples(r.text)
    assert got[("cairn_ingest_events_total", (("outcome", "stored"),))] == 3
    assert got[("cairn_ingest_events_total", (("outcome", "duplicate"),))] == 3
    assert got[("cairn_ingest_batch_duration_milliseconds_count", ())] == 2
    home = (("screen", "home"),)
    assert got[("cairn_decision_duration_milliseconds_count", home)] == 2
    assert got[("cairn_decision_duration_milliseconds_sum", home)] > 0
    assert got[("cairn_decisions_total", (("degraded", "false"), ("screen", "home")))] == 2
    lookups = {k[1]: v for k, v in got.items() if k[0] == "cairn_profile_cache_lookups_total"}
    assert sum(lookups.values()) == 2 and (("result", "miss"),) in lookups
    assert got[("cairn_notifications_listening", ())] == 1


async def test_metrics_need_the_deployments_secret_key(
    client: AsyncTestClient[Any], browser_headers: Any
) -> None:
    assert (await client.get("/metrics")).status_code == 401
    browser = browser_headers("acme", "u1")
    r = await client.get("/metrics", headers=browser)
    assert r.status_code == 403, r.text
