"""Recording what happened to the audit log without making anyone wait for it.

`Auditor.record` queues an entry and returns; a background task chains the queued entries onto
the log (app.storage.audit) in batches. While the database is down, entries wait in memory (up
to MAX_QUEUED; past that, the oldest sampled decisions are dropped first and a warning says how
many) and are written when it is back: auditing never blocks a request. `flush` writes what is
queued now (on shutdown, and for what must be on record before an answer: erasures, exports).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections import deque
from typing import Any

import msgspec

from app.engine.model import Layouts
from app.storage.audit import AuditEntry, append, audit_key
from app.storage.db import Pool, is_unavailable

log = logging.getLogger("cairn.audit")

MAX_QUEUED = 10_000
BATCH = 500


class Auditor:
    def __init__(self, identity_secret: str, decision_sample: float) -> None:
        self.key = audit_key(identity_secret)
        self._pseudonyms = hashlib.sha256(b"cairn/audit/subject" + self.key).digest()
        self.decision_sample = decision_sample
        self._queue: deque[AuditEntry] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._rng = random.Random()  # noqa: S311 - a sample, not a secret
        self.dropped = 0
        self.last_error: str | None = None

    def subject(self, tenant_id: str, user_id: str) -> str:
        """A pseudonymous id for a user: stable, not reversible without the identity secret."""
        message = f"{len(tenant_id)}:{tenant_id}:{user_id}".encode()
        return "u_" + hmac.new(self._pseudonyms, message, hashlib.sha256).hexdigest()[:20]

    def record(self, action: str, actor: str, detail: dict[str, Any] | None = None,
               **fields: Any) -> None:  # fmt: skip
        """Queue an entry (see AuditEntry for `fields`); text PostgreSQL cannot store (NUL) is
        replaced, so that no caller's input can hold the log up."""
        if len(self._queue) >= MAX_QUEUED:
            self._drop_one()
        entry = AuditEntry(action=action, actor=actor, detail=detail or {}, **fields)
        self._queue.append(_storable(entry))
        self._wake.set()

    def sample(self) -> bool:
        """Whether this decision is one of the sample kept on record."""
        return self.decision_sample > 0 and self._rng.random() < self.decision_sample

    def _drop_one(self) -> None:
        for i, e in enumerate(self._queue):
            if e.action == "decision.sampled":
                del self._queue[i]
                break
        else:
            self._queue.popleft()
        self.dropped += 1
        if self.dropped in (1, 100, 10_000) or self.dropped % 100_000 == 0:
            log.warning("audit entries dropped while the database is unavailable: %d", self.dropped)

    async def flush(self, pool: Pool) -> None:
        """Write every queued entry now; raises if the database cannot take them (they go back
        to the front of the queue). An entry the database refuses for what it says is written
        as an `audit.entry_rejected` marker instead, so one entry never holds up the others."""
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                try:
                    async with pool.acquire() as conn:
                        try:
                            await append(conn, self.key, batch)
                        except Exception as exc:
                            if is_unavailable(exc):
                                raise
                            await self._one_by_one(conn, batch)
                except BaseException:
                    self._queue.extendleft(reversed(batch))
                    raise
            self.last_error = None

    async def _one_by_one(self, conn: Any, batch: list[AuditEntry]) -> None:
        for entry in batch:
            try:
                await append(conn, self.key, [entry])
            except Exception as exc:
                if is_unavailable(exc):
                    raise
                log.error("audit entry refused (%s): %r", entry.action, exc)
                marker = AuditEntry(
                    action="audit.entry_rejected",
                    actor="process",
                    detail={"action": entry.action, "error": type(exc).__name__},
                )
                await append(conn, self.key, [marker])  # fmt: skip

    async def run(self, pool: Pool) -> None:
        """Write queued entries as they come, in batches; retry while the database is down."""
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush(pool)
                delay = 0.5
            except Exception as exc:  # the log waits; requests never do
                if not is_unavailable(exc):
                    log.exception("audit entries not written", exc_info=exc)
                self.last_error = repr(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                self._wake.set()


def layout_changes(before: Layouts | None, after: Layouts) -> dict[str, Any]:
    """What a layouts version changed, by kind: the names added, removed and changed."""
    kinds: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "screens": _specs(before.screens if before else {}, after.screens),
        "flags": _specs(before.flags if before else {}, after.flags),
        "experiments": _specs(
            before.experiments.experiments if before else {}, after.experiments.experiments
        ),
        "metrics": (dict(before.metrics) if before else {}, dict(after.metrics)),
    }
    out: dict[str, Any] = {"version": after.version}
    if before is not None:
        out["previous"] = before.version
    for kind, (old, new) in kinds.items():
        change = {
            "added": sorted(new.keys() - old.keys()),
            "removed": sorted(old.keys() - new.keys()),
            "changed": sorted(k for k in new.keys() & old.keys() if new[k] != old[k]),
        }
        if before is None:
            change = {"loaded": sorted(new)}
        out[kind] = {k: v for k, v in change.items() if v}
    return out


def _specs(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {k: v.spec for k, v in old.items()}, {k: v.spec for k, v in new.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _storable(entry: AuditEntry) -> AuditEntry:
    return msgspec.structs.replace(
        entry, action=_clean(entry.action), actor=_clean(entry.actor), detail=_clean(entry.detail),
        tenant_id=_clean(entry.tenant_id), subject=_clean(entry.subject),
        dedupe=_clean(entry.dedupe),
    )  # fmt: skip
