"""Erasure and export, for one user and for a whole tenant, end to end through the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.storage.db import Pool
from app.storage.keys import create_api_key
from app.storage.privacy import NOT_PERSONAL, TENANT_TABLES, USER_TABLES

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]


def _events(tenant: str, user: str, prefix: str) -> list[dict[str, Any]]:
    base = {"tenantId": tenant, "userId": user}
    return [
        {**base, "type": "identify", "messageId": f"{prefix}1", "traits": {"role": "admin",
                                                                          "name": "Ada"}},
        {**base, "type": "track", "messageId": f"{prefix}2", "event": "signed_up"},
        {**base, "type": "track", "messageId": f"{prefix}3", "event": "feature_used",
         "properties": {"feature": "reports"}},
        {**base, "type": "track", "messageId": f"{prefix}4", "event": "widget_viewed",
         "properties": {"widget_id": "next_activation_step", "widget_type": "next_step_card"}},
        {"type": "group", "messageId": f"{prefix}5", "userId": user, "groupId": tenant,
         "traits": {"plan": "trial", "industry": "fintech"}},
    ]  # fmt: skip


async def _send(client: Client, headers: dict[str, str], batch: list[dict[str, Any]]) -> Any:
    r = await client.post("/v1/events", json={"batch": batch}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _seed(client: Client, secret_headers: dict[str, str]) -> None:
    for tenant, user in (("acme", "u1"), ("acme", "u2"), ("globex", "u1")):
        await _send(client, secret_headers, _events(tenant, user, f"{tenant}-{user}-"))
    r = await client.put("/v1/preferences", params={"tenant_id": "acme", "user_id": "u1"},
                         json={"personalization": "basic"}, headers=secret_headers)  # fmt: skip
    assert r.status_code == 200, r.text


async def _export(client: Client, headers: dict[str, str], user: str) -> dict[str, Any]:
    r = await client.get(f"/v1/users/{user}/export", params={"tenant_id": "acme"}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_user_is_exported_then_erased_and_stays_erased(
    client: Client, secret_headers: dict[str, str], pool: Pool
) -> None:
    await _seed(client, secret_headers)
    exported = await _export(client, secret_headers, "u1")
    tables = exported["tables"]
    assert set(tables) == set(USER_TABLES)
    assert len(tables["events"]) == 5  # the group call they sent is theirs too
    traits = tables["users"][0]["traits"]
    assert traits["role"] == "admin" and traits["name"].startswith("hmac:")  # held hashed
    assert tables["preferences"][0]["body"]["personalization"] == "basic"
    assert tables["user_facets"] and tables["user_event_days"] and tables["user_widgets"]

    r = await client.delete("/v1/users/u1", params={"tenant_id": "acme"}, headers=secret_headers)
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["events"] == 5 and r.json()["suppressed"] is True
    after = await _export(client, secret_headers, "u1")
    assert all(rows == [] for rows in after["tables"].values()), after
    # Nobody else's data went with it.
    assert len((await _export(client, secret_headers, "u2"))["tables"]["events"]) == 5
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = 'globex'") == 5
    # The next decision knows nothing of them...
    layout = await client.get("/v1/layouts/home", params={"tenant_id": "acme", "user_id": "u1"},
                              headers=secret_headers)  # fmt: skip
    assert layout.status_code == 200 and layout.json()["personalized"] is False
    # ...and their later events are dropped, counted, never stored.
    answer = await _send(client, secret_headers, _events("acme", "u1", "late-")[1:3])
    assert answer == {"accepted": 0, "duplicates": 0, "suppressed": 2}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE user_id = 'u1' AND"
                               " tenant_id = 'acme'") == 0  # fmt: skip
    assert await pool.fetchval("SELECT dropped FROM suppressions WHERE user_id = 'u1'") == 2
    r = await client.put("/v1/preferences", params={"tenant_id": "acme", "user_id": "u1"},
                         json={"personalization": "full"}, headers=secret_headers)  # fmt: skip
    assert (r.status_code, r.json()["error"]["code"]) == (409, "user_erased")
    assert await pool.fetchval("SELECT count(*) FROM preferences WHERE user_id = 'u1'"
                               " AND tenant_id = 'acme'") == 0  # fmt: skip
    # On record, by pseudonym, without the user's id or traits.
    logged = await pool.fetch("SELECT action, subject, detail FROM audit_log"
                              " WHERE action LIKE 'user.%' ORDER BY seq")  # fmt: skip
    assert [r["action"] for r in logged] == ["user.exported", "user.erased", "user.exported",
                                             "user.exported"]  # fmt: skip
    assert logged[0]["subject"] == logged[1]["subject"] != logged[3]["subject"]
    assert "u1" not in json.dumps([dict(r) for r in logged], default=str)
    assert logged[1]["detail"]["rows"]["events"] == 5


async def test_keys_may_erase_only_what_they_may_see(
    client: Client, pool: Pool, secret_headers: dict[str, str],
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:  # fmt: skip
    await _seed(client, secret_headers)
    acme_key = {"Authorization": f"Bearer {await create_api_key(pool, 'acme', 'secret')}"}
    r = await client.delete("/v1/users/u1", params={"tenant_id": "globex"}, headers=acme_key)
    assert r.status_code == 404
    r = await client.delete("/v1/users/u1", params={"tenant_id": "acme"},
                            headers=browser_headers("acme", "u1"))  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["code"] == "secret_key_required"
    assert (await client.delete("/v1/tenants/acme", headers=acme_key)).status_code == 403
    r = await client.delete("/v1/users/u1", params={"tenant_id": "acme"}, headers=acme_key)
    assert r.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = 'globex'") == 5


async def test_a_tenant_is_exported_then_offboarded(
    client: Client, secret_headers: dict[str, str], pool: Pool
) -> None:
    await _seed(client, secret_headers)
    acme_key = await create_api_key(pool, "acme", "publishable")
    r = await client.get("/v1/tenants/acme/export", headers=secret_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    by_table: dict[str, int] = {}
    for line in lines:
        by_table[line["table"]] = by_table.get(line["table"], 0) + 1
        assert line["row"]["tenant_id"] == "acme"
    assert by_table["events"] == 10 and by_table["users"] == 2 and by_table["tenants"] == 1
    keys = [line["row"] for line in lines if line["table"] == "api_keys"]
    assert len(keys) == 1 and len(keys[0]["key_hash"]) == 16  # a fingerprint, not the hash
    r = await client.delete("/v1/tenants/acme", headers=secret_headers)
    assert r.status_code == 200, r.text
    for table in TENANT_TABLES:
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = 'acme'") == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tenant_id = 'globex'") == 5
    assert (await client.get("/v1/layouts/home", params={"tenant_id": "acme", "user_id": "u1"},
            headers={"Authorization": f"Bearer {acme_key}"})).status_code == 401  # fmt: skip
    answer = await _send(client, secret_headers, _events("acme", "u3", "after-"))
    assert answer["accepted"] == 0 and answer["suppressed"] == 5
    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'tenant.%' ORDER BY seq")]  # fmt: skip
    assert actions == ["tenant.exported", "tenant.erased"]


async def test_every_table_is_erased_with_its_user_or_tenant_or_holds_nobody(pool: Pool) -> None:
    """A table added later must say here what it holds: erasure cannot forget it."""
    tables = {r["relname"] for r in await pool.fetch(  # partitions go with their table
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition")}  # fmt: skip
    assert tables == set(TENANT_TABLES) | set(NOT_PERSONAL)
    for table in TENANT_TABLES:
        columns = {
            r["column_name"]
            for r in await pool.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
            )
        }
        assert "tenant_id" in columns, table


async def test_an_erasure_and_a_batch_in_flight_never_interleave(pool: Pool) -> None:
    """A batch that read no suppression yet is stored before the erasure deletes (and so is
    deleted with the rest); the erasure waits for it."""
    import asyncio
    from datetime import UTC, datetime

    from app.ingest.segment import parse_batch, pii_key
    from app.storage.events import store_events
    from app.storage.privacy import erase_user
    from app.storage.suppressions import lock_for_ingest

    def rows(message: str) -> Any:
        body = json.dumps({"batch": [{"type": "track", "messageId": message, "tenantId": "acme",
                                      "userId": "u1", "event": "report_created"}]})  # fmt: skip
        return parse_batch(body.encode(), received_at=datetime.now(UTC), pii_mode="hash",
                           pii_key=pii_key("s")).rows  # fmt: skip

    await store_events(pool, rows("m1"), facets={})
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await lock_for_ingest(conn, ["acme"])  # a batch in flight, not committed yet
        await conn.execute(
            "INSERT INTO events (tenant_id, message_id, user_id, type, event, ts)"
            " VALUES ('acme', 'm2', 'u1', 'track', 'report_created', now())"
        )
        erasing = asyncio.create_task(erase_user(pool, "acme", "u1"))
        await asyncio.sleep(0.3)
        assert not erasing.done()  # it waits for the batch
        await tx.commit()
    counts = await erasing
    assert counts["events"] == 2  # the batch's event went with the rest
    assert (await store_events(pool, rows("m3"), facets={})).suppressed == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE user_id = 'u1'") == 0
