"""What the benchmarks share: synthetic profiles, percentiles, and the summary rows.

The synthetic profiles are what the profile store would hand the engine for a varied customer base:
every role, plan and industry (and an unknown one), seats at and below the limit, users from their
first hour to a year in, quiet, churned and power users, connected and disconnected integrations,
dismissed widgets, bursts of errors, limits hit and features attempted. Deterministic for a seed.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.demo.population import (
    FEATURES,
    INDUSTRIES,
    INDUSTRY_INTEGRATIONS,
    INDUSTRY_TEMPLATES,
    PLAN_FEATURES,
    PLAN_LIMITS,
    PLANS,
    ROLES,
    SCREENS,
)
from app.engine.profile import (
    CohortAdoption,
    EventDay,
    Facet,
    PeerStats,
    Personalization,
    Preferences,
    ProfileData,
    RecentEvent,
    WidgetState,
)
from app.engine.signals import Mode

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS_DIR = ROOT / "layouts"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CORES = os.cpu_count() or 1

# Track events of the shipped vocabulary with how often a product sends them (per active day).
_DAILY_EVENTS: dict[str, tuple[str, ...]] = {
    "quiet": ("feature_used", "help_article_viewed"),
    "builder": (
        "feature_used",
        "report_created",
        "template_used",
        "feature_used",
        "help_article_viewed",
    ),
    "power": (
        "feature_used",
        "feature_used",
        "report_created",
        "automation_created",
        "template_used",
        "feature_used",
        "report_created",
    ),
}
_TENANT_STEPS = ("teammate_invited", "integration_connected", "billing_connected")
_WIDGET_IDS = (
    "next_activation_step",
    "connect_integrations",
    "industry_templates",
    "reengage_step",
    "home_help_tip",
    "home_upgrade_gate",
    "activation_checklist",
)
_EXTRA_FEATURES = ("editor",)
_SETTINGS: tuple[Personalization, ...] = ("full", "basic", "off")


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the table `python -m tests.bench.run` prints at the end."""

    bench: str
    what: str
    value: str
    baseline: str
    ratio: str
    budget: str = ""


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no samples."""
    if not samples:
        return float("nan")
    data = sorted(samples)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(rows: Sequence[SummaryRow]) -> None:
    header = SummaryRow("bench", "what", "value", "baseline", "ratio", "budget")
    table = [header, *rows]
    widths = [
        max(len(getattr(r, f)) for r in table)
        for f in ("bench", "what", "value", "baseline", "ratio", "budget")
    ]
    for i, r in enumerate(table):
        cells = (r.bench, r.what, r.value, r.baseline, r.ratio, r.budget)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def mode_of(profile: ProfileData) -> Mode:
    """The decision mode the service picks for a known user."""
    setting = profile.preferences.personalization
    if setting == "off":
        return "default"
    if setting == "basic":
        return "basic"
    return "full"


def synthetic_peers() -> PeerStats:
    """Peer adoption per industry, as the k-anonymous cohort query returns it."""
    rng = random.Random(11)
    out: dict[str, dict[str, CohortAdoption]] = {}
    for industry, integrations in INDUSTRY_INTEGRATIONS.items():
        tenants = rng.randint(8, 60)
        out[industry] = {
            name: CohortAdoption(
                cohort=f"{industry} teams", tenants=tenants, share=round(rng.uniform(0.1, 0.9), 2)
            )
            for name in integrations
        }
    return PeerStats(integrations=out)


def synthetic_profiles(n: int, *, seed: int = 7, now: datetime = NOW) -> list[ProfileData]:
    rng = random.Random(seed)
    return [_profile(rng, i, now) for i in range(n)]


def _profile(rng: random.Random, i: int, now: datetime) -> ProfileData:  # noqa: C901
    # One recipe for a synthetic user, read top to bottom (as the demo generator is): its
    # branches are the archetypes' choices, not logic to test.
    role = rng.choices(ROLES, weights=(25, 40, 35))[0]
    plan = rng.choices(PLANS, weights=(35, 10, 40, 15))[0]
    industry: str | None = rng.choice([*INDUSTRIES, None, "retail"])  # "retail": not in presets
    limit = PLAN_LIMITS[plan]["seats"]
    seats = limit if plan in ("free", "trial") else rng.choice((10, 25, 50, 200))
    seats_used = seats if rng.random() < 0.2 else rng.randint(1, seats)
    tenant_traits: dict[str, Any] = {
        "plan": plan,
        "seats": seats,
        "seats_used": seats_used,
        "region": rng.choice(("us", "eu", "apac")),
    }
    if industry is not None:
        tenant_traits["industry"] = industry

    age = rng.choice((rng.randint(0, 2), rng.randint(3, 29), rng.randint(30, 400)))
    first_seen = now - timedelta(days=age, hours=rng.uniform(0, 20))
    archetype = rng.choices(
        ("stalled", "churned", "quiet", "builder", "power"), weights=(15, 15, 25, 30, 15)
    )[0]

    # Daily counts over the last 90 days.
    counts: dict[tuple[date, str], int] = {}
    if archetype != "stalled":
        active_p = {"churned": 0.5, "quiet": 0.2, "builder": 0.5, "power": 0.9}[archetype]
        events = _DAILY_EVENTS["quiet" if archetype in ("quiet", "churned") else archetype]
        for d in range(min(age, 89) + 1):
            if archetype == "churned" and d < 15:
                continue
            if rng.random() >= active_p:
                continue
            day = (now - timedelta(days=d)).date()
            for _ in range(rng.randint(1, 4)):
                key = (day, rng.choice(events))
                counts[key] = counts.get(key, 0) + rng.randint(1, 5)
        if rng.random() < 0.3:
            day = (now - timedelta(days=rng.randint(0, min(age, 89)))).date()
            counts[(day, rng.choice(("integration_connected", "teammate_invited")))] = 1
    if role != "end_user" and rng.random() < 0.3:
        counts[(first_seen.date(), "signed_up")] = 1
    event_days = [EventDay(day=day, event=event, n=n) for (day, event), n in sorted(counts.items())]
    tenant_events = sorted(e for e in _TENANT_STEPS if rng.random() < 0.45)

    facets: list[Facet] = []
    if archetype != "stalled":
        k = {"churned": 2, "quiet": 1, "builder": 3, "power": 6}[archetype]
        used = rng.sample([*FEATURES, *_EXTRA_FEATURES], k=rng.randint(0, k))
        templates = INDUSTRY_TEMPLATES.get(industry or "", ("project_tracker", "weekly_report"))
        used_templates = rng.sample(templates, k=rng.randint(0, min(k, len(templates))))
        for kind, values in (("feature", used), ("template", used_templates)):
            for value in values:
                first = first_seen + timedelta(hours=rng.uniform(0, 48))
                facets.append(
                    Facet(
                        kind=kind,
                        value=value,
                        n=rng.randint(1, 40),
                        first_at=first,
                        last_at=max(first, now - timedelta(days=rng.randint(0, 30))),
                    )
                )

    suggested = INDUSTRY_INTEGRATIONS.get(industry or "", ("slack", "google_workspace", "hubspot"))
    integrations = {
        name: rng.random() < 0.6 for name in rng.sample(suggested, k=rng.randint(0, len(suggested)))
    }

    widgets: dict[str, WidgetState] = {}
    for widget_id in rng.sample(_WIDGET_IDS, k=rng.randint(0, 3)):
        dismissed = now - timedelta(days=rng.uniform(0, 20)) if rng.random() < 0.4 else None
        widgets[widget_id] = WidgetState(
            views=rng.randint(1, 30),
            last_viewed=now - timedelta(hours=rng.uniform(0, 200)),
            dismissed_at=dismissed,
        )

    recent: list[RecentEvent] = []
    if rng.random() < 0.25:  # a burst of errors for one feature, minutes ago
        feature = rng.choice(("reports", "automations", "templates", "integrations", "api"))
        recent.extend(
            RecentEvent(
                event="error_shown",
                ts=now - timedelta(minutes=rng.uniform(0, 12)),
                properties={"feature": feature, "message": "Something went wrong"},
            )
            for _ in range(rng.randint(1, 5))
        )
    if rng.random() < 0.15:
        recent.append(
            RecentEvent(
                event="limit_reached",
                ts=now - timedelta(hours=rng.uniform(0, 30)),
                properties={
                    "limit": rng.choice(("reports", "automations", "seats")),
                    "used": 5,
                    "max": 5,
                    "screen": rng.choice(SCREENS),
                },
            )
        )
    if rng.random() < 0.15:
        lacking = [f for f in FEATURES if f not in PLAN_FEATURES[plan]] or list(FEATURES)
        recent.append(
            RecentEvent(
                event="feature_attempted",
                ts=now - timedelta(hours=rng.uniform(0, 30)),
                properties={"feature": rng.choice(lacking), "screen": rng.choice(SCREENS)},
            )
        )
    recent.sort(key=lambda e: e.ts, reverse=True)

    setting = rng.choices(_SETTINGS, weights=(85, 10, 5))[0]
    return ProfileData(
        tenant_id=f"t{i % 97:03d}",
        user_id=f"u{i:05d}",
        known=True,
        user_traits={"role": role},
        tenant_traits=tenant_traits,
        first_seen=first_seen,
        last_seen=now - timedelta(hours=rng.uniform(0, 100)),
        event_days=event_days,
        tenant_events=tenant_events,
        facets=facets,
        integrations=integrations,
        widgets=widgets,
        recent=recent,
        preferences=Preferences(personalization=setting),
    )


def report(rows: list[SummaryRow]) -> list[SummaryRow]:
    """Print a bench's summary table after its own output; the rows go to the runner."""
    print()
    print_table(rows)
    return rows


# --- A database of the benchmark's own --------------------------------------------------------

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def server_dsn() -> str:
    """The PostgreSQL server benchmarks make their databases on (DATABASE_URL, else local)."""
    return os.environ.get("DATABASE_URL") or DEFAULT_DSN


def with_database(dsn: str, name: str) -> str:
    """The same server DSN pointing at database `name`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def scratch_database(dsn: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A new, migrated database for one benchmark run (a copy of database `template`, if
    given), dropped afterwards; yields its DSN."""
    import uuid

    import asyncpg

    from app.storage.db import migrate

    name = f"cairn_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copy}', timeout=3600)
    finally:
        await admin.close()
    try:
        conn = await asyncpg.connect(with_database(dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield with_database(dsn, name)
    finally:
        admin = await asyncpg.connect(dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def database_exists(dsn: str, name: str) -> bool:
    """Whether the server of `dsn` has a database called `name`."""
    import asyncpg

    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()
