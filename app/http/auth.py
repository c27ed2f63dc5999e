"""Who is calling: secret or publishable key, deployment-wide or scoped to one tenant.

- `Authorization: Bearer <key>` or HTTP Basic with the key as user name (Segment's libraries).
- Beacons (`navigator.sendBeacon` cannot set headers): on routes that allow it (`POST /v1/events`),
  a request without an Authorization header may carry a publishable key as `writeKey` and the user
  hash as `userHash` at the top of its JSON body, as Segment's analytics.js carries its write key.
  A secret key never travels in a body: it is refused.
- Deployment-wide keys come from configuration; tenant-scoped keys live (hashed) in `api_keys`.
- A publishable-key caller proves the user with `X-Cairn-User-Hash` (or the body's `userHash`),
  the hex HMAC-SHA256 of "<tenant_id>:<user_id>" under the identity secret, compared in constant
  time.
- A caller scoped to one tenant gets 404 for every other tenant's objects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
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
    # Credentials read from the body (a beacon): the user hash it carried ("" for none). None: the
    # user hash is the X-Cairn-User-Hash header.
    body_user_hash: str | None = None

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


# Route option: the route accepts credentials in its body; the value reads the (decoded) body.
BODY_CREDENTIALS = "body_credentials"
BodyReader = Callable[[Request[Any, Any, Any]], Awaitable[bytes]]


class _BodyCredentials(msgspec.Struct, rename="camel"):
    """The top-level credential fields of a JSON body; every other field is the route's."""

    write_key: str | None = None
    user_hash: str | None = None


_CREDENTIALS_DECODER = msgspec.json.Decoder(_BodyCredentials)


async def authenticate(request: Request[Any, Any, Any]) -> Principal:
    """Litestar dependency `principal`: 401 unless the request carries a known key.

    The key comes from the Authorization header. Without that header, a route with the
    BODY_CREDENTIALS option takes a publishable key from the body's `writeKey` (and the user hash
    from its `userHash`); with the header, the body's credential fields are ignored (Segment's
    libraries send their write key both ways).
    """
    authorization = request.headers.get("authorization")
    read_body: BodyReader | None = request.route_handler.opt.get(BODY_CREDENTIALS)
    if authorization is None and read_body is not None:
        body = _body_credentials(await read_body(request))
        if body is not None:
            return await _resolve(request, body.write_key or "", body)
    key = bearer_key(authorization or "")
    if key is None:
        hint = ", or a publishable key in the body's 'writeKey' (beacons)" if read_body else ""
        raise ApiError(401, "unauthorized", f"Send 'Authorization: Bearer <key>'{hint}.")
    return await _resolve(request, key, None)


def _body_credentials(body: bytes) -> _BodyCredentials | None:
    """The body's credentials, or None when it carries no `writeKey` (or is not a JSON object)."""
    try:
        found = _CREDENTIALS_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        for field in ("writeKey", "userHash"):
            if f"`$.{field}`" in str(exc):
                raise ApiError(
                    400, "invalid_request", f"'{field}' must be a string.", field
                ) from None
        return None  # not a JSON object: nothing to authenticate with
    except (msgspec.DecodeError, RecursionError):
        return None  # not JSON
    return found if found.write_key else None


async def _resolve(
    request: Request[Any, Any, Any], key: str, body: _BodyCredentials | None
) -> Principal:
    keyring: KeyRing = request.app.state.keyring
    principal = await keyring.resolve(key)
    if principal is None:
        field = "writeKey" if body is not None else None
        raise ApiError(401, "unauthorized", "The API key is not valid.", field)
    if body is None:
        return principal
    if principal.kind == "secret":
        raise ApiError(
            401,
            "secret_key_in_body",
            "A secret key must never be sent in a request body, where a browser could expose it: "
            "put the publishable key in 'writeKey', or send the secret key from your server in "
            "the Authorization header.",
            "writeKey",
        )
    return msgspec.structs.replace(principal, body_user_hash=body.user_hash or "")


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
    """A publishable-key caller may act only for the user its X-Cairn-User-Hash (or, with
    credentials in the body, its `userHash`) proves."""
    check_id("tenant_id", tenant_id)
    check_id("user_id", user_id)
    principal.require_tenant(tenant_id)
    if principal.kind == "secret":
        return
    settings: Settings = request.app.state.settings
    if principal.body_user_hash is not None:
        given, name, field = principal.body_user_hash, "'userHash'", "userHash"
    else:
        given, name, field = request.headers.get("x-cairn-user-hash", ""), "X-Cairn-User-Hash", None
    expected = user_hash(settings.identity_secret, tenant_id, user_id)
    if not given:
        raise ApiError(403, "user_hash_required", f"Send {name} for this user.", field)
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise ApiError(403, "user_hash_invalid", f"{name} does not match this user.", field)
