"""Users' personalization and notification preferences, one JSON document per user."""

from __future__ import annotations

import msgspec

from app.engine.profile import Preferences
from app.storage.db import Pool
from app.storage.events import PROFILE_CHANNEL


async def load_preferences(pool: Pool, tenant_id: str, user_id: str) -> Preferences:
    """The user's preferences; the defaults when they never set any."""
    row = await pool.fetchval(
        "SELECT body FROM preferences WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
    )
    return msgspec.convert(row or {}, Preferences)


async def save_preferences(pool: Pool, tenant_id: str, user_id: str, prefs: Preferences) -> None:
    """Replace the user's preferences; every process drops its cached profile of the user."""
    await pool.execute(
        "INSERT INTO preferences (tenant_id, user_id, body, updated_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET body = EXCLUDED.body,"
        " updated_at = now()",
        tenant_id,
        user_id,
        msgspec.to_builtins(prefs),
    )
    await pool.execute(
        "SELECT pg_notify($1, $2)",
        PROFILE_CHANNEL,
        msgspec.json.encode({"t": tenant_id, "u": user_id}).decode(),
    )


async def load_tenant_consent(pool: Pool, tenant_id: str) -> dict[str, bool]:
    """The purposes a tenant's admin set for all its users (false: withheld)."""
    row = await pool.fetchval(
        "SELECT body->'purposes' FROM preferences WHERE tenant_id = $1 AND user_id = ''",
        tenant_id,
    )
    return dict(row or {})


async def save_tenant_consent(pool: Pool, tenant_id: str, purposes: dict[str, bool]) -> None:
    """Replace the tenant's consent defaults (kept as the preferences of user ''); every process
    drops its cached profiles of the tenant's users."""
    await pool.execute(
        "INSERT INTO preferences (tenant_id, user_id, body, updated_at) VALUES ($1, '', $2, now())"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET body = EXCLUDED.body,"
        " updated_at = now()",
        tenant_id,
        {"purposes": purposes},
    )
    await pool.execute(
        "SELECT pg_notify($1, $2)", PROFILE_CHANNEL, msgspec.json.encode({"t": tenant_id}).decode()
    )


async def held_back_users(pool: Pool) -> set[tuple[str, str]]:
    """Users whose behaviour may not be used: personalization `basic` or `off`."""
    rows = await pool.fetch(
        "SELECT tenant_id, user_id FROM preferences"
        " WHERE coalesce(body->>'personalization', 'full') <> 'full'"
    )
    return {(r["tenant_id"], r["user_id"]) for r in rows}
