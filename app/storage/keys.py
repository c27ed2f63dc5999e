"""Tenant-scoped API keys: only their SHA-256 is stored; the key is shown once, when created."""

from __future__ import annotations

import secrets
from typing import Literal

from app.http.auth import KEYS_CHANNEL, key_fingerprint
from app.storage.db import Pool


async def create_api_key(pool: Pool, tenant_id: str, kind: Literal["secret", "publishable"]) -> str:
    prefix = "sk_" if kind == "secret" else "pk_"
    key = f"{prefix}{tenant_id[:12]}_{secrets.token_urlsafe(24)}"
    await pool.execute(
        "INSERT INTO api_keys (tenant_id, key_hash, kind) VALUES ($1, $2, $3)",
        tenant_id,
        key_fingerprint(key),
        kind,
    )
    return key


async def revoke_api_key(pool: Pool, key: str) -> bool:
    """Delete a key; every Cairn process is told to forget it at once."""
    async with pool.acquire() as conn, conn.transaction():
        status: str = await conn.execute(
            "DELETE FROM api_keys WHERE key_hash = $1", key_fingerprint(key)
        )
        await conn.execute("SELECT pg_notify($1, 'revoked')", KEYS_CHANNEL)
    return status.endswith(" 1")
