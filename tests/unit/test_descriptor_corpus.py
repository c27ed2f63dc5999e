"""The client contract: a golden corpus of layout descriptors that every client reads.

Each tests/golden/descriptors/*.json holds a descriptor, whether it is a valid schema-version-1
descriptor (`schema_v1`; false for widget types from a newer server), and cases: for a client that
renders `widgets` (null: every type), which widgets it shows in which slots, `[[slot, ["id:type",
…]], …]`, after fallbacks. The web SDK's tests (e2e/test_sdk_corpus.py) render the same files in
Chromium and compare the DOM with `dom`; a mobile client can run the same cases.

Here: schema-version-1 descriptors decode with the wire types of widgets/descriptor.py (and others
do not), the server's negotiate() gives the expected widgets for each capability list, and so does
the fallback rule as the README states it for clients (`resolve` below), on every file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.engine.decide import negotiate
from widgets.descriptor import SCHEMA_VERSION, LayoutDescriptor

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "tests" / "golden" / "descriptors").glob("*.json"))
V1_TYPES = {
    "shortcut_grid",
    "next_step_card",
    "checklist",
    "integration_prompt",
    "upgrade_gate",
    "help_tip",
    "template_gallery",
}

Summary = list[list[Any]]


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def summary(descriptor: dict[str, Any]) -> Summary:
    return [
        [slot["id"], [f"{w['id']}:{w['type']}" for w in slot["widgets"]]]
        for slot in descriptor["slots"]
    ]


# The screen rule as a client reads it from the published schema: widget type → its group, of
# which a screen shows one (the next step; modal-style widgets).
ONCE_PER_SCREEN: dict[str, str] = json.loads(
    (ROOT / "widgets" / "layout.schema.json").read_text(encoding="utf-8")
)["x-cairn-once-per-screen"]


def resolve(descriptor: dict[str, Any], widgets: list[str] | None) -> Summary:
    """The client's rule: a widget of a type the client renders is shown; otherwise its fallback
    (a widget object, tried the same way) or nothing ("drop"). A widget whose once-per-screen
    group already has one on the screen is left out, and so is a slot left empty."""
    known = V1_TYPES if widgets is None else set(widgets)
    out: Summary = []
    once: set[str] = set()
    for slot in descriptor["slots"]:
        shown = []
        for top in slot["widgets"]:
            widget = top
            while isinstance(widget, dict) and widget["type"] not in known:
                widget = widget.get("fallback", "drop")
            if not isinstance(widget, dict):
                continue
            group = ONCE_PER_SCREEN.get(widget["type"])
            if group in once:
                continue
            if group is not None:
                once.add(group)
            shown.append(f"{widget['id']}:{widget['type']}")
        if shown:
            out.append([slot["id"], shown])
    return out


def test_the_corpus_covers_every_type_fallbacks_and_unknown_types() -> None:
    cases = [load(f) for f in FILES]
    assert len(cases) >= 8

    def walk(widget: Any) -> list[dict[str, Any]]:
        return [widget, *walk(widget["fallback"])] if isinstance(widget, dict) else []

    widgets = [
        w
        for case in cases
        for slot in case["descriptor"]["slots"]
        for top in slot["widgets"]
        for w in walk(top)
    ]
    types = {w["type"] for w in widgets}
    assert types >= V1_TYPES
    assert types - V1_TYPES, "no widget type unknown to schema version 1"
    assert any(isinstance(w["fallback"], dict) for w in widgets), "no fallback widget"
    assert any(not case["schema_v1"] for case in cases)
    assert all(case["cases"] for case in cases)


def test_the_committed_schema_has_the_seven_types_of_schema_v1() -> None:
    schema = json.loads((ROOT / "widgets" / "layout.schema.json").read_text(encoding="utf-8"))
    tags = {
        definition["properties"]["type"]["enum"][0]
        for definition in schema["$defs"].values()
        if "enum" in definition.get("properties", {}).get("type", {})
    }
    assert tags == V1_TYPES


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_descriptor_decodes_with_the_wire_types_when_it_is_schema_v1(path: Path) -> None:
    case = load(path)
    raw = json.dumps(case["descriptor"]).encode()
    if case["schema_v1"]:
        descriptor = msgspec.json.decode(raw, type=LayoutDescriptor)
        assert descriptor.schema_version == SCHEMA_VERSION
        # What the server would send for it decodes to the same thing (new fields dropped).
        again = msgspec.json.decode(msgspec.json.encode(descriptor), type=LayoutDescriptor)
        assert again == descriptor
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=LayoutDescriptor)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_fallbacks_give_the_expected_widgets_for_each_capability_list(path: Path) -> None:
    case = load(path)
    for item in case["cases"]:
        widgets = item["widgets"]
        assert resolve(case["descriptor"], widgets) == item["expect"], widgets
        if case["schema_v1"]:
            decoded = msgspec.convert(case["descriptor"], LayoutDescriptor)
            served = negotiate(decoded, None if widgets is None else frozenset(widgets))
            assert summary(msgspec.to_builtins(served)) == item["expect"], widgets


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_file_says_what_the_web_sdk_renders(path: Path) -> None:
    case = load(path)
    slots = case["dom"]["slots"]
    full = next(c["expect"] for c in case["cases"] if c["widgets"] is None)
    assert [[s["slot"], [f"{w['id']}:{w['type']}" for w in s["widgets"]]] for s in slots] == full
