"""Policies: attributes rules may never read (caught at validation, naming the policy), and
placements that are forbidden whatever layouts, flags or experiments say (reason `policy`)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.cli import main as cairn
from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.profile import ProfileData
from app.engine.reasons import Reason
from tests.paths import LAYOUTS_DIR

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def copy(tmp_path: Path) -> Path:
    target = tmp_path / "layouts"
    shutil.copytree(LAYOUTS_DIR, target)
    return target


def test_a_rule_reading_a_forbidden_attribute_fails_validation_naming_the_policy(
    tmp_path: Path,
) -> None:
    target = copy(tmp_path)
    policies = target / "policies.yaml"
    policies.write_text(policies.read_text().replace(
        "user.traits]", "user.traits, tenant.region]"))  # fmt: skip
    billing = target / "screens" / "billing.yaml"
    billing.write_text(billing.read_text().replace(
        "when: user.role == 'admin' && tenant.at_seat_limit",
        "when: tenant.region == 'eu' && tenant.at_seat_limit"))  # fmt: skip
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{billing}:") or "billing.yaml:" in problem
    assert "reads 'tenant.region': policy 'protected_attributes'" in problem
    assert "forbids rules to read 'tenant.region'" in problem


def test_a_policy_naming_an_unknown_widget_is_pointed_at(tmp_path: Path) -> None:
    target = copy(tmp_path)
    policies = target / "policies.yaml"
    gate = 'types: [upgrade_gate]}\n      when: "user.role'
    policies.write_text(policies.read_text().replace(gate, gate.replace("gate]", "gates]")))
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    assert any("unknown widget type 'upgrade_gates'" in str(p) for p in info.value.problems)


def _user(role: str, **traits: object) -> ProfileData:
    return ProfileData(tenant_id="acme", user_id="u1", known=True, user_traits={"role": role},
                       tenant_traits={"plan": "trial", "industry": "fintech", "seats": 5,
                                      "seats_used": 5, **traits},
                       first_seen=datetime(2026, 11, 1, tzinfo=UTC))  # fmt: skip


def test_a_placement_policy_leaves_the_widget_out_whatever_its_rule_says() -> None:
    layouts = load_layouts(LAYOUTS_DIR)

    def billing(role: str) -> dict[str, tuple[Reason, str]]:
        d = decide(layouts, DecisionInput(screen="billing", profile=_user(role), mode="full",
                                          now=NOW, seed=1))  # fmt: skip
        return {e.widget_id: (e.reason, e.detail) for e in d.trace}

    reason, detail = billing("end_user")["seat_limit_gate"]
    assert reason == Reason.POLICY
    assert detail.startswith("policy no_upgrade_gate_for_end_users: End users cannot buy")
    assert billing("admin").get("seat_limit_gate", (None,))[0] != Reason.POLICY


def test_policy_cases_run_and_a_wrong_or_missing_case_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cairn(["policy", "test", str(LAYOUTS_DIR)]) == 0
    assert "14 cases, 5 policies: all hold" in capsys.readouterr().out
    target = copy(tmp_path)
    policies = target / "policies.yaml"
    text = policies.read_text()
    wrong = text.replace("signals: {user: {role: admin}}\n    expect: allow",
                         "signals: {user: {role: admin}}\n    expect: deny")  # fmt: skip
    policies.write_text(wrong)
    assert cairn(["policy", "test", str(target)]) == 1
    out = capsys.readouterr()
    assert "FAIL no_upgrade_gate_for_end_users: type upgrade_gate" in out.out
    assert "(expected deny)" in out.out
    assert "FAIL no_upgrade_gate_for_end_users: no allow case" in out.err


def test_consent_configuration_names_known_purposes_and_signals(tmp_path: Path) -> None:
    target = copy(tmp_path)
    signals = target / "signals.yaml"
    text = signals.read_text()
    text = text.replace("  Analytics: [measurement]", "  Analytics: [measuring]")
    text = text.replace("signals: [propensity]", "signals: [propensity, user.mood]")
    signals.write_text(text)
    with pytest.raises(LayoutConfigError) as info:
        load_layouts(target)
    problems = [str(p) for p in info.value.problems]
    assert any("signals.yaml:" in p and "unknown purpose 'measuring'" in p for p in problems)
    assert any("signals.yaml:" in p and "unknown signal 'user.mood'" in p for p in problems)


def test_an_owner_targets_only_the_segment_its_policies_allow(tmp_path: Path) -> None:
    target = copy(tmp_path)
    experiments = target / "experiments.yaml"
    experiments.write_text(experiments.read_text().replace("status: draft", "status: running"))
    layouts = load_layouts(target)

    def enrolments(plan: str, stored: dict[str, str] | None = None) -> list[tuple[str, bool]]:
        profile = ProfileData(
            tenant_id=f"t-{plan}", user_id="u1", known=True, user_traits={"role": "admin"},
            tenant_traits={"plan": plan, "industry": "fintech"},
            first_seen=datetime(2026, 12, 6, tzinfo=UTC), assignments=stored or {},
        )  # fmt: skip
        d = decide(layouts, DecisionInput(screen="home", profile=profile, mode="full", now=NOW,
                                          seed=1))  # fmt: skip
        return [(e.arm, e.live) for e in d.enrolments if e.experiment == "next_step_copy"]

    assert len(enrolments("pro")) == 1  # a new user on a self-serve plan is enrolled
    assert enrolments("enterprise") == []  # growth may not target enterprise accounts
    # One enrolled before the policy: served control from now on, as for a stopped experiment.
    assert enrolments("enterprise", {"next_step_copy": "short_copy"}) == [("control", False)]
