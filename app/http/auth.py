"""Who is calling: secret or publishable key, deployment-wide or scoped to one tenant.

- `Authorization: Bearer <key>` or HTTP Basic with the key as user name (Segment's libraries).
- Deployment-wide keys come from configuration; tenant-scoped keys live (hashed) in `api_keys`.
- A publishable-key caller proves the user with `X-Cairn-User-Hash`, the hex HMAC-SHA256 of
  "<tenant_id>:<user_id>" under the identity secret, compared in constant time.
- A caller scoped to one tenant gets 404 for every other tenant's objects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, Literal

import asyncpg
import msgspec
from litestar import Request
from litestar.di import NamedDependency

from app.http.errors import ApiError
from app.settings import Settings
from app.storage.db import Pool

KeyKind = Literal["secret", "publishable"]


class Principal(msgspec.Struct, frozen=True):
    kind: KeyKind
    tenant_id: str | None = None  # None: every tenant of the deployment

    def require_secret(self) -> None:
        if self.kind != "secret":
            raise ApiError(403, "secret_key_required", "This endpoint needs the secret key.")

    def require_tenant(self, tenant_id: str) -> None:
        """404 for another tenant's objects: their existence is not disclosed."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise ApiError(404, "not_found", "No such tenant or user.", "tenant_id")


# How handlers ask for the caller: `principal: Caller` (provided by `authenticate`).
Caller = NamedDependency[Principal]


def user_hash(identity_secret: str, tenant_id: str, user_id: str) -> str:
    """What the host app's server computes for a browser or mobile session."""
    message = f"{tenant_id}:{user_id}".encode()
    return hmac.new(identity_secret.encode(), message, hashlib.sha256).hexdigest()


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


KEYS_CHANNEL = "cairn_keys"  # NOTIFY here when tenant-scoped keys change


class KeyRing:
    """Resolves keys to principals.

    Tenant-scoped keys are looked up in PostgreSQL and remembered for a short while; a revocation
    is announced on KEYS_CHANNEL so every process forgets at once, and the short lifetime covers a
    missed notification. When the database cannot answer, the caller gets 503, never a 5xx error
    of another kind and never a stale "no".
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
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ApiError(
                503, "unavailable", "Cairn cannot check this key right now; try again shortly."
            ) from exc
        principal = Principal(row["kind"], row["tenant_id"]) if row else None
        if len(self._scoped) > 10_000:
            self._scoped.clear()
        self._scoped[fingerprint] = (principal, now)
        return principal


async def authenticate(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency `principal`: 401 unless the request carries a known key."""
    key = bearer_key(request.headers.get("authorization", ""))
    if key is None:
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <key>'.")
    keyring: KeyRing = request.app.state.keyring
    principal = await keyring.resolve(key)
    if principal is None:
        raise ApiError(401, "unauthorized", "The API key is not valid.")
    return principal


MAX_ID_LENGTH = 255


def check_id(field: str, value: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise ApiError(
            400, "invalid_request", f"'{field}' must be 1 to {MAX_ID_LENGTH} characters.", field
        )


def verify_user(
    principal: Principal,
    request: Request[Any, Any, Any],
    tenant_id: str,
    user_id: str,
) -> None:
    """A publishable-key caller may act only for the user its X-Cairn-User-Hash proves."""
    check_id("tenant_id", tenant_id)
    check_id("user_id", user_id)
    principal.require_tenant(tenant_id)
    if principal.kind == "secret":
        return
    settings: Settings = request.app.state.settings
    given = request.headers.get("x-cairn-user-hash", "")
    expected = user_hash(settings.identity_secret, tenant_id, user_id)
    if not given:
        raise ApiError(403, "user_hash_required", "Send X-Cairn-User-Hash for this user.")
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise ApiError(403, "user_hash_invalid", "X-Cairn-User-Hash does not match this user.")
