"""Retention windows: raw events go by dropped partitions as a clock moves; the aggregates
profiles read stay; retries are still told apart within the dedup window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.cli import main as cairn
from app.config.layouts import load_layouts
from app.engine.retention import Retention
from app.serving.retention import apply_retention
from app.storage.db import Pool
from app.storage.events import EventRow, store_events
from app.storage.metrics import windows_holding
from app.storage.partitions import drop_expired, list_partitions, partitions
from tests.conftest import LAYOUTS_DIR

pytestmark = pytest.mark.integration

FACETS = {"feature_used": "feature"}
WINDOWS = Retention(default_days=0, dedup_days=7, by_event={"page": 60, "widget_viewed": 30})
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def event(message_id: str, ts: datetime, *, name: str = "widget_viewed", kind: str = "track",
          user: str = "u1") -> EventRow:  # fmt: skip
    return EventRow(
        tenant_id="acme", message_id=message_id, user_id=user, type=kind,  # type: ignore[arg-type]
        event=name, properties={"widget_id": "w1", "feature": "reports"}, traits={},
        context={}, ts=ts,
    )  # fmt: skip


async def _events(pool: Pool) -> dict[str, Any]:
    rows = await pool.fetch("SELECT message_id, tableoid::regclass::text AS t FROM events")
    return {r["message_id"]: r["t"] for r in rows}


async def _tables(pool: Pool, prefix: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT relname FROM pg_class WHERE relname LIKE $1 || '%' AND relkind = 'r'", prefix
    )
    return {r["relname"] for r in rows}


async def _daily(pool: Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT event, sum(n)::int AS n FROM user_event_days WHERE tenant_id = 'acme'"
        " GROUP BY event"
    )
    return {r["event"]: r["n"] for r in rows}


async def test_expired_months_are_dropped_as_the_clock_moves_and_aggregates_stay(
    pool: Pool,
) -> None:
    batch = [
        event("viewed-april", datetime(2026, 4, 20, tzinfo=UTC)),  # past 30 days on arrival
        event("viewed-may", datetime(2026, 5, 20, tzinfo=UTC)),
        event("viewed-june", datetime(2026, 6, 10, tzinfo=UTC)),
        event("page-march", datetime(2026, 3, 10, tzinfo=UTC), name="Home", kind="page"),
        event("page-june", datetime(2026, 6, 1, tzinfo=UTC), name="Home", kind="page"),
        event("used-2025", datetime(2025, 1, 5, tzinfo=UTC), name="feature_used"),
    ]
    result = await store_events(pool, batch, facets=FACETS, retention=WINDOWS, now=NOW)
    assert (result.accepted, result.duplicates, result.expired) == (6, 0, 2)
    assert await _events(pool) == {
        "viewed-may": "events_k30_202605",
        "viewed-june": "events_k30_202606",
        "page-june": "events_k60_202606",
        "used-2025": "events_keep",
    }
    # the daily counts profiles read hold every event, the ones never stored raw too
    assert await _daily(pool) == {"widget_viewed": 3, "feature_used": 1}

    # A month later: May's widget views (30 days) are past their window, a day's margin on.
    early = await drop_expired(pool, NOW + timedelta(days=16), 7, dry_run=True)
    assert [t for t in early if t.startswith("events")] == []
    dropped = await drop_expired(pool, NOW + timedelta(days=31), 7)
    assert [t for t in dropped if t.startswith("events")] == ["events_k30_202605"]
    assert "events_k30_202605" not in await _tables(pool, "events_k30")
    assert set(await _events(pool)) == {"viewed-june", "page-june", "used-2025"}
    # messageIds received that week are past the dedup window (a week, in whole weeks) too
    assert "event_ids_20260615" in dropped

    # Three months on: June's page views (60 days) go, kept events never do.
    later = datetime(2026, 9, 15, tzinfo=UTC)
    dropped = await drop_expired(pool, later, 7, analyze=True)
    assert sorted(t for t in dropped if t.startswith("events")) == [
        "events_k30_202606",
        "events_k60_202606",
    ]
    assert await _events(pool) == {"used-2025": "events_keep"}
    inherited = await pool.fetchval(  # the table as a whole has statistics: autovacuum's gap
        "SELECT count(*) FROM pg_stats WHERE tablename = 'events' AND inherited"
    )
    assert inherited > 0
    assert await _daily(pool) == {"widget_viewed": 3, "feature_used": 1}
    views = await pool.fetchval("SELECT views FROM user_widgets WHERE widget_id = 'w1'")
    assert views == 3  # the widget's history outlives its raw views

    listed = {p.table: p for p in await list_partitions(pool)}
    assert listed["events_keep"].drops_after is None


async def test_a_retry_is_a_duplicate_within_the_dedup_window_across_days(pool: Pool) -> None:
    """Received on a Wednesday: a retry that week (a day later) and the next (11 days later, at
    the end of a 7-day window rounded up to whole weeks) is a duplicate; three weeks on, past the
    window, the same messageId is a new event, as Segment's window has it."""
    received = NOW + timedelta(days=2)  # a Wednesday
    ts = received - timedelta(hours=1)
    first = await store_events(
        pool, [event("m1", ts)], facets=FACETS, retention=WINDOWS, now=received
    )
    assert (first.accepted, first.duplicates) == (1, 0)
    for days in (0, 1, 4, 11):  # the same messageId, the clock skew corrected differently
        retry = event("m1", ts + timedelta(seconds=days + 1))
        again = await store_events(
            pool, [retry], facets=FACETS, retention=WINDOWS, now=received + timedelta(days=days)
        )
        assert (again.accepted, again.duplicates) == (0, 1), days
    assert await _daily(pool) == {"widget_viewed": 1}
    assert len(await _events(pool)) == 1
    late = await store_events(
        pool, [event("m1", ts)], facets=FACETS, retention=WINDOWS,
        now=received + timedelta(days=19),
    )  # fmt: skip
    assert (late.accepted, late.duplicates) == (1, 0)


async def test_the_partitions_coming_batches_need_are_made_ahead(pool: Pool) -> None:
    """This and next month's partitions of every window in use, this and next week's messageId
    partitions: a batch at a boundary never waits to attach one."""
    ts = datetime(2026, 6, 10, tzinfo=UTC)
    await store_events(pool, [event("w", ts)], facets=FACETS, retention=WINDOWS, now=NOW)
    await apply_retention(pool, WINDOWS, NOW)
    assert {"events_k30_202606", "events_k30_202607"} <= await _tables(pool, "events_k30_")
    assert {"event_ids_20260615", "event_ids_20260622"} <= await _tables(pool, "event_ids_")


async def test_a_partition_dropped_behind_this_process_is_made_again(pool: Pool) -> None:
    """A partition this process made and another dropped: the next batch that needs it makes
    it again (the process learns what exists) instead of failing."""
    ts = datetime(2026, 5, 20, tzinfo=UTC)
    await store_events(pool, [event("a", ts)], facets=FACETS, retention=WINDOWS, now=NOW)
    assert "events_k30_202605" in partitions.known
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events_k30 DETACH PARTITION events_k30_202605")
        await conn.execute("DROP TABLE events_k30_202605")
    result = await store_events(pool, [event("b", ts)], facets=FACETS, retention=WINDOWS, now=NOW)
    assert result.accepted == 1
    assert (await _events(pool))["b"] == "events_k30_202605"


async def test_cairn_retention_lists_and_applies_the_shipped_windows(
    pool: Pool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    database_dsn: str,
) -> None:  # fmt: skip
    """The command drops what is past the shipped windows (page views: 395 days) at a given
    time; a dry run only says so; what it drops is on the audit log."""
    shipped = load_layouts(LAYOUTS_DIR).retention
    page = event("p1", datetime(2026, 1, 10, tzinfo=UTC), name="Home", kind="page")
    await store_events(pool, [page], facets=FACETS, retention=shipped, now=NOW)
    monkeypatch.setenv("DATABASE_URL", database_dsn)
    monkeypatch.setenv("CAIRN_IDENTITY_SECRET", "whsec_test")
    monkeypatch.setenv("CAIRN_LAYOUTS_DIR", str(LAYOUTS_DIR))

    def run(*args: str) -> str:
        assert cairn(["retention", *args]) == 0
        return capsys.readouterr().out

    listed = {line.split()[0]: line.split() for line in (await asyncio.to_thread(run, "list"))
              .splitlines()}  # fmt: skip
    assert listed["events_k395_202601"] == [
        "events_k395_202601", "395d", "2026-01", "1", "rows", "dropped", "from", "2027-03-04"
    ]  # fmt: skip
    at = ("--at", "2027-03-01T00:00:00")  # January 2026 ends 2026-02-01, + 395 days + a day
    assert "events_k395_202601" not in await asyncio.to_thread(run, "apply", "--dry-run", *at)
    at = ("--at", "2027-03-04T00:00:00")
    assert "would drop events_k395_202601" in await asyncio.to_thread(
        run, "apply", "--dry-run", *at
    )
    assert "events_k395_202601" in await _tables(pool, "events_k395")
    assert "dropped events_k395_202601" in await asyncio.to_thread(run, "apply", *at)
    assert "events_k395_202601" not in await _tables(pool, "events_k395")
    entry = await pool.fetchrow("SELECT actor, detail FROM audit_log WHERE action = $1",
                                "retention.applied")  # fmt: skip
    assert entry is not None and "events_k395_202601" in entry["detail"]["dropped"]


async def test_readers_of_some_events_know_every_window_that_holds_them(pool: Pool) -> None:
    """A window changed over time: the events of one name sit in two windows' partitions, and a
    reader of that name (the metrics' refresh) is told both; of other names, only theirs."""
    ts = NOW - timedelta(days=2)
    await store_events(pool, [event("kept", ts, name="feature_used")], facets=FACETS, now=NOW)
    longer = Retention(by_event={"feature_used": 400, "page": 60})
    await store_events(
        pool,
        [event("windowed", ts, name="feature_used"), event("p", ts, name="Home", kind="page")],
        facets=FACETS, retention=longer, now=NOW,
    )  # fmt: skip
    async with pool.acquire() as conn:
        assert await windows_holding(conn, ["feature_used"]) == [0, 400]
        assert await windows_holding(conn, ["widget_viewed"]) == []  # none stored yet
        copied = await conn.fetchval(
            "SELECT count(*) FROM events WHERE event = 'feature_used'"
            " AND keep_days = ANY($1::int[])",
            await windows_holding(conn, ["feature_used"]),
        )
    assert copied == 2
