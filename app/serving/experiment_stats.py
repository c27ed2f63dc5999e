"""The statistics of an experiment's results, with scipy. Pure: numbers in, numbers out.

- Each arm's metric: units, mean, variance, and the mean's confidence interval.
- A comparison against control: absolute lift (Welch's t, unequal variances) and relative lift
  with the delta method's variance, each with a confidence interval and a p-value, as GrowthBook's
  gbstats computes them (tests hold these functions to gbstats' own numbers). With
  `sequential`, the interval is an always-valid confidence sequence (Waudby-Smith et al., eq. 9,
  as gbstats' sequential test) and the p-value its always-valid counterpart: looking every day
  does not raise the false-positive rate.
- CUPED: with a pre-exposure value per unit, the metric is adjusted by the pooled regression
  on it (theta = cov(y, x) / var(x)), which narrows intervals without moving the expected lift.
- Sample-ratio mismatch: a chi-square test of the units per arm against the weights; flagged
  below p = 0.001.
- Several arms and metrics: Holm's step-down or Benjamini-Hochberg (scipy) adjusts the p-values.
- The design: units per arm needed to detect the stated relative change at the stated power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

SRM_ALPHA = 0.001
SEQUENTIAL_TUNING = 5000.0  # gbstats' default: the number of units the sequence is tuned for


@dataclass(frozen=True, slots=True)
class ArmSample:
    """One arm's per-unit values of a metric, and (for CUPED) their pre-exposure values."""

    values: Sequence[float]
    before: Sequence[float] | None = None


@dataclass(frozen=True, slots=True)
class ArmSummary:
    n: int
    mean: float
    variance: float  # of the values (sample variance, n - 1)
    ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class Comparison:
    lift: float  # absolute: treatment mean - control mean
    ci: tuple[float, float]
    relative: float | None  # (treatment - control) / control; None when control's mean is 0
    relative_ci: tuple[float, float] | None
    p_value: float  # of the relative lift when there is one (as gbstats reports), else absolute
    absolute_p_value: float = 1.0  # of the absolute lift (robust when control's mean is small)
    adjusted_p_value: float | None = None  # after the correction for several comparisons


def summarize(values: Sequence[float], alpha: float = 0.05) -> ArmSummary:
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return ArmSummary(0, math.nan, math.nan, None)
    mean = float(x.mean())
    if n < 2:
        return ArmSummary(n, mean, 0.0, None)
    variance = float(x.var(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * math.sqrt(variance / n)
    return ArmSummary(n, mean, variance, (mean - half, mean + half))


def cuped(arms: Sequence[ArmSample]) -> list[list[float]] | None:
    """Each arm's values adjusted by the pooled regression on their pre-exposure values:
    y - theta * (x - mean(x)), with theta = cov(y, x) / var(x) over every unit; None when there
    is nothing to adjust by (no pre-exposure values, or all the same)."""
    ys = np.concatenate([np.asarray(a.values, dtype=float) for a in arms])
    xs = np.concatenate([np.asarray(a.before or [], dtype=float) for a in arms])
    if len(xs) != len(ys) or len(ys) < 3 or float(xs.var()) == 0.0:
        return None
    theta = float(np.cov(ys, xs, ddof=1)[0, 1] / xs.var(ddof=1))
    centre = float(xs.mean())
    return [
        list(
            np.asarray(a.values, dtype=float) - theta * (np.asarray(a.before, dtype=float) - centre)
        )
        for a in arms
    ]


def compare(
    control: ArmSummary,
    treatment: ArmSummary,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning: float = SEQUENTIAL_TUNING,
) -> Comparison | None:
    """Treatment against control; None when either has fewer than two units or no variance."""
    if control.n < 2 or treatment.n < 2:
        return None
    va, vb = control.variance / control.n, treatment.variance / treatment.n
    diff = treatment.mean - control.mean
    if va + vb <= 0:  # every unit alike in both arms: a difference is certain, or there is none
        if diff == 0:
            return None
        relative = diff / control.mean if control.mean != 0 else None
        rel_ci = (relative, relative) if relative is not None else None
        return Comparison(diff, (diff, diff), relative, rel_ci, 0.0, 0.0)
    dof = (va + vb) ** 2 / (va**2 / (control.n - 1) + vb**2 / (treatment.n - 1))
    n = control.n + treatment.n
    abs_ci, p_abs = _interval(diff, va + vb, dof, n, alpha, sequential, tuning)
    p = p_abs
    relative = relative_ci = None
    if control.mean != 0:
        relative = diff / control.mean
        var_rel = vb / control.mean**2 + va * treatment.mean**2 / control.mean**4
        relative_ci, p = _interval(relative, var_rel, dof, n, alpha, sequential, tuning)
    return Comparison(diff, abs_ci, relative, relative_ci, p, p_abs)


def _interval(
    estimate: float,
    variance: float,
    dof: float,
    n: int,
    alpha: float,
    sequential: bool,
    tuning: float,
) -> tuple[tuple[float, float], float]:
    """(interval, p-value) of an estimate: Welch's t, or the always-valid sequence."""
    se = math.sqrt(variance)
    if not sequential:
        half = float(stats.t.ppf(1 - alpha / 2, dof)) * se
        p = float(2 * stats.t.sf(abs(estimate) / se, dof)) if se > 0 else 1.0
        return (estimate - half, estimate + half), p
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    s2 = variance * n
    width = math.sqrt(s2) * math.sqrt(
        2 * (n * rho2 + 1) * math.log(math.sqrt(n * rho2 + 1) / alpha) / (n * n * rho2)
    )
    st2 = estimate**2 * n / variance if variance > 0 else 0.0
    tr2p1 = n * rho2 + 1
    log_e_value = rho2 * st2 / (2 * tr2p1) - 0.5 * math.log(tr2p1)  # in logs: it can be huge
    return (estimate - width, estimate + width), min(math.exp(-log_e_value), 1.0)


def sample_ratio(counts: Sequence[int], weights: Sequence[float]) -> float:
    """The chi-square test's p-value of the units per arm against the arms' weights."""
    total = sum(counts)
    w = np.asarray(weights, dtype=float)
    if total == 0 or len(counts) < 2 or w.sum() <= 0:
        return 1.0
    expected = w / w.sum() * total
    observed = np.asarray(counts, dtype=float)
    if np.any((expected == 0) & (observed > 0)):
        return 0.0  # units in an arm that should have none
    keep = expected > 0
    if keep.sum() < 2:
        return 1.0
    return float(stats.chisquare(observed[keep], expected[keep]).pvalue)


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """p-values adjusted for several comparisons: Holm's step-down, Benjamini-Hochberg
    (scipy.stats.false_discovery_control), or as they are ('none')."""
    ps = [min(max(p, 0.0), 1.0) for p in p_values]
    if method == "none" or len(ps) < 2:
        return ps
    if method == "bh":
        return [float(p) for p in stats.false_discovery_control(ps, method="bh")]
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted = [0.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(ps) - rank) * ps[i])
        adjusted[i] = min(running, 1.0)
    return adjusted


def units_needed(
    mean: float, variance: float, *, mde: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Units per arm for a two-sided test to detect a relative change of `mde` at `power`."""
    effect = abs(mde * mean)
    if effect == 0 or variance <= 0:
        return None
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    return math.ceil(2 * variance * z * z / (effect * effect))
