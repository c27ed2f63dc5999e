"""The write path: store an authorized batch, then tell this process what changed.

`accept` is what `POST /v1/events` and the demo's own backend call once a batch is parsed and its
sender authorized. The answer is given only after the commit; an outage of the database is
`UnavailableError` (the sender retries; messageIds make the retry safe).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from app.engine.retention import Retention
from app.engine.vocabulary import Vocabulary
from app.errors import NotAllowedError, UnavailableError, wrong_region
from app.ingest.segment import ParsedBatch
from app.storage.db import Pool, is_unavailable
from app.storage.events import EventRow, store_events, tenants_elsewhere
from app.storage.identity import LinkRefusedError
from app.storage.preferences import merge_purposes

log = logging.getLogger("cairn.ingest")

# Events that change a tenant's own state: only the product's servers send them (secret key).
TENANT_EVENTS = frozenset({"integration_connected", "integration_disconnected", "plan_upgraded"})
# Traits a browser may not set for itself: it would promote itself to another role's layouts.
PROTECTED_TRAITS = frozenset({"role"})


class IngestAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    accepted: int
    duplicates: int
    suppressed: int | None = None  # events of erased users dropped (only when there were any)
    # events older than their retention window: counted in profiles, not stored raw (when any)
    expired: int | None = None


class IngestTarget(Protocol):
    """What the write path needs of the running process (`app.serving.runtime.Runtime`)."""

    @property
    def pool(self) -> Pool: ...  # raises RuntimeError while the database has not started

    @property
    def vocabulary(self) -> Vocabulary: ...

    @property
    def retention(self) -> Retention: ...  # retention.yaml's windows

    def forget(self, users: set[tuple[str, str]], tenants: Iterable[str] = ()) -> None: ...

    def prepare_help(self, errors: Iterable[Mapping[str, Any]]) -> None: ...

    @property
    def region(self) -> str | None: ...  # CAIRN_REGION


async def _check_region(pool: Pool, batch: ParsedBatch, region: str) -> None:
    """409 `wrong_region` for a batch of a tenant that belongs to another region: its stored
    `region` trait, or one a group call of the batch sets."""
    for index, row in enumerate(batch.rows):
        named = row.traits.get("region") if row.type == "group" else None
        if isinstance(named, str) and named and named != region:
            raise wrong_region(row.tenant_id, named, batch.field(index, "traits.region"))
    elsewhere = await tenants_elsewhere(pool, sorted({r.tenant_id for r in batch.rows}), region)
    for index, row in enumerate(batch.rows):
        if row.tenant_id in elsewhere:
            raise wrong_region(row.tenant_id, elsewhere[row.tenant_id], batch.field(index))


def consent_choices(
    rows: list[EventRow], vocab: Vocabulary, stored: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, bool]]:
    """Per user (of the events just stored), the purposes their latest event's Segment consent
    categories grant or withhold."""
    latest: dict[tuple[str, str], tuple[Any, dict[str, bool]]] = {}
    for row in rows:
        who = (row.tenant_id, row.user_id)
        consent = row.context.get("consent")
        categories = consent.get("categoryPreferences") if isinstance(consent, dict) else None
        if who not in stored or not isinstance(categories, dict):
            continue
        choices = vocab.consent_choices(categories)
        if choices and (who not in latest or row.ts >= latest[who][0]):
            latest[who] = (row.ts, choices)
    return {who: choices for who, (_, choices) in latest.items()}


def tenant_wide_events(vocab: Vocabulary) -> frozenset[str]:
    """Track events that change every user's profile in the tenant, not only the sender's."""
    steps = {step.event for step in vocab.signals.activation if step.scope == "tenant"}
    return TENANT_EVENTS | steps


def tenant_wide(rows: list[EventRow], events: frozenset[str] = TENANT_EVENTS) -> set[str]:
    """Tenants whose every user's profile a batch changes (tenant traits, integrations...)."""
    return {r.tenant_id for r in rows if r.type == "group" or r.event in events}


async def accept(target: IngestTarget, batch: ParsedBatch, *, trusted: bool = True) -> IngestAnswer:
    """Store an authorized batch, then drop what this process has cached of the users it changes.
    A batch that is not `trusted` (sent with a publishable key) may link only an anonymous id
    to its user (403 `link_not_allowed` otherwise, and nothing is stored)."""
    try:
        pool = target.pool
    except RuntimeError:  # the database has not started (yet)
        raise _unavailable() from None
    vocab = target.vocabulary
    wide_events = tenant_wide_events(vocab)
    try:
        if target.region is not None:
            await _check_region(pool, batch, target.region)
        result = await store_events(
            pool,
            batch.rows,
            facets=vocab.facets,
            tenant_wide=wide_events,
            retention=target.retention,
            trusted=trusted,
        )
    except LinkRefusedError as exc:
        raise _link_refused(batch, exc) from None
    except Exception as exc:
        if not is_unavailable(exc):
            raise  # a bug, not an outage: the error handler logs it
        log.warning("events not stored, the database is unavailable: %r", exc)
        raise _unavailable() from None
    rows = batch.rows
    if result.resolved:  # ids merged into a user: their choices are the user's
        rows = [resolved_row(r, result.resolved) for r in rows]
    choices = consent_choices(rows, vocab, result.touched)
    if choices:
        try:
            await merge_purposes(pool, choices)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("consent choices not stored, the database is unavailable: %r", exc)
            raise _unavailable() from None
    target.forget(result.touched, tenant_wide(batch.rows, wide_events))
    # Help for these errors, ready before it is asked for.
    target.prepare_help(r.properties for r in batch.rows if r.event == "error_shown")
    return IngestAnswer(
        accepted=result.accepted,
        duplicates=batch.duplicates + result.duplicates,
        suppressed=result.suppressed or None,
        expired=result.expired or None,
    )


def resolved_row(row: EventRow, resolved: Mapping[tuple[str, str], str]) -> EventRow:
    """The row as stored: its user resolved through the identity links."""
    user_id = resolved.get((row.tenant_id, row.user_id))
    return row if user_id is None else msgspec.structs.replace(row, user_id=user_id)


def _link_refused(batch: ParsedBatch, exc: LinkRefusedError) -> NotAllowedError:
    index = next(
        i
        for i, r in enumerate(batch.rows)
        if (r.tenant_id, r.message_id) == (exc.tenant_id, exc.message_id)
    )
    field = "previousId" if batch.rows[index].type == "alias" else "anonymousId"
    return NotAllowedError(
        "link_not_allowed",
        f"'{exc.source}' is a signed-in user: only your server (the secret key) may merge two "
        "users; a browser may link only its anonymous id.",
        batch.field(index, field),
    )


def _unavailable() -> UnavailableError:
    return UnavailableError(
        "unavailable", "Events cannot be stored right now; send the batch again later."
    )
