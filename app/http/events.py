"""Event ingestion: `POST /v1/events` and its Segment-compatible alias `POST /v1/batch`.

The body is JSON whatever its Content-Type says: beacons (`navigator.sendBeacon`) send it as
`text/plain`, a type that needs no CORS preflight, and carry their credentials in it (`writeKey`
and `userHash`, see app.http.auth), as they cannot set headers.

The answer `{"accepted": n, "duplicates": d}` is sent only once the batch is committed. Anything
else is an error the sender can act on: 4xx for the batch as sent (nothing of it is stored), or
503 `unavailable` when the database cannot take it now (the sender retries; messageIds make the
retry safe).
"""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime
from typing import Any

from litestar import Request, post

from app.errors import (
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    TooLargeError,
    UnsupportedEncodingError,
)
from app.http.auth import BODY_CREDENTIALS, Caller, verify_user
from app.http.contract import BROWSER, KEYED, WITH_BODY, documented
from app.http.dependencies import RuntimeDep, SettingsDep
from app.ingest.segment import MAX_BATCH_BYTES, ParsedBatch, parse_batch, pii_key
from app.ingest.service import (
    PROTECTED_TRAITS,
    TENANT_EVENTS,
    IngestAnswer,
    accept,
    tenant_wide_events,
)
from app.storage.keys import Principal


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The body, read once: authentication may need it first (credentials sent in the body)."""
    body: bytes | None = request.state.get(_BODY)
    if body is None:
        body = await _read_body(request)
        request.state[_BODY] = body
    return body


_BODY = "cairn_events_body"


_ID = {"anyOf": [{"type": "string", "maxLength": 255}, {"type": "integer"}]}
_CALL = {
    "type": "object",
    "description": "A Segment call: identify, group, track, page, screen or alias.",
    "properties": {
        "type": {"enum": ["identify", "group", "track", "page", "screen", "alias"]},
        "messageId": {"type": "string", "minLength": 1, "maxLength": 255},
        "userId": _ID,
        "anonymousId": _ID,
        "tenantId": _ID,
        "groupId": _ID,
        "previousId": _ID,
        "event": {"type": "string", "minLength": 1, "maxLength": 255},
        "name": {"type": "string"},
        "timestamp": {"type": "string"},
        "originalTimestamp": {"type": "string"},
        "sentAt": {"type": "string"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
    },
    "required": ["type", "messageId"],
}
# A batch (Segment's HTTP tracking API) or one call; a beacon carries its key and user hash.
SEGMENT_BODY = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "batch": {"type": "array", "items": _CALL},
                "sentAt": {"type": "string"},
                "context": {"type": "object"},
                "writeKey": {"type": "string"},
                "userHash": {"type": "string"},
            },
            "required": ["batch"],
        },
        _CALL,
    ]
}


@post(
    ["/v1/events", "/v1/batch"],
    status_code=200,
    opt={
        BODY_CREDENTIALS: read_body,
        **documented(
            "Store a Segment-spec batch (or one call) atomically; retries count as duplicates",
            ok=IngestAnswer,
            body=SEGMENT_BODY,
            # navigator.sendBeacon sends text/plain, with the key and hash in the body
            body_media=("application/json", "text/plain"),
            errors=(*KEYED, *WITH_BODY, 409),
            auth=BROWSER,
        ),
    },
)
async def post_events(
    request: Request[Any, Any, Any], principal: Caller, runtime: RuntimeDep, settings: SettingsDep
) -> IngestAnswer:
    """Store a Segment-spec batch (or one event) atomically; retries are counted as duplicates."""
    body = await read_body(request)
    batch = parse_batch(
        body,
        received_at=datetime.now(UTC),
        pii_mode=settings.pii_mode,
        pii_key=pii_key(settings.identity_secret),
    )
    authorize(request, principal, settings, batch, tenant_wide_events(runtime.vocabulary))
    started = time.perf_counter()
    try:
        answer = await accept(runtime, batch, trusted=principal.kind == "secret")
    except Exception:
        runtime.ops.ingested((time.perf_counter() - started) * 1000)
        raise
    runtime.ops.ingested(
        (time.perf_counter() - started) * 1000,
        stored=answer.accepted - (answer.expired or 0),
        duplicates=answer.duplicates,
        suppressed=answer.suppressed or 0,
        expired=answer.expired or 0,
    )
    return answer


ROUTES = [post_events]


def authorize(
    request: Request[Any, Any, Any],
    principal: Principal,
    settings: SettingsDep,
    batch: ParsedBatch,
    tenant_events: frozenset[str] = TENANT_EVENTS,
) -> None:
    """Tenant-scoped keys send only their tenant's events; publishable keys only one user's, and
    none of `tenant_events` (what changes the whole tenant: its plan, integrations, and the
    activation steps anyone in the tenant completes for everyone)."""
    for index, row in enumerate(batch.rows):
        try:
            principal.require_tenant(row.tenant_id)
        except NotFoundError as exc:
            raise NotFoundError(exc.code, exc.message, batch.field(index)) from None
    if principal.kind == "secret":
        return
    first = batch.rows[0]
    for index, row in enumerate(batch.rows):
        if (row.tenant_id, row.user_id) != (first.tenant_id, first.user_id):
            raise NotAllowedError(
                "one_user_per_batch",
                "With a publishable key, every event of a batch is for the one verified user.",
                batch.field(index, "userId"),
            )
        if row.type == "group":
            raise NotAllowedError(
                "secret_key_required",
                "Group calls change the whole tenant: send them with the secret key.",
                batch.field(index, "type"),
            )
        if row.event in tenant_events:
            raise NotAllowedError(
                "secret_key_required",
                f"'{row.event}' changes the whole tenant: send it from your server with the "
                "secret key.",
                batch.field(index, "event"),
            )
        protected = sorted(PROTECTED_TRAITS & row.traits.keys())
        if protected:
            raise NotAllowedError(
                "secret_key_required",
                f"Trait '{protected[0]}' can only be set with the secret key.",
                batch.field(index, f"traits.{protected[0]}"),
            )
    verify_user(principal, request, settings, first.tenant_id, first.user_id)


async def _read_body(request: Request[Any, Any, Any]) -> bytes:
    """The raw body, gunzipped for `Content-Encoding: gzip`; 500 KB at most, before and after."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise _too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedEncodingError(
            "unsupported_encoding",
            f"Content-Encoding '{encoding}' is not supported; send identity or gzip.",
        )
    return _gunzip(body)


def _gunzip(body: bytes) -> bytes:
    """Inflate every gzip member, never holding more than the batch limit (gzip bombs)."""
    out: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(rest, MAX_BATCH_BYTES + 1 - size)
        except zlib.error:
            raise InvalidInputError("invalid_json", "The body is not valid gzip.") from None
        size += len(data)
        if size > MAX_BATCH_BYTES:
            raise _too_large()
        if not inflater.eof:
            raise InvalidInputError("invalid_json", "The gzip body is truncated.")
        out.append(data)
        rest = inflater.unused_data
    return b"".join(out)


def _too_large() -> TooLargeError:
    return TooLargeError("batch_too_large", f"A batch may be at most {MAX_BATCH_BYTES // 1024} KB.")
