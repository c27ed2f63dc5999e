"""layouts/metrics.yaml: the shipped metrics load, and analysts' mistakes come as file:line:col."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.metrics import KINDS
from tests.offline import offline_runtime
from tests.paths import LAYOUTS_DIR

SHIPPED = {
    "activation_14d",
    "time_to_first_value",
    "feature_adoption_30d",
    "integration_breadth",
    "trial_to_paid_30d",
    "gate_influenced_upgrade_7d",
    "help_deflection_1d",
    "task_time",
    "retention_weekly",
    "expansion_90d",
}


@pytest.fixture
def layouts_dir(tmp_path: Path) -> Path:
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS_DIR, target)
    return target


def problems(layouts_dir: Path, metrics: str) -> list[str]:
    (layouts_dir / "metrics.yaml").write_text(metrics, encoding="utf-8")
    with pytest.raises(LayoutConfigError) as caught:
        load_layouts(layouts_dir)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_metrics_are_the_named_ones_and_cover_every_kind() -> None:
    metrics = load_layouts(LAYOUTS_DIR).metrics
    assert set(metrics) >= SHIPPED
    assert {str(m.__struct_config__.tag) for m in metrics.values()} == set(KINDS)
    assert metrics["trial_to_paid_30d"].unit == "tenant"
    assert metrics["expansion_90d"].unit == "tenant"


def test_unknown_kind_field_and_bad_values_are_placed(layouts_dir: Path) -> None:
    found = problems(
        layouts_dir,
        "metrics:\n  a:\n    label: A\n    kind: conversoin\n    outcome: activation\n",
    )
    assert found == [
        "layouts/metrics.yaml:4:11: unknown kind 'conversoin' (known: conversion, time_to, "
        "count, distinct, retention, duration, funnel, ratio)"
    ]
    found = problems(
        layouts_dir,
        "metrics:\n  a:\n    label: A\n    kind: count\n    events: {event: x, colour: red}\n",
    )
    assert found == ["layouts/metrics.yaml:5:24: unknown field 'colour'"]
    found = problems(
        layouts_dir,
        "metrics:\n  a:\n    label: A\n    kind: count\n    within_days: -3\n"
        "    events: {event: x}\n",
    )
    assert found == ["layouts/metrics.yaml:5:18: expected 'float' > 0.0"]


def test_references_are_checked_where_they_are(layouts_dir: Path) -> None:
    found = problems(
        layouts_dir,
        """metrics:
  seen:
    label: Seen
    kind: conversion
    anchor: {at: exposure, widget: no_such_widget}
    outcome: {event: x}
  typed:
    label: Typed
    kind: conversion
    anchor: {at: exposure, widget_type: carousel}
    outcome: {events: [x], class: value}
  tenants:
    label: T
    unit: tenant
    kind: count
    population: {role: [admin]}
    events: {event: x}
  per_user:
    label: P
    kind: count
    events: {event: y}
  mixed:
    label: M
    unit: tenant
    kind: ratio
    numerator: per_user
    denominator: nothing
  weeks:
    label: W
    kind: retention
    weeks: 4
    headline: 6
""",
    )
    assert found == [
        "layouts/metrics.yaml:5:36: no screen has a widget 'no_such_widget'",
        "layouts/metrics.yaml:10:41: unknown widget type 'carousel' (known: shortcut_grid, "
        "next_step_card, checklist, integration_prompt, upgrade_gate, help_tip, "
        "template_gallery)",
        "layouts/metrics.yaml:11:14: name the events: one of event, events or class",
        "layouts/metrics.yaml:16:24: a tenant metric has no role to filter on",
        "layouts/metrics.yaml:26:16: 'per_user' is measured per user, this ratio per tenant",
        "layouts/metrics.yaml:27:18: unknown metric 'nothing'",
        "layouts/metrics.yaml:32:15: headline week 6 is after week 4, the last one measured",
    ]


def test_a_broken_metrics_file_keeps_the_last_good_version_live(layouts_dir: Path) -> None:
    rt = offline_runtime(layouts_dir)
    good = rt.layouts
    assert "activation_14d" in good.metrics
    path = layouts_dir / "metrics.yaml"
    path.write_text(path.read_text() + "  broken:\n    label: B\n    kind: nope\n")
    assert rt.reload_layouts() is False
    assert rt.layouts is good
    assert rt.layout_error is not None and "metrics.yaml:" in rt.layout_error
    path.write_text(
        path.read_text().replace("kind: nope", "kind: count\n    events: {event: report_created}")
    )
    assert rt.reload_layouts() is True
    assert "broken" in rt.layouts.metrics and rt.layout_error is None


def test_conditions_are_cel_within_what_the_database_evaluates(layouts_dir: Path) -> None:
    found = problems(
        layouts_dir,
        """metrics:
  syntax:
    label: S
    kind: count
    events: {event: x, when: "event.properties.a =="}
  outside:
    label: O
    kind: count
    events:
      event: x
      when: event.properties.tags.exists(t, t == 'a')
  fine:
    label: F
    kind: count
    events:
      event: x
      when: "event.properties.plan in ['pro', 'enterprise'] && !(event.properties.n < 3)"
""",
    )
    assert len(found) == 2
    assert found[0].startswith("layouts/metrics.yaml:5:") and "CEL:" in found[0]
    assert found[1].startswith("layouts/metrics.yaml:11:41: CEL: found '('")  # the macro
    assert "in the database" in found[1]
