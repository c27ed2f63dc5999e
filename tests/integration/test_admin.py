"""The admin pages: only for the deployment's secret key; the why inspector explains a decision."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.engine.reasons import Reason
from app.settings import Settings
from app.storage.db import Pool
from app.storage.keys import create_api_key
from tests.integration.why_page import left_out, shown
from tests.paths import ROOT

pytestmark = pytest.mark.integration


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_admin_needs_the_deployment_secret_key(
    client: AsyncTestClient[Any], settings: Settings, pool: Pool
) -> None:
    r = await client.get("/admin")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    r = await client.get("/admin", headers=basic(settings.publishable_key))
    assert r.status_code == 401
    tenant_key = await create_api_key(pool, "acme", "secret")
    r = await client.get("/admin", headers=basic(tenant_key))
    assert r.status_code == 401  # a tenant's key does not see the whole deployment
    r = await client.get("/admin", headers=basic(settings.secret_key))
    assert r.status_code == 200
    assert "home" in r.text and "Screens" in r.text
    assert "Catalog index" in r.text and "all-MiniLM-L6-v2" in r.text


async def test_why_inspector_shows_shown_and_left_out_widgets(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {settings.secret_key}"}
    batch = [
        {
            "type": "identify",
            "messageId": "i1",
            "tenantId": "acme",
            "userId": "u1",
            "traits": {"role": "admin"},
        },
        {
            "type": "group",
            "messageId": "g1",
            "userId": "u1",
            "groupId": "acme",
            "traits": {"plan": "trial", "industry": "healthcare"},
        },
    ]
    assert (
        await client.post("/v1/events", json={"batch": batch}, headers=headers)
    ).status_code == 200
    r = await client.get(
        "/admin/why",
        params={"tenant_id": "acme", "user_id": "u1", "screen": "home"},
        headers=basic(settings.secret_key),
    )
    assert r.status_code == 200
    page = r.text
    assert "home/admin" in page
    step = shown(page)["next_activation_step"]
    assert step[0] == "next_step" and step[2] == "next_step_card"
    assert step[3].startswith("Invite a teammate is the next step")  # its why
    reasons = left_out(page)  # every widget left out, with its reason code
    assert reasons["maker_shortcuts"] == Reason.NOT_FOR_VIEW
    assert reasons["end_user_shortcuts"] == Reason.NOT_FOR_VIEW
    assert reasons["reengage_step"] == Reason.RULE_FALSE
    assert "next_activation_step" not in reasons
    assert "healthcare" in page  # the signals behind it


@pytest.mark.parametrize(
    ("path", "kind", "source"),
    [
        ("/sdk/cairn.js", "text/javascript", "web_sdk/dist/cairn.min.js"),
        ("/sdk/v1/cairn.core.js", "text/javascript", "web_sdk/dist/cairn.core.min.js"),
        ("/sdk/cairn.preferences.js", "text/javascript", "web_sdk/dist/cairn.preferences.min.js"),
        (
            "/sdk/v1/cairn.preferences.js",
            "text/javascript",
            "web_sdk/dist/cairn.preferences.min.js",
        ),
        ("/sdk/cairn.css", "text/css", "web_sdk/dist/cairn.css"),
        ("/sdk/cairn.d.ts", "text/plain", "web_sdk/src/cairn.d.ts"),
        ("/admin/assets/metrics.js", "text/javascript", "web_sdk/dist/admin/metrics.js"),
    ],
)
async def test_the_sdk_and_the_dashboards_script_are_served_as_built(
    client: AsyncTestClient[Any], path: str, kind: str, source: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(kind)
    assert r.headers["content-type"].count("charset") <= 1  # said once
    assert r.content == (ROOT / source).read_bytes()
    assert "stale-if-error" in r.headers["cache-control"]
