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

import logging
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, post

from app.engine.vocabulary import Vocabulary
from app.http.auth import BODY_CREDENTIALS, Caller, verify_user
from app.http.errors import ApiError
from app.ingest import MAX_BATCH_BYTES, EventRow, ParsedBatch, parse_batch, pii_key
from app.settings import Settings
from app.storage.db import is_unavailable
from app.storage.events import store_events

if TYPE_CHECKING:
    from app.runtime import Runtime

log = logging.getLogger("cairn.ingest")


class IngestAnswer(msgspec.Struct, frozen=True):
    accepted: int
    duplicates: int


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The body, read once: authentication may need it first (credentials sent in the body)."""
    body: bytes | None = request.state.get(_BODY)
    if body is None:
        body = await _read_body(request)
        request.state[_BODY] = body
    return body


_BODY = "cairn_events_body"


@post(["/v1/events", "/v1/batch"], status_code=200, opt={BODY_CREDENTIALS: read_body})
async def post_events(request: Request[Any, Any, Any], principal: Caller) -> IngestAnswer:
    """Store a Segment-spec batch (or one event) atomically; retries are counted as duplicates."""
    body = await read_body(request)
    settings: Settings = request.app.state.settings
    batch = parse_batch(
        body,
        received_at=datetime.now(UTC),
        pii_mode=settings.pii_mode,
        pii_key=pii_key(settings.identity_secret),
    )
    authorize(request, principal, batch)
    return await accept(request.app.state.runtime, batch)


async def accept(runtime: Runtime, batch: ParsedBatch) -> IngestAnswer:
    """Store an authorized batch, then drop what this process has cached of the users it changes."""
    try:
        pool = runtime.pool
    except RuntimeError:  # the database has not started (yet)
        raise _unavailable() from None
    wide_events = tenant_wide_events(runtime.vocabulary)
    try:
        result = await store_events(
            pool, batch.rows, facets=runtime.vocabulary.facets, tenant_wide=wide_events
        )
    except Exception as exc:
        if not is_unavailable(exc):
            raise  # a bug, not an outage: the error handler logs it
        log.warning("events not stored, the database is unavailable: %r", exc)
        raise _unavailable() from None
    runtime.forget(result.touched, tenant_wide(batch.rows, wide_events))
    if runtime.recommender is not None:  # help for these errors, ready before it is asked for
        runtime.recommender.prepare(r.properties for r in batch.rows if r.event == "error_shown")
    return IngestAnswer(accepted=result.accepted, duplicates=batch.duplicates + result.duplicates)


ROUTES = [post_events]

# Events that change a tenant's own state: only the product's servers send them (secret key).
TENANT_EVENTS = frozenset({"integration_connected", "integration_disconnected", "plan_upgraded"})
# Traits a browser may not set for itself: it would promote itself to another role's layouts.
PROTECTED_TRAITS = frozenset({"role"})


def tenant_wide_events(vocab: Vocabulary) -> frozenset[str]:
    """Track events that change every user's profile in the tenant, not only the sender's."""
    steps = {step.event for step in vocab.signals.activation if step.scope == "tenant"}
    return TENANT_EVENTS | steps


def tenant_wide(rows: list[EventRow], events: frozenset[str] = TENANT_EVENTS) -> set[str]:
    """Tenants whose every user's profile a batch changes (tenant traits, integrations...)."""
    return {r.tenant_id for r in rows if r.type == "group" or r.event in events}


def authorize(request: Request[Any, Any, Any], principal: Caller, batch: ParsedBatch) -> None:
    """Tenant-scoped keys send only their tenant's events; publishable keys only one user's."""
    for index, row in enumerate(batch.rows):
        try:
            principal.require_tenant(row.tenant_id)
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, exc.message, batch.field(index)) from None
    if principal.kind == "secret":
        return
    first = batch.rows[0]
    for index, row in enumerate(batch.rows):
        if (row.tenant_id, row.user_id) != (first.tenant_id, first.user_id):
            raise ApiError(
                403,
                "one_user_per_batch",
                "With a publishable key, every event of a batch is for the one verified user.",
                batch.field(index, "userId"),
            )
        if row.type == "group":
            raise ApiError(
                403,
                "secret_key_required",
                "Group calls change the whole tenant: send them with the secret key.",
                batch.field(index, "type"),
            )
        if row.event in TENANT_EVENTS:
            raise ApiError(
                403,
                "secret_key_required",
                f"'{row.event}' changes the whole tenant: send it from your server with the "
                "secret key.",
                batch.field(index, "event"),
            )
        protected = sorted(PROTECTED_TRAITS & row.traits.keys())
        if protected:
            raise ApiError(
                403,
                "secret_key_required",
                f"Trait '{protected[0]}' can only be set with the secret key.",
                batch.field(index, f"traits.{protected[0]}"),
            )
    verify_user(principal, request, first.tenant_id, first.user_id)


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
        raise ApiError(
            415,
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
            raise ApiError(400, "invalid_json", "The body is not valid gzip.") from None
        size += len(data)
        if size > MAX_BATCH_BYTES:
            raise _too_large()
        if not inflater.eof:
            raise ApiError(400, "invalid_json", "The gzip body is truncated.")
        out.append(data)
        rest = inflater.unused_data
    return b"".join(out)


def _unavailable() -> ApiError:
    return ApiError(
        503, "unavailable", "Events cannot be stored right now; send the batch again later."
    )


def _too_large() -> ApiError:
    return ApiError(413, "batch_too_large", f"A batch may be at most {MAX_BATCH_BYTES // 1024} KB.")
