"""Propensity models: fitting, AUC, the time split, segment fallback, scoring and features."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli.models import format_training
from app.config.layouts import load_layouts
from app.engine.profile import EventDay, Facet, ProfileData, RecentEvent
from app.engine.propensity import (
    ACTIVATION,
    FEATURES,
    MID_MARKET,
    POOLED,
    SMB,
    TARGETS,
    UPGRADE,
    PropensityModel,
    PropensityModels,
    SegmentModel,
    activated,
    applies,
    features_of,
)
from app.engine.signals import build_context, signal_schema
from app.engine.vocabulary import Vocabulary
from app.storage.events import EventRow
from app.training.history import ProfileBuilder, snapshot_times
from app.training.propensity import SegmentReport, TargetReport, TrainingReport, segment_model
from recommender.logistic import (
    NotEnoughDataError,
    choose_cutoff,
    fit_logistic,
    roc_auc,
    train_target,
)
from tests.profiles import profile_at

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = 86_400.0


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_layouts(LAYOUTS).vocabulary


def sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


# --- fitting -----------------------------------------------------------------------------------


def test_fitting_recovers_a_known_logistic_model() -> None:
    rng = np.random.default_rng(3)
    n = 40_000
    # Features on different scales and centres; the fit standardizes them itself.
    x = np.column_stack(
        [rng.normal(5, 2, n), rng.normal(-1, 0.5, n), rng.normal(0, 10, n), rng.normal(0, 1, n)]
    )
    true_coef = np.array([0.8, -2.0, 0.05, 0.0])
    true_intercept = -3.0
    y = rng.random(n) < sigmoid(x @ true_coef + true_intercept)

    fit = fit_logistic(x, y, l2=1e-6, clip=50.0)

    assert fit.converged
    raw_coef = fit.coef / fit.scale
    raw_intercept = fit.intercept - float(np.sum(fit.coef * fit.mean / fit.scale))
    assert np.allclose(raw_coef, true_coef, atol=0.06), raw_coef
    assert raw_intercept == pytest.approx(true_intercept, abs=0.25)
    auc = roc_auc(y, fit.predict(x))
    oracle = roc_auc(y, x @ true_coef)
    assert auc is not None and oracle is not None
    assert auc > 0.85
    assert auc == pytest.approx(oracle, abs=0.005)


def test_the_l2_penalty_shrinks_coefficients_and_keeps_separable_data_finite() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([False, False, True, True])  # perfectly separable
    loose, tight = fit_logistic(x, y, l2=0.1), fit_logistic(x, y, l2=10.0)
    assert np.isfinite(loose.coef).all() and loose.coef[0] > tight.coef[0] > 0


def test_a_constant_feature_gets_no_weight() -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=500), np.full(500, 7.0)])
    y = rng.random(500) < sigmoid(2 * x[:, 0])
    fit = fit_logistic(x, y)
    assert fit.scale[1] == 1.0
    assert fit.coef[1] == pytest.approx(0.0, abs=1e-9)


# --- AUC ---------------------------------------------------------------------------------------


def pairwise_auc(y: list[bool], scores: list[float]) -> float | None:
    pos = [s for s, t in zip(scores, y, strict=True) if t]
    neg = [s for s, t in zip(scores, y, strict=True) if not t]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=4)), min_size=1, max_size=30
    )
)
@settings(max_examples=300, deadline=None)
def test_auc_equals_the_pairwise_count_with_ties(rows: list[tuple[bool, int]]) -> None:
    y = [t for t, _ in rows]
    scores = [float(s) / 4 for _, s in rows]
    expected = pairwise_auc(y, scores)
    got = roc_auc(np.array(y), np.array(scores))
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_auc_on_hand_made_cases() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # One tie between a positive and a negative: 3 of 4 pairs won, one half.
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.3, 0.4])) == 0.875
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


# --- the time split ----------------------------------------------------------------------------


def test_the_cutoff_trains_on_finished_windows_and_tests_on_later_snapshots() -> None:
    times = np.repeat(np.arange(10) * 7 * DAY, 50)
    horizon = 14 * DAY
    cutoff = choose_cutoff(times, horizon)
    train, test = times + horizon <= cutoff, times >= cutoff
    assert train.any() and test.any()
    assert not (train & test).any()
    # About two thirds of the rows used train: the balance the rule aims for.
    assert 1.5 <= train.sum() / test.sum() <= 2.5
    # No later cutoff gives the smaller side more rows.
    best = min(train.sum(), 2 * test.sum())
    for other in np.unique(times):
        tr, te = (times + horizon <= other).sum(), (times >= other).sum()
        if tr and te:
            assert min(tr, 2 * te) <= best


def test_a_history_shorter_than_the_horizon_has_no_split() -> None:
    times = np.array([0.0, DAY, 2 * DAY])
    with pytest.raises(NotEnoughDataError):
        choose_cutoff(times, 30 * DAY)


def synthetic_rows(
    n_a: int, n_b: int, *, seed: int = 5, b_all_positive: bool = False
) -> tuple[Any, Any, Any, list[str]]:
    rng = np.random.default_rng(seed)
    n = n_a + n_b
    x = rng.normal(size=(n, 2))
    segments = ["a"] * n_a + ["b"] * n_b
    # The segments respond to the features differently: a to the first, b to the second.
    logit = np.where(np.array(segments) == "a", 2.5 * x[:, 0], 2.5 * x[:, 1]) - 0.5
    y = rng.random(n) < sigmoid(logit)
    if b_all_positive:
        y[n_a:] = True
    times = rng.integers(0, 12, n) * 7 * DAY
    return x, y, times, segments


def test_segments_get_their_own_models_when_they_have_the_rows() -> None:
    x, y, times, segments = synthetic_rows(3000, 3000)
    result = train_target(
        x, y, times, segments, ["f1", "f2"], horizon=14 * DAY, segment_names=["a", "b"]
    )
    by_name = {s.segment: s for s in result.segments}
    assert all(s.model is not None and not s.fallback for s in result.segments)
    a_model, b_model = by_name["a"].model, by_name["b"].model
    assert a_model is not None and b_model is not None
    assert a_model.coef[0] > 1.5 > abs(a_model.coef[1])
    assert b_model.coef[1] > 1.5 > abs(b_model.coef[0])
    # Each segment's own model ranks its rows better than the pooled one does overall.
    assert result.test_auc is not None and result.pooled.test_auc is not None
    assert result.test_auc > result.pooled.test_auc + 0.05
    assert by_name["a"].n_train + by_name["b"].n_train == result.pooled.n_train
    assert result.pooled.model is not None and result.pooled.model.n == len(y)


def test_a_small_segment_falls_back_to_the_pooled_model() -> None:
    x, y, times, segments = synthetic_rows(3000, 60)
    result = train_target(
        x, y, times, segments, ["f1", "f2"], horizon=14 * DAY, segment_names=["a", "b"]
    )
    small = next(s for s in result.segments if s.segment == "b")
    assert small.model is None
    assert "training rows, fewer than 200" in small.fallback
    assert next(s for s in result.segments if s.segment == "a").model is not None


def test_a_single_class_segment_falls_back_and_has_no_auc() -> None:
    x, y, times, segments = synthetic_rows(3000, 2000, b_all_positive=True)
    result = train_target(
        x, y, times, segments, ["f1", "f2"], horizon=14 * DAY, segment_names=["a", "b"]
    )
    b = next(s for s in result.segments if s.segment == "b")
    assert b.model is None
    assert "0 negative" in b.fallback
    assert b.test_auc is None


def test_one_class_overall_cannot_train() -> None:
    x, _, times, segments = synthetic_rows(500, 0)
    with pytest.raises(NotEnoughDataError):
        train_target(
            x,
            np.zeros(500, dtype=bool),
            times,
            segments,
            ["f1", "f2"],
            horizon=14 * DAY,
            segment_names=["a"],
        )


# --- scoring -----------------------------------------------------------------------------------


def hand_model(segment: str = SMB, intercept: float = 0.0) -> SegmentModel:
    return SegmentModel(
        segment=segment,
        features=["a", "b", "c", "d", "e"],
        mean=[0.0, 0.0, 0.0, 0.0, 10.0],
        scale=[1.0, 1.0, 1.0, 1.0, 2.0],
        coef=[1.0, -1.0, 2.0, 0.5, 0.2],
        intercept=intercept,
        n_train=100,
        positives=10,
        auc=0.7,
    )


def test_scoring_a_hand_built_model_and_its_drivers() -> None:
    score = hand_model().score({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 14.0})
    # log-odds: 1 - 1 + 2 + 0.5 + 0.2 * (14 - 10) / 2
    assert score.probability == pytest.approx(1 / (1 + math.exp(-2.9)))
    # The three largest positive contributions; b pulls the score down and is no reason.
    assert score.drivers == [("c", 1.0, 2.0), ("a", 1.0, 1.0), ("d", 1.0, 0.5)]
    assert score.segment == SMB


def test_missing_features_count_as_zero_and_extreme_values_are_clipped() -> None:
    model = hand_model(intercept=-1.0)
    assert model.score({}).probability == pytest.approx(
        1 / (1 + math.exp(-(-1.0 + 0.2 * -5.0)))  # e: (0 - 10) / 2 = -5
    )
    extreme = model.score({"c": 1e9, "e": 10.0})
    assert extreme.probability == pytest.approx(1 / (1 + math.exp(-(-1.0 + 2.0 * 5.0))))
    assert extreme.drivers == [("c", 1e9, 10.0)]


def propensity_model(segments: dict[str, SegmentModel]) -> PropensityModel:
    return PropensityModel(
        target=UPGRADE, horizon_days=30, segments=segments, trained_at=NOW.isoformat(), auc=0.7
    )


def test_a_user_is_scored_by_their_segment_or_else_the_pooled_model() -> None:
    both = propensity_model(
        {SMB: hand_model(SMB), MID_MARKET: hand_model(MID_MARKET), POOLED: hand_model(POOLED)}
    )
    assert both.segment_of({"tenant.seats": 49}) == SMB
    assert both.segment_of({"tenant.seats": 50}) == MID_MARKET
    assert both.score({"tenant.seats": 12}).segment == SMB
    assert both.score({"tenant.seats": 120}).segment == MID_MARKET
    pooled_only = propensity_model({SMB: hand_model(SMB), POOLED: hand_model(POOLED)})
    assert pooled_only.score({"tenant.seats": 120}).segment == POOLED
    assert propensity_model({}).score({"tenant.seats": 1}).probability == 0.0
    assert "tenant.seats" in both.features and "a" in both.features


def test_models_round_trip_through_json() -> None:
    models = PropensityModels(
        models={
            ACTIVATION: propensity_model({POOLED: hand_model(POOLED)}),
            UPGRADE: propensity_model({SMB: hand_model(SMB), POOLED: hand_model(POOLED)}),
        },
        trained_at=NOW.isoformat(),
    )
    back = msgspec.json.decode(msgspec.json.encode(models), type=PropensityModels)
    assert back == models
    values = {"a": 2.0, "tenant.seats": 5.0}
    assert back.score(UPGRADE, values) == models.score(UPGRADE, values)
    assert back.score("churn", values) is None


def test_the_served_struct_scores_exactly_as_the_fitted_model() -> None:
    rng = np.random.default_rng(11)
    x = np.column_stack([rng.normal(3, 2, 800), rng.exponential(4, 800)])
    x[0, 1] = 500.0  # far outside the training range: clipped the same way on both sides
    y = rng.random(800) < sigmoid(x[:, 0] - 0.3 * x[:, 1])
    fit = fit_logistic(x, y)
    model = segment_model(POOLED, fit, ["f1", "f2"], 0.8)
    expected = fit.predict(x)
    for row, p in zip(x, expected, strict=True):
        got = model.score({"f1": float(row[0]), "f2": float(row[1])}).probability
        assert got == pytest.approx(float(p), rel=1e-9, abs=1e-12)


# --- features, signals and labels --------------------------------------------------------------


def profile(**fields: Any) -> ProfileData:
    base: dict[str, Any] = {
        "tenant_id": "acme",
        "user_id": "u1",
        "known": True,
        "user_traits": {"role": "admin"},
        "tenant_traits": {"plan": "trial", "seats": 10, "seats_used": 4},
        "first_seen": NOW - timedelta(days=9),
    }
    base.update(fields)
    return ProfileData(**base)


def test_features_read_signal_paths(vocab: Vocabulary) -> None:
    today = NOW.date()
    context = build_context(
        profile(
            event_days=[
                EventDay(day=today, event="limit_reached", n=2),
                EventDay(day=today - timedelta(days=20), event="limit_reached", n=1),
                EventDay(day=today - timedelta(days=2), event="report_created", n=3),
            ],
            facets=[Facet(kind="feature", value="reports", n=4, first_at=NOW, last_at=NOW)],
            integrations={"slack": True, "jira": False},
            recent=[
                RecentEvent(
                    event="limit_reached",
                    ts=NOW - timedelta(hours=1),
                    properties={"limit": "reports", "screen": "editor"},
                )
            ],
        ),
        vocab,
        now=NOW,
        mode="full",
    )
    names = [
        "user.days_since_signup",
        "value.d7",
        "events.limit_reached.d7",
        "events.limit_reached.d30",
        "activation.done",
        "activation.steps.create_report",
        "integrations.count",
        "integrations.connected",
        "features.diversity",
        "tenant.seat_utilization",
        "upgrade.pending",
        "tenant.plan=trial",
        "tenant.plan=free",
        "user.role=admin",
        "no.such.signal",
        "tenant.plan.deeper",
    ]
    assert features_of(context, names) == {
        "user.days_since_signup": 9.0,
        "value.d7": 3.0,
        "events.limit_reached.d7": 2.0,
        "events.limit_reached.d30": 3.0,
        "activation.done": 1.0,
        "activation.steps.create_report": 1.0,
        "integrations.count": 1.0,
        "integrations.connected": 1.0,  # a list counts by its length
        "features.diversity": 1.0,
        "tenant.seat_utilization": 0.4,
        "upgrade.pending": 1.0,
        "tenant.plan=trial": 1.0,
        "tenant.plan=free": 0.0,
        "user.role=admin": 1.0,
        "no.such.signal": 0.0,
        "tenant.plan.deeper": 0.0,
    }


@pytest.mark.parametrize("target", TARGETS)
def test_every_feature_is_a_signal_that_exists(vocab: Vocabulary, target: str) -> None:
    context = signal_schema(vocab)
    for name in FEATURES[target]:
        path = name.partition("=")[0]
        node: Any = context
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{name}: no signal {path}"
            node = node[part]
        assert isinstance(node, bool | int | float | str), name
        assert ("=" in name) == isinstance(node, str), name


@pytest.mark.parametrize(
    ("role", "events", "expected"),
    [
        ("end_user", [], False),
        ("end_user", ["report_created"], True),  # an end user's one step
        ("maker", ["template_used", "report_created"], False),
        ("maker", ["template_used", "report_created", "automation_created"], True),
        ("admin", ["template_used", "report_created"], False),
        ("admin", ["template_used", "report_created", "integration_connected"], True),
    ],
)
def test_activated_means_three_steps_or_all_of_a_smaller_role(
    vocab: Vocabulary, role: str, events: list[str], expected: bool
) -> None:
    context = build_context(
        profile(user_traits={"role": role}, milestones=events), vocab, now=NOW, mode="full"
    )
    assert activated(context) is expected
    assert applies(ACTIVATION, context) is not expected


@pytest.mark.parametrize(
    ("plan", "expected"), [("free", True), ("trial", True), ("pro", True), ("enterprise", False)]
)
def test_upgrade_applies_while_a_next_plan_exists(
    vocab: Vocabulary, plan: str, expected: bool
) -> None:
    context = build_context(profile(tenant_traits={"plan": plan}), vocab, now=NOW, mode="full")
    assert applies(UPGRADE, context) is expected


def test_score_context_skips_users_the_target_does_not_apply_to(vocab: Vocabulary) -> None:
    models = PropensityModels(models={UPGRADE: propensity_model({POOLED: hand_model(POOLED)})})
    on_trial = build_context(profile(), vocab, now=NOW, mode="full")
    on_enterprise = build_context(
        profile(tenant_traits={"plan": "enterprise", "seats": 80}), vocab, now=NOW, mode="full"
    )
    score = models.score_context(UPGRADE, on_trial)
    assert score is not None and 0.0 < score.probability < 1.0
    assert models.score_context(UPGRADE, on_enterprise) is None
    assert models.score_context(ACTIVATION, on_trial) is None  # no activation model


# --- profiles as of a time ---------------------------------------------------------------------


def event(
    at: timedelta,
    type: str = "track",
    event_name: str | None = None,
    *,
    user: str = "u1",
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> EventRow:
    return EventRow(
        tenant_id="acme",
        message_id=f"m{at.total_seconds()}{user}",
        user_id=user,
        type=type,  # type: ignore[arg-type]
        event=event_name,
        properties=properties or {},
        traits=traits or {},
        context=context or {},
        ts=NOW - timedelta(days=40) + at,
    )


def test_a_profile_as_of_a_time_sees_only_earlier_events(vocab: Vocabulary) -> None:
    events = [
        event(timedelta(0), "identify", traits={"role": "maker"}),
        event(timedelta(0), "group", user="u1", traits={"plan": "free", "seats": 3}),
        event(timedelta(hours=1), event_name="report_created"),
        event(
            timedelta(days=1),
            event_name="integration_connected",
            user="u2",
            properties={"integration": "slack"},
        ),
        event(timedelta(days=5), event_name="plan_upgraded", user="u2", properties={"plan": "pro"}),
        event(timedelta(days=6), "identify", traits={"role": "admin"}),
    ]
    start = NOW - timedelta(days=40)
    early = profile_at(reversed(events), "acme", "u1", start + timedelta(days=2), vocab)
    assert early.user_traits == {"role": "maker"}
    assert early.tenant_traits == {"plan": "free", "seats": 3}
    assert early.integrations == {"slack": True}
    assert early.milestones == ["report_created"]
    assert early.tenant_events == ["integration_connected"]  # a tenant step: anyone's counts
    later = profile_at(events, "acme", "u1", start + timedelta(days=7), vocab)
    assert later.user_traits == {"role": "admin"}
    assert later.tenant_traits["plan"] == "pro"
    assert later.last_seen == start + timedelta(days=6)
    nobody = profile_at(events, "acme", "u9", start + timedelta(days=7), vocab)
    assert not nobody.known and nobody.tenant_traits["plan"] == "pro"


def test_recent_events_keep_the_trigger_window_and_where_they_happened(
    vocab: Vocabulary,
) -> None:
    events = [
        event(timedelta(hours=0), event_name="error_shown", properties={"feature": "api"}),
        event(
            timedelta(hours=30),
            event_name="limit_reached",
            properties={"limit": "reports"},
            context={"page": {"name": "Editor"}},
        ),
        event(
            timedelta(hours=31),
            event_name="feature_attempted",
            properties={"feature": "sso", "screen": "settings"},
        ),
    ]
    got = profile_at(events, "acme", "u1", NOW - timedelta(days=40, hours=-32), vocab)
    assert [(e.event, e.properties["screen"]) for e in got.recent] == [
        ("feature_attempted", "settings"),
        ("limit_reached", "Editor"),
    ]


def test_the_builder_wants_events_in_time_order_and_of_its_tenant(vocab: Vocabulary) -> None:
    builder = ProfileBuilder("acme", vocab)
    builder.add(event(timedelta(hours=2), event_name="report_created"))
    with pytest.raises(ValueError, match="time order"):
        builder.add(event(timedelta(hours=1), event_name="report_created"))
    with pytest.raises(ValueError, match="tenant"):
        builder.add(msgspec.structs.replace(event(timedelta(hours=3)), tenant_id="globex"))


def test_snapshots_step_back_from_the_end() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 30, tzinfo=UTC)
    assert snapshot_times(start, end, timedelta(days=7)) == [
        end - timedelta(days=k) for k in (28, 21, 14, 7)
    ]
    assert date(2026, 1, 2) == snapshot_times(start, end, timedelta(days=7))[0].date()


# --- the command's table -----------------------------------------------------------------------


def test_the_report_names_features_in_plain_words_and_states_problems() -> None:
    report = TrainingReport(
        trained_at=NOW.isoformat(),
        history_from="2026-09-01T00:00:00+00:00",
        history_to="2026-11-27T00:00:00+00:00",
        events=1000,
        tenants=10,
        snapshots=12,
        targets=[
            TargetReport(
                target=UPGRADE,
                definition="upgrades within 30 days",
                horizon_days=30,
                features=["value.d7"],
                rows=500,
                users=80,
                positives=50,
                cutoff="2026-10-20T00:00:00+00:00",
                test_auc=0.55,
                segments=[
                    SegmentReport(
                        segment=SMB,
                        label="SMB (< 50 seats)",
                        rows_train=300,
                        rows_test=100,
                        positives_train=30,
                        positives_test=10,
                        test_auc=0.55,
                        own_model=True,
                        top_features=[("value.d7", 1.2), ("tenant.plan=free", -0.4)],
                    ),
                    SegmentReport(
                        segment=MID_MARKET,
                        label="mid-market",
                        rows_train=20,
                        rows_test=5,
                        positives_train=2,
                        positives_test=1,
                        test_auc=None,
                        own_model=False,
                        fallback="20 training rows, fewer than 200",
                    ),
                ],
                notes=["upgrade, mid-market: scored by the pooled model (20 training rows)."],
            ),
            TargetReport(
                target=ACTIVATION,
                definition="activates",
                horizon_days=14,
                features=[],
                error="no events are stored",
            ),
        ],
    )
    text = format_training(report)
    assert "value.d7 ↑, tenant.plan=free ↓" in text
    assert "(scored by the pooled model)" in text
    assert "Note: upgrade, mid-market: scored by the pooled model" in text
    assert "No model: no events are stored." in text
    assert "Nothing was saved." in text
    assert "0.55" in text
