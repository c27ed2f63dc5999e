"""Shared fixtures: a real PostgreSQL for integration tests.

`TEST_DATABASE_URL` (or `DATABASE_URL`) names a server to use; otherwise an embedded PostgreSQL is
started in a temporary directory. Each test session gets its own freshly migrated database, and each
test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import pytest_asyncio

from app.storage.db import EmbeddedPostgres, Pool, create_pool, migrate, truncate_all

T = TypeVar("T")

# The embedded server narrates every start and stop, down to interpreter exit; keep it quiet.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where a loop is running (Playwright)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    dsn = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory(prefix="cairn-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture(scope="session")
def database_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test session (dropped afterwards)."""
    with fresh_database(pg_server_dsn) as dsn:
        yield dsn


@contextlib.contextmanager
def fresh_database(pg_server_dsn: str) -> Iterator[str]:
    """A new, migrated database on the test server, dropped when the block ends; its DSN."""
    name = f"cairn_test_{uuid.uuid4().hex[:10]}"

    async def setup() -> None:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(pg_server_dsn, database=name)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def teardown() -> None:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    run_sync(setup())
    try:
        yield _with_database(pg_server_dsn, name)
    finally:
        run_sync(teardown())


def _with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database `name` (works for URLs and unix-socket DSNs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest_asyncio.fixture
async def pool(database_dsn: str) -> AsyncIterator[Pool]:
    """A pool on the session's database, with every table emptied first."""
    pool = await create_pool(database_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await truncate_all(conn)
    try:
        yield pool
    finally:
        await pool.close()


# --- The API on the test database -----------------------------------------------------------------

from collections.abc import Callable  # noqa: E402

from litestar.testing import AsyncTestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.serving.identity import user_hash  # noqa: E402
from app.serving.runtime import Runtime  # noqa: E402
from app.settings import Settings  # noqa: E402

LAYOUTS_DIR = Path(__file__).resolve().parents[1] / "layouts"


@pytest.fixture
def settings(database_dsn: str) -> Settings:
    return Settings(
        secret_key="sk_test_secret",
        publishable_key="pk_test_publishable",
        identity_secret="whsec_test_identity",
        database_url=database_dsn,
        layouts_dir=LAYOUTS_DIR,
        reload_layouts=False,
        metrics_refresh_s=0,  # tests refresh the metrics when they mean to
        guardrail_interval_s=0,  # and check guardrails when they mean to
    )


@pytest_asyncio.fixture
async def client(settings: Settings, pool: Pool) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The API on the (emptied) test database; its runtime starts in the app's own lifespan."""
    del pool  # requested so that tables are emptied first
    app = create_app(settings)
    async with AsyncTestClient(app=app) as c:
        yield c


@pytest.fixture
def runtime(client: AsyncTestClient) -> Runtime:  # type: ignore[type-arg]
    rt: Runtime = client.app.state.runtime
    return rt


@pytest.fixture
def secret_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.secret_key}"}


@pytest.fixture
def browser_headers(settings: Settings) -> Callable[[str, str], dict[str, str]]:
    """Headers of a browser session for one user: publishable key and its user hash."""

    def make(tenant_id: str, user_id: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.publishable_key}",
            "X-Cairn-User-Hash": user_hash(settings.identity_secret, tenant_id, user_id),
        }

    return make


async def run_cairn(*argv: str) -> int:
    """`cairn ARGV` from an async test: the command runs its own event loop, so in a thread."""
    import asyncio

    from app.cli import main

    return await asyncio.to_thread(main, list(argv))
