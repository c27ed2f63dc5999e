"""Who is calling: the HTTP side of keys (headers, beacon bodies); `app.storage.keys` resolves them.

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

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.di import NamedDependency
from litestar.params import Dependency

from app.errors import InvalidInputError, NotAllowedError, NotAuthenticatedError
from app.http.ratelimit import rate_limits_of
from app.serving.identity import proves_user
from app.settings import Settings
from app.storage.keys import KeyRing, Principal, key_fingerprint

# How handlers ask for the caller: `principal: Caller` (provided by `authenticate`).
# The key ring is the process's own: handed over as it is, never validated per request.
KeyRingDep = Annotated[KeyRing, Dependency(skip_validation=True)]
Caller = NamedDependency[Principal]


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


# Route option: the route accepts credentials in its body; the value reads the (decoded) body.
BODY_CREDENTIALS = "body_credentials"
BodyReader = Callable[[Request[Any, Any, Any]], Awaitable[bytes]]


class _BodyCredentials(msgspec.Struct, rename="camel"):
    """The top-level credential fields of a JSON body; every other field is the route's."""

    write_key: str | None = None
    user_hash: str | None = None


_CREDENTIALS_DECODER = msgspec.json.Decoder(_BodyCredentials)


async def authenticate(request: Request[Any, Any, Any], keyring: KeyRingDep) -> Principal:
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
            return await _resolve(request, keyring, body.write_key or "", body)
    key = bearer_key(authorization or "")
    if key is None:
        hint = ", or a publishable key in the body's 'writeKey' (beacons)" if read_body else ""
        raise NotAuthenticatedError("unauthorized", f"Send 'Authorization: Bearer <key>'{hint}.")
    return await _resolve(request, keyring, key, None)


def _body_credentials(body: bytes) -> _BodyCredentials | None:
    """The body's credentials, or None when it carries no `writeKey` (or is not a JSON object)."""
    try:
        found = _CREDENTIALS_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        for field in ("writeKey", "userHash"):
            if f"`$.{field}`" in str(exc):
                raise InvalidInputError(
                    "invalid_request", f"'{field}' must be a string.", field
                ) from None
        return None  # not a JSON object: nothing to authenticate with
    except UnicodeDecodeError:
        raise InvalidInputError("invalid_json", "The body is not valid UTF-8.") from None
    except (msgspec.DecodeError, RecursionError):
        return None  # not JSON
    return found if found.write_key else None


async def _resolve(
    request: Request[Any, Any, Any], keyring: KeyRing, key: str, body: _BodyCredentials | None
) -> Principal:
    principal = await keyring.resolve(key)
    if principal is None:
        field = "writeKey" if body is not None else None
        raise NotAuthenticatedError("unauthorized", "The API key is not valid.", field)
    limits = rate_limits_of(request.app.state)
    if limits is not None and principal.kind == "secret":
        limits.key(key)
    if body is None:
        return principal
    if principal.kind == "secret":
        raise NotAuthenticatedError(
            "secret_key_in_body",
            "A secret key must never be sent in a request body, where a browser could expose it: "
            "put the publishable key in 'writeKey', or send the secret key from your server in "
            "the Authorization header.",
            "writeKey",
        )
    return msgspec.structs.replace(principal, body_user_hash=body.user_hash or "")


def caller_name(request: Request[Any, Any, Any]) -> str:
    """Who called, for the audit log: their key by its fingerprint (never the key)."""
    key = bearer_key(request.headers.get("authorization", "")) or ""
    return f"key {key_fingerprint(key)[:12]}" if key else "unknown"


MAX_ID_LENGTH = 255


def check_id(field: str, value: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidInputError(
            "invalid_request", f"'{field}' must be 1 to {MAX_ID_LENGTH} characters.", field
        )


def verify_user(
    principal: Principal,
    request: Request[Any, Any, Any],
    settings: Settings,
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
    if principal.body_user_hash is not None:
        given, name, field = principal.body_user_hash, "'userHash'", "userHash"
    else:
        given, name, field = request.headers.get("x-cairn-user-hash", ""), "X-Cairn-User-Hash", None
    if ":" in tenant_id:
        raise InvalidInputError(
            "invalid_request",
            "'tenant_id' may not contain ':' for a browser caller: the user hash reads "
            '"<tenant_id>:<user_id>", which must name one tenant and one user.',
            "tenant_id",
        )
    if not given:
        raise NotAllowedError("user_hash_required", f"Send {name} for this user.", field)
    if not proves_user(given, settings.identity_secret, tenant_id, user_id):
        raise NotAllowedError("user_hash_invalid", f"{name} does not match this user.", field)
    limits = rate_limits_of(request.app.state)
    if limits is not None:
        limits.user(tenant_id, user_id)
