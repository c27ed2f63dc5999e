"""Flags over HTTP: OpenFeature's remote evaluation protocol (OFREP), and the flags' list.

- `POST /ofrep/v1/evaluate/flags/{key}` and `POST /ofrep/v1/evaluate/flags` (bulk, with `ETag`
  and `If-None-Match` → 304), as the OFREP specification words them, so OpenFeature's OFREP
  providers (Python, JavaScript, Go, Java...) work unchanged. The evaluation context's
  `targetingKey` is the user id and its `tenant_id` attribute the tenant. Keys and identity are
  the layouts': a secret key evaluates any flag for anyone (a tenant-scoped one, within its
  tenant); a publishable key needs `X-Cairn-User-Hash` for that user and sees only the flags
  marked `client: true` (the others answer FLAG_NOT_FOUND, as if they did not exist).
- Errors on these routes have OFREP's shape (`{"key", "errorCode", "errorDetails"}`), so the
  providers can read them: PARSE_ERROR, TARGETING_KEY_MISSING, INVALID_CONTEXT, FLAG_NOT_FOUND,
  GENERAL (a rule that cannot be evaluated for this user). 401 and 403 keep Cairn's error body.
- `GET /v1/flags` (secret key): every flag's definition and who reads it; `GET /v1/flags/stale`:
  the stale-flag report.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post

from app.engine.flags import FlagReason, FlagResult
from app.errors import InvalidInputError, NotFoundError
from app.http.auth import Caller, verify_user
from app.http.contract import BROWSER, OBJECT, documented
from app.http.dependencies import RuntimeDep, SettingsDep
from app.http.layouts import if_none_match
from app.serving.flags import Evaluated, describe_flag, evaluate, stale_report
from app.storage.keys import Principal

Req = Request[Any, Any, Any]

MAX_CONTEXT_BYTES = 64 * 1024


class _Request(msgspec.Struct):
    context: dict[str, Any] = {}


# OFREP's shapes (its OpenAPI document words them so), answered as it says.
OFREP_REQUEST = {
    "type": "object",
    "properties": {
        "context": {
            "type": "object",
            "properties": {"targetingKey": {"type": "string"}, "tenant_id": {"type": "string"}},
        }
    },
}
_METADATA = {"type": "object"}
OFREP_SUCCESS = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "value": {},
        "reason": {"type": "string"},
        "variant": {"type": ["string", "null"]},
        "metadata": _METADATA,
    },
    "required": ["key", "value", "reason", "metadata"],
}
OFREP_FAILURE = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "errorCode": {
            "enum": [
                "PARSE_ERROR",
                "TARGETING_KEY_MISSING",
                "INVALID_CONTEXT",
                "FLAG_NOT_FOUND",
                "TYPE_MISMATCH",
                "GENERAL",
            ]
        },
        "errorDetails": {"type": "string"},
    },
    "required": ["errorCode"],
}
OFREP_BULK = {
    "type": "object",
    "properties": {
        "flags": {"type": "array", "items": {"anyOf": [OFREP_SUCCESS, OFREP_FAILURE]}},
        "metadata": _METADATA,
    },
    "required": ["flags"],
}
FLAGS = {
    "type": "object",
    "properties": {"flags": {"type": "array", "items": OBJECT}},
    "required": ["flags"],
}
STALE_FLAGS = {
    "type": "object",
    "properties": {
        "flags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "owner": {"type": "string"},
                },
                "required": ["key", "reasons"],
            },
        },
        "after_days": {"type": "integer"},
    },
    "required": ["flags", "after_days"],
}


_DECODER = msgspec.json.Decoder(_Request)
_ENCODER = msgspec.json.Encoder()


class OfrepError(Exception):
    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details


def _context(body: bytes) -> tuple[str, str]:
    """(tenant_id, user_id) of an evaluation request, or OfrepError."""
    if len(body) > MAX_CONTEXT_BYTES:
        raise OfrepError(400, "INVALID_CONTEXT", f"The context is over {MAX_CONTEXT_BYTES} bytes.")
    try:
        request = _DECODER.decode(body or b"{}")
    except msgspec.ValidationError as exc:
        raise OfrepError(
            400, "PARSE_ERROR", f"The body is not an evaluation request: {exc}."
        ) from exc
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise OfrepError(400, "PARSE_ERROR", "The body is not valid JSON.") from exc
    ctx = request.context
    user_id = ctx.get("targetingKey")
    if user_id is None or user_id == "":
        raise OfrepError(
            400, "TARGETING_KEY_MISSING", "Send the user id as the context's targetingKey."
        )
    tenant_id = ctx.get("tenant_id", ctx.get("tenantId"))
    if not isinstance(user_id, str):
        raise OfrepError(400, "INVALID_CONTEXT", "targetingKey must be a string.")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise OfrepError(
            400, "INVALID_CONTEXT", "Send the user's tenant as the context's tenant_id attribute."
        )
    return tenant_id, user_id


def _authorise(
    principal: Principal, request: Req, settings: Any, tenant_id: str, user_id: str
) -> None:
    try:
        verify_user(principal, request, settings, tenant_id, user_id)
    except InvalidInputError as exc:
        raise OfrepError(400, "INVALID_CONTEXT", exc.message) from exc
    except NotFoundError as exc:  # a tenant-scoped key, another tenant
        raise OfrepError(403, "GENERAL", "This key cannot evaluate flags for that tenant.") from exc


def _visible(runtime: Any, principal: Principal) -> list[str]:
    layouts = runtime.layouts
    return list(layouts.flags) if principal.kind == "secret" else list(layouts.client_flags)


def _success(result: FlagResult, evaluated: Evaluated) -> dict[str, Any]:
    metadata: dict[str, Any] = {"version": evaluated.version}
    if result.rule is not None:
        metadata["rule"] = result.rule + 1
    if evaluated.degraded:
        metadata["degraded"] = True
    return {
        "key": result.key,
        "value": result.value,
        "reason": result.reason.value,
        "variant": result.variant,
        "metadata": metadata,
    }


def _failure(key: str | None, code: str, details: str) -> dict[str, Any]:
    body: dict[str, Any] = {"errorCode": code, "errorDetails": details}
    return {"key": key, **body} if key is not None else body


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=_ENCODER.encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


@post(
    "/ofrep/v1/evaluate/flags/{key:str}",
    status_code=200,
    opt=documented(
        "OFREP: evaluate one flag",
        ok=OFREP_SUCCESS,
        body=OFREP_REQUEST,
        errors=(401, 408, 413, 429, 503),
        statuses={400: OFREP_FAILURE, 403: OFREP_FAILURE, 404: OFREP_FAILURE},
        auth=BROWSER,
    ),
)
async def evaluate_flag(
    request: Req, principal: Caller, runtime: RuntimeDep, settings: SettingsDep, key: str
) -> Response[bytes]:
    try:
        tenant_id, user_id = _context(await request.body())
        _authorise(principal, request, settings, tenant_id, user_id)
        if key not in _visible(runtime, principal):
            raise OfrepError(404, "FLAG_NOT_FOUND", f"There is no flag '{key}'.")
        evaluated = await evaluate(runtime, tenant_id, user_id, [key])
    except OfrepError as exc:
        return _json(_failure(key, exc.code, exc.details), exc.status)
    result = evaluated.results[key]
    if result.reason is FlagReason.ERROR:
        return _json(_failure(key, "GENERAL", result.detail), 400)
    return _json(_success(result, evaluated))


@post(
    "/ofrep/v1/evaluate/flags",
    status_code=200,
    opt=documented(
        "OFREP: evaluate every flag the key may see",
        ok=OFREP_BULK,
        also=(304,),
        body=OFREP_REQUEST,
        errors=(401, 408, 413, 429, 503),
        statuses={400: OFREP_FAILURE, 403: OFREP_FAILURE},
        auth=BROWSER,
    ),
)
async def evaluate_flags(
    request: Req, principal: Caller, runtime: RuntimeDep, settings: SettingsDep
) -> Response[bytes]:
    try:
        tenant_id, user_id = _context(await request.body())
        _authorise(principal, request, settings, tenant_id, user_id)
    except OfrepError as exc:
        return _json(_failure(None, exc.code, exc.details), exc.status)
    visible = _visible(runtime, principal)
    evaluated = await evaluate(runtime, tenant_id, user_id, visible)
    shown = set(visible)
    flags = [
        _failure(r.key, "GENERAL", r.detail)
        if r.reason is FlagReason.ERROR
        else _success(r, evaluated)
        for r in evaluated.results.values()
        if r.key in shown
    ]
    body = _ENCODER.encode({"flags": flags, "metadata": {"version": evaluated.version}})
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Authorization"}
    if if_none_match(request.headers.get("if-none-match", ""), etag):
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=body, media_type=MediaType.JSON, headers=headers)


@get(
    "/v1/flags",
    opt=documented(
        "Every flag: its definition, whether layouts read it, where it is defined", ok=FLAGS
    ),
)
async def list_flags(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    principal.require_deployment()
    layouts = runtime.layouts
    flags = [describe_flag(key, layouts) for key in layouts.flags]
    return Response(content=_ENCODER.encode({"flags": flags}), media_type=MediaType.JSON)


@get("/v1/flags/stale", opt=documented("The stale-flag report", ok=STALE_FLAGS))
async def list_stale_flags(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    principal.require_deployment()
    await runtime.flag_tally.flush(runtime.pool, datetime.now(UTC).date())
    report = await stale_report(runtime.pool, runtime.layouts, datetime.now(UTC).date())
    return Response(
        content=_ENCODER.encode({"flags": report, "after_days": 30}), media_type=MediaType.JSON
    )


ROUTES = [evaluate_flag, evaluate_flags, list_flags, list_stale_flags]
