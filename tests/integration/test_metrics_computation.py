"""The metrics' SQL equals a plain-Python computation over the same events, for every kind.

Hypothesis generates event streams (a few tenants and users, every kind of event the metrics
read, distinct times over four months); they are stored through the event store, the metrics are
refreshed, and every metric's rows must equal those of tests/metrics_oracle.py. A second batch
with late events (times before the first batch's) then goes through an incremental refresh, and
the rows must again equal the oracle's over everything; and again after a third batch a month on,
when many windows have closed and the refresh leaves their rows alone. (Late identify calls are
not generated: the event store merges a user's traits in the order batches arrive, not in event
time.)
"""

from __future__ import annotations

import functools
import math
import random
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config.layouts import load_layouts
from app.engine.model import Layouts
from app.serving.metrics_refresh import refresh_metrics
from app.storage import metrics as metric_store
from app.storage.db import Pool, create_pool, truncate_all
from app.storage.events import EventRow, store_events
from tests import metrics_oracle as oracle
from tests.conftest import run_sync
from tests.paths import LAYOUTS_DIR

pytestmark = pytest.mark.integration

# Every kind, and every option of anchors, matches and populations.
METRICS_YAML = """
metrics:
  conv_events:
    label: c
    kind: conversion
    outcome: [{event: report_created}, {event: automation_started, where: {id: [a1, 7]}}]
    within_days: 5
  conv_activation:
    label: c
    kind: conversion
    outcome: activation
    within_days: 14
  conv_tenant_scope:
    label: c
    kind: conversion
    anchor: {at: exposure, widget_type: upgrade_gate, on: [widget_viewed, widget_clicked]}
    outcome: {event: plan_upgraded, scope: tenant}
    within_days: 7
  deflection:
    label: c
    kind: conversion
    anchor: {at: exposure, widget_type: help_tip}
    outcome: [{event: error_shown, same_as_before: feature}, {event: ticket_created}]
    absent: true
    within_days: 1
  expansion:
    label: c
    unit: tenant
    kind: conversion
    outcome: [{event: plan_upgraded}, {trait_up: seats}]
    within_days: 60
  trial_paid:
    label: c
    unit: tenant
    kind: conversion
    population: {plan_at_anchor: [trial]}
    outcome: {event: plan_upgraded, where: {plan: [pro, enterprise]}}
    within_days: 30
  ttv:
    label: c
    kind: time_to
    outcome: {class: value}
    within_days: 30
  tta:
    label: c
    kind: time_to
    anchor: first_event
    outcome: activation
    within_days: 30
  tenant_tta:
    label: c
    unit: tenant
    kind: time_to
    outcome: activation
    within_days: 40
  errors:
    label: c
    kind: count
    population: {role: [admin, maker]}
    events: {event: error_shown}
    within_days: 30
  conditioned:
    label: c
    kind: count
    events:
      events: [automation_created, automation_started, feature_used]
      when: >-
        event.properties.id in ['a1', 7]
        || (event.name == 'feature_used' && event.properties.feature >= 'reports')
    within_days: 30
  features:
    label: c
    kind: distinct
    events: {event: feature_used, where: {feature: [reports, automations, api]}}
    distinct: feature
    within_days: 30
  integrations:
    label: c
    unit: tenant
    kind: distinct
    events: {events: [integration_connected]}
    distinct: integration
    within_days: 30
  retention:
    label: c
    kind: retention
    activity: {class: value}
    weeks: 6
    headline: 2
  tasks:
    label: c
    kind: duration
    tasks:
      - {label: R, start: report_started, complete: report_created}
      - {label: A, start: automation_started, complete: automation_created, match_on: id}
    within_days: 20
  steps:
    label: c
    kind: funnel
    steps: activation
    within_days: 14
  custom_steps:
    label: c
    kind: funnel
    steps:
      - {label: r, outcome: {event: report_created}}
      - {label: f, outcome: {event: feature_used, where: {feature: reports}}}
    within_days: 10
  viewed:
    label: c
    kind: count
    anchor: {at: exposure, widget: next_activation_step}
    events: {event: widget_clicked}
    within_days: 3
  ratio:
    label: c
    kind: ratio
    numerator: errors
    denominator: features
"""

START = datetime(2026, 6, 1, tzinfo=UTC)
TENANTS = ("acme", "beta")
USERS = ("u1", "u2")

# (event, properties strategy) of track events.
_TRACKS: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
    ("signed_up", st.just({})),
    ("teammate_invited", st.just({})),
    (
        "integration_connected",
        st.fixed_dictionaries({"integration": st.sampled_from(["slack", "hubspot", "jira"])}),
    ),
    ("template_used", st.fixed_dictionaries({"template": st.sampled_from(["t1", "t2"])})),
    ("report_created", st.just({})),
    ("report_started", st.just({})),
    ("automation_created", st.fixed_dictionaries({"id": st.sampled_from(["a1", "a2", 7])})),
    ("automation_started", st.fixed_dictionaries({"id": st.sampled_from(["a1", "a2", 7])})),
    ("billing_connected", st.just({})),
    (
        "feature_used",
        st.fixed_dictionaries(
            {"feature": st.sampled_from(["reports", "automations", "api", "sso"])}
        ),
    ),
    (
        "error_shown",
        st.fixed_dictionaries({"feature": st.sampled_from(["reports", "automations"])}),
    ),
    ("ticket_created", st.just({})),
    ("plan_upgraded", st.fixed_dictionaries({"plan": st.sampled_from(["pro", "enterprise"])})),
    (
        "widget_viewed",
        st.sampled_from(
            [
                {"widget_id": "home_upgrade_gate", "widget_type": "upgrade_gate"},
                {"widget_id": "home_help_tip", "widget_type": "help_tip"},
                {"widget_id": "next_activation_step", "widget_type": "next_step_card"},
            ]
        ),
    ),
    (
        "widget_clicked",
        st.just({"widget_id": "home_upgrade_gate", "widget_type": "upgrade_gate"}),
    ),
]


# (tenant, user, type, track event, properties, traits, hours after START)
Spec = tuple[str, str, str, str | None, dict[str, Any], dict[str, Any], float]


@st.composite
def event_specs(draw: st.DrawFn) -> Spec:
    """(tenant, user, type, track event, properties, traits, hours after START)."""
    tenant = draw(st.sampled_from(TENANTS))
    user = draw(st.sampled_from(USERS))
    # Mostly within three days, so that windows of hours and days hold several events; some over
    # four months, for retention weeks and long windows.
    hours = draw(
        st.one_of(
            st.floats(min_value=0, max_value=72, allow_nan=False),
            st.floats(min_value=0, max_value=24 * 120, allow_nan=False),
        )
    )
    kind = draw(st.sampled_from(["track"] * 8 + ["identify", "group"]))
    if kind == "identify":
        traits = {"role": draw(st.sampled_from(["admin", "maker", "end_user"]))}
        return tenant, user, "identify", None, {}, traits, hours
    if kind == "group":
        optional: dict[str, st.SearchStrategy[Any]] = {
            "plan": st.sampled_from(["trial", "free", "pro"]),
            "seats": st.integers(min_value=1, max_value=60),
        }
        traits = draw(st.fixed_dictionaries({}, optional=optional))
        return tenant, user, "group", None, {}, traits, hours
    event, props = draw(st.sampled_from(_TRACKS))
    return tenant, user, "track", event, draw(props), {}, hours


def rows_of(specs: list[Any], tag: str, shift_hours: float = 0.0) -> list[EventRow]:
    """EventRows with distinct times (each a few microseconds apart from every other)."""
    out = []
    for i, (tenant, user, kind, event, props, traits, hours) in enumerate(specs):
        apart = i * 7 + (3 if tag == "b" else 0)  # never the same microsecond twice
        ts = START + timedelta(hours=hours + shift_hours, microseconds=apart)
        out.append(
            EventRow(
                tenant_id=tenant,
                message_id=f"{tag}{i}",
                user_id=user,
                type=kind,
                event=event,
                properties=props,
                traits=traits,
                context={},
                ts=ts,
                group_id=tenant if kind == "group" else None,
            )
        )
    return out


@functools.cache
def metric_layouts() -> Layouts:
    """The shipped layouts with the metrics above (a module-level value, so that Hypothesis
    never prints it with an example)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "layouts"
        shutil.copytree(LAYOUTS_DIR, root)
        (root / "metrics.yaml").write_text(METRICS_YAML, encoding="utf-8")
        (root / "experiments.yaml").unlink()  # its experiments read the shipped metrics
        return load_layouts(root)


async def _stored_rows(pool: Pool, metric: str) -> list[oracle.Row]:
    rows = await pool.fetch(
        "SELECT * FROM metric_values WHERE metric = $1 ORDER BY tenant_id, unit_id", metric
    )
    return [
        oracle.Row(
            r["tenant_id"],
            r["unit_id"],
            r["anchor_at"],
            r["window_end"],
            r["reached_at"],
            r["value"],
            r["detail"],
        )
        for r in rows
    ]


def _same(db: oracle.Row, want: oracle.Row) -> bool:
    def close(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-5)

    return (db.tenant_id, db.unit_id, db.anchor_at, db.window_end, db.reached_at, db.detail) == (
        want.tenant_id,
        want.unit_id,
        want.anchor_at,
        want.window_end,
        want.reached_at,
        want.detail,
    ) and close(db.value, want.value)


async def _check(pool: Pool, layouts: Layouts, events: list[EventRow]) -> None:
    history = oracle.History(events)
    for name, metric in layouts.metrics.items():
        want = oracle.rows(history, metric, layouts.vocabulary)
        got = await _stored_rows(pool, name)
        assert len(got) == len(want), (name, got, want)
        for db, expected in zip(got, want, strict=True):
            assert _same(db, expected), (name, db, expected)
    await _check_units(pool, events)


async def _check_units(pool: Pool, events: list[EventRow]) -> None:
    """What a refresh keeps of each user beside the metrics: the first exposure to each widget
    (the first widget_viewed naming it) and the sign-up (the first signed_up, else the first
    event), equal to a plain reading of the events, after full and incremental refreshes alike."""
    exposures: dict[tuple[str, str, str], tuple[datetime, str]] = {}
    signups: dict[tuple[str, str], datetime] = {}
    history = oracle.History(events)
    first = {who: oracle.first_seen(own) for who, own in history.users.items()}
    for e in events:
        who = (e.tenant_id, e.user_id)
        if e.type != "track":
            continue
        if e.event == "signed_up":
            signups[who] = min(signups.get(who, e.ts), e.ts)
        widget = e.properties.get("widget_id")
        if e.event == "widget_viewed" and isinstance(widget, str):
            at, kind = exposures.get((*who, widget), (e.ts, ""))
            exposures[(*who, widget)] = (
                min(at, e.ts),
                max(kind, e.properties.get("widget_type") or ""),
            )
    rows = await pool.fetch(
        "SELECT tenant_id, user_id, widget_id, first_at, widget_type FROM metric_exposures"
    )
    assert {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows} == exposures
    rows = await pool.fetch(
        "SELECT tenant_id, unit_id, signup_at FROM metric_units WHERE unit = 'user'"
    )
    assert {(r[0], r[1]): r[2] for r in rows} == {w: signups.get(w, at) for w, at in first.items()}


async def _store(pool: Pool, layouts: Layouts, rows: list[EventRow]) -> None:
    for i in range(0, len(rows), 100):
        await store_events(pool, rows[i : i + 100], facets=layouts.vocabulary.facets)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(event_specs(), min_size=1, max_size=80),
    # Late identify calls are left out: a user's traits merge in the order batches arrive.
    late=st.lists(event_specs().filter(lambda spec: spec[2] != "identify"), max_size=25),
    later=st.lists(event_specs(), max_size=15),
)
def test_sql_rows_equal_the_python_oracle_before_and_after_late_events(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    first: list[Any],
    late: list[Any],
    later: list[Any],
) -> None:
    monkeypatch.setattr(metric_store, "OVERLAP_S", 0)  # only what arrived since: incremental
    layouts = metric_layouts()

    async def run() -> None:
        pool = await create_pool(database_dsn, min_size=1, max_size=3)
        try:
            await examine(pool)
        finally:
            await pool.close()

    async def examine(pool: Pool) -> None:
        async with pool.acquire() as conn:
            await truncate_all(conn)
        batch = rows_of(first, "a")
        await _store(pool, layouts, batch)
        await refresh_metrics(pool, layouts)
        await _check(pool, layouts, batch)
        if late:
            # Late events: received now, timed among (and before) the first batch's.
            more = rows_of(late, "b", shift_hours=-24)
            await _store(pool, layouts, more)
            report = await refresh_metrics(pool, layouts)
            assert report.tenants == len({e.tenant_id for e in more})  # only those were redone
            await _check(pool, layouts, batch + more)
            batch += more
        if later:
            # Then events from a month on: many windows have closed by then, and the refresh
            # recomputes only the rows they can still change.
            # Its identify calls come after every other event (traits merge as batches arrive).
            last = 24 * 121.0 - 24 * 30
            specs = [(*s[:6], last + i) if s[2] == "identify" else s for i, s in enumerate(later)]
            fresh = rows_of(specs, "c", shift_hours=24 * 30)
            await _store(pool, layouts, fresh)
            await refresh_metrics(pool, layouts)
            await _check(pool, layouts, batch + fresh)

    run_sync(run())


# --- Boundaries, by hand: exact window ends, "the latest before", a teammate's steps --------------

T = START + timedelta(days=10)
US = timedelta(microseconds=1)


def track(tenant: str, user: str, event: str, at: datetime, **props: Any) -> EventRow:
    return EventRow(
        tenant_id=tenant, message_id=f"{tenant}-{user}-{event}-{at.isoformat()}", user_id=user,
        type="track", event=event, properties=props, traits={}, context={}, ts=at,
    )  # fmt: skip


def group(tenant: str, at: datetime, **traits: Any) -> EventRow:
    return EventRow(
        tenant_id=tenant, message_id=f"{tenant}-group-{at.isoformat()}", user_id="admin",
        type="group", event=None, properties={}, traits=traits, context={}, ts=at,
        group_id=tenant,
    )  # fmt: skip


def identify(tenant: str, user: str, role: str, at: datetime) -> EventRow:
    return EventRow(
        tenant_id=tenant, message_id=f"{tenant}-{user}-identify", user_id=user, type="identify",
        event=None, properties={}, traits={"role": role}, context={}, ts=at,
    )  # fmt: skip


SCENARIO = [
    # A window ends at the anchor + 5 days, inclusive.
    track("a", "on_time", "signed_up", T),
    track("a", "on_time", "report_created", T + timedelta(days=5)),
    track("a", "late", "signed_up", T + US),
    track("a", "late", "report_created", T + US + timedelta(days=5) + US),
    # Deflection: the feature of the latest error before the tip counts, not an earlier one.
    track("b", "u1", "error_shown", T - timedelta(hours=2), feature="reports"),
    track("b", "u1", "error_shown", T - timedelta(hours=1), feature="automations"),
    track("b", "u1", "widget_viewed", T, widget_id="home_help_tip", widget_type="help_tip"),
    track("b", "u1", "error_shown", T + timedelta(hours=1), feature="reports"),  # deflected
    track("b", "u2", "error_shown", T - timedelta(hours=1), feature="reports"),
    track("b", "u2", "widget_viewed", T + US, widget_id="home_help_tip", widget_type="help_tip"),
    track("b", "u2", "error_shown", T + timedelta(hours=3), feature="reports"),  # not deflected
    # Seats up only past their value at the anchor; the plan at the anchor is trial.
    group("c", T - timedelta(hours=1), seats=10, plan="trial"),
    track("c", "admin", "signed_up", T + 2 * US),
    group("c", T + timedelta(days=1), seats=10),
    group("c", T + timedelta(days=2), seats=12),
    track("c", "admin", "plan_upgraded", T + timedelta(days=3), plan="pro"),
    # A second admin's activation counts the invitation the first sent before they joined (a
    # tenant-wide step); a maker's steps are the maker's only (no invitation to count).
    identify("d", "first", "admin", T - timedelta(days=3)),
    track("d", "first", "teammate_invited", T - timedelta(days=2)),
    identify("d", "second", "admin", T + 3 * US),
    track("d", "second", "signed_up", T + 4 * US),
    track("d", "second", "template_used", T + timedelta(hours=5), template="t1"),
    track("d", "second", "report_created", T + timedelta(days=2)),
    track("d", "second", "automation_created", T + timedelta(days=20), id="a1"),
    identify("d", "maker", "maker", T + 6 * US),
    track("d", "maker", "template_used", T + timedelta(hours=6), template="t2"),
    track("d", "maker", "report_created", T + timedelta(days=3)),
    # Retention weeks: day 7 exactly is week 1, the last microsecond of week 1 too, week 7 is out.
    track("e", "u1", "signed_up", T + 5 * US),
    track("e", "u1", "report_created", T + 5 * US + timedelta(days=7)),
    track("e", "u1", "report_created", T + 5 * US + timedelta(days=14) - US),
    track("e", "u1", "report_created", T + 5 * US + timedelta(days=21)),
    track("e", "u1", "report_created", T + 5 * US + timedelta(days=49)),
]


def test_boundaries_match_the_oracle_and_what_the_definitions_say(database_dsn: str) -> None:
    layouts = metric_layouts()

    async def run() -> dict[str, dict[tuple[str, str], oracle.Row]]:
        pool = await create_pool(database_dsn, min_size=1, max_size=3)
        try:
            async with pool.acquire() as conn:
                await truncate_all(conn)
            await _store(pool, layouts, SCENARIO)
            await refresh_metrics(pool, layouts)
            await _check(pool, layouts, SCENARIO)  # the oracle agrees...
            return {
                name: {(r.tenant_id, r.unit_id): r for r in await _stored_rows(pool, name)}
                for name in layouts.metrics
            }
        finally:
            await pool.close()

    rows = run_sync(run())
    # ...and both say what the definitions say.
    assert rows["conv_events"][("a", "on_time")].value == 1.0
    assert rows["conv_events"][("a", "late")].value == 0.0
    assert rows["deflection"][("b", "u1")].value == 1.0
    assert rows["deflection"][("b", "u2")].value == 0.0
    expansion = rows["expansion"][("c", "")]
    assert (expansion.value, expansion.reached_at) == (1.0, T + timedelta(days=2))
    assert rows["trial_paid"][("c", "")].value == 1.0
    second = rows["conv_activation"][("d", "second")]
    assert (second.value, second.reached_at) == (1.0, T + timedelta(days=2))  # the 3rd step
    assert rows["steps"][("d", "second")].detail == [1, 0, 1, 1, 0, 0]
    assert rows["conv_activation"][("d", "maker")].value == 0.0  # 2 of the maker's 3 steps
    assert rows["steps"][("d", "maker")].detail == [None, None, 1, 1, 0, None]
    assert rows["retention"][("e", "u1")].detail == [1, 3]
    assert rows["retention"][("e", "u1")].value == 0.0  # week 2: nothing


def test_a_refresh_recomputes_only_the_rows_new_events_can_change(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events long after every window leave the rows alone (only units without a row yet are
    looked at again); a sign-up, which can move a sign-up anchor, does not."""
    monkeypatch.setattr(metric_store, "OVERLAP_S", 0)
    layouts = metric_layouts()
    vocab = layouts.vocabulary
    with_rows = [n for n, m in layouts.metrics.items() if metric_store.compute_sql(n, m, vocab)]
    user_metrics = sum(layouts.metrics[n].unit == "user" for n in with_rows)
    tenant_metrics = len(with_rows) - user_metrics
    history = [
        track("a", "u1", "signed_up", T),
        track("a", "u1", "report_created", T + timedelta(days=1)),
        track("a", "u2", "signed_up", T + timedelta(days=2)),
    ]
    much_later = T + timedelta(days=400)

    async def run() -> None:
        pool = await create_pool(database_dsn, min_size=1, max_size=3)
        try:
            async with pool.acquire() as conn:
                await truncate_all(conn)
            await _store(pool, layouts, history)
            await refresh_metrics(pool, layouts)
            kept = {name: {r.unit_id for r in await _stored_rows(pool, name)} for name in with_rows}
            rows_of_u1 = sum("u1" in units for units in kept.values())
            rows_of_tenant = sum("" in units for units in kept.values())
            assert rows_of_u1 > 5 and rows_of_tenant > 2  # most metrics have rows for both

            late = [track("a", "u1", "report_created", much_later)]
            await _store(pool, layouts, late)
            report = await refresh_metrics(pool, layouts)
            # Looked at again: the units without a row (u1 never shown the widget a metric is
            # anchored at, or without the role it asks for; the tenant not on the plan one asks
            # for); the rows of u1 and of its tenant are left as they were.
            without_rows = (user_metrics - rows_of_u1) + (tenant_metrics - rows_of_tenant)
            assert report.events == 1
            assert report.units == without_rows
            await _check(pool, layouts, history + late)

            signup = [track("a", "u1", "signed_up", much_later + US)]
            await _store(pool, layouts, signup)
            report = await refresh_metrics(pool, layouts)
            assert report.units > without_rows  # and the sign-up anchored rows
            await _check(pool, layouts, history + late + signup)
        finally:
            await pool.close()

    run_sync(run())


async def test_retention_weeks_counted_from_the_rows_equal_a_plain_count(pool: Pool) -> None:
    """retention_weeks groups units before counting their weeks: the counts per group and week
    equal a count unit by unit, with a week over exactly when 7 (N + 1) days have passed."""
    rng = random.Random(11)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    units: list[tuple[str, str, str, datetime, list[int]]] = []
    for i in range(300):
        plan = rng.choice(["trial", "pro", "team"])
        if i < 12:  # exactly at the moment a week is over, and a microsecond before
            anchor = now - timedelta(days=7 * (i % 6 + 2)) + timedelta(microseconds=i // 6)
        else:
            anchor = now - timedelta(seconds=rng.uniform(0, 100 * 86_400))
        weeks = sorted(rng.sample(range(1, 13), k=rng.randint(0, 5)))
        units.append((f"t{i % 7}", f"u{i}", plan, anchor, weeks))
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO metric_units (tenant_id, unit, unit_id, signup_at, first_event_at,"
            " cohort, plan) VALUES ($1, 'user', $2, $3, $3, $4, $5)",
            [(t, u, anchor, anchor.date(), plan) for t, u, plan, anchor, _ in units],
        )
        await conn.executemany(
            "INSERT INTO metric_values (tenant_id, metric, unit_id, anchor_at, window_end,"
            " value, detail) VALUES ($1, 'r', $2, $3, $3, 0, $4::jsonb)",
            [(t, u, anchor, weeks) for t, u, _, anchor, weeks in units],
        )
    for by in ((), ("plan",)):
        s = metric_store.Slice(
            metric="r", unit="user", start=now - timedelta(days=120), end=now, by=by
        )
        got = {
            (key, n): (over, active)
            for key, n, over, active in await metric_store.retention_weeks(pool, s, 12, now)
        }
        expected: dict[tuple[tuple[str, ...], int], tuple[int, int]] = {}
        for _, _, plan, anchor, weeks in units:
            key = (plan,) if by else ()
            for n in range(1, 13):
                over, active = expected.get((key, n), (0, 0))
                if anchor + timedelta(days=7 * (n + 1)) <= now:
                    over, active = over + 1, active + (n in weeks)
                expected[(key, n)] = (over, active)
        assert got == expected
