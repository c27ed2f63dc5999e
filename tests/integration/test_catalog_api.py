"""The catalog API: deployment secret key only, strict validation, idempotent PUT, pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.storage.db import Pool
from app.storage.keys import create_api_key

pytestmark = pytest.mark.integration

SLACK = {
    "kind": "integration",
    "title": "Slack",
    "description": "Get alerts in your channels.",
    "href": "/settings/integrations/slack/connect",
    "tags": ["integrations", "alerts"],
    "industries": [],
    "roles": ["admin"],
}


async def test_put_creates_then_replaces_and_get_reads(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], pool: Pool
) -> None:
    r = await client.put("/v1/catalog/items/slack", json=SLACK, headers=secret_headers)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "slack"
    r = await client.put(
        "/v1/catalog/items/slack", json={**SLACK, "title": "Slack!"}, headers=secret_headers
    )
    assert r.status_code == 200
    got = await client.get("/v1/catalog/items/slack", headers=secret_headers)
    assert got.json()["title"] == "Slack!"
    assert got.json()["tags"] == ["integrations", "alerts"]
    row = await pool.fetchrow("SELECT content_hash, embedded_hash FROM catalog_items")
    assert row is not None and row["embedded_hash"] is None  # waiting to be embedded
    assert (await client.get("/v1/catalog/items/nope", headers=secret_headers)).status_code == 404


async def test_listing_pages_through_items(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    for n in range(5):
        body = {**SLACK, "kind": "article" if n % 2 else "template", "title": f"Item {n}"}
        r = await client.put(f"/v1/catalog/items/i{n}", json=body, headers=secret_headers)
        assert r.status_code == 201
    first = (
        await client.get("/v1/catalog/items", params={"limit": 2}, headers=secret_headers)
    ).json()
    assert [i["id"] for i in first["items"]] == ["i0", "i1"] and first["next"] == "i1"
    rest = (
        await client.get(
            "/v1/catalog/items", params={"limit": 10, "after": "i1"}, headers=secret_headers
        )
    ).json()
    assert [i["id"] for i in rest["items"]] == ["i2", "i3", "i4"] and rest["next"] is None
    articles = (
        await client.get("/v1/catalog/items", params={"kind": "article"}, headers=secret_headers)
    ).json()
    assert [i["id"] for i in articles["items"]] == ["i1", "i3"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SLACK, "kind": "widget"}, "kind"),
        ({**SLACK, "title": ""}, "title"),
        ({**SLACK, "href": "javascript:alert(1)"}, "href"),
        ({**SLACK, "tags": ["x" * 100]}, "tags[0]"),
        ({**SLACK, "colour": "red"}, "colour"),
    ],
)
async def test_bad_items_are_rejected_naming_the_field(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = await client.put("/v1/catalog/items/x", json=body, headers=secret_headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert (await client.get("/v1/catalog/items/x", headers=secret_headers)).status_code == 404


async def test_only_the_deployment_secret_key_may_touch_the_catalog(
    client: AsyncTestClient[Any],
    pool: Pool,
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    tenant_key = await create_api_key(pool, "acme", "secret")
    r = await client.put(
        "/v1/catalog/items/slack", json=SLACK, headers={"Authorization": f"Bearer {tenant_key}"}
    )
    assert r.status_code == 403
    r = await client.get("/v1/catalog/items", headers=browser_headers("acme", "u1"))
    assert r.status_code == 403
    assert (await client.get("/v1/catalog/items")).status_code == 401


async def test_items_are_embedded_with_minilm_and_indexed(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], pool: Pool
) -> None:
    """A PUT item is embedded in the background (the real model), stored, and searchable."""
    import asyncio

    import numpy as np

    items = {
        "slack": SLACK,
        "kb_report_filters": {
            "kind": "article",
            "title": "Fix report filters that show nothing",
            "description": "Why a report comes back empty.",
            "tags": ["reports"],
        },
        "tpl_patient_intake": {
            "kind": "template",
            "title": "Patient intake workflow",
            "description": "Register new patients and their insurance.",
            "industries": ["healthcare"],
        },
    }
    for item_id, body in items.items():
        r = await client.put(f"/v1/catalog/items/{item_id}", json=body, headers=secret_headers)
        assert r.status_code == 201
    for _ in range(600):  # the first embedding loads the model
        ready = (await client.get("/readyz")).json()
        if ready["checks"]["catalog"]["indexed"] == 3 and ready["ready"]:
            break
        await asyncio.sleep(0.1)
    assert ready["checks"]["catalog"] == {
        "items": 3,
        "pending": 0,
        "indexed": 3,
        "model": ready["checks"]["catalog"]["model"],
        "error": None,
    }
    rows = await pool.fetch("SELECT item_id, embedding FROM catalog_items ORDER BY item_id")
    vectors = {r["item_id"]: np.frombuffer(r["embedding"], dtype=np.float32) for r in rows}
    assert all(v.shape == (384,) for v in vectors.values())
    assert abs(float(np.linalg.norm(vectors["slack"])) - 1.0) < 1e-4
    client_rt = client.app.state.runtime
    query = client_rt.embedder.embed(["my report filter returns no rows"])
    found = client_rt.catalog.index.search(query, 1)
    assert found.ids[0][0] == "kb_report_filters"  # semantics, not word overlap alone
    # Unchanged text is never embedded again.
    before = client_rt.catalog.status.embedded_total
    r = await client.put("/v1/catalog/items/slack", json=SLACK, headers=secret_headers)
    await asyncio.sleep(0.5)
    assert client_rt.catalog.status.embedded_total == before
