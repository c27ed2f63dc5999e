"""Propensity scores in layout decisions: rules read them, and their drivers explain the widget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from app.engine.model import Layouts
from app.engine.profile import EventDay, ProfileData
from app.engine.propensity import POOLED, PropensityModel, PropensityModels, SegmentModel
from app.engine.reasons import Reason
from app.engine.signals import Mode
from tests.paths import LAYOUTS_DIR
from widgets.descriptor import Widget

NOW = datetime(2026, 11, 20, 10, 0)


@pytest.fixture(scope="module")
def layouts() -> Layouts:
    return load_layouts(LAYOUTS_DIR)


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


@dataclass(frozen=True)
class Billing:
    """A decision of the billing screen: the widgets shown, and the reason code of each left out."""

    shown: dict[str, Widget]
    left_out: dict[str, Reason]


def _billing(
    layouts: Layouts, profile: ProfileData, models: PropensityModels | None, mode: Mode = "full"
) -> Billing:
    decision = decide(
        layouts,
        DecisionInput(
            screen="billing",
            profile=profile,
            mode=mode,
            now=NOW,
            seed=1,
            propensity=models,
        ),
    )
    return Billing(
        shown={w.id: w for slot in decision.descriptor.slots for w in slot.widgets},
        left_out={e.widget_id: e.reason for e in decision.trace},
    )


def test_a_likely_upgrade_gets_a_nudge_explained_by_the_models_drivers(layouts: Layouts) -> None:
    models = _models(intercept=0.5)
    out = _billing(layouts, _admin(reports=9), models)
    nudge = out.shown["upgrade_ready_step"]
    # The model's score for this user's own values: 9 reports this month, on trial, 30 seats.
    expected = models.score(
        "upgrade", {"events.report_created.d30": 9, "tenant.plan=trial": 1, "tenant.seats": 30}
    )
    assert expected is not None and expected.probability >= 0.6  # what the rule asks for
    drivers = [(d.signal, d.value) for d in nudge.why.drivers]
    assert drivers[0] == ("propensity.upgrade", round(expected.probability, 3))
    assert nudge.why.confidence == round(expected.probability, 2)
    # The features that raised the score, strongest first, with the user's own values.
    assert drivers[1] == ("events.report_created.d30", 9)
    assert ("tenant.plan", "trial") in drivers
    assert ("tenant.seats", 30) not in drivers  # it lowers the score: not a reason
    assert drivers[-1] == ("plan.id", "trial")
    assert "upgrade_ready_step" not in out.left_out


def test_an_unlikely_upgrade_or_no_model_shows_no_nudge(layouts: Layouts) -> None:
    out = _billing(layouts, _admin(reports=0, plan="pro"), _models(intercept=-2.0))
    assert "upgrade_ready_step" not in out.shown
    assert out.left_out["upgrade_ready_step"] == Reason.RULE_FALSE
    out = _billing(layouts, _admin(reports=9), None)  # the likely upgrader, without a model
    assert "upgrade_ready_step" not in out.shown
    assert out.left_out["upgrade_ready_step"] == Reason.RULE_FALSE


def test_basic_personalization_is_not_scored(layouts: Layouts) -> None:
    out = _billing(layouts, _admin(reports=9), _models(intercept=0.5), mode="basic")
    assert "upgrade_ready_step" not in out.shown
    assert out.left_out["upgrade_ready_step"] == Reason.CONSENT
