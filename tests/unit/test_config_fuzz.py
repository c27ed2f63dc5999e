"""Any content in a layouts folder gives either compiled layouts or problems at file:line:col,
never an exception: the YAML loader, the spec checks and the CEL compiler, fuzzed (bounded, so
the suite stays quick; a longer run: HYPOTHESIS_PROFILE=long)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config.layouts import LayoutConfigError, load_layouts
from tests.paths import LAYOUTS_DIR

EXAMPLES = 400 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 15
FILES = ("screens/home.yaml", "signals.yaml", "flags.yaml", "experiments.yaml", "metrics.yaml",
         "policies.yaml", "retention.yaml", "presets.yaml")  # fmt: skip
# What YAML and CEL are made of, and what breaks them: structure, quotes, anchors, tags,
# indentation, a NUL, a Latin-1 byte, a lone surrogate's bytes, very long names.
PIECES = [":", "- ", "[", "]", "{", "}", ",", "'", '"', "&a", "*a", "!!str", "%", "#", "\t",
          "\n", "\n  ", "  ", "|", ">", "? ", "~", "null", "true", "0x1f", "1e999", "-", ".",
          "&&", "||", "!", "==", "(", ")", "user.", "tenant.plan", "size(", "in ", "'a' +",
          "\x00", "\xe9", "\ufeff", "é", "x" * 300]  # fmt: skip
_LOCATED = re.compile(r"^.+:[1-9][0-9]*:[1-9][0-9]*: .+", re.DOTALL)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "layouts"
        shutil.copytree(LAYOUTS_DIR, target)
        yield target


def _loads_or_locates(root: Path) -> None:
    problems: list[str] = []
    try:
        load_layouts(root)
    except LayoutConfigError as exc:
        problems = [str(p) for p in exc.problems] or ["(no problem named)"]
    unlocated = [p for p in problems if not _LOCATED.match(p)]
    assert not unlocated, unlocated


edits = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1),  # where, as a share of the text
        st.integers(min_value=0, max_value=8),  # characters removed there
        st.one_of(st.sampled_from(PIECES), st.text(max_size=6)),  # what goes in instead
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=EXAMPLES * len(FILES), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(name=st.sampled_from(FILES), changes=edits, raw=st.booleans())
def test_any_edit_of_any_file_compiles_or_is_located(
    folder: Path, name: str, changes: list[tuple[float, int, str]], raw: bool
) -> None:
    path = folder / name
    original = (LAYOUTS_DIR / name).read_bytes()
    text = original.decode()
    for where, cut, piece in changes:
        at = int(where * len(text))
        text = text[:at] + piece + text[at + cut :]
    # as text (UTF-8), or with the bytes of a file saved in another encoding
    data = text.encode("latin-1", "replace") if raw else text.encode("utf-8", "surrogatepass")
    try:
        path.write_bytes(data)
        _loads_or_locates(folder)
    finally:
        path.write_bytes(original)


@settings(max_examples=EXAMPLES * 3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(rule=st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=8))
def test_any_rule_compiles_or_is_located(folder: Path, rule: list[str]) -> None:
    """A screen rule (CEL) replaced by anything: quoted, so YAML takes it whole."""
    path = folder / "screens" / "home.yaml"
    original = path.read_text()
    expression = "".join(rule).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
    edited = original.replace(
        "when: upgrade.pending && upgrade.screen == screen", f'when: "{expression}"', 1
    )
    assert edited != original
    try:
        path.write_text(edited, encoding="utf-8", errors="surrogatepass")
        _loads_or_locates(folder)
    finally:
        path.write_text(original)


def test_a_tag_yaml_cannot_make_is_located(folder: Path) -> None:
    """Found by the long run: `!!strtemplates` (a tag with no constructor) raised from PyYAML."""
    path = folder / "signals.yaml"
    original = path.read_text()
    edited = original.replace("features: [reports, ", "features: [reports, !!strx ", 1)
    assert edited != original
    try:
        path.write_text(edited)
        with pytest.raises(LayoutConfigError) as info:
            load_layouts(folder)
    finally:
        path.write_text(original)
    (problem,) = [str(p) for p in info.value.problems]
    line = next(i for i, text in enumerate(edited.splitlines(), 1) if "!!strx" in text)
    assert problem.startswith(f"layouts/signals.yaml:{line}:25: YAML: could not determine a")
