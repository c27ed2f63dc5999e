"""Propensity scores in layout decisions: rules read them, and their drivers explain the widget."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.model import Layouts
from app.engine.profile import EventDay, ProfileData
from app.engine.propensity import POOLED, PropensityModel, PropensityModels, SegmentModel
from app.engine.reasons import Reason
from tests.unit.test_golden_decisions import ROOT

NOW = datetime(2026, 11, 20, 10, 0)


@pytest.fixture(scope="module")
def layouts() -> Layouts:
    return load_layouts(ROOT / "layouts")


def _models(intercept: float) -> PropensityModels:
    """Upgrade propensity rising with reports created this month and with the trial plan."""
    pooled = SegmentModel(
        segment=POOLED,
        features=["events.report_created.d30", "tenant.plan=trial", "tenant.seats"],
        mean=[2.0, 0.5, 20.0],
        scale=[2.0, 0.5, 10.0],
        coef=[1.5, 0.8, -0.1],
        intercept=intercept,
        n_train=1000,
        positives=200,
        auc=0.8,
    )
    model = PropensityModel(
        target="upgrade",
        horizon_days=30,
        segments={POOLED: pooled},
        trained_at="2026-11-01T00:00:00+00:00",
        auc=0.8,
    )
    return PropensityModels(models={"upgrade": model}, trained_at=model.trained_at)


def _admin(reports: int, plan: str = "trial") -> ProfileData:
    day = NOW.date() - timedelta(days=2)
    return ProfileData(
        tenant_id="acme",
        user_id="ada",
        known=True,
        user_traits={"role": "admin"},
        tenant_traits={"plan": plan, "seats": 30, "industry": "fintech"},
        first_seen=NOW - timedelta(days=40),
        event_days=[EventDay(date.fromisoformat(str(day)), "report_created", reports)],
        milestones=["billing_connected"],
        tenant_events=["billing_connected"],
    )


def _billing(
    layouts: Layouts, profile: ProfileData, models: PropensityModels | None, mode: str = "full"
) -> dict[str, object]:
    decision = decide(
        layouts,
        DecisionInput(
            screen="billing",
            profile=profile,
            mode=mode,  # type: ignore[arg-type]
            now=NOW,
            seed=1,
            propensity=models,
        ),
    )
    widgets = {w.id: w for slot in decision.descriptor.slots for w in slot.widgets}
    return {"widgets": widgets, "trace": {e.widget_id: e.reason for e in decision.trace}}


def test_a_likely_upgrade_gets_a_nudge_explained_by_the_models_drivers(layouts: Layouts) -> None:
    out = _billing(layouts, _admin(reports=9), _models(intercept=0.5))
    widgets = out["widgets"]
    assert isinstance(widgets, dict)
    nudge = widgets["upgrade_ready_step"]
    drivers = [(d.signal, d.value) for d in nudge.why.drivers]
    assert drivers[0][0] == "propensity.upgrade"
    score = drivers[0][1]
    assert isinstance(score, float) and score >= 0.6
    assert nudge.why.confidence == round(score, 2)
    # The features that raised the score, strongest first, with the user's own values.
    assert drivers[1] == ("events.report_created.d30", 9)
    assert ("tenant.plan", "trial") in drivers
    assert ("tenant.seats", 30) not in drivers  # it lowers the score: not a reason
    assert drivers[-1] == ("plan.id", "trial")


def test_an_unlikely_upgrade_or_no_model_shows_no_nudge(layouts: Layouts) -> None:
    out = _billing(layouts, _admin(reports=0, plan="pro"), _models(intercept=-2.0))
    assert "upgrade_ready_step" not in out["widgets"]  # type: ignore[operator]
    assert out["trace"]["upgrade_ready_step"] == Reason.RULE_FALSE  # type: ignore[index]
    out = _billing(layouts, _admin(reports=9), None)
    assert "upgrade_ready_step" not in out["widgets"]  # type: ignore[operator]


def test_basic_personalization_is_not_scored(layouts: Layouts) -> None:
    out = _billing(layouts, _admin(reports=9), _models(intercept=0.5), mode="basic")
    assert "upgrade_ready_step" not in out["widgets"]  # type: ignore[operator]
    assert out["trace"]["upgrade_ready_step"] == Reason.BEHAVIOURAL  # type: ignore[index]
