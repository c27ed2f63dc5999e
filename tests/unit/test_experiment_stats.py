"""Experiment statistics against GrowthBook's stats engine (gbstats) and against simulation.

`tests/golden/stats/gbstats_cases.json` holds gbstats' own answers (written by
make_gbstats_cases.py beside it); A/A simulations on the demo population check the false-positive
rate, and an injected effect is found at the power the design states."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from app.serving.experiment_stats import (
    ArmSample,
    ArmSummary,
    adjust,
    compare,
    cuped,
    sample_ratio,
    summarize,
    units_needed,
)
from tests.paths import ROOT

CASES = json.loads((ROOT / "tests/golden/stats/gbstats_cases.json").read_text())["cases"]


def summary(arm: dict[str, float], kind: str) -> ArmSummary:
    """An arm as gbstats reads it: a proportion's variance p(1 - p), a mean's n - 1."""
    n, total = int(arm["n"]), arm["sum"]
    mean = total / n
    if kind == "proportion":
        variance = mean * (1 - mean)
    else:
        variance = (arm["sum_squares"] - total * total / n) / (n - 1)
    return ArmSummary(n, mean, variance, None)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['kind']}-{c['control']['n']}")
def test_lifts_intervals_and_p_values_equal_gbstats(case: dict[str, Any]) -> None:
    a, b = summary(case["control"], case["kind"]), summary(case["treatment"], case["kind"])
    fixed = compare(a, b)
    seq = compare(a, b, sequential=True)
    assert fixed is not None and seq is not None
    absolute, relative = case["absolute"], case["relative"]
    assert fixed.lift == pytest.approx(absolute["estimate"], rel=1e-9)
    assert fixed.ci == pytest.approx(absolute["ci"], rel=1e-7)
    assert fixed.p_value == pytest.approx(relative["p_value"], rel=1e-6, abs=1e-12)
    assert fixed.relative == pytest.approx(relative["estimate"], rel=1e-9)
    assert fixed.relative_ci == pytest.approx(relative["ci"], rel=1e-7)
    assert seq.ci == pytest.approx(case["sequential_absolute"]["ci"], rel=1e-7)
    assert seq.p_value == pytest.approx(case["sequential_relative"]["p_value"], rel=1e-6, abs=1e-12)
    assert seq.relative_ci == pytest.approx(case["sequential_relative"]["ci"], rel=1e-7)


def test_a_sample_ratio_mismatch_is_flagged_and_a_fair_split_is_not() -> None:
    assert sample_ratio([5000, 5000], [50, 50]) == pytest.approx(1.0)
    assert sample_ratio([5000, 4600], [50, 50]) < 0.001
    assert sample_ratio([2010, 1000, 990], [50, 25, 25]) > 0.3


def test_holm_and_benjamini_hochberg() -> None:
    ps = [0.01, 0.04, 0.03, 0.2]
    assert adjust(ps, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert adjust(ps, "bh") == pytest.approx([0.04, 0.0533333, 0.0533333, 0.2], rel=1e-5)
    assert adjust(ps, "none") == ps


def test_cuped_narrows_the_interval_without_moving_the_lift() -> None:
    rng = random.Random(4)
    arms = []
    for shift in (0.0, 0.5):
        before = [rng.gauss(10, 3) for _ in range(2000)]
        after = [x + shift + rng.gauss(0, 1) for x in before]
        arms.append(ArmSample(after, before))
    raw = compare(summarize(arms[0].values), summarize(arms[1].values))
    adjusted_values = cuped(arms)
    assert adjusted_values is not None
    adj = compare(summarize(adjusted_values[0]), summarize(adjusted_values[1]))
    assert raw is not None and adj is not None
    assert (adj.ci[1] - adj.ci[0]) < 0.5 * (raw.ci[1] - raw.ci[0])
    assert adj.lift == pytest.approx(0.5, abs=0.1) and raw.lift == pytest.approx(0.5, abs=0.25)


def test_the_design_states_units_needed() -> None:
    # 10% relative on a 30% rate at 80% power, alpha 0.05: about 3,700 units per arm.
    n = units_needed(0.3, 0.3 * 0.7, mde=0.1)
    assert n is not None and 3500 < n < 3800
    assert units_needed(0.0, 1.0, mde=0.1) is None


# --- simulations on the demo population -------------------------------------------------------


@pytest.fixture(scope="module")
def activation() -> list[tuple[str, float]]:
    """Every demo user's activation within 14 days of sign-up (the shipped activation_14d),
    computed from the demo generator's events by the metric layer's plain-Python oracle."""
    from datetime import UTC, datetime

    from app.config.layouts import load_layouts
    from app.demo.population import PopulationSpec, generate
    from tests.metrics_oracle import unit_values
    from tests.paths import LAYOUTS_DIR

    layouts = load_layouts(LAYOUTS_DIR)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    population = generate(PopulationSpec(tenants=120, users=1600, events=90_000, now=now))
    values = unit_values(population, layouts, "activation_14d", now)
    return [(unit, value) for unit, value in values.items()]


def split(units: list[tuple[str, float]], salt: str) -> tuple[list[float], list[float]]:
    from app.engine.bucketing import unit_hash

    a: list[float] = []
    b: list[float] = []
    for unit, value in units:
        (a if unit_hash(salt, unit) < 0.5 else b).append(value)
    return a, b


def test_aa_experiments_have_the_stated_false_positive_rate(
    activation: list[tuple[str, float]],
) -> None:
    """200 A/A experiments (the same users split by 200 salts) at alpha 0.05."""
    positives = 0
    for i in range(200):
        a, b = split(activation, f"aa-{i}")
        result = compare(summarize(a), summarize(b))
        assert result is not None
        positives += result.p_value < 0.05
        # the absolute interval and its p-value agree
        assert (result.ci[0] > 0 or result.ci[1] < 0) == (result.absolute_p_value < 0.05)
    assert 0.02 <= positives / 200 <= 0.09, positives


def test_an_injected_effect_is_found_at_the_stated_power(
    activation: list[tuple[str, float]],
) -> None:
    """The design's effect for this many units at 80% power, added to treatment: found in about
    80% of 200 experiments."""
    rng = random.Random(9)
    a0, b0 = split(activation, "power-0")
    base = sum(a0) / len(a0)
    n = min(len(a0), len(b0))
    z = 1.959963984540054 + 0.8416212335729143
    mde = z * math.sqrt(2 * base * (1 - base) / n) / base  # what n units per arm detect
    found = 0
    for i in range(200):
        a, b = split(activation, f"power-{i}")
        lifted = [1.0 if v == 0 and rng.random() < base * mde / (1 - base) else v for v in b]
        result = compare(summarize(a), summarize(lifted))
        assert result is not None
        found += result.p_value < 0.05 and result.lift > 0
    assert 0.68 <= found / 200 <= 0.92, (found, mde)
