"""The golden corpus: `{profile, screen, expected}` cases that every client SDK can read too."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.model import Layouts
from app.engine.profile import ProfileData

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "golden" / "decisions").glob("*.json"))


@pytest.fixture(scope="module")
def layouts() -> Layouts:
    return load_layouts(ROOT / "layouts")


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


def test_the_corpus_covers_the_shipped_behaviours() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_golden_case(case_file: Path, layouts: Layouts) -> None:
    case = json.loads(case_file.read_text())
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
    if "presets_industry" in expected:
        industry = d["presets"]["industry"] if d["presets"] else None
        assert industry == expected["presets_industry"]
    widgets = {w["id"]: w for s in d["slots"] for w in s["widgets"]}
    for widget_id, props in expected.get("props", {}).items():
        subset(props, widgets[widget_id]["props"], widget_id)


def test_fallbacks_never_break_the_screen_rules(layouts: Layouts) -> None:
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
    kinds = [w.__struct_config__.tag for s in fitted.slots for w in s.widgets]
    assert kinds == ["next_step_card"]
    del layouts
