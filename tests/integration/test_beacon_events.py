"""Beacons: `navigator.sendBeacon` cannot set headers, so a browser may post its events as a
text/plain JSON body carrying the publishable key (`writeKey`) and the user hash (`userHash`).
Everything else about ingestion is unchanged: the user is verified as with the header, tenants are
isolated, bad events are named, retries are stored once. A secret key never travels in a body."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.serving.identity import user_hash
from app.settings import Settings
from app.storage.db import Pool
from app.storage.keys import create_api_key

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]
TEXT = {"Content-Type": "text/plain;charset=UTF-8"}


def event(message_id: str, tenant: str = "acme", user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "tenantId": tenant,
        "userId": user,
        "event": "report_created",
        "properties": {"source": "beacon"},
        **extra,
    }


def beacon(batch: list[dict[str, Any]], **credentials: Any) -> bytes:
    """A body as the web SDK's beacon sends it."""
    body = {"batch": batch, "sentAt": "2026-11-27T10:00:01Z", **credentials}
    return json.dumps(body).encode()


@pytest.fixture
def signed(settings: Settings) -> Callable[[str, str], dict[str, str]]:
    """The body credentials of one user's browser session."""

    def make(tenant: str, user: str) -> dict[str, str]:
        return {
            "writeKey": settings.publishable_key,
            "userHash": user_hash(settings.identity_secret, tenant, user),
        }

    return make


async def stored(pool: Pool, message_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM events WHERE message_id = $1", message_id
    )
    return count


@pytest.mark.parametrize("path", ["/v1/events", "/v1/batch"])
async def test_a_text_plain_beacon_with_body_credentials_is_stored(
    client: Client,
    pool: Pool,
    signed: Callable[[str, str], dict[str, str]],
    path: str,
) -> None:
    body = beacon([event("bk1"), event("bk2", event="feature_used")], **signed("acme", "u1"))
    r = await client.post(path, content=body, headers=TEXT)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0}
    rows = await pool.fetch(
        "SELECT tenant_id, user_id, message_id, event, properties FROM events ORDER BY message_id"
    )
    assert [(r["tenant_id"], r["user_id"], r["message_id"], r["event"]) for r in rows] == [
        ("acme", "u1", "bk1", "report_created"),
        ("acme", "u1", "bk2", "feature_used"),
    ]
    properties = rows[0]["properties"]
    if isinstance(properties, str):
        properties = json.loads(properties)
    assert properties == {"source": "beacon"}  # the credentials are not stored with the events


async def test_a_single_event_body_and_a_gzip_body_carry_credentials_too(
    client: Client, pool: Pool, signed: Callable[[str, str], dict[str, str]]
) -> None:
    single = json.dumps({**event("one"), **signed("acme", "u1")}).encode()
    r = await client.post("/v1/events", content=single, headers=TEXT)
    assert r.status_code == 200, r.text
    zipped = gzip.compress(beacon([event("zipped")], **signed("acme", "u1")))
    r = await client.post(
        "/v1/events", content=zipped, headers={**TEXT, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    assert await stored(pool, "one") == 1
    assert await stored(pool, "zipped") == 1


async def test_the_body_user_hash_is_verified_like_the_header(
    client: Client,
    pool: Pool,
    settings: Settings,
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    good = user_hash(settings.identity_secret, "acme", "u1")
    other_user = user_hash(settings.identity_secret, "acme", "u2")
    for given, code in (
        (None, "user_hash_required"),
        ("", "user_hash_required"),
        ("0" * 64, "user_hash_invalid"),
        (other_user, "user_hash_invalid"),
        (good[:-1], "user_hash_invalid"),
    ):
        credentials: dict[str, Any] = {"writeKey": settings.publishable_key}
        if given is not None:
            credentials["userHash"] = given
        r = await client.post(
            "/v1/events", content=beacon([event("h1")], **credentials), headers=TEXT
        )
        assert r.status_code == 403, (given, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["field"] == "userHash"
        # The same hash in the header gets the same answer.
        headers = {**browser_headers("acme", "u1"), "X-Cairn-User-Hash": given or ""}
        r = await client.post("/v1/events", json={"batch": [event("h1")]}, headers=headers)
        assert r.status_code == 403, (given, r.text)
        assert r.json()["error"]["code"] == code
    assert await stored(pool, "h1") == 0
    # Hex digits compare as with the header: upper case is the same hash.
    r = await client.post(
        "/v1/events",
        content=beacon([event("h2")], writeKey=settings.publishable_key, userHash=good.upper()),
        headers=TEXT,
    )
    assert r.status_code == 200, r.text


async def test_a_secret_key_in_a_body_is_refused(
    client: Client, pool: Pool, settings: Settings
) -> None:
    tenant_secret = await create_api_key(pool, "acme", "secret")
    for key in (settings.secret_key, tenant_secret):
        r = await client.post(
            "/v1/events", content=beacon([event("s1")], writeKey=key), headers=TEXT
        )
        assert r.status_code == 401, r.text
        error = r.json()["error"]
        assert (error["code"], error["field"]) == ("secret_key_in_body", "writeKey")
        assert "secret key" in error["message"]
    assert await stored(pool, "s1") == 0


async def test_unknown_missing_or_malformed_body_keys_are_refused(
    client: Client, pool: Pool, settings: Settings, signed: Callable[[str, str], dict[str, str]]
) -> None:
    r = await client.post(
        "/v1/events", content=beacon([event("k1")], writeKey="pk_nobody"), headers=TEXT
    )
    assert r.status_code == 401
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == ("unauthorized", "writeKey")
    r = await client.post("/v1/events", content=beacon([event("k1")]), headers=TEXT)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "writeKey" in r.json()["error"]["message"]
    for credentials, field in (
        ({"writeKey": 42}, "writeKey"),
        ({**signed("acme", "u1"), "userHash": ["a"]}, "userHash"),
    ):
        r = await client.post(
            "/v1/events", content=beacon([event("k1")], **credentials), headers=TEXT
        )
        assert r.status_code == 400, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
            "invalid_request",
            field,
        )
    for junk in (b"not json", b"[1, 2]", b""):
        r = await client.post("/v1/events", content=junk, headers=TEXT)
        assert r.status_code == 401, r.text
    # Other endpoints never read credentials from a body.
    r = await client.put(
        "/v1/preferences",
        params={"tenant_id": "acme", "user_id": "u1"},
        content=json.dumps({"personalization": "off", **signed("acme", "u1")}),
        headers=TEXT,
    )
    assert r.status_code == 401
    assert await stored(pool, "k1") == 0


async def test_with_an_authorization_header_the_body_credentials_are_ignored(
    client: Client,
    pool: Pool,
    settings: Settings,
    signed: Callable[[str, str], dict[str, str]],
) -> None:
    publishable = {"Authorization": f"Bearer {settings.publishable_key}"}
    # The header's key needs the header's hash: a hash in the body does not stand in for it.
    r = await client.post(
        "/v1/events", content=beacon([event("a1")], **signed("acme", "u1")), headers=publishable
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "user_hash_required"
    # A key the header gets wrong is not rescued by a good key in the body.
    r = await client.post(
        "/v1/events",
        content=beacon([event("a1")], **signed("acme", "u1")),
        headers={**TEXT, "Authorization": "Bearer pk_nobody"},
    )
    assert r.status_code == 401
    assert await stored(pool, "a1") == 0
    # Segment's server libraries put their (secret) write key in the body beside the header.
    segment_style = beacon([event("a2")], writeKey=settings.secret_key)
    secret = {"Authorization": f"Bearer {settings.secret_key}", "Content-Type": "application/json"}
    r = await client.post("/v1/batch", content=segment_style, headers=secret)
    assert r.status_code == 200, r.text
    assert await stored(pool, "a2") == 1


async def test_body_credentials_keep_tenants_and_users_apart(
    client: Client,
    pool: Pool,
    settings: Settings,
    signed: Callable[[str, str], dict[str, str]],
) -> None:
    acme_publishable = await create_api_key(pool, "acme", "publishable")
    acme_hash = user_hash(settings.identity_secret, "acme", "u1")
    globex_hash = user_hash(settings.identity_secret, "globex", "u1")
    # A tenant's publishable key sends its own users' events...
    r = await client.post(
        "/v1/events",
        content=beacon([event("t1")], writeKey=acme_publishable, userHash=acme_hash),
        headers=TEXT,
    )
    assert r.status_code == 200, r.text
    # ...and gets 404 for another tenant's, even with that user's valid hash.
    r = await client.post(
        "/v1/events",
        content=beacon(
            [event("t2", tenant="globex")], writeKey=acme_publishable, userHash=globex_hash
        ),
        headers=TEXT,
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["field"].startswith("batch[0]")
    # One verified user per batch; tenant-changing events need the secret key.
    for batch, status, code, field in (
        ([event("t3"), event("t4", user="u2")], 403, "one_user_per_batch", "batch[1].userId"),
        ([event("t3"), event("t4", tenant="globex")], 403, "one_user_per_batch", "batch[1].userId"),
        ([event("t3", event="plan_upgraded")], 403, "secret_key_required", "batch[0].event"),
        # a setup step anyone in the tenant completes for everyone (scope: tenant)
        ([event("t3", event="teammate_invited")], 403, "secret_key_required", "batch[0].event"),
        ([event("t3", event="billing_connected")], 403, "secret_key_required", "batch[0].event"),
        (
            [event("t3", type="identify", traits={"role": "admin"})],
            403,
            "secret_key_required",
            "batch[0].traits.role",
        ),
    ):
        r = await client.post(
            "/v1/events", content=beacon(batch, **signed("acme", "u1")), headers=TEXT
        )
        assert r.status_code == status, r.text
        assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (code, field)
    counts = await pool.fetch("SELECT message_id FROM events ORDER BY message_id")
    assert [r["message_id"] for r in counts] == ["t1"]


async def test_bad_events_in_a_beacon_are_named_and_nothing_is_stored(
    client: Client, pool: Pool, signed: Callable[[str, str], dict[str, str]]
) -> None:
    body = beacon([event("v1"), event("v2", messageId=None)], **signed("acme", "u1"))
    r = await client.post("/v1/events", content=body, headers=TEXT)
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["field"]) == (
        "invalid_event",
        "batch[1].messageId",
    )
    assert await stored(pool, "v1") == 0


async def test_a_resent_beacon_is_stored_once(
    client: Client,
    pool: Pool,
    signed: Callable[[str, str], dict[str, str]],
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    """The SDK sends again, on the next page, what it sent by beacon: Cairn keeps one copy."""
    batch = [event("r1"), event("r2")]
    first = await client.post(
        "/v1/events", content=beacon(batch, **signed("acme", "u1")), headers=TEXT
    )
    assert first.json() == {"accepted": 2, "duplicates": 0}
    again = await client.post(
        "/v1/events", content=beacon(batch, **signed("acme", "u1")), headers=TEXT
    )
    assert again.json() == {"accepted": 0, "duplicates": 2}
    by_fetch = await client.post(
        "/v1/events",
        content=msgspec.json.encode({"batch": [*batch, event("r3")]}),
        headers={**browser_headers("acme", "u1"), "Content-Type": "application/json"},
    )
    assert by_fetch.json() == {"accepted": 1, "duplicates": 2}
    assert await pool.fetchval("SELECT count(*) FROM events") == 3


async def test_a_cross_origin_beacon_needs_no_preflight(
    settings: Settings, pool: Pool, signed: Callable[[str, str], dict[str, str]]
) -> None:
    """A text/plain POST is a CORS simple request: the browser sends it without asking first,
    and Cairn takes it as it comes, from an allowed origin or not (the body proves the caller)."""
    from app.main import create_app

    del pool  # requested so that tables are emptied first
    app = create_app(msgspec.structs.replace(settings, cors_origins=("https://app.example",)))
    async with AsyncTestClient(app=app) as c:
        for origin in ("https://app.example", "https://elsewhere.example"):
            r = await c.post(
                "/v1/events",
                content=beacon([event(f"o-{origin}")], **signed("acme", "u1")),
                headers={**TEXT, "Origin": origin},
            )
            assert r.status_code == 200, (origin, r.text)
            allowed = origin if origin == "https://app.example" else None
            assert r.headers.get("access-control-allow-origin") == allowed
