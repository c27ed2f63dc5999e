"""Keeping the metrics' per-unit rows up to date.

The first refresh (and `full`) computes every metric's rows for every tenant, a few tenants at a
time. After that a refresh reads only the events received since the last one and recomputes the
rows they can change (see app.storage.metrics, "Refreshing only what new events can change"): a
busy hour costs in proportion to the units it touched whose windows are still open, not to the
history. It also remakes what the new events' users are (role, sign-up week, lifecycle stage now,
first exposures to widgets) and gives their tenants' plan, industry and seat band to every unit
of those tenants. A metric whose definition changed is recomputed for every tenant. One process
refreshes at a time (an advisory lock); the others skip their turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from app.engine.model import Layouts
from app.engine.signals import build_context
from app.storage.db import Conn, Pool
from app.storage.identity import purge_merged
from app.storage.metrics import (
    CHUNK_EVENTS,
    REFRESH_TIMEOUT_S,
    add_exposures,
    all_tenants,
    collect_new,
    compute_sql,
    copy_chunk,
    copy_marked,
    database_now,
    definitions,
    digest,
    event_names,
    forget_metrics,
    mark_units,
    new_tenants,
    new_users,
    reads,
    recompute,
    recompute_exposures,
    refresh_state,
    replace_user_units,
    retenant_units,
    save_definition,
    save_refresh,
    tenant_traits,
    unit_facts,
)
from app.storage.profiles import fetch_tenant_profiles
from app.storage.suppressions import purge_suppressed
from recommender.candidates import seats_band

log = logging.getLogger("cairn.metrics")

CHUNK = 100  # tenants per transaction
_LOCK = 7_242_016  # advisory lock: one refresh at a time across processes

Progress = Callable[[int, int], None]
Statements = dict[str, tuple[str, list[Any]] | None]


class RefreshReport(msgspec.Struct, frozen=True, kw_only=True):
    tenants: int  # tenants with new events (every tenant on a full refresh)
    metrics: int
    redefined: list[str]  # metrics recomputed for every tenant (new or changed definitions)
    seconds: float
    events: int = 0  # events read since the last refresh (0 on a full refresh)
    units: int = 0  # metric rows recomputed for those events
    skipped: bool = False  # another process was refreshing


def _week_start(at: datetime) -> Any:
    day = at.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _described(traits: dict[str, Any]) -> tuple[str, str, str]:
    """A tenant's plan, industry and seat band, from its traits."""
    seats = traits.get("seats")
    band = seats_band(seats if isinstance(seats, int) else None) or ""
    return _text(traits.get("plan")), _text(traits.get("industry")), band


async def _refresh_units(
    conn: Conn,
    layouts: Layouts,
    tenants: list[str],
    now: datetime,
    users: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Remake the metric_units rows of these tenants' users (or only of `users`), then give
    every unit of the tenants their tenant's plan, industry and seat band."""
    facts = await unit_facts(conn, tenants, users)
    profiles = {
        (p.tenant_id, p.user_id): p
        for p in await fetch_tenant_profiles(
            conn,
            layouts.vocabulary,
            tenants,
            now,
            users=users,
            command_timeout=REFRESH_TIMEOUT_S,
            signals_only=layouts.vocabulary.stage_trie,  # the stage is all that is read here
        )
    }
    described = {
        t: _described(traits) for t, traits in (await tenant_traits(conn, tenants)).items()
    }
    rows: list[tuple[Any, ...]] = []
    for f in facts:
        profile = profiles.get((f.tenant_id, f.user_id))
        stage = ""
        if profile is not None:
            context = build_context(profile, layouts.vocabulary, now=now, mode="full")
            stage = context["user"]["stage"]
        plan, industry, band = described.get(f.tenant_id, ("", "", ""))
        rows.append((
            f.tenant_id, "user", f.user_id, f.signup_at, f.first_seen, _week_start(f.signup_at),
            f.role, plan, industry, band, stage,
        ))  # fmt: skip
    await replace_user_units(conn, tenants, rows, users)
    await retenant_units(conn, [(t, *d) for t, d in sorted(described.items())])


async def _recompute_tenants(
    pool: Pool,
    layouts: Layouts,
    tenants: list[str],
    statements: Statements,
    now: datetime,
    *,
    units: bool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        read = event_names([layouts.metrics[name] for name in statements], layouts.vocabulary)
        await copy_chunk(conn, tenants, read)
        for name, statement in statements.items():
            await recompute(conn, name, statement, tenants)
        if units:
            await recompute_exposures(conn, tenants)
            await _refresh_units(conn, layouts, tenants, now)


class _Changes(msgspec.Struct, frozen=True):
    events: int
    tenants: int
    units: int


async def _recompute_changed_rows(
    pool: Pool, layouts: Layouts, names: list[str], since: datetime
) -> _Changes:
    """Recompute, in one transaction, the rows of `names` that the events received since
    `since` can change."""
    vocab = layouts.vocabulary
    async with pool.acquire() as conn, conn.transaction():
        events = await collect_new(conn, since)
        if events == 0:
            return _Changes(0, 0, 0)
        marked: dict[str, int] = {}
        for name in names:
            metric = layouts.metrics[name]
            if compute_sql(name, metric, vocab) is not None:
                marked[name] = await mark_units(conn, name, metric, vocab)
        wide = sorted(
            {n for name in marked for n in reads(layouts.metrics[name], vocab).tenant_names}
        )
        if any(marked.values()):
            read = event_names([layouts.metrics[name] for name in marked], vocab)
            await copy_marked(conn, read, wide)
        for name, count in marked.items():
            if count:
                statement = compute_sql(
                    name, layouts.metrics[name], vocab, source=CHUNK_EVENTS, only_marked=True
                )
                await recompute(conn, name, statement, None)
        tenants = await new_tenants(conn)
    return _Changes(events, len(tenants), sum(marked.values()))


async def _recompute_changed_units(
    pool: Pool, layouts: Layouts, since: datetime, now: datetime
) -> None:
    """Remake, in one transaction, what the users and tenants of the events received since
    `since` are, and their users' first exposures."""
    async with pool.acquire() as conn, conn.transaction():
        if await collect_new(conn, since) == 0:
            return
        users = await new_users(conn)
        tenants = await new_tenants(conn)
        await add_exposures(conn, since)
        await _refresh_units(conn, layouts, tenants, now, users)


async def _recompute_changed(
    pool: Pool, layouts: Layouts, names: list[str], since: datetime, now: datetime
) -> _Changes:
    """The rows and the units that the events received since `since` change, side by side on
    two connections (the units are mostly Python's work, the rows PostgreSQL's). Each part is
    one transaction; a refresh that fails leaves the watermark, and the next one redoes both."""
    async with asyncio.TaskGroup() as group:  # one failing cancels the other
        rows = group.create_task(_recompute_changed_rows(pool, layouts, names, since))
        group.create_task(_recompute_changed_units(pool, layouts, since, now))
    return rows.result()


async def refresh_metrics(
    pool: Pool, layouts: Layouts, *, full: bool = False, progress: Progress | None = None
) -> RefreshReport:
    """Bring every metric's rows up to date with the events received so far."""
    started = time.perf_counter()
    vocab = layouts.vocabulary
    async with pool.acquire() as lock:
        if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK):
            return RefreshReport(tenants=0, metrics=0, redefined=[], seconds=0.0, skipped=True)
        try:
            state = await refresh_state(lock)
            saved = await definitions(lock)
            watermark = await database_now(lock)
            now = datetime.now(UTC)
            digests = {name: digest(m, vocab) for name, m in layouts.metrics.items()}
            statements = {
                name: compute_sql(name, m, vocab, source=CHUNK_EVENTS)
                for name, m in layouts.metrics.items()
            }
            everything = full or state is None
            redefined = sorted(n for n, d in digests.items() if everything or saved.get(n) != d)
            everyone = await all_tenants(lock)
            changes = _Changes(0, len(everyone), 0)
            if state is not None and not full:
                kept = [n for n in layouts.metrics if n not in redefined]
                changes = await _recompute_changed(pool, layouts, kept, state.watermark, now)
            chosen = statements if everything else {n: statements[n] for n in redefined}
            chunks = _chunks(everyone) if chosen else []
            for i, tenants in enumerate(chunks):
                await _recompute_tenants(pool, layouts, tenants, chosen, now, units=everything)
                if progress is not None:
                    progress(min((i + 1) * CHUNK, len(everyone)), len(everyone))
            if chunks:
                # Every row of some metrics was rewritten: plan the dashboards' queries for what
                # the tables hold now, without waiting for autovacuum to notice.
                await lock.execute(
                    "ANALYZE metric_values, metric_units, metric_exposures",
                    timeout=REFRESH_TIMEOUT_S,
                )
            async with lock.transaction():
                await purge_suppressed(lock)  # what was read before an erasure committed
                await purge_merged(lock, watermark)  # or before an id was merged into a user
                await forget_metrics(lock, list(layouts.metrics))
                for name in redefined:
                    await save_definition(lock, name, digests[name], now)
                seconds = time.perf_counter() - started
                await save_refresh(lock, watermark, now, changes.tenants, seconds)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    log.info(
        "metrics refreshed in %.1f s: %d new events, %d rows of %d tenants recomputed%s",
        seconds, changes.events, changes.units, changes.tenants,
        f"; {', '.join(redefined)} for every tenant" if redefined else "",
    )  # fmt: skip
    return RefreshReport(
        tenants=changes.tenants,
        metrics=len(statements),
        redefined=redefined,
        seconds=seconds,
        events=changes.events,
        units=changes.units,
    )


def _chunks(tenants: list[str]) -> list[list[str]]:
    return [tenants[i : i + CHUNK] for i in range(0, len(tenants), CHUNK)]
