"""How much is stored, for the admin status page."""

from __future__ import annotations

from app.storage.db import Pool


async def row_counts(pool: Pool) -> dict[str, int]:
    """Tenants, users and events stored (exact counts: the page is for operators, not traffic)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM tenants) AS tenants, (SELECT count(*) FROM users) AS users,"
        " (SELECT count(*) FROM events) AS events"
    )
    return {key: int(value) for key, value in dict(row or {}).items()}
