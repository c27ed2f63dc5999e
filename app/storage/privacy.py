"""Erasure and export of one user's data, or a whole tenant's, and the suppression that follows
an erasure. Every table that holds a user's data is named here, once (USER_TABLES, TENANT_TABLES);
a test holds the list to the schema, so a new table cannot be forgotten.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from app.storage.db import Conn, Pool
from app.storage.events import PROFILE_CHANNEL
from app.storage.identity import merged_into
from app.storage.keys import KEYS_CHANNEL
from app.storage.suppressions import lock_for_erasure

# table → the condition that selects one user's rows ($1 tenant, $2 user)
USER_TABLES: dict[str, str] = {
    "events": "tenant_id = $1 AND user_id = $2",
    "users": "tenant_id = $1 AND user_id = $2",
    "aliases": "tenant_id = $1 AND (user_id = $2 OR previous_id = $2)",
    "user_event_days": "tenant_id = $1 AND user_id = $2",
    "user_facets": "tenant_id = $1 AND user_id = $2",
    "user_widgets": "tenant_id = $1 AND user_id = $2",
    "preferences": "tenant_id = $1 AND user_id = $2",
    "experiment_assignments": "tenant_id = $1 AND unit_id = $2",
    "metric_values": "tenant_id = $1 AND unit_id = $2",
    "metric_units": "tenant_id = $1 AND unit = 'user' AND unit_id = $2",
    "metric_exposures": "tenant_id = $1 AND user_id = $2",
}
ERASE_TIMEOUT_S = 3600.0  # a tenant's history can be large: no request's 10 s limit
# Tables with a tenant's data beside its users': all of them go with the tenant.
TENANT_TABLES: tuple[str, ...] = (
    *USER_TABLES, "tenants", "tenant_integrations", "api_keys", "event_ids"
)  # fmt: skip
# Tables that hold nobody's data (or only pseudonyms and counts): left as they are.
NOT_PERSONAL: tuple[str, ...] = (
    "audit_log", "catalog_items", "event_windows", "experiment_latency", "experiment_state",
    "flag_evaluations", "metric_definitions", "metric_refresh", "models", "schema_migrations",
    "suppressions",
)  # fmt: skip


async def erase_user(pool: Pool, tenant_id: str, user_id: str) -> dict[str, int]:
    """Delete everything held about the user (and the ids merged into them) and suppress their
    later events, in one transaction; every process drops what it cached of them (NOTIFY). Rows
    deleted, by table."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_for_erasure(conn, tenant_id)
        counts = dict.fromkeys(USER_TABLES, 0)
        # the ids merged into the user (their anonymous visits) are theirs too, and go with them
        for who in [user_id, *await merged_into(conn, tenant_id, user_id)]:
            for table, where in USER_TABLES.items():
                status = await conn.execute(
                    f"DELETE FROM {table} WHERE {where}", tenant_id, who, timeout=ERASE_TIMEOUT_S
                )
                counts[table] += int(status.split()[-1])
            await _suppress(conn, tenant_id, who)
            payload = msgspec.json.encode({"t": tenant_id, "u": who}).decode()
            await conn.execute("SELECT pg_notify($1, $2)", PROFILE_CHANNEL, payload)
    return counts


async def erase_tenant(pool: Pool, tenant_id: str) -> dict[str, int]:
    """Delete everything of the tenant, its users' and its keys, and suppress its later events."""
    async with pool.acquire() as conn, conn.transaction():
        await lock_for_erasure(conn, tenant_id)
        counts = {}
        for table in TENANT_TABLES:
            status = await conn.execute(
                f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id, timeout=ERASE_TIMEOUT_S
            )
            counts[table] = int(status.split()[-1])
        await _suppress(conn, tenant_id, "")
        payload = msgspec.json.encode({"t": tenant_id}).decode()
        await conn.execute("SELECT pg_notify($1, $2)", PROFILE_CHANNEL, payload)
        await conn.execute("SELECT pg_notify($1, 'revoked')", KEYS_CHANNEL)
    return counts


async def _suppress(conn: Conn, tenant_id: str, user_id: str) -> None:
    await conn.execute(
        "INSERT INTO suppressions (tenant_id, user_id) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id, user_id) DO NOTHING",
        tenant_id,
        user_id,
    )


async def export_user(pool: Pool, tenant_id: str, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row held about the user, by table (in one consistent snapshot)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        out: dict[str, list[dict[str, Any]]] = {}
        for table, where in USER_TABLES.items():
            rows = await conn.fetch(f"SELECT * FROM {table} WHERE {where}", tenant_id, user_id)
            out[table] = [dict(r) for r in rows]
        return out


async def export_tenant(conn: Conn, tenant_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Every row of the tenant, table by table, as (table, row): read in pages, within the
    caller's (read-only, repeatable-read) transaction. API keys go out by fingerprint only."""
    for table in TENANT_TABLES:
        async for r in conn.cursor(f"SELECT * FROM {table} WHERE tenant_id = $1", tenant_id):
            row = dict(r)
            if table == "api_keys":
                row["key_hash"] = str(row["key_hash"])[:16]
            yield table, row
