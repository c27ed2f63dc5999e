"""Tenants never see each other's data; browser callers prove who they are."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.serving.identity import user_hash
from app.settings import Settings
from app.storage.db import Pool
from app.storage.keys import create_api_key

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]


def event(tenant: str, user: str, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "tenantId": tenant,
        "userId": user,
        "event": "report_created",
        **extra,
    }


async def seed_two_tenants(client: Client, settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {settings.secret_key}"}
    batch = [
        {
            "type": "identify",
            "messageId": "a1",
            "tenantId": "acme",
            "userId": "u1",
            "traits": {"role": "admin"},
        },
        {
            "type": "identify",
            "messageId": "g1",
            "tenantId": "globex",
            "userId": "u1",
            "traits": {"role": "admin"},
        },
    ]
    r = await client.post("/v1/events", json={"batch": batch}, headers=headers)
    assert r.status_code == 200, r.text


async def test_a_tenant_key_gets_404_for_another_tenant(
    client: Client, settings: Settings, pool: Pool
) -> None:
    await seed_two_tenants(client, settings)
    acme_key = await create_api_key(pool, "acme", "secret")
    acme = {"Authorization": f"Bearer {acme_key}"}
    mine = {"tenant_id": "acme", "user_id": "u1"}
    theirs = {"tenant_id": "globex", "user_id": "u1"}

    assert (await client.get("/v1/layouts/home", params=mine, headers=acme)).status_code == 200
    for method, path, params, body in (
        ("GET", "/v1/layouts/home", theirs, None),
        ("GET", "/v1/layouts/home/stream", theirs, None),
        ("GET", "/v1/preferences", theirs, None),
        ("PUT", "/v1/preferences", theirs, {"personalization": "off"}),
    ):
        r = await client.request(method, path, params=params, headers=acme, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    r = await client.post(
        "/v1/events",
        headers=acme,
        json={"batch": [event("acme", "u1", "ok1"), event("globex", "u1", "x1")]},
    )
    assert r.status_code == 404
    assert r.json()["error"]["field"].startswith("batch[1]")
    # Nothing of the rejected batch was stored, not even the acme event.
    assert await pool.fetchval("SELECT count(*) FROM events WHERE message_id = 'ok1'") == 0
    # globex's preferences are untouched.
    assert await pool.fetchval("SELECT count(*) FROM preferences") == 0


async def test_publishable_key_acts_only_for_the_verified_user(
    client: Client,
    settings: Settings,
    pool: Pool,
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    await seed_two_tenants(client, settings)
    as_u1 = browser_headers("acme", "u1")
    ok = await client.post("/v1/events", headers=as_u1, json={"batch": [event("acme", "u1", "b1")]})
    assert ok.status_code == 200, ok.text
    for params in (
        {"tenant_id": "acme", "user_id": "u2"},
        {"tenant_id": "globex", "user_id": "u1"},
    ):
        r = await client.get("/v1/layouts/home", params=params, headers=as_u1)
        assert r.status_code == 403
        r = await client.get("/v1/preferences", params=params, headers=as_u1)
        assert r.status_code == 403
    r = await client.post("/v1/events", headers=as_u1, json={"batch": [event("acme", "u2", "b2")]})
    assert r.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM events WHERE message_id = 'b2'") == 0
    # A publishable key cannot reach secret-only features, with or without a hash.
    missing = {"Authorization": f"Bearer {settings.publishable_key}"}
    r = await client.get(
        "/v1/layouts/home", params={"tenant_id": "acme", "user_id": "u1"}, headers=missing
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_hash_required"


async def test_a_user_hash_names_one_tenant_and_one_user(
    client: Client, settings: Settings, pool: Pool
) -> None:
    """The hash of "t:a" + "x" would be the hash of "t" + "a:x": tenant ids with ':' are refused
    for browser callers, so a user's proof never unlocks another tenant's user."""
    from app.serving.identity import proves_user

    proof_for_t = hmac.new(
        settings.identity_secret.encode(), b"t:a:x", hashlib.sha256
    ).hexdigest()  # what the host app computes for tenant "t", user "a:x"
    assert proves_user(proof_for_t, settings.identity_secret, "t", "a:x")
    assert not proves_user(proof_for_t, settings.identity_secret, "t:a", "x")
    with pytest.raises(ValueError, match="may not contain ':'"):
        user_hash(settings.identity_secret, "t:a", "x")
    browser = {
        "Authorization": f"Bearer {settings.publishable_key}",
        "X-Cairn-User-Hash": proof_for_t,
    }
    r = await client.get(
        "/v1/layouts/home", params={"tenant_id": "t:a", "user_id": "x"}, headers=browser
    )
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
        "invalid_request",
        "tenant_id",
    )
    batch = {"batch": [event("t:a", "x", "colon1")]}
    r = await client.post("/v1/events", headers=browser, json=batch)
    assert r.status_code == 400, r.text
    assert await pool.fetchval("SELECT count(*) FROM events WHERE message_id = 'colon1'") == 0
    # A user id with ':' is fine: the first ':' ends the tenant id.
    r = await client.get(
        "/v1/layouts/home", params={"tenant_id": "t", "user_id": "a:x"}, headers=browser
    )
    assert r.status_code == 200, r.text


async def test_unknown_and_revoked_keys_are_refused(client: Client, pool: Pool) -> None:
    from app.storage.keys import revoke_api_key

    params = {"tenant_id": "acme", "user_id": "u1"}
    r = await client.get("/v1/layouts/home", params=params, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    key = await create_api_key(pool, "acme", "secret")
    assert await revoke_api_key(pool, key)
    r = await client.get(
        "/v1/layouts/home", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 401
