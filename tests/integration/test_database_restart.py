"""PostgreSQL stopped and started again under load, on a server of this test's own: never a 500;
layouts answered (cached, degraded or 503), events 503 and never acknowledged unless stored;
back to normal within a second of the database's return, notifications included."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from app.main import create_app
from app.settings import Settings
from app.storage.db import migrate
from tests.conftest import LAYOUTS_DIR

pytestmark = pytest.mark.integration

SECRET = {"Authorization": "Bearer sk_test_secret"}


class _Server:
    """An embedded PostgreSQL that the test stops and starts (pgserver, as Cairn's default)."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self._pgserver = pgserver
        self.folder = folder
        self.server: Any = None

    def start(self) -> str:
        self.server = self._pgserver.get_server(  # type: ignore[attr-defined]
            str(self.folder), cleanup_mode="stop"
        )
        uri: str = self.server.get_uri()
        return uri

    def stop(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[_Server, str]]:
    with tempfile.TemporaryDirectory(prefix="cairn-restart-pg-") as tmp:
        os.chmod(tmp, 0o700)
        server = _Server(Path(tmp) / "pg")
        uri = server.start()

        async def migrated() -> None:
            conn = await asyncpg.connect(uri)
            try:
                await migrate(conn)
            finally:
                await conn.close()

        asyncio.run(migrated())
        try:
            yield server, uri
        finally:
            server.stop()


@pytest_asyncio.fixture
async def client(database: tuple[_Server, str]) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings(
        secret_key="sk_test_secret", publishable_key="pk_test_publishable",
        identity_secret="whsec_test_identity", database_url=database[1],
        layouts_dir=LAYOUTS_DIR, reload_layouts=False, metrics_refresh_s=0,
        guardrail_interval_s=0, recommender=False,
    )  # fmt: skip
    async with AsyncTestClient(app=create_app(settings)) as c:
        yield c


def _batch(user: str) -> dict[str, Any]:
    return {"batch": [{"type": "track", "event": "feature_used", "tenantId": "acme",
                       "userId": user, "messageId": f"m-{uuid.uuid4().hex}",
                       "properties": {"feature": "reports"}}]}  # fmt: skip


async def test_a_database_restart_under_load_gives_no_500_and_loses_no_acknowledged_event(
    client: AsyncTestClient[Any], database: tuple[_Server, str]
) -> None:
    server, uri = database
    users = [f"u{i}" for i in range(8)]
    for user in users:  # profiles to cache, and to read after the restart
        sent = await client.post("/v1/events", json=_batch(user), headers=SECRET)
        assert sent.status_code == 200, sent.text
    # (time, kind, status, body) of every answer; acknowledged messageIds
    answers: list[tuple[float, str, int, dict[str, Any]]] = []
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def layouts(user: str) -> None:
        while not stop.is_set():
            r = await client.get("/v1/layouts/home", params={"tenant_id": "acme", "user_id": user},
                                 headers=SECRET)  # fmt: skip
            answers.append((time.monotonic(), "layouts", r.status_code, r.json()))
            await asyncio.sleep(0.01)

    async def events(user: str) -> None:
        while not stop.is_set():
            body = _batch(user)
            r = await client.post("/v1/events", json=body, headers=SECRET)
            answers.append((time.monotonic(), "events", r.status_code, r.json()))
            if r.status_code == 200:
                acknowledged.append(body["batch"][0]["messageId"])
            await asyncio.sleep(0.01)

    load = [asyncio.create_task(f(u)) for u in users[:4] for f in (layouts, events)]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(server.stop)
    stopped = time.monotonic()
    await asyncio.sleep(2.0)
    restarting = time.monotonic()  # down until here; accepting connections from `back` on
    await asyncio.to_thread(server.start)
    back = time.monotonic()
    await asyncio.sleep(2.5)
    stop.set()
    await asyncio.gather(*load)

    statuses = {status for _, _, status, _ in answers}
    assert 500 not in statuses and statuses <= {200, 503}, statuses
    down = [(kind, status, body) for t, kind, status, body in answers
            if stopped + 0.3 < t < restarting]  # fmt: skip
    assert any(kind == "events" for kind, _, _ in down)
    assert all(status == 503 for kind, status, _ in down if kind == "events")
    codes = {body["error"]["code"] for _, status, body in down if status == 503}
    assert codes <= {"unavailable", "database_unavailable"}, codes
    # layouts while the database is down: from the cache, marked degraded, or a clear 503
    assert any(kind == "layouts" and status == 200 for kind, status, _ in down)
    # back within a second of the database's return: both kinds answered 200 again
    for kind in ("layouts", "events"):
        first_ok = min(t for t, k, status, _ in answers if k == kind and status == 200 and t > back)
        assert first_ok - back < 1.0, (kind, first_ok - back)
    # every acknowledged event is stored, once
    conn = await asyncpg.connect(uri)
    try:
        stored = await conn.fetch(
            "SELECT message_id, count(*) AS n FROM events WHERE message_id = ANY($1::text[])"
            " GROUP BY 1",
            acknowledged,
        )
    finally:
        await conn.close()
    assert len(stored) == len(acknowledged) and all(r["n"] == 1 for r in stored)

    async def notifications_back() -> bool:
        ready = (await client.get("/readyz")).json()
        return bool(ready["checks"]["notifications"] == "ok" and ready["ready"])

    for _ in range(30):  # LISTEN reconnects within its 2 s back-off
        if await notifications_back():
            break
        await asyncio.sleep(0.1)
    assert await notifications_back()
