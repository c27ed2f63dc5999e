"""Fitting propensity models: L2-regularised logistic regression per segment, a time split, ROC AUC.

Rows are snapshots: a user's features at a time `t`, and whether the outcome happened within
`horizon` seconds after it. The split is by time, as the models will be used: rows whose label
window had ended by the cutoff train the evaluation models, rows from the cutoff on test them, and
the rows in between (their outcome was not yet known at the cutoff) are left out. The models that
are served are then fitted again, with the same settings, on every row.

Each segment gets its own model when its training rows are enough (`min_rows`, and `min_class`
positives and negatives); otherwise it is scored by the pooled model, fitted on every segment
together, and the result says so.

Features are standardized, z = (x - mean) / scale, and clipped to +-`clip`, as the scorer in
app.engine.propensity does; the intercept is not penalised. With `l2=1` the objective is
scikit-learn's default: sum of log-losses + ||w||^2 / 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LogisticFit",
    "NotEnoughDataError",
    "SegmentResult",
    "TargetResult",
    "choose_cutoff",
    "fit_logistic",
    "roc_auc",
    "train_target",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

POOLED = "all"


class NotEnoughDataError(ValueError):
    """The rows cannot train or test a model (no time split, a single class)."""


@dataclass(frozen=True)
class LogisticFit:
    mean: FloatArray
    scale: FloatArray
    coef: FloatArray  # per standardized feature
    intercept: float
    clip: float
    n: int
    positives: int
    iterations: int
    converged: bool

    def standardize(self, x: FloatArray) -> FloatArray:
        return np.clip((x - self.mean) / self.scale, -self.clip, self.clip)

    def log_odds(self, x: FloatArray) -> FloatArray:
        return self.standardize(x) @ self.coef + self.intercept

    def predict(self, x: FloatArray) -> FloatArray:
        """Probabilities, for rows of raw feature values."""
        out: FloatArray = 1.0 / (1.0 + np.exp(-self.log_odds(x)))
        return out


def fit_logistic(
    x: FloatArray,
    y: BoolArray | NDArray[np.int_],
    *,
    l2: float = 1.0,
    clip: float = 5.0,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> LogisticFit:
    """Newton's method (IRLS) with step halving on the L2-penalised log-loss."""
    x = np.asarray(x, dtype=np.float64)
    target = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    if n == 0:
        raise NotEnoughDataError("no rows to fit")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = np.clip((x - mean) / scale, -clip, clip)
    design = np.hstack([np.ones((n, 1)), z])
    penalty = np.full(d + 1, l2)
    penalty[0] = 0.0
    rate = min(max(target.mean(), 0.5 / n), 1 - 0.5 / n)
    w = np.zeros(d + 1)
    w[0] = np.log(rate / (1 - rate))

    def objective(w: FloatArray) -> float:
        eta = design @ w
        return float(np.sum(np.logaddexp(0.0, eta) - target * eta) + 0.5 * penalty @ (w * w))

    current = objective(w)
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported below)
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        gradient = design.T @ (p - target) + penalty * w
        weights = p * (1 - p)
        hessian = (design.T * weights) @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while True:
            candidate = w - size * step
            value = objective(candidate)
            if value <= current + 1e-12 or size < 1e-6:
                break
            size /= 2
        w, previous, current = candidate, current, value
        if np.max(np.abs(size * step)) < tol or previous - current < tol * (1 + abs(current)):
            converged = True
            break
    return LogisticFit(
        mean=mean,
        scale=scale,
        coef=w[1:].copy(),
        intercept=float(w[0]),
        clip=clip,
        n=n,
        positives=int(target.sum()),
        iterations=iterations,
        converged=converged,
    )


def roc_auc(y: BoolArray | NDArray[np.int_], scores: FloatArray) -> float | None:
    """The probability that a random positive scores above a random negative, ties counting half
    (Mann-Whitney U from average ranks); None when there are no positives or no negatives."""
    truth = np.asarray(y, dtype=bool)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(np.asarray(scores), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based ranks, averaged over ties
    rank_sum = float(average_rank[inverse][truth].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def choose_cutoff(times: FloatArray, horizon: float, y: BoolArray | None = None) -> float:
    """The snapshot time to split at: training rows have `t + horizon <= cutoff`, test rows
    `t >= cutoff`. Of the times that leave both sides non-empty (and, given `y`, with positives
    and negatives on both sides when some time allows it), the one with the most rows in the
    smaller of the training set and twice the test set: about two thirds for training."""
    t = np.asarray(times, dtype=np.float64)
    best: tuple[int, int, float] | None = None
    for cutoff in np.unique(t):
        train = t + horizon <= cutoff
        test = t >= cutoff
        n_train, n_test = int(train.sum()), int(test.sum())
        if not n_train or not n_test:
            continue
        both = 1
        if y is not None:
            both = int(all(0 < int(y[side].sum()) < int(side.sum()) for side in (train, test)))
        key = (both, min(n_train, 2 * n_test), float(cutoff))
        if best is None or key > best:
            best = key
    if best is None:
        raise NotEnoughDataError(
            "the history is too short for a time split: no snapshot has both a finished label "
            "window before it and rows after it"
        )
    return best[2]


@dataclass(frozen=True)
class SegmentResult:
    segment: str
    model: LogisticFit | None  # fitted on every row of the segment; None: scored by the pooled
    n_train: int  # rows before the cutoff
    n_test: int  # rows from the cutoff on
    positives_train: int
    positives_test: int
    test_auc: float | None  # of the model that serves the segment, trained before the cutoff
    fallback: str = ""  # why the segment is scored by the pooled model


@dataclass(frozen=True)
class TargetResult:
    features: list[str]
    cutoff: float
    horizon: float
    n_rows: int
    positives: int
    pooled: SegmentResult
    segments: list[SegmentResult]
    test_auc: float | None  # over every test row, each scored by the model that serves it


def train_target(
    x: FloatArray,
    y: BoolArray,
    times: FloatArray,
    segments: Sequence[str],
    features: Sequence[str],
    *,
    horizon: float,
    segment_names: Sequence[str],
    l2: float = 1.0,
    clip: float = 5.0,
    min_rows: int = 200,
    min_class: int = 10,
) -> TargetResult:
    """Evaluate on a time split, then fit the served models on every row.

    `x` holds one row of raw feature values per snapshot, `times` the snapshot times (seconds),
    `segments` each row's segment name (one of `segment_names`)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    t = np.asarray(times, dtype=np.float64)
    seg = np.asarray(list(segments), dtype=object)
    if not (len(x) == len(y) == len(t) == len(seg)):
        raise ValueError("x, y, times and segments must have one entry per row")
    if x.ndim != 2 or x.shape[1] != len(features):
        raise ValueError("x must have one column per feature")
    if len(y) == 0 or y.all() or not y.any():
        raise NotEnoughDataError(
            f"{len(y)} rows, {int(y.sum())} positives: a model needs positives and negatives"
        )
    cutoff = choose_cutoff(t, horizon, y)
    train = t + horizon <= cutoff
    test = t >= cutoff
    if y[train].all() or not y[train].any():
        raise NotEnoughDataError(
            f"before the cutoff there are {int(train.sum())} rows and {int(y[train].sum())} "
            "positives: a model needs positives and negatives"
        )

    def fit(rows: BoolArray) -> LogisticFit:
        return fit_logistic(x[rows], y[rows], l2=l2, clip=clip)

    pooled_eval = fit(train)
    scores = np.zeros(len(y))
    scores[test] = pooled_eval.predict(x[test])
    results = []
    for name in segment_names:
        rows = seg == name
        seg_train, seg_test = train & rows, test & rows
        positives = int(y[seg_train].sum())
        negatives = int(seg_train.sum()) - positives
        fallback = ""
        if seg_train.sum() < min_rows:
            fallback = f"{int(seg_train.sum())} training rows, fewer than {min_rows}"
        elif min(positives, negatives) < min_class:
            fallback = (
                f"{positives} positive and {negatives} negative training rows, "
                f"fewer than {min_class} of one"
            )
        if not fallback:
            scores[seg_test] = fit(seg_train).predict(x[seg_test])
        results.append(
            SegmentResult(
                segment=name,
                model=None if fallback else fit(rows),
                n_train=int(seg_train.sum()),
                n_test=int(seg_test.sum()),
                positives_train=positives,
                positives_test=int(y[seg_test].sum()),
                test_auc=roc_auc(y[seg_test], scores[seg_test]),
                fallback=fallback,
            )
        )
    everything = np.ones(len(y), dtype=bool)
    pooled = SegmentResult(
        segment=POOLED,
        model=fit(everything),
        n_train=int(train.sum()),
        n_test=int(test.sum()),
        positives_train=int(y[train].sum()),
        positives_test=int(y[test].sum()),
        test_auc=roc_auc(y[test], pooled_eval.predict(x[test])),
    )
    return TargetResult(
        features=list(features),
        cutoff=float(cutoff),
        horizon=horizon,
        n_rows=len(y),
        positives=int(y.sum()),
        pooled=pooled,
        segments=results,
        test_auc=roc_auc(y[test], scores[test]),
    )
