"""One error shape for the whole API, and the one place exceptions become HTTP responses.

Every layer raises the errors of `app.errors`; this module alone knows their status codes.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from app.errors import (
    BodyTimeoutError,
    CairnError,
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotAuthenticatedError,
    NotFoundError,
    RateLimitedError,
    TooLargeError,
    UnavailableError,
    UnsupportedEncodingError,
)
from app.storage.db import is_unavailable

log = logging.getLogger("cairn.http")

_MISSING = re.compile(r"Missing required (\w+) parameter '([^']+)'")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    field: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


_ENCODER = msgspec.json.Encoder()


def json_response(body: Any) -> Response[bytes]:
    """A 200 JSON answer, encoded once by msgspec."""
    return Response(content=_ENCODER.encode(body), media_type=MediaType.JSON)


def error_response(
    status: int, code: str, message: str, field: str | None = None
) -> Response[bytes]:
    body = msgspec.json.encode(ErrorEnvelope(ErrorBody(code=code, message=message, field=field)))
    return Response(content=body, status_code=status, media_type=MediaType.JSON)


STATUS: dict[type[CairnError], int] = {
    InvalidInputError: 400,
    NotAuthenticatedError: 401,
    NotAllowedError: 403,
    NotFoundError: 404,
    BodyTimeoutError: 408,
    ConflictError: 409,
    TooLargeError: 413,
    UnsupportedEncodingError: 415,
    RateLimitedError: 429,
    UnavailableError: 503,
}


def status_of(exc: CairnError) -> int:
    """The HTTP status of an error: that of its kind, the nearest base class that has one."""
    for kind in type(exc).__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return 400


def handle_cairn_error(_: Request[Any, Any, Any], exc: CairnError) -> Response[bytes]:
    response = error_response(status_of(exc), exc.code, exc.message, exc.field)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, NotFoundException):
        return error_response(404, "not_found", "No such resource.")
    if isinstance(exc, ValidationException):
        field = None
        extra = exc.extra if isinstance(exc.extra, list) else []
        for item in extra:
            if isinstance(item, dict) and item.get("key"):
                field = str(item["key"])
                break
        missing = _MISSING.search(str(exc.detail))
        if missing:
            where, name = missing.groups()
            return error_response(
                400, "invalid_request", f"The {where} parameter '{name}' is required.", name
            )
        detail = f"Invalid value for '{field}'." if field else "The request is not valid."
        return error_response(400, "invalid_request", detail, field)
    code = {
        401: "unauthorized",
        403: "forbidden",
        405: "method_not_allowed",
        413: "payload_too_large",
        429: "rate_limited",
    }.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


# Text PostgreSQL cannot store (a NUL character, \u0000): the caller's input, not a fault.
_UNSTORABLE = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, UnicodeDecodeError):  # a body decoded as JSON that is not UTF-8
        log.info("refused a body that is not UTF-8 on %s %s", request.method, request.url.path)
        bad = exc.object[exc.start : exc.start + 1].hex()
        return error_response(400, "invalid_json", f"The body is not valid UTF-8 (byte 0x{bad}).")
    if isinstance(exc, _UNSTORABLE):
        log.info("refused text with a NUL character on %s %s", request.method, request.url.path)
        return error_response(
            400, "invalid_request", "Text may not contain a NUL character (\\u0000)."
        )
    if is_unavailable(exc):
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, exc)
        return error_response(
            503, "unavailable", "Cairn's database is unavailable; try again shortly."
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "Cairn hit an unexpected error; it was logged.")


EXCEPTION_HANDLERS = {
    CairnError: handle_cairn_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
