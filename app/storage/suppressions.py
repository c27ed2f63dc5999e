"""Suppressed users and tenants (erased, app.storage.privacy): their later events are dropped
and counted, never stored."""

from __future__ import annotations

from app.storage.db import Conn


async def drop_suppressed(conn: Conn, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of these (tenant, user) pairs, those whose events are suppressed (the user's, or their
    whole tenant's), within the caller's transaction."""
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
