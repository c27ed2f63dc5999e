"""Bad input gets a 4xx naming the field, never a 5xx, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.settings import Settings
from app.storage.db import Pool

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?user_id=u1", "tenant_id"),
        ("?tenant_id=acme", "user_id"),
        ("?tenant_id=&user_id=u1", "tenant_id"),
        ("?tenant_id=acme&user_id=" + "x" * 300, "user_id"),
    ],
)
async def test_layout_ids_are_checked(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], query: str, field: str
) -> None:
    r = await client.get(f"/v1/layouts/home{query}", headers=secret_headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert r.json()["error"]["field"] == field


async def test_malformed_client_header(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    r = await client.get(
        "/v1/layouts/home",
        params={"tenant_id": "a", "user_id": "u"},
        headers={**secret_headers, "X-Cairn-Client": "web/1; schema=two"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "X-Cairn-Client"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"personalization": "some"}, "personalization"),
        ({"notifications": {"digest": "hourly"}}, "notifications.digest"),
        ({"notifications": {"quiet_hours": {"start": "25:00"}}}, "notifications.quiet_hours.start"),
        (
            {"notifications": {"quiet_hours": {"time_zone": "Mars/Olympus"}}},
            "notifications.quiet_hours.time_zone",
        ),
        ({"colour": "red"}, "colour"),
        # an over-long zone is no file name the system can open: 400, not "database unavailable"
        (
            {"notifications": {"quiet_hours": {"time_zone": "Europe/" + "x" * 300}}},
            "notifications.quiet_hours.time_zone",
        ),
        (
            {"notifications": {"quiet_hours": {"time_zone": "a" * 60}}},
            "notifications.quiet_hours.time_zone",
        ),
        ({"notifications": {"categories": ["c"] * 51}}, "notifications.categories"),
        ({"notifications": {"categories": ["x" * 65]}}, "notifications.categories[0]"),
        ({"notifications": {"categories": ["tips\u0000"]}}, "notifications.categories[0]"),
    ],
)
async def test_bad_preferences_change_nothing(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    pool: Pool,
    body: dict[str, Any],
    field: str,
) -> None:
    params = {"tenant_id": "acme", "user_id": "u1"}
    ok = await client.put(
        "/v1/preferences", params=params, headers=secret_headers, json={"personalization": "basic"}
    )
    assert ok.status_code == 200
    r = await client.put("/v1/preferences", params=params, headers=secret_headers, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == field
    assert r.json()["error"]["message"]
    kept = await client.get("/v1/preferences", params=params, headers=secret_headers)
    assert kept.json()["personalization"] == "basic"


async def test_quiet_hours_round_trip(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], settings: Settings
) -> None:
    del settings
    params = {"tenant_id": "acme", "user_id": "u1"}
    body = {
        "personalization": "full",
        "notifications": {
            "channels": ["in_app"],
            "digest": "daily",
            "quiet_hours": {"start": "21:30", "end": "08:00", "time_zone": "Europe/Berlin"},
        },
    }
    r = await client.put("/v1/preferences", params=params, headers=secret_headers, json=body)
    assert r.status_code == 200, r.text
    got = (await client.get("/v1/preferences", params=params, headers=secret_headers)).json()
    assert got["notifications"]["quiet_hours"]["time_zone"] == "Europe/Berlin"
    assert got["notifications"]["channels"] == ["in_app"]


async def test_a_nul_character_is_a_400_not_a_500(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    """PostgreSQL stores no NUL in text: anything that reaches it with one is the caller's
    input, refused with a 400 (and nothing stored)."""
    item = {"kind": "template", "title": "Weekly\u0000report", "description": "d", "href": "/t"}
    r = await client.put("/v1/catalog/items/weekly", json=item, headers=secret_headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("invalid_request", "invalid_item")
    r = await client.get("/v1/catalog/items/weekly", headers=secret_headers)
    assert r.status_code == 404
    r = await client.get("/v1/catalog/items", params={"after": "\x00"}, headers=secret_headers)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize(
    ("method", "path", "body", "authorized"),
    [
        # a beacon: credentials in the body, read before anyone is authenticated
        ("POST", "/v1/events", b'{"batch": [], "writeKey": "pk\xff", "userHash": "x"}', False),
        (
            "POST",
            "/v1/events",
            b'{"batch": [{"type": "track", "userId": "u\xff", "tenantId":'
            b' "acme", "event": "e", "messageId": "m1"}]}',
            True,
        ),
        ("PUT", "/v1/preferences?tenant_id=acme&user_id=u1", b'{"personalization": "f\xff"}', True),
        ("PUT", "/v1/catalog/items/x", b'{"kind": "template", "title": "a\xff"}', True),
    ],
)
async def test_a_body_that_is_not_utf8_is_a_400(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    pool: Pool,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: bytes,
    authorized: bool,
) -> None:
    headers = secret_headers if authorized else {"Content-Type": "text/plain"}
    r = await client.request(method, path, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
    assert "UTF-8" in r.json()["error"]["message"]
    assert not [rec for rec in caplog.records if rec.exc_info]  # no traceback per request
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
