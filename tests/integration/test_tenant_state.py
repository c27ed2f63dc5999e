"""Tenant-wide state: a colleague's milestones, plan upgrades, and what browsers may send."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.integration

_ids = itertools.count()


async def send(
    client: AsyncTestClient[Any], headers: dict[str, str], *events: dict[str, Any]
) -> Any:
    batch = [{"messageId": f"ts{next(_ids)}", "tenantId": "acme", **e} for e in events]
    return await client.post("/v1/events", json={"batch": batch}, headers=headers)


async def next_step(client: AsyncTestClient[Any], headers: dict[str, str], user: str) -> str:
    r = await client.get(
        "/v1/layouts/home", params={"tenant_id": "acme", "user_id": user}, headers=headers
    )
    for slot in r.json()["slots"]:
        for w in slot["widgets"]:
            if w["type"] == "next_step_card":
                title: str = w["props"]["title"]
                return title
    return ""


async def setup_admins(client: AsyncTestClient[Any], headers: dict[str, str]) -> None:
    r = await send(
        client,
        headers,
        {"type": "identify", "userId": "u1", "traits": {"role": "admin"}},
        {"type": "identify", "userId": "u2", "traits": {"role": "admin"}},
        {
            "type": "group",
            "userId": "u1",
            "groupId": "acme",
            "traits": {"plan": "trial", "industry": "fintech"},
        },
    )
    assert r.status_code == 200


async def test_a_colleagues_milestone_moves_my_next_step_at_once(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    await setup_admins(client, secret_headers)
    assert await next_step(client, secret_headers, "u1") == "Invite a teammate"  # now cached
    r = await send(
        client, secret_headers, {"type": "track", "userId": "u2", "event": "teammate_invited"}
    )
    assert r.status_code == 200
    assert await next_step(client, secret_headers, "u1") == "Connect your first integration"


async def test_a_plan_upgrade_changes_the_tenants_plan(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    await setup_admins(client, secret_headers)
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "userId": "u1",
            "event": "feature_attempted",
            "properties": {"feature": "api", "screen": "editor"},
        },
    )
    r = await client.get(
        "/v1/layouts/editor", params={"tenant_id": "acme", "user_id": "u2"}, headers=secret_headers
    )
    assert r.status_code == 200
    await send(
        client,
        secret_headers,
        {"type": "track", "userId": "u1", "event": "plan_upgraded", "properties": {"plan": "pro"}},
    )
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "userId": "u2",
            "event": "feature_attempted",
            "properties": {"feature": "api", "screen": "editor"},
        },
    )
    r = await client.get(
        "/v1/layouts/editor", params={"tenant_id": "acme", "user_id": "u2"}, headers=secret_headers
    )
    types = [w["type"] for s in r.json()["slots"] for w in s["widgets"]]
    assert "upgrade_gate" not in types  # pro has the API: no gate for it any more


async def test_browsers_cannot_change_tenant_state_or_their_role(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    await setup_admins(client, secret_headers)
    as_u1 = browser_headers("acme", "u1")
    for body, field in (
        (
            {
                "type": "track",
                "userId": "u1",
                "event": "integration_connected",
                "properties": {"integration": "slack"},
            },
            "batch[0].event",
        ),
        (
            {
                "type": "track",
                "userId": "u1",
                "event": "plan_upgraded",
                "properties": {"plan": "enterprise"},
            },
            "batch[0].event",
        ),
        ({"type": "identify", "userId": "u1", "traits": {"role": "admin"}}, "batch[0].traits.role"),
    ):
        r = await send(client, as_u1, body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "secret_key_required"
        assert r.json()["error"]["field"] == field
    ok = await send(
        client,
        as_u1,
        {"type": "track", "userId": "u1", "event": "report_created"},
        {"type": "identify", "userId": "u1", "traits": {"locale": "de"}},
    )
    assert ok.status_code == 200, ok.text


async def test_a_limit_hit_without_a_screen_property_uses_the_segment_context(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    await setup_admins(client, secret_headers)
    r = await send(
        client,
        secret_headers,
        {
            "type": "track",
            "userId": "u1",
            "event": "limit_reached",
            "properties": {"limit": "seats", "used": 10, "max": 10},
            "context": {"screen": {"name": "billing"}},
        },
    )
    assert r.status_code == 200
    r = await client.get(
        "/v1/layouts/billing", params={"tenant_id": "acme", "user_id": "u1"}, headers=secret_headers
    )
    assert any(w["type"] == "upgrade_gate" for s in r.json()["slots"] for w in s["widgets"])
