"""Suppressed users and tenants (erased, app.storage.privacy): their later events are dropped
and counted, never stored.

An erasure and a batch of events for the same tenant never interleave: the erasure holds its
tenant's lock stripe exclusively, a batch holds the stripes of its tenants shared (at most
STRIPES locks, taken in order) from before it reads the suppressions until it commits. So a batch
either commits before the erasure deletes (and its events are deleted with the rest) or reads the
suppression the erasure wrote.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.storage.db import Conn, Pool

STRIPES = 64
_LOCK_NS = 7_242_019  # advisory lock namespace (first key): erasures against ingestion


async def lock_for_erasure(conn: Conn, tenant_id: str) -> None:
    """Hold the tenant's stripe exclusively until the caller's transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, abs(hashtext($2)) % $3)", _LOCK_NS, tenant_id, STRIPES
    )


async def lock_for_ingest(
    conn: Conn, tenants: Iterable[str], exclusive: Iterable[str] = ()
) -> None:
    """Hold these tenants' stripes until the caller's transaction ends: shared, or exclusively
    for the `exclusive` ones (a batch that merges one identity into another,
    `app.storage.identity`). Taken in stripe order, each once, so batches never deadlock."""
    await conn.execute(
        "SELECT CASE WHEN x THEN pg_advisory_xact_lock($1, s)"
        " ELSE pg_advisory_xact_lock_shared($1, s) END"
        " FROM (SELECT s, bool_or(x) AS x FROM (SELECT abs(hashtext(t)) % $3 AS s,"
        " t = ANY($4::text[]) AS x FROM unnest($2::text[]) AS t) y GROUP BY s ORDER BY s) z",
        _LOCK_NS,
        sorted(set(tenants)),
        STRIPES,
        sorted(set(exclusive)),
    )


# The metric tables a refresh writes per unit: (table, its column naming the user).
METRIC_UNIT_TABLES = (
    ("metric_values", "unit_id"), ("metric_units", "unit_id"), ("metric_exposures", "user_id"),
)  # fmt: skip


async def purge_suppressed(conn: Conn) -> None:
    """Drop metric rows a refresh computed from events read before an erasure committed."""
    for table, unit in METRIC_UNIT_TABLES:
        await conn.execute(
            f"DELETE FROM {table} x USING suppressions s WHERE x.tenant_id = s.tenant_id"
            f" AND (s.user_id = '' OR x.{unit} = s.user_id)",
            timeout=900.0,
        )


async def suppressed_among(conn: Pool | Conn, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of these (tenant, user) pairs, those erased and suppressed (the user, or their whole
    tenant)."""
    if not pairs:
        return set()
    tenants = sorted({t for t, _ in pairs})
    rows = await conn.fetch(
        "SELECT tenant_id, user_id FROM suppressions WHERE tenant_id = ANY($1::text[])", tenants
    )
    if not rows:
        return set()
    whole = {r["tenant_id"] for r in rows if r["user_id"] == ""}
    users = {(r["tenant_id"], r["user_id"]) for r in rows}
    return {(t, u) for t, u in pairs if t in whole or (t, u) in users}


async def count_dropped(conn: Conn, dropped: dict[tuple[str, str], int]) -> None:
    """Count events dropped for suppressed users (on their own entry, else their tenant's)."""
    for (tenant_id, user_id), n in sorted(dropped.items()):
        status = await conn.execute(
            "UPDATE suppressions SET dropped = dropped + $3 WHERE tenant_id = $1 AND user_id = $2",
            tenant_id, user_id, n,
        )  # fmt: skip
        if status.endswith(" 0"):
            await conn.execute(
                "UPDATE suppressions SET dropped = dropped + $2"
                " WHERE tenant_id = $1 AND user_id = ''",
                tenant_id, n,
            )  # fmt: skip
