"""Hypothesis strategies shared by the test modules: profiles and decision inputs over the shipped
layouts (their events, widgets, screens and presets), as of `NOW`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput
from app.engine.profile import EventDay, Preferences, ProfileData, RecentEvent, WidgetState
from tests.paths import LAYOUTS_DIR

LAYOUTS = load_layouts(LAYOUTS_DIR)
NOW = datetime(2026, 11, 27, 10, tzinfo=UTC)
EVENTS = list(LAYOUTS.vocabulary.tracked_events)
WIDGET_IDS = [w.id for s in LAYOUTS.screens.values() for slot in s.slots for w in slot.widgets]

event_days = st.lists(
    st.builds(
        EventDay,
        day=st.integers(0, 100).map(lambda d: NOW.date() - timedelta(days=d)),
        event=st.sampled_from(EVENTS),
        n=st.integers(1, 20),
    ),
    max_size=30,
)
recent = st.lists(
    st.builds(
        RecentEvent,
        event=st.sampled_from(
            ["error_shown", "limit_reached", "feature_attempted", "plan_upgraded"]
        ),
        ts=st.integers(0, 60 * 48).map(lambda m: NOW - timedelta(minutes=m)),
        properties=st.fixed_dictionaries(
            {
                "feature": st.sampled_from(["reports", "automations", "sso", "api", "editor"]),
                "limit": st.sampled_from(["seats", "automations", "reports"]),
                "screen": st.sampled_from(["home", "editor", "settings", "billing"]),
                "used": st.integers(0, 100),
                "max": st.integers(0, 100),
            }
        ),
    ),
    max_size=8,
)
widget_states = st.dictionaries(
    st.sampled_from(WIDGET_IDS),
    st.builds(
        WidgetState,
        views=st.integers(0, 50),
        dismissed_at=st.none() | st.integers(0, 40).map(lambda d: NOW - timedelta(days=d)),
        completed_at=st.none() | st.just(NOW - timedelta(days=1)),
    ),
    max_size=4,
)
profiles = st.builds(
    ProfileData,
    tenant_id=st.just("acme"),
    user_id=st.just("u1"),
    known=st.booleans(),
    user_traits=st.fixed_dictionaries(
        {"role": st.sampled_from(["admin", "maker", "end_user", "", "guest"])}
    ),
    tenant_traits=st.fixed_dictionaries(
        {
            "plan": st.sampled_from(["free", "trial", "pro", "enterprise", "unknown"]),
            "industry": st.sampled_from([*LAYOUTS.vocabulary.presets.industries, "other", ""]),
            "seats": st.integers(0, 500),
            "seats_used": st.integers(0, 600),
        }
    ),
    first_seen=st.none() | st.integers(0, 200).map(lambda d: NOW - timedelta(days=d)),
    event_days=event_days,
    tenant_events=st.lists(st.sampled_from(EVENTS), max_size=5),
    integrations=st.dictionaries(
        st.sampled_from(list(LAYOUTS.vocabulary.presets.integrations)), st.booleans(), max_size=5
    ),
    widgets=widget_states,
    recent=recent,
    preferences=st.builds(Preferences, personalization=st.sampled_from(["full", "basic", "off"])),
)
screens = st.sampled_from(sorted(LAYOUTS.screens))
inputs = st.builds(
    DecisionInput,
    screen=screens,
    profile=profiles,
    mode=st.sampled_from(["full", "basic", "default"]),
    now=st.just(NOW),
    seed=st.integers(0, 2**64 - 1),
    view=st.none() | st.sampled_from(["admin", "maker", "end_user", "member", "viewer", "x"]),
)
