"""Designer mistakes are reported as file:line:col, all of them, and never reach users."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.config.layouts import LayoutConfigError, load_layouts
from tests.offline import offline_runtime

ROOT = Path(__file__).resolve().parents[2]

GOOD_WIDGET = """\
      - id: probe
        type: help_tip
        when: {when}
        why:
          summary: "Because {{{{ friction.feature }}}}"
          drivers: [friction.feature]
        props:
          title: Probe
          body: Body
          article: {{id: a, title: T, href: /h}}
"""


@pytest.fixture
def layouts_dir(tmp_path: Path) -> Path:
    target = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", target)
    return target


def add_screen(layouts_dir: Path, body: str) -> Path:
    path = layouts_dir / "screens" / "probe.yaml"
    path.write_text(
        "screen: probe\nviews:\n  - {id: main, label: Main}\ndefault_view: main\nslots:\n"
        "  - id: s\n    widgets:\n" + body
    )
    return path


def problems(layouts_dir: Path) -> list[str]:
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(layouts_dir)
    return [str(p) for p in info.value.problems]


def test_shipped_layouts_are_valid() -> None:
    layouts = load_layouts(ROOT / "layouts")
    assert {"home", "billing", "settings", "editor"} <= set(layouts.screens)


def test_cel_syntax_error_points_into_the_expression(layouts_dir: Path) -> None:
    add_screen(layouts_dir, GOOD_WIDGET.format(when="user.role == == 'admin'"))
    found = problems(layouts_dir)
    assert len(found) == 1
    assert found[0].startswith("layouts/screens/probe.yaml:10:")
    assert "CEL" in found[0]
    col = int(found[0].split(":")[2])
    assert col > len("        when: ")  # inside the expression, not at the key


def test_unknown_signal_is_named_with_its_position(layouts_dir: Path) -> None:
    add_screen(layouts_dir, GOOD_WIDGET.format(when="user.rol == 'admin'"))
    assert problems(layouts_dir) == [
        "layouts/screens/probe.yaml:10:15: unknown signal 'user.rol' (user has: "
        "days_since_signup, id, role, stage)"
    ]


def test_unknown_field_and_unknown_widget_type(layouts_dir: Path) -> None:
    body = GOOD_WIDGET.format(when="true").replace("type: help_tip", "type: carousel")
    body += "        colour: red\n"
    add_screen(layouts_dir, body)
    found = problems(layouts_dir)
    assert len(found) == 1  # the unknown field stops the file before types are checked
    assert found[0] == "layouts/screens/probe.yaml:18:9: unknown field 'colour'"
    add_screen(
        layouts_dir, GOOD_WIDGET.format(when="true").replace("type: help_tip", "type: carousel")
    )
    found = problems(layouts_dir)
    assert found[0].startswith("layouts/screens/probe.yaml:9:15: unknown widget type 'carousel'")


def test_props_that_do_not_fit_the_widget_type(layouts_dir: Path) -> None:
    add_screen(
        layouts_dir,
        GOOD_WIDGET.format(when="true").replace(
            "article: {id: a, title: T, href: /h}", "article: 42"
        ),
    )
    found = problems(layouts_dir)
    assert len(found) == 1
    assert found[0].startswith("layouts/screens/probe.yaml:")
    assert "expected 'object', got 'int'" in found[0]


def test_every_problem_is_reported_at_once(layouts_dir: Path) -> None:
    add_screen(
        layouts_dir,
        GOOD_WIDGET.format(when="user.rol == 'admin'")
        + GOOD_WIDGET.format(when="value.d7 >>> 1").replace("id: probe", "id: probe2"),
    )
    assert len(problems(layouts_dir)) == 2


def test_yaml_syntax_error(layouts_dir: Path) -> None:
    path = add_screen(layouts_dir, GOOD_WIDGET.format(when="true"))
    path.write_text(path.read_text() + "  - id: [unclosed\n")
    found = problems(layouts_dir)
    assert found[0].startswith("layouts/screens/probe.yaml:") and "YAML" in found[0]


def test_validate_command_prints_file_line_col(layouts_dir: Path) -> None:
    add_screen(layouts_dir, GOOD_WIDGET.format(when="user.rol == 'admin'"))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(layouts_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=layouts_dir.parent,
    )
    assert result.returncode == 1
    assert "layouts/screens/probe.yaml:10:15: unknown signal 'user.rol'" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(ROOT / "layouts")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr


def test_a_broken_reload_keeps_the_last_good_layouts(layouts_dir: Path) -> None:
    rt = offline_runtime(layouts_dir)
    good = rt.layouts
    add_screen(layouts_dir, GOOD_WIDGET.format(when="user.rol == 'admin'"))
    assert rt.reload_layouts() is False
    assert rt.layouts is good
    assert rt.layout_error is not None and "probe.yaml:10:15" in rt.layout_error
    add_screen(layouts_dir, GOOD_WIDGET.format(when="user.role == 'admin'"))
    assert rt.reload_layouts() is True
    assert "probe" in rt.layouts.screens and rt.layout_error is None


FED_WIDGET = """\
      - id: fed
        type: integration_prompt
        feed: {{source: recs.integrations, min: {min}, max: {max}}}
        replaces: [{replaces}]
        when: "{when}"
        why:
          summary: "{{{{ feed.reason }}}}"
        props:
          title: Connect
          integrations: "{{{{ feed.items }}}}"
"""


def test_fed_widgets_are_checked_with_the_recommenders_items(layouts_dir: Path) -> None:
    add_screen(
        layouts_dir,
        FED_WIDGET.format(min=2, max=3, replaces="probe", when="feed.count >= 2")
        + GOOD_WIDGET.format(when="true"),
    )
    screen = load_layouts(layouts_dir).screens["probe"]
    assert screen.families == {"fed": ("probe",), "probe": ("fed",)}


def test_feed_mistakes_are_reported_where_they_are(layouts_dir: Path) -> None:
    add_screen(
        layouts_dir,
        FED_WIDGET.format(min=3, max=2, replaces="nowhere", when="feed.cuont >= 2")
        + GOOD_WIDGET.format(when="feed.count > 0"),
    )
    found = problems(layouts_dir)
    assert any(p.endswith(":10:15: feed needs 1 <= min <= max") for p in found), found
    assert any(":11:20: 'nowhere' is not another widget" in p for p in found), found
    assert any(":12:15: unknown signal 'feed.cuont' (feed has: confidence" in p for p in found)
    # `feed` exists only in widgets that have one.
    assert any(":20:15: unknown signal 'feed' (rules has:" in p for p in found), found


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (b"\xe9", "not UTF-8: byte 0xe9 (save the file as UTF-8)"),  # one Latin-1 byte
        (b"\x00", "YAML: character 0x0000 is not allowed here"),
    ],
)
def test_bytes_a_yaml_file_cannot_hold_are_pointed_at(
    tmp_path: Path, damage: bytes, says: str
) -> None:
    """A stray byte is a problem at its line and column, like any other (never an exception
    that would stop the reloads)."""
    target = tmp_path / "layouts"
    shutil.copytree(ROOT / "layouts", target)
    help_file = target / "help.yaml"
    lines = help_file.read_bytes().split(b"\n")
    lines[2] = lines[2][:4] + damage + lines[2][4:]
    help_file.write_bytes(b"\n".join(lines))
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem == f"layouts/help.yaml:3:5: {says}"
