"""The golden corpus: `{profile, screen, expected}` cases that every client SDK can read too."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.config.compile import load_layouts
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
