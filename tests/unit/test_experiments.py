"""Experiments in the engine: who is enrolled in which arm (sticky, layered, held out), what an
arm changes on a screen and how the "why" says so; and the analysts' mistakes as file:line:col."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.decide import Decision, DecisionInput, decide, flags_for
from app.engine.experiments import EXPERIMENT_SENTENCE, HoldoutSpec, in_holdout
from app.engine.model import Layouts
from app.engine.profile import ProfileData
from app.engine.reasons import Reason
from tests.paths import GOLDEN_DECISIONS_DIR, LAYOUTS_DIR

NOW = datetime(2026, 11, 27, 10, tzinfo=UTC)


def with_experiments(tmp_path: Path, text: str) -> Path:
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS_DIR, target)
    (target / "experiments.yaml").write_text(text)
    return target


def load(tmp_path: Path, text: str) -> Layouts:
    return load_layouts(with_experiments(tmp_path, text))


def new_admin(user: str = "u1", tenant: str = "acme", **changes: Any) -> ProfileData:
    """The golden corpus's brand-new admin (stage `new`, a next step to take)."""
    case = json.loads((GOLDEN_DECISIONS_DIR / "new_admin_home.json").read_text())
    profile = msgspec.convert(case["profile"], ProfileData)
    return msgspec.structs.replace(profile, tenant_id=tenant, user_id=user, **changes)


def home(layouts: Layouts, profile: ProfileData, **more: Any) -> Decision:
    inp = DecisionInput(screen="home", profile=profile, mode="full", now=NOW, seed=1, **more)
    return decide(layouts, inp)


def widget(decision: Decision, widget_id: str) -> Any:
    for slot in decision.descriptor.slots:
        for w in slot.widgets:
            if w.id == widget_id:
                return w
    return None


# --- the shipped experiment -------------------------------------------------------------------


SHIPPED = (LAYOUTS_DIR / "experiments.yaml").read_text()
RUNNING = SHIPPED.replace("status: draft", "status: running")


def running(tmp_path: Path) -> Layouts:
    """The shipped experiments.yaml with its example experiment started."""
    assert RUNNING != SHIPPED
    return load(tmp_path, RUNNING)


def test_a_draft_experiment_enrols_nobody() -> None:
    layouts = load_layouts(LAYOUTS_DIR)
    assert layouts.experiments.experiments["next_step_copy"].spec.status == "draft"
    assert home(layouts, new_admin()).enrolments == []


def test_new_users_are_split_between_the_arms_and_each_arm_is_marked(tmp_path: Path) -> None:
    layouts = running(tmp_path)
    arms: dict[str, int] = {}
    for i in range(400):
        decision = home(layouts, new_admin(user=f"u{i}"))
        (enrolment,) = decision.enrolments
        assert enrolment.experiment == "next_step_copy" and enrolment.new
        arms[enrolment.arm] = arms.get(enrolment.arm, 0) + 1
        step = widget(decision, "next_activation_step")
        assert step.why.source == "experiment"
        assert step.why.experiment.key == "next_step_copy"
        assert step.why.experiment.arm == enrolment.arm
        assert step.why.summary.endswith(EXPERIMENT_SENTENCE)
        short = step.props.title.startswith("One step to go: ")
        assert short == (enrolment.arm == "short_copy")
    assert set(arms) == {"control", "short_copy"}
    assert 160 < arms["control"] < 240


def test_a_stored_arm_is_kept_whatever_the_weights_say_later(tmp_path: Path) -> None:
    all_control = RUNNING.replace("{id: control, weight: 50}", "{id: control, weight: 100}")
    all_control = all_control.replace("weight: 50\n        set:", "weight: 0\n        set:")
    layouts = load(tmp_path, all_control)
    fresh = home(layouts, new_admin(user="x1"))
    assert fresh.enrolments[0].arm == "control"  # the new weights, for a new unit
    stored = new_admin(user="x1", assignments={"next_step_copy": "short_copy"})
    kept = home(layouts, stored)
    assert [(e.arm, e.new) for e in kept.enrolments] == [("short_copy", False)]
    assert widget(kept, "next_activation_step").props.title.startswith("One step to go")


def test_a_stopped_experiment_serves_control_and_enrols_nobody(tmp_path: Path) -> None:
    import dataclasses

    layouts = running(tmp_path)
    stopped = dataclasses.replace(
        layouts,
        experiments=dataclasses.replace(layouts.experiments, stopped=frozenset({"next_step_copy"})),
    )
    stored = new_admin(assignments={"next_step_copy": "short_copy"})
    decision = home(stopped, stored)
    assert [(e.arm, e.new) for e in decision.enrolments] == [("control", False)]
    assert not widget(decision, "next_activation_step").props.title.startswith("One step")
    assert home(stopped, new_admin(user="fresh")).enrolments == []


def test_ineligible_unknown_and_held_out_users_are_not_enrolled(tmp_path: Path) -> None:
    layouts = running(tmp_path)
    old_hand = new_admin(first_seen=datetime(2026, 1, 1, tzinfo=UTC))
    assert home(layouts, old_hand).enrolments == []  # not `new` any more
    assert home(layouts, msgspec.structs.replace(new_admin(), known=False)).enrolments == []
    held = home(layouts, new_admin(), holdout=True)
    assert held.enrolments == [] and held.descriptor.holdout is True


def test_the_holdout_is_a_stable_share_of_users() -> None:
    holdout = HoldoutSpec(percent=5)
    held = [u for u in range(20_000) if in_holdout(holdout, f"t{u % 50}", f"u{u}")]
    assert 0.04 < len(held) / 20_000 < 0.06
    assert all(in_holdout(holdout, f"t{u % 50}", f"u{u}") for u in held)
    assert not any(in_holdout(HoldoutSpec(percent=0), "t", f"u{u}") for u in range(1000))


# --- what arms can change ---------------------------------------------------------------------

ARMS = """
experiments:
  layered_a:
    layer: home_layer
    traffic: 50
    arms:
      - {id: control, weight: 50}
      - id: hide
        weight: 50
        set: {widget: activation_checklist, hide: true}
    metrics: {primary: activation_14d}
  layered_b:
    layer: home_layer
    traffic: 50
    arms:
      - {id: control, weight: 50}
      - id: lifted
        weight: 50
        set:
          - {widget: admin_shortcuts, priority: 99}
          - {screen: home, view: maker}
    metrics: {primary: activation_14d}
  editor_flag:
    arms:
      - {id: control, weight: 50, set: {flag: new_editor, variant: off}}
      - {id: treatment, weight: 50, set: {flag: new_editor, variant: on}}
    metrics: {primary: activation_14d, guardrails: [{metric: error_rate, threshold: 0.05}]}
"""


def test_a_layer_never_shares_a_unit_and_arms_change_the_screen(tmp_path: Path) -> None:
    layouts = load(tmp_path, ARMS)
    seen = {"layered_a": 0, "layered_b": 0}
    for i in range(300):
        decision = home(layouts, new_admin(user=f"u{i}"))
        enrolled = {e.experiment: e.arm for e in decision.enrolments}
        assert not {"layered_a", "layered_b"} <= set(enrolled)  # one layer, one experiment
        for key in seen:
            seen[key] += key in enrolled
        if enrolled.get("layered_a") == "hide":
            reasons = {e.widget_id: e.reason for e in decision.trace}
            assert reasons["activation_checklist"] == Reason.EXPERIMENT
        if enrolled.get("layered_b") == "lifted":
            assert decision.descriptor.view.id == "maker"
        elif "layered_b" in enrolled:
            assert decision.descriptor.view.id == "admin"
        assert decision.descriptor.flags["new_editor"] is (enrolled["editor_flag"] == "treatment")
    assert 110 < seen["layered_a"] < 190 and 110 < seen["layered_b"] < 190


def test_openfeature_evaluations_enrol_in_flag_experiments(tmp_path: Path) -> None:
    layouts = load(tmp_path, ARMS)
    answer = flags_for(layouts, ["new_editor"], new_admin(user="of1"), "full", NOW)
    (enrolment,) = answer.enrolments
    assert enrolment.experiment == "editor_flag" and enrolment.new
    assert enrolment.exposed  # the flag was served: the server's exposure
    result = answer.results["new_editor"]
    assert result.value is (enrolment.arm == "treatment")
    assert result.detail == f"experiment editor_flag, arm {enrolment.arm}"
    held = flags_for(layouts, ["new_editor"], new_admin(user="of1"), "default", NOW, holdout=True)
    assert held.enrolments == []


# --- analysts' mistakes -------------------------------------------------------------------------


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(LayoutConfigError) as info:
        load(tmp_path, text)
    return [str(p) for p in info.value.problems]


def test_mistakes_are_pointed_at(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "experiments:\n"
        "  a:\n"
        "    layer: l\n"
        "    traffic: 60\n"
        "    arms:\n"
        "      - {id: control, weight: 50}\n"
        "      - {id: b, weight: 40, set: {widget: nope, hide: true}}\n"
        "    metrics: {primary: nothing}\n"
        "  b:\n"
        "    layer: l\n"
        "    traffic: 50\n"
        "    arms:\n"
        "      - {id: control, weight: 50, set: {flag: new_editor, variant: maybe}}\n"
        "      - {id: t, weight: 50, set: {widget: admin_shortcuts, swap: editor_templates}}\n"
        "    metrics: {primary: activation_14d, guardrails: [errors]}\n",
    )
    assert "layouts/experiments.yaml:6:7: arm weights add up to 90, not 100" in found
    assert "layouts/experiments.yaml:7:43: no screen has a widget 'nope'" in found
    assert any(
        p.startswith("layouts/experiments.yaml:8:24: unknown metric 'nothing'") for p in found
    )
    assert any(
        p.startswith("layouts/experiments.yaml:11:14: layer 'l' is over 100% of traffic")
        for p in found
    ), found
    assert any(
        p.startswith("layouts/experiments.yaml:13:68: 'new_editor' has no variant 'maybe'")
        for p in found
    ), found
    assert (
        "layouts/experiments.yaml:14:66: 'editor_templates' is not another widget of screen 'home'"
        in found
    )
    assert any(
        p.startswith("layouts/experiments.yaml:15:53: unknown metric 'errors'") for p in found
    )


def test_the_shipped_experiments_are_valid_and_analysed_on_shipped_metrics() -> None:
    layouts = load_layouts(LAYOUTS_DIR)
    exp = layouts.experiments.experiments["next_step_copy"]
    assert exp.control == "control"
    assert {"error_rate", "dismiss_rate"} <= set(layouts.metrics)
    assert exp.widgets == frozenset({"next_activation_step"})


def test_decision_latency_is_a_guardrail_of_every_experiment(tmp_path: Path) -> None:
    """Arms' decision times (count, sum, sum of squares, as the server keeps them): an arm
    significantly slower than control by more than 25% breaches the latency guardrail."""
    from app.serving.experiments import LATENCY_GUARDRAIL, latency_of, read_guardrails

    exp = running(tmp_path).experiments.experiments["next_step_copy"]

    def sums(n: int, mean: float, sd: float) -> tuple[int, float, float]:
        return n, n * mean, (n - 1) * sd * sd + n * mean * mean

    fine, ok = latency_of(
        exp, {"control": sums(4000, 0.8, 0.3), "short_copy": sums(4000, 0.82, 0.3)}
    )
    assert [g.breached for g in read_guardrails(ok, 0.05)] == [False]
    assert {a.id: round(a.mean_ms or 0, 2) for a in fine} == {"control": 0.8, "short_copy": 0.82}
    _, slow = latency_of(exp, {"control": sums(4000, 0.8, 0.3), "short_copy": sums(4000, 1.6, 0.5)})
    (guard,) = read_guardrails(slow, 0.05)
    assert guard.metric == LATENCY_GUARDRAIL and guard.breached and guard.alpha == 0.05
    assert latency_of(exp, {})[1] == []  # nothing measured yet: nothing to say


LEAKY = """
experiments:
  both_flags:
    arms:
      - {id: control, weight: 0}
      - id: treatment
        weight: 100
        set:
          - {flag: new_editor, variant: on}
          - {flag: adaptive_help, variant: on}
    metrics: {primary: activation_14d}
"""


def test_an_arm_sets_only_the_flags_asked_for_and_never_past_a_kill_switch(tmp_path: Path) -> None:
    layouts = load(tmp_path, LEAKY)
    asked = flags_for(layouts, ["new_editor"], new_admin(user="k1"), "full", NOW)
    assert set(asked.results) == {"new_editor"}  # adaptive_help is server-only: not sent
    assert asked.results["new_editor"].value is True

    target = tmp_path / "layouts"
    flags = target / "flags.yaml"
    flags.write_text(
        flags.read_text().replace("  new_editor:\n", "  new_editor:\n    enabled: false\n")
    )
    switched_off = load_layouts(target)
    held = flags_for(switched_off, ["new_editor"], new_admin(user="k1"), "full", NOW)
    assert held.results["new_editor"].reason.value == "DISABLED"
    assert held.results["new_editor"].value is False


def test_an_arm_removed_from_the_file_serves_control_without_assigning_again(
    tmp_path: Path,
) -> None:
    layouts = running(tmp_path)
    gone = new_admin(assignments={"next_step_copy": "long_copy"})
    (enrolment,) = home(layouts, gone).enrolments
    assert (enrolment.arm, enrolment.new) == ("control", False)


def test_experiments_changing_one_widget_must_share_a_layer(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "experiments:\n"
        "  a:\n"
        "    arms:\n"
        "      - {id: control, weight: 50}\n"
        "      - {id: t, weight: 50, set: {widget: admin_shortcuts, priority: 99}}\n"
        "    metrics: {primary: activation_14d}\n"
        "  b:\n"
        "    arms:\n"
        "      - {id: control, weight: 50}\n"
        "      - {id: t, weight: 50, set: {widget: admin_shortcuts, hide: true}}\n"
        "    metrics: {primary: activation_14d}\n",
    )
    assert found == [
        "layouts/experiments.yaml:7:3: widget admin_shortcuts is also changed by experiment "
        "'a': put both in one layer, so that no unit is in both"
    ]


def test_exposure_is_the_servers_when_arms_are_not_seen_alike(tmp_path: Path) -> None:
    """Hiding a widget: a unit is exposed when the widget's rule holds, in either arm (a
    client's widget_viewed would count the shown arm only); a props change leaves exposure to
    the client's view of the widget."""
    layouts = load(tmp_path, ARMS)
    assert layouts.experiments.experiments["layered_a"].server_exposure
    exposed_by_arm: dict[tuple[str, str], set[bool]] = {}
    for i in range(300):
        for e in home(layouts, new_admin(user=f"u{i}")).enrolments:
            if e.experiment in ("layered_a", "layered_b"):
                exposed_by_arm.setdefault((e.experiment, e.arm), set()).add(e.exposed)
    # a view change exposes every decision on its screen, in every arm (a touched widget that
    # only one view shows would count one arm's units only)
    assert exposed_by_arm == {
        ("layered_a", "control"): {True}, ("layered_a", "hide"): {True},
        ("layered_b", "control"): {True}, ("layered_b", "lifted"): {True},
    }  # fmt: skip
    import dataclasses

    stopped = dataclasses.replace(
        layouts,
        experiments=dataclasses.replace(layouts.experiments, stopped=frozenset({"layered_a"})),
    )
    stored = new_admin(user="s1", assignments={"layered_a": "hide"})
    (e,) = [e for e in home(stopped, stored).enrolments if e.experiment == "layered_a"]
    assert (e.arm, e.live, e.exposed) == ("control", False, False)  # a stop records no exposure
    props_only = running(tmp_path / "p")
    assert not props_only.experiments.experiments["next_step_copy"].server_exposure
    (e,) = home(props_only, new_admin()).enrolments
    assert e.exposed is False


def test_an_experiment_on_tenants_reads_only_what_its_users_share(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "experiments:\n"
        "  t:\n"
        "    unit: tenant\n"
        "    when: \"tenant.seats > 10 && user.role == 'admin'\"\n"
        "    arms:\n"
        "      - {id: control, weight: 50, set: {flag: checklist_style, variant: full}}\n"
        "      - {id: compact, weight: 50, set: {flag: checklist_style, variant: compact}}\n"
        "    metrics: {primary: trial_to_paid_30d}\n",
    )
    assert found == [
        "layouts/experiments.yaml:4:33: an experiment on tenants reads what its users share "
        "(tenant, plan, presets), not 'user.role'"
    ]


def test_a_layer_keeps_one_kind_of_unit(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "experiments:\n"
        "  a:\n"
        "    unit: tenant\n"
        "    layer: l\n"
        "    traffic: 50\n"
        "    arms:\n"
        "      - {id: control, weight: 50}\n"
        "      - {id: t, weight: 50, set: {widget: activation_checklist, hide: true}}\n"
        "    metrics: {primary: activation_14d}\n"
        "  b:\n"
        "    layer: l\n"
        "    traffic: 50\n"
        "    arms:\n"
        "      - {id: control, weight: 50}\n"
        "      - {id: t, weight: 50, set: {widget: activation_checklist, priority: 99}}\n"
        "    metrics: {primary: activation_14d}\n",
    )
    assert found == [
        "layouts/experiments.yaml:11:12: layer 'l' splits tenants, this experiment users: a layer "
        "keeps units apart only when its experiments share the unit"
    ]


async def test_kept_results_are_never_read_across_a_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results computed before a stop and kept after it (the reload raced the computation) are
    not the stopped experiment's: the run-time state is part of what they are kept under."""
    from app.serving import experiments as serving
    from app.storage.experiments import ExperimentState

    made: list[object] = []

    async def compute(*_: Any) -> object:
        made.append(object())
        return made[-1]

    monkeypatch.setattr(serving, "results", compute)
    layouts = load_layouts(LAYOUTS_DIR)
    cache = serving.ResultsCache()
    now = datetime.now(UTC)
    stop = ExperimentState("e", "stopped", "guardrail", {}, now, "guardrail")
    running = await serving.cached_results(None, layouts, "e", None, now, cache)  # type: ignore[arg-type]
    assert await serving.cached_results(None, layouts, "e", None, now, cache) is running  # type: ignore[arg-type]
    stopped = await serving.cached_results(None, layouts, "e", stop, now, cache)  # type: ignore[arg-type]
    assert stopped is not running and len(made) == 2
