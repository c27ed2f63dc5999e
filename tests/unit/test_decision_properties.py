"""Properties of every decision, over generated profiles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.profile import EventDay, Preferences, ProfileData, RecentEvent, WidgetState
from widgets import WIDGET_KINDS, LayoutDescriptor

LAYOUTS = load_layouts(Path(__file__).resolve().parents[2] / "layouts")
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
inputs = st.builds(
    DecisionInput,
    screen=st.sampled_from(sorted(LAYOUTS.screens)),
    profile=profiles,
    mode=st.sampled_from(["full", "basic", "default"]),
    now=st.just(NOW),
    seed=st.integers(0, 2**64 - 1),
    view=st.none() | st.sampled_from(["admin", "maker", "end_user", "member", "viewer", "x"]),
)


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
@given(profiles, st.sampled_from(sorted(LAYOUTS.screens)))
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


def test_day_boundaries_do_not_depend_on_the_local_clock() -> None:
    profile = ProfileData(
        tenant_id="a",
        user_id="u",
        known=True,
        user_traits={"role": "admin"},
        event_days=[EventDay(day=date(2026, 11, 27), event="teammate_invited", n=1)],
        tenant_events=["teammate_invited"],
    )
    d = decide(
        LAYOUTS, DecisionInput(screen="home", profile=profile, mode="full", now=NOW, seed=3)
    ).descriptor
    step = next(w for s in d.slots for w in s.widgets if w.id == "next_activation_step")
    assert step.props.title == "Connect your first integration"
