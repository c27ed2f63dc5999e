"""Properties of every decision, over generated profiles."""

from __future__ import annotations

from datetime import date

import msgspec
from hypothesis import given, settings

from app.engine.decide import DecisionInput, decide
from app.engine.profile import EventDay, ProfileData
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
