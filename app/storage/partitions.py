"""The partitions of `events` and `event_ids` (migration 012): made before the rows that need
them are written, dropped whole when their retention window (or the dedup window) has passed.

Names say what a partition holds, and are all that dropping reads:
- `events_keep`: events kept (window 0), one table;
- `events_k{days}`: events of a `days` window, partitioned by month: `events_k{days}_{YYYYMM}`;
- `event_ids_{YYYYMMDD}`: messageIds received in the week (UTC) starting that Monday.

A partition is made as a table of its own and then attached, and dropped after being detached
`CONCURRENTLY`: either way the parent table is never locked against reads or writes, so ingestion
and a long metrics refresh carry on while it happens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from app.engine.retention import dedup_horizon, expired, month_start, next_month, week_start
from app.storage.db import Conn, Pool

log = logging.getLogger(__name__)

_LOCK = 0x6361_6972_7001  # made and dropped by one process at a time
_LEAF = re.compile(r"^events_k([0-9]+)_([0-9]{4})([0-9]{2})$")
_IDS = re.compile(r"^event_ids_([0-9]{4})([0-9]{2})([0-9]{2})$")
# A month is dropped a day after it expires, so a process whose clock is a little behind never
# writes into a partition another one has dropped.
MARGIN = timedelta(days=1)


def window_table(keep_days: int) -> str:
    return "events_keep" if keep_days == 0 else f"events_k{keep_days}"


def month_table(keep_days: int, month: datetime) -> str:
    return window_table(keep_days) if keep_days == 0 else f"events_k{keep_days}_{month:%Y%m}"


def ids_table(week: date) -> str:
    return f"event_ids_{week:%Y%m%d}"


@dataclass(slots=True)
class Partitions:
    """The partitions this process knows to exist, so that a batch makes what it needs once."""

    known: set[str] = field(default_factory=set)

    def forget(self) -> None:
        self.known.clear()

    async def ensure(
        self, pool: Pool, months: Iterable[tuple[int, datetime]], weeks: Iterable[date]
    ) -> None:
        """Make the partitions for these (window, month start) and receive weeks (their
        Mondays), if missing."""
        wanted: dict[str, tuple[str, str, str, str]] = {}
        for keep_days, month in months:
            name = month_table(keep_days, month)
            if keep_days and name not in self.known:
                bounds = (month.isoformat(), next_month(month).isoformat())
                wanted[name] = (window_table(keep_days), str(keep_days), *bounds)
        for week in weeks:
            name = ids_table(week)
            if name not in self.known:
                end = (week + timedelta(days=7)).isoformat()
                wanted[name] = ("event_ids", "", week.isoformat(), end)
        if not wanted:
            return
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            present = await _tables(conn, [*wanted, *{w[0] for w in wanted.values()}])
            for name, (parent, window, start, end) in sorted(wanted.items()):
                if parent != "event_ids" and parent not in present:
                    await conn.execute(
                        f"CREATE TABLE {parent} (LIKE events INCLUDING DEFAULTS INCLUDING"
                        " CONSTRAINTS) PARTITION BY RANGE (ts)"
                    )
                    await conn.execute(
                        f"ALTER TABLE events ATTACH PARTITION {parent}"
                        f" FOR VALUES IN ({int(window)})"
                    )
                    present.add(parent)
                if name not in present:
                    like = "event_ids" if parent == "event_ids" else "events"
                    await conn.execute(
                        f"CREATE TABLE {name}"
                        f" (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                    )
                    await conn.execute(
                        f"ALTER TABLE {parent} ATTACH PARTITION {name}"
                        f" FOR VALUES FROM ('{start}') TO ('{end}')"
                    )
                    log.info("partition %s made", name)
        self.known.update(wanted)


async def _tables(conn: Conn, names: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relname = ANY($1::text[])"
        " AND relnamespace = 'public'::regnamespace",
        names,
    )
    return {r["relname"] for r in rows}


@dataclass(frozen=True, slots=True)
class Expired:
    """A partition past its window: the table, its parent, and whether an earlier detach was
    interrupted (it is then finished, not started)."""

    table: str
    parent: str
    pending: bool


async def expired_partitions(conn: Conn, now: datetime, dedup_days: int) -> list[Expired]:
    """The partitions whose every row is past its window at `now` (less the margin)."""
    rows = await conn.fetch(
        """SELECT c.relname AS table, p.relname AS parent, i.inhdetachpending AS pending
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relnamespace = 'public'::regnamespace
              AND (p.relname = 'event_ids' OR p.relname ~ '^events_k[0-9]+$')
            ORDER BY c.relname"""
    )
    horizon = now - MARGIN
    first_week = dedup_horizon(dedup_days, horizon.astimezone(UTC).date())
    out = []
    for r in rows:
        leaf = _LEAF.match(r["table"])
        if leaf:
            keep_days, year, month = (int(g) for g in leaf.groups())
            if expired(keep_days, datetime(year, month, 1, tzinfo=UTC), horizon):
                out.append(Expired(r["table"], r["parent"], r["pending"]))
            continue
        ids = _IDS.match(r["table"])
        if ids and date(*(int(g) for g in ids.groups())) < first_week:
            out.append(Expired(r["table"], r["parent"], r["pending"]))
    return out


async def drop_expired(
    pool: Pool, now: datetime, dedup_days: int, *, dry_run: bool = False, analyze: bool = False
) -> list[str]:
    """Drop every partition past its window at `now`; the tables dropped (or, with `dry_run`,
    that would be). One process at a time: when another is at it, nothing is done here.
    `analyze`: then gather the statistics of the events table as a whole, which the planner
    reads for joins over it and autovacuum never does (it analyzes partitions, not parents)."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK + 1):
            return []
        try:
            found = await expired_partitions(conn, now, dedup_days)
            if dry_run:
                return [e.table for e in found]
            for e in found:
                how = "FINALIZE" if e.pending else "CONCURRENTLY"
                # outside a transaction block: CONCURRENTLY waits for readers, never blocks them
                await conn.execute(f"ALTER TABLE {e.parent} DETACH PARTITION {e.table} {how}")
                await conn.execute(f"DROP TABLE {e.table}")
                log.info("partition %s dropped: past its window", e.table)
            if analyze:
                await conn.execute("ANALYZE events", timeout=3600)
            return [e.table for e in found]
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK + 1)


async def prepare_ahead(pool: Pool, now: datetime) -> None:
    """Make this and next week's messageId partitions, and this and next month's partitions of
    every window in use, ahead of the batches that need them: a batch then never waits to attach
    one behind a drop that waits for a long transaction (a metrics refresh) to end."""
    rows = await pool.fetch("SELECT DISTINCT keep_days FROM event_windows WHERE keep_days > 0")
    this_month = month_start(now)
    months = {(r["keep_days"], m) for r in rows for m in (this_month, next_month(this_month))}
    week = week_start(now.astimezone(UTC).date())
    await partitions.ensure(pool, months, [week, week + timedelta(days=7)])


# The partitions this process knows of (a process writes to one database).
partitions = Partitions()


@dataclass(frozen=True, slots=True)
class EventPartition:
    table: str
    keep_days: int
    month: datetime | None  # None: the kept events' one table
    rows: int
    drops_after: datetime | None  # from when it is dropped; None: never


async def list_partitions(pool: Pool) -> list[EventPartition]:
    """The events' partitions that hold rows, and when each is dropped."""
    rows = await pool.fetch(
        """SELECT c.relname AS table
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
              AND (p.relname = 'events' OR p.relname ~ '^events_k[0-9]+$')
            ORDER BY c.relname"""
    )
    out = []
    for r in rows:
        # counted (an estimate can be far off: a partition analyzed empty and filled since)
        n = await pool.fetchval(f'SELECT count(*) FROM "{r["table"]}"', timeout=3600)
        leaf = _LEAF.match(r["table"])
        if leaf is None:
            out.append(EventPartition(r["table"], 0, None, n, None))
            continue
        keep_days, year, month = (int(g) for g in leaf.groups())
        start = datetime(year, month, 1, tzinfo=UTC)
        goes = next_month(start) + timedelta(days=keep_days) + MARGIN
        out.append(EventPartition(r["table"], keep_days, start, n, goes))
    return out
