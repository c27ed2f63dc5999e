"""The layout API end to end on a real PostgreSQL: events in, descriptors out."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.serving.runtime import Runtime

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]
_ids = itertools.count()


def widget_ids(descriptor: dict[str, Any]) -> list[str]:
    return [w["id"] for slot in descriptor["slots"] for w in slot["widgets"]]


def widgets_of(descriptor: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [w for slot in descriptor["slots"] for w in slot["widgets"] if w["type"] == type_]


async def send(client: Client, headers: dict[str, str], *events: dict[str, Any]) -> None:
    batch = [
        {"messageId": f"m{next(_ids)}", "tenantId": "acme", "userId": "u1", **event}
        for event in events
    ]
    response = await client.post("/v1/events", json={"batch": batch}, headers=headers)
    assert response.status_code == 200, response.text


async def new_admin(client: Client, headers: dict[str, str], industry: str = "healthcare") -> None:
    await send(
        client,
        headers,
        {"type": "identify", "traits": {"role": "admin", "email": "a@example.com"}},
        {
            "type": "group",
            "groupId": "acme",
            "traits": {"plan": "trial", "industry": industry, "seats": 12, "seats_used": 3},
        },
        {"type": "track", "event": "signed_up"},
    )


async def layout(
    client: Client, headers: dict[str, str], screen: str = "home", **params: str
) -> dict[str, Any]:
    query = {"tenant_id": "acme", "user_id": "u1", **params}
    response = await client.get(f"/v1/layouts/{screen}", params=query, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_new_admin_sees_integration_prompt_checklist_and_one_next_step(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    d = await layout(client, secret_headers)
    assert d["personalized"] is True and d["degraded"] is False
    assert d["layout"] == "home/admin"
    assert [o["id"] for o in d["view"]["options"]] == ["maker", "end_user"]
    assert d["presets"]["terms"]["customer"] == "patient"
    prompt = widgets_of(d, "integration_prompt")
    assert len(prompt) == 1
    offered = [i["id"] for i in prompt[0]["props"]["integrations"]]
    assert 2 <= len(offered) <= 3
    assert len(widgets_of(d, "checklist")) == 1
    steps = widgets_of(d, "next_step_card")
    assert len(steps) == 1
    assert steps[0]["props"]["title"] == "Invite a teammate"
    for slot in d["slots"]:
        for w in slot["widgets"]:
            assert w["why"]["summary"] and w["why"]["source"] == "rule"


async def test_completing_a_step_moves_the_next_step_and_connected_integrations_leave(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    before = await layout(client, secret_headers)
    offered = [
        i["id"] for i in widgets_of(before, "integration_prompt")[0]["props"]["integrations"]
    ]
    await send(
        client,
        secret_headers,
        {"type": "track", "event": "teammate_invited", "properties": {"count": 1}},
        {
            "type": "track",
            "event": "integration_connected",
            "properties": {"integration": offered[0]},
        },
    )
    after = await layout(client, secret_headers)
    step = widgets_of(after, "next_step_card")[0]
    assert step["props"]["title"] != "Invite a teammate"
    assert step["props"]["progress"]["done"] == 2
    prompts = widgets_of(after, "integration_prompt")
    if prompts:
        assert offered[0] not in [i["id"] for i in prompts[0]["props"]["integrations"]]


async def test_roles_get_different_shortcuts_and_view_switches(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    admin = widgets_of(await layout(client, secret_headers), "shortcut_grid")[0]
    maker = await layout(client, secret_headers, view="maker")
    assert maker["layout"] == "home/maker" and maker["view"]["id"] == "maker"
    assert widgets_of(maker, "shortcut_grid")[0]["id"] != admin["id"]
    # A view that does not exist falls back to the role's own view.
    assert (await layout(client, secret_headers, view="nope"))["layout"] == "home/admin"


async def test_upgrade_gate_where_the_limit_was_hit_only(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "event": "limit_reached",
            "properties": {"limit": "seats", "used": 10, "max": 10, "screen": "settings"},
        },
    )
    settings_layout = await layout(client, secret_headers, "settings")
    gate = widgets_of(settings_layout, "upgrade_gate")
    assert len(gate) == 1
    assert gate[0]["props"]["trigger"] == {"kind": "limit", "name": "seats"}
    assert gate[0]["props"]["roi"] and gate[0]["props"]["back"]["href"]
    assert widgets_of(await layout(client, secret_headers, "home"), "upgrade_gate") == []


async def test_no_upgrade_gate_for_a_feature_the_plan_has(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "event": "feature_attempted",
            "properties": {"feature": "automations", "screen": "editor"},
        },
    )
    assert widgets_of(await layout(client, secret_headers, "editor"), "upgrade_gate") == []
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "event": "feature_attempted",
            "properties": {"feature": "sso", "screen": "editor"},
        },
    )
    gate = widgets_of(await layout(client, secret_headers, "editor"), "upgrade_gate")
    assert gate and gate[0]["props"]["trigger"] == {"kind": "feature", "name": "sso"}


async def test_repeated_errors_bring_a_help_tip(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    error = {
        "type": "track",
        "event": "error_shown",
        "properties": {"feature": "automations", "message": "Trigger failed"},
    }
    await send(client, secret_headers, error, error)
    assert widgets_of(await layout(client, secret_headers, "editor"), "help_tip") == []
    await send(client, secret_headers, error)
    tips = widgets_of(await layout(client, secret_headers, "editor"), "help_tip")
    assert len(tips) == 1
    assert "automation" in tips[0]["props"]["article"]["title"].lower()


async def test_dismissed_widget_rests_for_its_cool_down(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    d = await layout(client, secret_headers)
    assert "connect_integrations" in widget_ids(d)
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "event": "widget_dismissed",
            "properties": {"widget_id": "connect_integrations", "decision_id": d["decision_id"]},
        },
    )
    assert "connect_integrations" not in widget_ids(await layout(client, secret_headers))


async def test_personalization_off_and_basic(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    params = {"tenant_id": "acme", "user_id": "u1"}
    r = await client.put(
        "/v1/preferences", params=params, headers=secret_headers, json={"personalization": "off"}
    )
    assert r.status_code == 200, r.text
    off = await layout(client, secret_headers)
    assert off["personalized"] is False
    assert [w["type"] for s in off["slots"] for w in s["widgets"]] == ["shortcut_grid"]
    assert all(w["why"]["source"] == "default" for s in off["slots"] for w in s["widgets"])
    r = await client.put(
        "/v1/preferences", params=params, headers=secret_headers, json={"personalization": "basic"}
    )
    basic = await layout(client, secret_headers)
    assert basic["personalized"] is True
    assert basic["layout"] == "home/admin"  # the declared role still counts
    assert widgets_of(basic, "checklist") == [] and widgets_of(basic, "integration_prompt") == []
    prefs = await client.get("/v1/preferences", params=params, headers=secret_headers)
    assert prefs.json()["personalization"] == "basic"


async def test_bad_preferences_are_rejected_naming_the_field(
    client: Client, secret_headers: dict[str, str]
) -> None:
    r = await client.put(
        "/v1/preferences",
        params={"tenant_id": "acme", "user_id": "u1"},
        headers=secret_headers,
        json={"personalization": "lots"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_preferences"
    assert r.json()["error"]["field"] == "personalization"


async def test_the_explanation_offers_what_the_preference_center_shows(
    client: Client,
    secret_headers: dict[str, str],
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    """The levels with their purposes, which purposes the user cannot change (required, or
    withheld by the organization), and every channel, category and digest cadence on offer."""
    params = {"tenant_id": "acme", "user_id": "u1"}
    chosen = {
        "personalization": "basic",
        "notifications": {"categories": ["tips", "release_notes"]},
    }
    r = await client.put("/v1/preferences", params=params, headers=secret_headers, json=chosen)
    assert r.status_code == 200, r.text
    r = await client.put("/v1/tenants/acme/consent", headers=secret_headers,
                         json={"purposes": {"modelled": False}})  # fmt: skip
    assert r.status_code == 200, r.text
    r = await client.get(
        "/v1/preferences/explain", params=params, headers=browser_headers("acme", "u1")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    levels = {level["id"]: level for level in body["levels"]}
    assert [level["id"] for level in body["levels"]] == ["full", "basic", "off"]
    assert levels["off"]["purposes"] == ["necessary"]
    assert levels["basic"]["purposes"] == body["level_grants"]
    assert {"declared", "measurement"} <= set(levels["basic"]["purposes"])
    assert "behavioural" not in levels["basic"]["purposes"]
    assert levels["full"]["label"] == "Full"
    assert levels["full"]["description"] == body["controls"]["personalization"]["full"]
    by_id = {p["id"]: p for p in body["purposes"]}
    assert [p for p in by_id if by_id[p]["required"]] == ["necessary"]
    assert [p for p in by_id if by_id[p]["withheld"]] == ["modelled"]
    offered = body["notification_choices"]
    assert [c["id"] for c in offered["channels"]] == ["in_app", "email", "push", "slack"]
    assert [c["id"] for c in offered["digest"]] == ["off", "daily", "weekly"]
    categories = {c["id"]: c["label"] for c in offered["categories"]}
    assert list(categories) == ["product_updates", "tips", "billing", "release_notes"]
    assert categories["release_notes"] == "Release notes"  # one of the user's own, in words
    assert all(c["label"] for group in offered.values() for c in group)


async def test_unknown_user_gets_default_layout_and_unknown_screen_404(
    client: Client, secret_headers: dict[str, str]
) -> None:
    d = await layout(client, secret_headers)
    assert d["personalized"] is False and d["layout"] == "home/end_user"
    r = await client.get(
        "/v1/layouts/nowhere", params={"tenant_id": "acme", "user_id": "u1"}, headers=secret_headers
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_screen"


async def test_etag_and_304(client: Client, secret_headers: dict[str, str]) -> None:
    await new_admin(client, secret_headers)
    params = {"tenant_id": "acme", "user_id": "u1"}
    first = await client.get("/v1/layouts/home", params=params, headers=secret_headers)
    etag = first.headers["etag"]
    again = await client.get(
        "/v1/layouts/home", params=params, headers={**secret_headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    await send(client, secret_headers, {"type": "track", "event": "teammate_invited"})
    changed = await client.get(
        "/v1/layouts/home", params=params, headers={**secret_headers, "If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_client_capabilities_use_fallbacks_or_drop(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    headers = {**secret_headers, "X-Cairn-Client": "ios/3.1.0; schema=1; widgets=shortcut_grid"}
    d = await layout(client, secret_headers | headers)
    assert {w["type"] for s in d["slots"] for w in s["widgets"]} == {"shortcut_grid"}


async def test_publishable_key_needs_the_users_hash(
    client: Client, settings: Any, browser_headers: Callable[[str, str], dict[str, str]]
) -> None:
    params = {"tenant_id": "acme", "user_id": "u1"}
    no_hash = {"Authorization": f"Bearer {settings.publishable_key}"}
    r = await client.get("/v1/layouts/home", params=params, headers=no_hash)
    assert r.status_code == 403
    wrong = browser_headers("acme", "u2")
    r = await client.get("/v1/layouts/home", params=params, headers=wrong)
    assert r.status_code == 403
    r = await client.get("/v1/layouts/home", params=params, headers=browser_headers("acme", "u1"))
    assert r.status_code == 200
    r = await client.get("/v1/layouts/home", params=params)
    assert r.status_code == 401


async def test_profile_store_down_gives_degraded_default(
    client: Client,
    secret_headers: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await new_admin(client, secret_headers)

    async def down(*_: object) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(runtime.profiles, "load", down)
    d = await layout(client, secret_headers)
    assert d["degraded"] is True and d["personalized"] is False
    assert widgets_of(d, "shortcut_grid")


async def test_if_none_match_lists_and_star(client: Client, secret_headers: dict[str, str]) -> None:
    params = {"tenant_id": "acme", "user_id": "u1"}
    first = await client.get("/v1/layouts/home", params=params, headers=secret_headers)
    etag = first.headers["etag"]
    for value in (f'"other", {etag}', f"W/{etag}", "*"):
        r = await client.get(
            "/v1/layouts/home", params=params, headers={**secret_headers, "If-None-Match": value}
        )
        assert r.status_code == 304, value
    r = await client.get(
        "/v1/layouts/home", params=params, headers={**secret_headers, "If-None-Match": '"other"'}
    )
    assert r.status_code == 200


async def test_dismissals_hold_in_basic_mode(
    client: Client, secret_headers: dict[str, str]
) -> None:
    await new_admin(client, secret_headers)
    params = {"tenant_id": "acme", "user_id": "u1"}
    await client.put(
        "/v1/preferences", params=params, headers=secret_headers, json={"personalization": "basic"}
    )
    assert "admin_shortcuts" in widget_ids(await layout(client, secret_headers))
    await send(
        client,
        secret_headers,
        {
            "type": "track",
            "event": "widget_dismissed",
            "properties": {"widget_id": "admin_shortcuts"},
        },
    )
    assert "admin_shortcuts" not in widget_ids(await layout(client, secret_headers))
