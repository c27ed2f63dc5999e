"""Data residency: a deployment serves one region; tenants of another are refused, whole."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.settings import Settings
from app.storage.db import Pool

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, region="eu")


def _track(tenant: str, message: str) -> dict[str, Any]:
    return {"type": "track", "messageId": message, "tenantId": tenant, "userId": "u1",
            "event": "report_created"}  # fmt: skip


async def test_tenants_of_another_region_are_refused_with_409(
    client: Client, secret_headers: dict[str, str], pool: Pool
) -> None:
    group = {"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
             "traits": {"region": "us", "plan": "pro"}}  # fmt: skip
    r = await client.post("/v1/events", headers=secret_headers,
                          json={"batch": [_track("acme", "t0"), group]})  # fmt: skip
    assert r.status_code == 409, r.text
    assert r.json()["error"] == {
        "code": "wrong_region",
        "message": "Tenant 'acme' is kept in region 'us': send its data to that region's Cairn.",
        "field": "batch[1].traits.region",
    }
    assert await pool.fetchval("SELECT count(*) FROM events") == 0  # nothing of the batch
    # A tenant already known to be elsewhere: its events and layouts alike.
    await pool.execute("INSERT INTO tenants (tenant_id, traits) VALUES ('globex', $1)",
                       {"region": "us"})  # fmt: skip
    mixed = {"batch": [_track("initech", "i1"), _track("globex", "x1")]}
    r = await client.post("/v1/events", headers=secret_headers, json=mixed)
    assert (r.status_code, r.json()["error"]["field"]) == (409, "batch[1]")
    r = await client.get("/v1/layouts/home", params={"tenant_id": "globex", "user_id": "u1"},
                         headers=secret_headers)  # fmt: skip
    assert (r.status_code, r.json()["error"]["code"]) == (409, "wrong_region")
    where = {"tenant_id": "globex", "user_id": "u1"}
    for method, path, body in (
        ("GET", "/v1/preferences", None), ("PUT", "/v1/preferences", {"personalization": "off"}),
    ):  # fmt: skip
        r = await client.request(method, path, params=where, json=body, headers=secret_headers)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "wrong_region"), path
    context = {"context": {"targetingKey": "u1", "tenant_id": "globex"}}
    r = await client.post("/ofrep/v1/evaluate/flags", headers=secret_headers, json=context)
    assert r.status_code == 409
    # This region's tenants, and tenants that name none, are served.
    eu = {**group, "traits": {"region": "eu"}, "messageId": "g2"}
    for batch in ([eu, _track("acme", "a1")], [_track("initech", "i2")]):
        r = await client.post("/v1/events", headers=secret_headers, json={"batch": batch})
        assert r.status_code == 200, r.text
    r = await client.get("/v1/layouts/home", params={"tenant_id": "acme", "user_id": "u1"},
                         headers=secret_headers)  # fmt: skip
    assert r.status_code == 200
