"""Faults degrade: slow profile reads, revoked keys, a database that drops Cairn's connections."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from app.engine.profile import ProfileData
from app.serving.runtime import Runtime
from app.settings import Settings
from app.storage.db import Pool
from app.storage.keys import create_api_key, revoke_api_key
from app.storage.profiles import ProfileStore

pytestmark = pytest.mark.integration


async def test_a_caller_that_gives_up_does_not_fail_the_others(
    pool: Pool, settings: Settings
) -> None:
    """Concurrent reads of one user share one query; one caller's timeout cancels only itself."""
    from app.config.layouts import load_layouts

    store = ProfileStore(pool, load_layouts(settings.layouts_dir).vocabulary)
    calls = 0

    async def slow_fetch(tenant_id: str, user_id: str, now: datetime) -> ProfileData:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return ProfileData(tenant_id=tenant_id, user_id=user_id, known=True)

    store.fetch = slow_fetch  # type: ignore[method-assign]
    now = datetime.now(UTC)
    impatient = asyncio.create_task(asyncio.wait_for(store.load("a", "u", now), 0.1))
    await asyncio.sleep(0.05)
    patient = asyncio.create_task(store.load("a", "u", now))
    with pytest.raises(TimeoutError):
        await impatient
    profile = await patient
    assert profile.known and calls == 1
    assert store.cached("a", "u", now) is profile  # remembered for the next request


async def test_a_revoked_key_stops_working_at_once(
    client: AsyncTestClient[Any], pool: Pool, runtime: Runtime
) -> None:
    key = await create_api_key(pool, "acme", "secret")
    params = {"tenant_id": "acme", "user_id": "u1"}
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/layouts/home", params=params, headers=headers)).status_code == 200
    assert await revoke_api_key(pool, key)
    for _ in range(50):  # the revocation arrives by NOTIFY
        r = await client.get("/v1/layouts/home", params=params, headers=headers)
        if r.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 401
    del runtime


async def test_key_lookup_with_the_database_down_is_503(
    client: AsyncTestClient[Any], runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down:
        async def fetchrow(self, *_: object) -> None:
            raise ConnectionRefusedError

    monkeypatch.setattr(runtime.keyring, "_pool", Down())
    r = await client.get(
        "/v1/layouts/home",
        params={"tenant_id": "a", "user_id": "u"},
        headers={"Authorization": "Bearer sk_some_tenant_key"},
    )
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"


async def test_notifications_reconnect_after_the_database_drops_them(
    client: AsyncTestClient[Any],
    runtime: Runtime,
    database_dsn: str,
    secret_headers: dict[str, str],
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        killed = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
    finally:
        await conn.close()
    assert killed >= 1
    seen_down = False
    for _ in range(100):
        ready = (await client.get("/readyz")).json()
        if ready["checks"]["notifications"] == "reconnecting":
            seen_down = True
            assert ready["ready"] is False  # changes from other processes would go unseen
            break
        await asyncio.sleep(0.02)
    assert seen_down
    for _ in range(100):  # reconnected within the first retries: well within a second
        ready = (await client.get("/readyz")).json()
        if ready["checks"]["notifications"] == "ok":
            break
        await asyncio.sleep(0.01)
    assert ready["checks"]["notifications"] == "ok"
    assert ready["ready"] is True
    del secret_headers


async def test_preferences_with_the_database_down_are_503(
    client: AsyncTestClient[Any],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    secret_headers: dict[str, str],
) -> None:
    class Down:
        async def fetchval(self, *_: object) -> None:
            raise ConnectionRefusedError

        async def fetch(self, *_: object) -> None:
            raise ConnectionRefusedError

        async def execute(self, *_: object) -> None:
            raise ConnectionRefusedError

    monkeypatch.setattr(runtime, "_pool", Down())
    params = {"tenant_id": "a", "user_id": "u"}
    r = await client.get("/v1/preferences", params=params, headers=secret_headers)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    r = await client.put(
        "/v1/preferences", params=params, headers=secret_headers, json={"personalization": "off"}
    )
    assert r.status_code == 503
