"""API keys: who a key is, and the tenant-scoped keys kept in PostgreSQL.

Deployment-wide keys (secret and publishable) come from configuration. Tenant-scoped keys live in
`api_keys`, of which only the SHA-256 is stored: a key is shown once, when it is created. A
revocation is announced on KEYS_CHANNEL, so that every process forgets the key at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import datetime
from typing import Literal

import msgspec

from app.errors import NotAllowedError, NotFoundError, UnavailableError
from app.settings import Settings
from app.storage.db import DATABASE_ERRORS, Pool

KeyKind = Literal["secret", "publishable"]
KEYS_CHANNEL = "cairn_keys"  # NOTIFY here when tenant-scoped keys change


class Principal(msgspec.Struct, frozen=True):
    """The caller a key names: its kind, and the one tenant it is scoped to (if any)."""

    kind: KeyKind
    tenant_id: str | None = None  # None: every tenant of the deployment
    # Credentials read from the body (a beacon): the user hash it carried ("" for none). None: the
    # user hash is the X-Cairn-User-Hash header.
    body_user_hash: str | None = None

    def require_secret(self) -> None:
        if self.kind != "secret":
            raise NotAllowedError("secret_key_required", "This endpoint needs the secret key.")

    def require_deployment(self, why: str = "This spans every tenant") -> None:
        """The deployment's own secret key: for what spans every tenant (flags, experiments,
        the catalog, metrics); `why` starts the refusal's message."""
        self.require_secret()
        if self.tenant_id is not None:
            raise NotAllowedError(
                "deployment_key_required", f"{why}: use the deployment's secret key."
            )

    def require_tenant(self, tenant_id: str) -> None:
        """404 for another tenant's objects: their existence is not disclosed."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise NotFoundError("not_found", "No such tenant or user.", "tenant_id")


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Resolves keys to principals.

    Tenant-scoped keys are looked up in PostgreSQL and remembered for a short while; a revocation
    is announced on KEYS_CHANNEL so every process forgets at once, and the short lifetime covers a
    missed notification. When the database cannot answer, the caller gets `UnavailableError`,
    never an error of another kind and never a stale "no".
    """

    TTL_S = 30.0
    LOOKUP_BUDGET_S = 0.25

    def __init__(self, settings: Settings, pool: Pool | None) -> None:
        self._settings = settings
        self._pool = pool
        self._scoped: dict[str, tuple[Principal | None, float]] = {}

    def forget(self) -> None:
        self._scoped.clear()

    async def resolve(self, key: str) -> Principal | None:
        if hmac.compare_digest(key.encode(), self._settings.secret_key.encode()):
            return Principal("secret")
        if hmac.compare_digest(key.encode(), self._settings.publishable_key.encode()):
            return Principal("publishable")
        fingerprint = key_fingerprint(key)
        now = time.monotonic()
        cached = self._scoped.get(fingerprint)
        if cached is not None and now - cached[1] < self.TTL_S:
            return cached[0]
        if self._pool is None:
            return None
        try:
            row = await asyncio.wait_for(
                self._pool.fetchrow(
                    "SELECT tenant_id, kind FROM api_keys WHERE key_hash = $1", fingerprint
                ),
                self.LOOKUP_BUDGET_S,
            )
        except DATABASE_ERRORS as exc:
            raise UnavailableError(
                "unavailable", "Cairn cannot check this key right now; try again shortly."
            ) from exc
        principal = Principal(row["kind"], row["tenant_id"]) if row else None
        if len(self._scoped) > 10_000:
            self._scoped.clear()
        self._scoped[fingerprint] = (principal, now)
        return principal


class StoredKey(msgspec.Struct, frozen=True):
    """A tenant-scoped key as listed: never the key itself, only the start of its fingerprint."""

    tenant_id: str
    kind: KeyKind
    fingerprint: str
    created_at: datetime


async def create_api_key(pool: Pool, tenant_id: str, kind: KeyKind) -> str:
    prefix = "sk_" if kind == "secret" else "pk_"
    key = f"{prefix}{tenant_id[:12]}_{secrets.token_urlsafe(24)}"
    await pool.execute(
        "INSERT INTO api_keys (tenant_id, key_hash, kind) VALUES ($1, $2, $3)",
        tenant_id,
        key_fingerprint(key),
        kind,
    )
    return key


async def revoke_api_key(pool: Pool, key_or_fingerprint: str) -> bool:
    """Delete a key, named by the key itself or by the fingerprint `list_api_keys` shows (at
    least its first 12 characters); every Cairn process is told to forget it at once. False when
    no key, or more than one, matches."""
    text = key_or_fingerprint.strip()
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT key_hash FROM api_keys WHERE key_hash = $1"
            " OR (length($2) >= 12 AND key_hash LIKE $2 || '%')",
            key_fingerprint(text),
            text.lower() if _is_hex(text) else "",
        )
        if len(rows) != 1:
            return False
        await conn.execute("DELETE FROM api_keys WHERE key_hash = $1", rows[0]["key_hash"])
        await conn.execute("SELECT pg_notify($1, 'revoked')", KEYS_CHANNEL)
    return True


async def list_api_keys(pool: Pool, tenant_id: str | None = None) -> list[StoredKey]:
    rows = await pool.fetch(
        "SELECT tenant_id, kind, key_hash, created_at FROM api_keys"
        " WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id, created_at",
        tenant_id,
    )
    return [StoredKey(r["tenant_id"], r["kind"], r["key_hash"][:16], r["created_at"]) for r in rows]


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
