"""Properties of every decision, over generated profiles."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.decide import Decision, DecisionInput, decide
from app.engine.profile import EventDay, ProfileData
from app.engine.reasons import Reason
from app.engine.signals import build_context
from tests.strategies import LAYOUTS, NOW, inputs, profiles, screens
from widgets import WIDGET_KINDS, LayoutDescriptor


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_every_decision_is_well_formed(inp: DecisionInput) -> None:
    first = decide(LAYOUTS, inp).descriptor
    again = decide(LAYOUTS, inp).descriptor
    assert first == again  # deterministic for a fixed input and seed
    encoded = msgspec.json.encode(first)
    assert msgspec.json.decode(encoded, type=LayoutDescriptor) == first  # matches the schema
    widgets = [w for slot in first.slots for w in slot.widgets]
    ids = [w.id for w in widgets]
    assert len(ids) == len(set(ids))  # never a repeat
    types = [w.__struct_config__.tag for w in widgets]
    assert set(types) <= set(WIDGET_KINDS)  # never an unknown widget
    assert types.count("next_step_card") <= 1  # one clear next step
    modal = [t for t in types if WIDGET_KINDS[str(t)].once_per_screen == "modal"]
    assert len(modal) <= 1  # no stacked modals
    for w in widgets:
        assert w.why.summary.strip()  # every widget says why
        assert 0.0 <= w.why.confidence <= 1.0
        if inp.mode == "default":
            assert w.why.source == "default"
    assert first.personalized == (inp.mode != "default")
    assert first.layout.startswith(inp.screen + "/")


@settings(max_examples=100, deadline=None)
@given(profiles, screens)
def test_basic_mode_ignores_behaviour(profile: ProfileData, screen: str) -> None:
    """Two users with the same declared traits (and dismissals) get the same basic layout,
    whatever else they did."""
    bare = msgspec.structs.replace(
        profile,
        event_days=[],
        recent=[],
        facets=[],
        integrations={},
        tenant_events=[],
        milestones=[],
        first_seen=None,
    )  # what the user dismissed stays: a dismissal is a choice, not a behavioural signal
    full = decide(
        LAYOUTS, DecisionInput(screen=screen, profile=profile, mode="basic", now=NOW, seed=1)
    ).descriptor
    plain = decide(
        LAYOUTS, DecisionInput(screen=screen, profile=bare, mode="basic", now=NOW, seed=1)
    ).descriptor
    assert full == plain


# Local clocks far from UTC, as POSIX TZ strings (no time zone database needed): in UTC's early
# hours the western ones are still on the day before, in its late hours the eastern ones are
# already on the next day.
LOCAL_CLOCKS = ["UTC0", "<-11>11", "<-08>8", "<+0530>-5:30", "<+14>-14"]
ALL_STEPS = [step.event for step in LAYOUTS.vocabulary.signals.activation]


@contextmanager
def local_clock(tz: str) -> Iterator[None]:
    """The process's local time zone set to `tz` (as TZ=... would), restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _local_day(now: datetime) -> date:
    """The day the process's local clock shows at `now`."""
    return datetime.fromtimestamp(now.timestamp()).date()


@settings(max_examples=200, deadline=None)
@given(
    minute=st.integers(0, 24 * 60 - 1),
    local=st.sampled_from(LOCAL_CLOCKS),
    ages=st.lists(st.integers(-2, 95), min_size=1, max_size=6, unique=True),
)
def test_day_windows_count_utc_days_whatever_the_local_clock(
    minute: int, local: str, ages: list[int]
) -> None:
    """An event day of age a (UTC days before the decision's UTC day) counts in the 7/30/90-day
    windows when 0 <= a < 7/30/90, at any time of the UTC day and whatever the local clock says."""
    now = datetime(2026, 11, 27, tzinfo=UTC) + timedelta(minutes=minute)
    days = [EventDay(day=now.date() - timedelta(days=a), event="report_created", n=1) for a in ages]
    profile = ProfileData(tenant_id="a", user_id="u", known=True, event_days=days)
    with local_clock(local):
        ctx = build_context(profile, LAYOUTS.vocabulary, now=now, mode="full", screen="home")

    def within(lo: int, hi: int) -> int:
        return sum(1 for a in ages if lo <= a < hi)

    assert ctx["events"]["report_created"] == {
        "d7": within(0, 7),
        "d30": within(0, 30),
        "d90": within(0, 90),
    }
    value = ctx["value"]  # report_created is a value event
    assert (value["d7"], value["d30"], value["d90"]) == (within(0, 7), within(0, 30), within(0, 90))
    assert value["trend_7d"] == within(0, 7) - within(7, 14)
    assert value["days_since_last"] == min((a for a in ages if 0 <= a < 90), default=-1)


def _lapsed_admin(now: datetime, days_since_value: int) -> ProfileData:
    """An activated admin, signed up two months ago, whose last value event was `days_since_value`
    UTC days before `now`'s UTC day."""
    last = now.date() - timedelta(days=days_since_value)
    return ProfileData(
        tenant_id="a",
        user_id="u",
        known=True,
        user_traits={"role": "admin"},
        first_seen=now - timedelta(days=60),
        event_days=[
            EventDay(day=last, event="report_created", n=2),
            EventDay(day=last - timedelta(days=3), event="automation_created", n=1),
        ],
        milestones=ALL_STEPS,
        tenant_events=ALL_STEPS,
    )


@pytest.mark.parametrize(
    ("now", "local"),
    [
        (datetime(2026, 11, 27, 0, 30, tzinfo=UTC), "<-08>8"),  # local: Nov 26, 16:30
        (datetime(2026, 11, 27, 0, 30, tzinfo=UTC), "<-11>11"),  # local: Nov 26, 13:30
        (datetime(2026, 11, 27, 23, 30, tzinfo=UTC), "<+14>-14"),  # local: Nov 28, 13:30
        (datetime(2026, 11, 27, 23, 30, tzinfo=UTC), "<+0530>-5:30"),  # local: Nov 28, 05:00
    ],
)
def test_day_boundaries_do_not_depend_on_the_local_clock(now: datetime, local: str) -> None:
    """A week without value makes an at-risk user (`value.d7 == 0 && value.d30 > 0`), who is offered
    the re-engagement step, counting UTC days: on a local clock that is on another day than UTC,
    the decision is the one made on a UTC clock."""

    def decided(profile: ProfileData, tz: str) -> Decision:
        with local_clock(tz):
            assert (_local_day(now) != now.date()) == (tz != "UTC0")  # the clock moved the day
            return decide(
                LAYOUTS, DecisionInput(screen="home", profile=profile, mode="full", now=now, seed=3)
            )

    # Seven UTC days since the last value event: nothing this week, something this month.
    lapsed = decided(_lapsed_admin(now, days_since_value=7), local)
    shown = {w.id: w for s in lapsed.descriptor.slots for w in s.widgets}
    step = shown["reengage_step"]
    drivers = {d.signal: d.value for d in step.why.drivers}
    assert drivers == {"user.stage": "at_risk", "value.days_since_last": 7}
    assert lapsed.descriptor.generated_at == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "next_activation_step" not in shown  # every step is done: the slot is free
    # Six UTC days: the user created something this week and is not at risk.
    recent = decided(_lapsed_admin(now, days_since_value=6), local)
    assert "reengage_step" not in {w.id for s in recent.descriptor.slots for w in s.widgets}
    assert {e.widget_id: e.reason for e in recent.trace}["reengage_step"] == Reason.RULE_FALSE
    # And nothing else in either decision depends on the local clock.
    for days_since_value, decision in ((7, lapsed), (6, recent)):
        on_utc = decided(_lapsed_admin(now, days_since_value), "UTC0")
        assert decision.descriptor == on_utc.descriptor
        assert [(e.widget_id, e.reason) for e in decision.trace] == [
            (e.widget_id, e.reason) for e in on_utc.trace
        ]


@pytest.mark.parametrize("hours", [-8, 14])
def test_the_same_instant_in_another_zone_decides_the_same(hours: int) -> None:
    utc = (
        datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
        if hours < 0
        else datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    )
    elsewhere = utc.astimezone(timezone(timedelta(hours=hours)))
    assert elsewhere == utc and elsewhere.date() != utc.date()  # one instant, another wall day
    profile = _lapsed_admin(utc, days_since_value=7)

    def decided(now: datetime) -> LayoutDescriptor:
        return decide(
            LAYOUTS, DecisionInput(screen="home", profile=profile, mode="full", now=now, seed=3)
        ).descriptor

    def reengagement(d: LayoutDescriptor) -> dict[str, object] | None:
        step = next((w for s in d.slots for w in s.widgets if w.id == "reengage_step"), None)
        return {x.signal: x.value for x in step.why.drivers} if step is not None else None

    here, there = decided(utc), decided(elsewhere)
    assert reengagement(here) == {"user.stage": "at_risk", "value.days_since_last": 7}
    assert reengagement(there) == reengagement(here)  # the same UTC days in the windows
    assert there.generated_at == here.generated_at  # the same instant, written in UTC
    assert there == here
