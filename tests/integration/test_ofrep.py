"""OpenFeature's remote evaluation protocol on a real PostgreSQL: evaluations with their reasons,
the bulk endpoint's ETag, keys and identity as for layouts, and OFREP's error shapes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.serving.runtime import Runtime
from app.storage.db import Pool
from app.storage.keys import create_api_key
from tests.conftest import run_cairn

pytestmark = pytest.mark.integration

Client = AsyncTestClient[Any]
Headers = dict[str, str]
_ids = itertools.count()


async def join(
    client: Client,
    headers: Headers,
    tenant: str,
    user: str,
    *,
    role: str = "admin",
    plan: str = "trial",
    seats: int = 10,
) -> None:
    batch = [
        {"type": "identify", "traits": {"role": role}},
        {"type": "group", "groupId": tenant, "traits": {"plan": plan, "seats": seats}},
    ]
    for event in batch:
        event.update(messageId=f"o{next(_ids)}", tenantId=tenant, userId=user)
    r = await client.post("/v1/events", json={"batch": batch}, headers=headers)
    assert r.status_code == 200, r.text


def context(tenant: str, user: str, **more: Any) -> dict[str, Any]:
    return {"context": {"targetingKey": user, "tenant_id": tenant, **more}}


async def one(
    client: Client, headers: Headers, key: str, tenant: str = "acme", user: str = "u1"
) -> Any:
    return await client.post(
        f"/ofrep/v1/evaluate/flags/{key}", json=context(tenant, user), headers=headers
    )


async def test_a_targeted_user_gets_the_rule_and_others_the_rollout(
    client: Client, secret_headers: Headers
) -> None:
    await join(client, secret_headers, "acme", "admin1", role="admin", plan="trial")
    await join(client, secret_headers, "acme", "maker1", role="maker", plan="trial")
    r = await one(client, secret_headers, "new_editor", user="admin1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key"] == "new_editor"
    assert (body["value"], body["variant"], body["reason"]) == (True, "on", "TARGETING_MATCH")
    assert body["metadata"]["rule"] == 1
    r = await one(client, secret_headers, "new_editor", user="maker1")
    assert r.json()["reason"] == "SPLIT"
    assert r.json()["metadata"]["rule"] == 2


async def test_tenant_flags_follow_the_tenant(client: Client, secret_headers: Headers) -> None:
    await join(client, secret_headers, "big", "u1", seats=80)
    await join(client, secret_headers, "small", "u1", seats=5)
    big = await one(client, secret_headers, "checklist_style", tenant="big")
    small = await one(client, secret_headers, "checklist_style", tenant="small")
    assert (big.json()["value"], big.json()["reason"]) == ("compact", "TARGETING_MATCH")
    assert (small.json()["value"], small.json()["reason"]) == ("full", "DEFAULT")


async def test_an_unknown_user_is_bucketed_all_the_same(
    client: Client, secret_headers: Headers
) -> None:
    r = await one(client, secret_headers, "new_editor", tenant="nobody", user="x")
    assert r.status_code == 200
    assert r.json()["reason"] == "SPLIT"  # no traits: the targeting rule cannot hold
    again = await one(client, secret_headers, "new_editor", tenant="nobody", user="x")
    assert again.json()["variant"] == r.json()["variant"]


async def test_bulk_evaluation_with_etag(
    client: Client, secret_headers: Headers, browser_headers: Callable[[str, str], Headers]
) -> None:
    await join(client, secret_headers, "acme", "u1", role="maker", plan="pro", seats=10)
    browser = browser_headers("acme", "u1")
    r = await client.post("/ofrep/v1/evaluate/flags", json=context("acme", "u1"), headers=browser)
    assert r.status_code == 200, r.text
    keys = {f["key"] for f in r.json()["flags"]}
    assert keys == {"new_editor", "checklist_style"}  # a browser sees the client flags only
    assert all({"value", "variant", "reason"} <= set(f) for f in r.json()["flags"])
    etag = r.headers["etag"]
    same = await client.post(
        "/ofrep/v1/evaluate/flags",
        json=context("acme", "u1"),
        headers={**browser, "If-None-Match": etag},
    )
    assert same.status_code == 304
    await join(client, secret_headers, "acme", "u1", role="maker", plan="pro", seats=60)
    changed = await client.post(
        "/ofrep/v1/evaluate/flags",
        json=context("acme", "u1"),
        headers={**browser, "If-None-Match": etag},
    )
    assert changed.status_code == 200
    styles = {f["key"]: f["value"] for f in changed.json()["flags"]}
    assert styles["checklist_style"] == "compact"
    everything = await client.post(
        "/ofrep/v1/evaluate/flags", json=context("acme", "u1"), headers=secret_headers
    )
    assert {f["key"] for f in everything.json()["flags"]} >= {"adaptive_help", "new_editor"}


async def test_browsers_prove_the_user_and_see_only_client_flags(
    client: Client, settings: Any, browser_headers: Callable[[str, str], Headers]
) -> None:
    no_hash = {"Authorization": f"Bearer {settings.publishable_key}"}
    r = await one(client, no_hash, "new_editor")
    assert r.status_code == 403
    r = await one(client, browser_headers("acme", "someone_else"), "new_editor")
    assert r.status_code == 403
    r = await one(client, browser_headers("acme", "u1"), "adaptive_help")
    assert r.status_code == 404
    assert r.json() == {
        "key": "adaptive_help",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "There is no flag 'adaptive_help'.",
    }
    r = await one(client, browser_headers("acme", "u1"), "new_editor")
    assert r.status_code == 200
    r = await client.post("/ofrep/v1/evaluate/flags/new_editor", json=context("acme", "u1"))
    assert r.status_code == 401


async def test_a_tenants_key_evaluates_for_its_tenant_only(client: Client, pool: Pool) -> None:
    key = await create_api_key(pool, "acme", "secret")
    scoped = {"Authorization": f"Bearer {key}"}
    assert (await one(client, scoped, "new_editor", tenant="acme")).status_code == 200
    other = await one(client, scoped, "new_editor", tenant="globex")
    assert other.status_code == 403
    bulk = await client.post(
        "/ofrep/v1/evaluate/flags", json=context("globex", "u1"), headers=scoped
    )
    assert bulk.status_code == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"[1, 2]", "PARSE_ERROR"),
        (b'{"context": "acme"}', "PARSE_ERROR"),
        (b'{"context": {"tenant_id": "acme"}}', "TARGETING_KEY_MISSING"),
        (b"{}", "TARGETING_KEY_MISSING"),
        (b'{"context": {"targetingKey": "u1"}}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 7, "tenant_id": "acme"}}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": "u1", "tenant_id": "a\\u0000b"}}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": "\xff", "tenant_id": "acme"}}', "PARSE_ERROR"),
    ],
)
async def test_bad_requests_get_ofreps_errors(
    client: Client, secret_headers: Headers, body: bytes, code: str
) -> None:
    headers = {**secret_headers, "Content-Type": "application/json"}
    r = await client.post("/ofrep/v1/evaluate/flags/new_editor", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == code
    assert r.json()["key"] == "new_editor"
    assert r.json()["errorDetails"]
    bulk = await client.post("/ofrep/v1/evaluate/flags", content=body, headers=headers)
    assert bulk.status_code == 400
    assert bulk.json()["errorCode"] == code
    assert "key" not in bulk.json()


async def test_unknown_flags_are_not_found(client: Client, secret_headers: Headers) -> None:
    r = await one(client, secret_headers, "no_such_flag")
    assert r.status_code == 404
    assert r.json()["errorCode"] == "FLAG_NOT_FOUND"


async def test_the_flag_list_and_the_counts_behind_the_stale_report(
    client: Client, secret_headers: Headers, runtime: Runtime, pool: Pool, settings: Any
) -> None:
    r = await client.get("/v1/flags", headers=secret_headers)
    assert r.status_code == 200
    flags = {f["key"]: f for f in r.json()["flags"]}
    assert flags["adaptive_help"]["read_by_layouts"] is True
    assert flags["new_editor"]["client"] is True
    assert flags["new_editor"]["defined_at"].startswith("layouts/flags.yaml:")
    browser = {"Authorization": f"Bearer {settings.publishable_key}"}
    assert (await client.get("/v1/flags", headers=browser)).status_code == 403

    for user in ("a", "b", "c"):
        assert (await one(client, secret_headers, "new_editor", user=user)).status_code == 200
    r = await client.get(
        "/v1/layouts/home", params={"tenant_id": "acme", "user_id": "a"}, headers=secret_headers
    )
    assert r.status_code == 200
    assert set(r.json()["flags"]) == {"new_editor", "checklist_style"}
    stale = await client.get("/v1/flags/stale", headers=secret_headers)  # flushes the counts
    assert stale.status_code == 200
    rows = await pool.fetch(
        "SELECT source, sum(n)::int AS n FROM flag_evaluations WHERE flag = 'new_editor'"
        " GROUP BY source"
    )
    assert {r["source"]: r["n"] for r in rows} == {"ofrep": 3, "layout": 1}
    assert runtime.flag_tally.take(__import__("datetime").date.today()) == []


async def test_the_command_line_lists_evaluates_and_reports_stale_flags(
    client: Client,
    secret_headers: Headers,
    database_dsn: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    await join(client, secret_headers, "acme", "cli1", role="admin", plan="trial")
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    assert await run_cairn("flags", "list") == 0
    listed = capsys.readouterr().out
    assert "new_editor  per user; client" in listed and "2. rollout on 10%, off 90%" in listed
    assert await run_cairn("flags", "eval", "new_editor", "--tenant", "acme", "--user", "cli1",
                      "--json") == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert (answer["value"], answer["reason"]) == (True, "TARGETING_MATCH")
    assert await run_cairn("flags", "eval", "nope", "--tenant", "acme", "--user", "cli1") == 2
    assert await run_cairn("flags", "stale", "--json") == 0
    assert json.loads(capsys.readouterr().out)["after_days"] == 30
