"""Shared fixtures: a real PostgreSQL for integration tests.

`TEST_DATABASE_URL` (or `DATABASE_URL`) names a server to use; otherwise an embedded PostgreSQL is
started in a temporary directory. Each test session gets its own freshly migrated database, and each
test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from app.storage.db import EmbeddedPostgres, Pool, create_pool, migrate


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

    asyncio.run(setup())
    yield _with_database(pg_server_dsn, name)
    asyncio.run(teardown())


def _with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database `name` (works for URLs and unix-socket DSNs)."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest_asyncio.fixture
async def pool(database_dsn: str) -> AsyncIterator[Pool]:
    """A pool on the session's database, with every table emptied first."""
    pool = await create_pool(database_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{r["tablename"]}"' for r in tables)
            await conn.execute(f"TRUNCATE {names}")
    try:
        yield pool
    finally:
        await pool.close()
