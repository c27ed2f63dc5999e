"""Retention: drop the partitions of events (and of remembered messageIds) past their window,
hourly in every process (one at a time does it) and on command (`cairn retention apply`)."""

from __future__ import annotations

from datetime import datetime

from app.engine.retention import Retention
from app.storage.audit import AuditEntry
from app.storage.db import Pool
from app.storage.partitions import drop_expired, prepare_ahead

RETENTION_INTERVAL_S = 3600.0
FIRST_RETENTION_S = 60.0  # after start
ANALYZE_EVERY = 24  # runs: the events table's statistics as a whole, daily


async def apply_retention(
    pool: Pool,
    retention: Retention,
    now: datetime,
    *,
    dry_run: bool = False,
    analyze: bool = False,
    prepare: bool = True,
) -> list[str]:
    """The partitions dropped at `now` (with `dry_run`, those that would be); `analyze`: the
    events table's statistics too (see `drop_expired`). The partitions the coming batches need
    are made first (`prepare_ahead`), unless `prepare` is false (`now` is not the clock's)."""
    if prepare and not dry_run:
        await prepare_ahead(pool, now)
    return await drop_expired(pool, now, retention.dedup_days, dry_run=dry_run, analyze=analyze)


def retention_entry(dropped: list[str], actor: str) -> AuditEntry | None:
    """The audit log's record of a retention run that dropped something."""
    if not dropped:
        return None
    return AuditEntry(action="retention.applied", actor=actor, detail={"dropped": dropped})
