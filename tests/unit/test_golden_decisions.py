"""The golden corpus: `{profile, screen, expected}` cases that every client SDK can read too.

`expected` gives the layout, the widgets shown in each slot and, for every other widget of the
screen, the reason code (`app.engine.reasons.Reason`) it is left out with."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.model import Layouts
from app.engine.profile import ProfileData
from app.engine.reasons import Reason
from tests.paths import GOLDEN_DECISIONS_DIR, LAYOUTS_DIR

CASES = sorted(GOLDEN_DECISIONS_DIR.glob("*.json"))
# The behaviours the corpus was written for; each case cites those it shows ("Behaviour 8: ...").
SHIPPED_BEHAVIOURS = set(range(1, 10))
KEYS = {"name", "description", "screen", "mode", "view", "now", "seed", "profile", "expected"}


@pytest.fixture(scope="module")
def layouts() -> Layouts:
    return load_layouts(LAYOUTS_DIR)


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def subset(expected: Any, actual: Any, path: str = "") -> None:
    """Every key of `expected` is in `actual` with the same value (lists compared item by item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing"
            subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"


def test_the_corpus_covers_the_shipped_behaviours(layouts: Layouts) -> None:
    """Every file is one complete case named after itself; together they cite every shipped
    behaviour and every personalization mode; each case says, for every widget of its screen,
    whether it is shown or why it is left out (a reason code)."""
    cases = [load(path) for path in CASES]
    assert cases, f"no golden decision in {GOLDEN_DECISIONS_DIR}"
    assert [c["name"] for c in cases] == [path.stem for path in CASES]
    cited: set[int] = set()
    for case in cases:
        assert set(case) == KEYS, case["name"]
        said = re.fullmatch(r"Behaviours? ([\d, ]+): .+", case["description"])
        assert said is not None, f"{case['name']} cites no behaviour: {case['description']!r}"
        cited |= {int(n) for n in re.findall(r"\d+", said.group(1))}
        screen = layouts.screens[case["screen"]]
        expected = case["expected"]
        slots = {slot.id: [w.id for w in slot.widgets] for slot in screen.slots}
        for slot_id, shown in expected["slots"].items():
            assert shown and set(shown) <= set(slots[slot_id]), (case["name"], slot_id)
        accounted = [w for ids in expected["slots"].values() for w in ids]
        accounted += list(expected["left_out"])
        assert sorted(accounted) == sorted(w for ids in slots.values() for w in ids), case["name"]
        assert set(expected["left_out"].values()) <= set(Reason), case["name"]
    assert cited == SHIPPED_BEHAVIOURS
    assert {c["mode"] for c in cases} == {"full", "basic", "default"}
    # The reasons the behaviours rest on are each shown by some case.
    reasons = {Reason(r) for c in cases for r in c["expected"]["left_out"].values()}
    assert reasons >= {
        Reason.RULE_FALSE,  # connected integrations, plans that have the feature, old friction
        Reason.DISMISSED,  # a dismissed widget rests
        Reason.FAMILY_DISMISSED,  # and so does the widget that would replace it
        Reason.NOT_FOR_VIEW,  # views by role, and view=
        Reason.CONSENT,  # basic personalization: purposes not granted
        Reason.NOT_IN_DEFAULT,  # personalization off
    }


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_golden_case(case_file: Path, layouts: Layouts) -> None:
    case = load(case_file)
    profile = msgspec.convert(case["profile"], ProfileData)
    decision = decide(
        layouts,
        DecisionInput(
            screen=case["screen"],
            profile=profile,
            mode=case["mode"],
            view=case["view"],
            now=datetime.fromisoformat(case["now"]),
            seed=case["seed"],
        ),
    )
    d = msgspec.to_builtins(decision.descriptor)
    expected = case["expected"]
    assert d["layout"] == expected["layout"]
    assert d["personalized"] == expected["personalized"]
    slots = {s["id"]: [w["id"] for w in s["widgets"]] for s in d["slots"]}
    assert slots == expected["slots"], decision.trace
    left_out = {e.widget_id: e.reason for e in decision.trace}
    assert len(left_out) == len(decision.trace)  # one reason per widget left out
    assert left_out == {w: Reason(r) for w, r in expected["left_out"].items()}
    if "presets_industry" in expected:
        industry = d["presets"]["industry"] if d["presets"] else None
        assert industry == expected["presets_industry"]
    widgets = {w["id"]: w for s in d["slots"] for w in s["widgets"]}
    for widget_id, props in expected.get("props", {}).items():
        subset(props, widgets[widget_id]["props"], widget_id)


def test_fallbacks_never_break_the_screen_rules() -> None:
    """A client that renders only some types gets fallbacks, still one next step at most."""
    from app.engine.decide import negotiate
    from widgets.base import Link, Why
    from widgets.checklist import ChecklistProps
    from widgets.descriptor import Checklist, LayoutDescriptor, NextStepCard, SlotDescriptor
    from widgets.next_step_card import NextStepCardProps

    why = Why(summary="s", source="rule", confidence=0.9)
    step = NextStepCard(
        id="a",
        why=why,
        props=NextStepCardProps(title="t", body="b", cta=Link(label="go", href="/x")),
    )
    checklist = Checklist(
        id="b",
        why=why,
        props=ChecklistProps(title="c", items=[]),
        fallback=NextStepCard(
            id="b",
            why=why,
            props=NextStepCardProps(title="t2", body="b2", cta=Link(label="go", href="/y")),
        ),
    )
    d = LayoutDescriptor(
        schema_version=1,
        screen="home",
        layout="home/admin",
        decision_id="d",
        generated_at="",
        personalized=True,
        degraded=False,
        view={"id": "admin", "label": "Admin"},  # type: ignore[arg-type]
        presets=None,
        slots=[
            SlotDescriptor(id="s1", widgets=[step]),
            SlotDescriptor(id="s2", widgets=[checklist]),
        ],
    )
    fitted = negotiate(d, frozenset({"next_step_card"}))
    kept = [(s.id, w.id, w.__struct_config__.tag) for s in fitted.slots for w in s.widgets]
    # The first next step stays; the checklist's fallback would be a second one: dropped, and so
    # is the slot it leaves empty.
    assert kept == [("s1", "a", "next_step_card")]
    assert negotiate(d, frozenset({"checklist"})).slots == [
        SlotDescriptor(id="s2", widgets=[checklist])
    ]
