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


async def merge_purposes(pool: Pool, choices: dict[tuple[str, str], dict[str, bool]]) -> None:
    """Lay these users' purpose choices over what their preferences say (the rest kept), in one
    statement; every process drops its cached profiles of them."""
    if not choices:
        return
    rows = [[t, u, c] for (t, u), c in sorted(choices.items())]
    await pool.execute(
        """INSERT INTO preferences (tenant_id, user_id, body, updated_at)
           SELECT r->>0, r->>1, jsonb_build_object('purposes', r->2), now()
             FROM jsonb_array_elements($1::jsonb) AS a(r)
           ON CONFLICT (tenant_id, user_id) DO UPDATE SET
             body = preferences.body || jsonb_build_object('purposes',
                      coalesce(preferences.body->'purposes', '{}'::jsonb)
                      || (EXCLUDED.body->'purposes')),
             updated_at = now()""",
        rows,
    )
    for tenant_id, user_id in sorted(choices):
        await pool.execute(
            "SELECT pg_notify($1, $2)", PROFILE_CHANNEL,
            msgspec.json.encode({"t": tenant_id, "u": user_id}).decode(),
        )  # fmt: skip


async def held_back_users(pool: Pool) -> set[tuple[str, str]]:
    """Users whose behaviour may not be used: personalization `basic` or `off`."""
    rows = await pool.fetch(
        "SELECT tenant_id, user_id FROM preferences"
        " WHERE coalesce(body->>'personalization', 'full') <> 'full'"
    )
    return {(r["tenant_id"], r["user_id"]) for r in rows}
