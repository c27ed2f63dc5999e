"""Keeping the metrics' per-unit rows up to date, a few tenants at a time.

A refresh recomputes, for every tenant with events received since the last one, every metric's
rows, the users' first exposures to widgets and what each unit is (role, plan, industry, seat
band, sign-up week, lifecycle stage now). A metric whose definition changed is recomputed for
every tenant. One process refreshes at a time (an advisory lock); the others skip their turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from app.engine.model import Layouts
from app.engine.signals import build_context
from app.storage.db import Conn, Pool
from app.storage.metrics import (
    CHUNK_EVENTS,
    all_tenants,
    changed_tenants,
    compute_sql,
    copy_chunk,
    database_now,
    definitions,
    digest,
    forget_metrics,
    recompute,
    recompute_exposures,
    refresh_state,
    replace_units,
    save_definition,
    save_refresh,
    unit_facts,
)
from app.storage.profiles import fetch_tenant_profiles
from recommender.candidates import seats_band

log = logging.getLogger("cairn.metrics")

CHUNK = 100  # tenants per transaction
_LOCK = 7_242_016  # advisory lock: one refresh at a time across processes

Progress = Callable[[int, int], None]


class RefreshReport(msgspec.Struct, frozen=True, kw_only=True):
    tenants: int  # tenants whose rows were recomputed
    metrics: int
    redefined: list[str]  # metrics recomputed for every tenant (new or changed definitions)
    seconds: float
    skipped: bool = False  # another process was refreshing


def _week_start(at: datetime) -> Any:
    day = at.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


async def _units(
    conn: Conn, layouts: Layouts, tenants: list[str], now: datetime
) -> list[tuple[Any, ...]]:
    """The metric_units rows of these tenants: every user, and each tenant itself."""
    facts = await unit_facts(conn, tenants)
    profiles = {
        (p.tenant_id, p.user_id): p
        for p in await fetch_tenant_profiles(conn, layouts.vocabulary, tenants, now)
    }
    rows: list[tuple[Any, ...]] = []
    first: dict[str, tuple[datetime, datetime]] = {}
    tenant_traits: dict[str, dict[str, Any]] = {}
    for f in facts:
        profile = profiles.get((f.tenant_id, f.user_id))
        traits = profile.tenant_traits if profile is not None else {}
        tenant_traits[f.tenant_id] = traits
        stage = ""
        if profile is not None:
            context = build_context(profile, layouts.vocabulary, now=now, mode="full")
            stage = context["user"]["stage"]
        seats = traits.get("seats")
        rows.append((
            f.tenant_id, "user", f.user_id, f.signup_at, f.first_seen, _week_start(f.signup_at),
            f.role, _text(traits.get("plan")), _text(traits.get("industry")),
            seats_band(seats if isinstance(seats, int) else None) or "", stage,
        ))  # fmt: skip
        signup, seen = first.get(f.tenant_id, (f.signup_at, f.first_seen))
        first[f.tenant_id] = (min(signup, f.signup_at), min(seen, f.first_seen))
    for tenant_id, (signup, seen) in first.items():
        traits = tenant_traits.get(tenant_id, {})
        seats = traits.get("seats")
        rows.append((
            tenant_id, "tenant", "", signup, seen, _week_start(signup), "",
            _text(traits.get("plan")), _text(traits.get("industry")),
            seats_band(seats if isinstance(seats, int) else None) or "", "",
        ))  # fmt: skip
    return rows


async def _recompute_tenants(
    pool: Pool,
    layouts: Layouts,
    tenants: list[str],
    statements: dict[str, tuple[str, list[Any]] | None],
    now: datetime,
    *,
    units: bool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await copy_chunk(conn, tenants)
        for name, statement in statements.items():
            await recompute(conn, name, statement, tenants)
        if units:
            await recompute_exposures(conn, tenants)
            await replace_units(conn, tenants, await _units(conn, layouts, tenants, now))


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
            redefined = sorted(n for n, d in digests.items() if full or saved.get(n) != d)
            everyone = await all_tenants(lock)
            changed = (
                everyone if full or state is None else await changed_tenants(lock, state.watermark)
            )
            changed_set = set(changed)
            rest = [t for t in everyone if t not in changed_set] if redefined else []
            work = [(c, True) for c in _chunks(changed)] + [(c, False) for c in _chunks(rest)]
            done = 0
            total = len(changed) + len(rest)
            for tenants, everything in work:
                chosen = statements if everything else {n: statements[n] for n in redefined}
                await _recompute_tenants(pool, layouts, tenants, chosen, now, units=everything)
                done += len(tenants)
                if progress is not None:
                    progress(done, total)
            async with lock.transaction():
                await forget_metrics(lock, list(layouts.metrics))
                for name in redefined:
                    await save_definition(lock, name, digests[name], now)
                seconds = time.perf_counter() - started
                await save_refresh(lock, watermark, now, len(changed_set | set(rest)), seconds)
        finally:
            await lock.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    log.info("metrics refreshed for %d tenants in %.1f s", total, seconds)
    return RefreshReport(
        tenants=total, metrics=len(statements), redefined=redefined, seconds=seconds
    )


def _chunks(tenants: list[str]) -> list[list[str]]:
    return [tenants[i : i + CHUNK] for i in range(0, len(tenants), CHUNK)]
