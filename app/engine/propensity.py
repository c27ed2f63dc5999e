"""Propensity scores: how likely a user is to activate soon, or their tenant to upgrade. Pure.

A model is a logistic regression per customer segment (SMB below 50 seats, mid-market and
enterprise from 50), trained offline by `cairn models train` (see app.training.propensity) on
snapshots of the event history. Its features are signal paths of `build_context` ("value.d7",
"events.limit_reached.d30"), read by `features_of`, so training and serving compute them with the
same code. Scoring a user takes their feature values and gives a probability and the top drivers:
the features that push the score up the most, for `why.drivers`.

Feature names are signal paths, or `path=value` for a text signal being one value
("tenant.plan=trial" is 1 on a trial plan, else 0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

ACTIVATION: Final = "activation"
UPGRADE: Final = "upgrade"
TARGETS: Final = (ACTIVATION, UPGRADE)

# How far ahead each target looks: activated within 14 days, upgraded within 30 days.
HORIZON_DAYS: Final[Mapping[str, int]] = {ACTIVATION: 14, UPGRADE: 30}

# A user counts as activated once they have done three activation steps, or all of their role's
# steps when it has fewer (an end user has one: create a report). The "activated" lifecycle stage
# of layouts/signals.yaml asks for three steps, which a role with fewer could never reach.

SEGMENT_FEATURE: Final = "tenant.seats"
SEGMENT_THRESHOLD: Final = 50.0
SMB: Final = "smb"  # fewer than 50 seats
MID_MARKET: Final = "mid_market"  # 50 seats or more: mid-market and enterprise
POOLED: Final = "all"  # every segment together: scores a segment too small for a model of its own
SEGMENTS: Final = (SMB, MID_MARKET)
SEGMENT_LABELS: Final[Mapping[str, str]] = {
    SMB: "SMB (< 50 seats)",
    MID_MARKET: "mid-market & enterprise (>= 50 seats)",
    POOLED: "all segments (pooled)",
}

# The features of each target, in one place: training reads them, and models carry their own copy.
FEATURES: Final[Mapping[str, tuple[str, ...]]] = {
    ACTIVATION: (
        "user.days_since_signup",
        "user.role=admin",
        "user.role=maker",
        "tenant.plan=free",
        "tenant.plan=trial",
        "tenant.seats",
        "tenant.seat_utilization",
        "activation.done",
        "value.d7",
        "value.d30",
        "value.trend_7d",
        "features.diversity",
        "templates.count",
        "integrations.count",
        "events.help_article_viewed.d7",
        "events.error_shown.d7",
        "events.feature_attempted.d30",
    ),
    UPGRADE: (
        "user.days_since_signup",
        "user.role=admin",
        "tenant.plan=free",
        "tenant.plan=trial",
        "tenant.seats",
        "tenant.seat_utilization",
        "tenant.at_seat_limit",
        "activation.done",
        "activation.steps.connect_billing",
        "value.d7",
        "value.d30",
        "value.power_d30",
        "integrations.count",
        "features.diversity",
        "events.limit_reached.d30",
        "events.feature_attempted.d30",
        "events.teammate_invited.d30",
        "upgrade.pending",
    ),
}

TOP_DRIVERS: Final = 3
Z_CLIP: Final = 5.0  # standardized values are clipped, so no single extreme count decides alone


def activated(context: Mapping[str, Any]) -> bool:
    """Whether the user of a `build_context` result counts as activated (`activated_after` of
    signals.yaml: that many of the role's activation steps, all of them when it has fewer)."""
    activation = context.get("activation") or {}
    return bool(activation.get("activated"))


def applies(target: str, context: Mapping[str, Any]) -> bool:
    """Whether `target` means anything for this user: activation for users not activated yet,
    upgrade for tenants on a plan that has a next plan. Models are trained on these users only."""
    if target == ACTIVATION:
        return not activated(context)
    if target == UPGRADE:
        return bool((context.get("plan") or {}).get("next"))
    return False


def features_of(context: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """The values of `names` in a `build_context` result: numbers as they are, booleans as 0/1,
    lists by their length, `path=value` as 1 when the text signal equals value; missing is 0."""
    out: dict[str, float] = {}
    for name in names:
        parts, expected = _parsed(name)
        node: Any = context
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if expected is not None:
            out[name] = 1.0 if node == expected and isinstance(node, str) else 0.0
        else:
            out[name] = _number(node)
    return out


@functools.lru_cache(maxsize=1024)
def _parsed(name: str) -> tuple[tuple[str, ...], str | None]:
    """A feature name as (signal path parts, the text it must equal or None)."""
    path, equals, expected = name.partition("=")
    return tuple(path.split(".")), expected if equals else None


def _number(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
        return number if math.isfinite(number) else 0.0
    if kind is bool:
        return 1.0 if value else 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else 0.0
    if isinstance(value, list | tuple):
        return float(len(value))
    return 0.0


def segment_of_seats(seats: float, threshold: float = SEGMENT_THRESHOLD) -> str:
    return SMB if seats < threshold else MID_MARKET


class Score(msgspec.Struct, frozen=True):
    probability: float
    # (feature path, the user's value, its contribution to the log-odds), the largest first; only
    # features that raise the score above an average user's: the reasons it is high.
    drivers: list[tuple[str, float, float]]
    segment: str  # the model that scored: a segment's own, or the pooled one


class SegmentModel(msgspec.Struct, frozen=True, kw_only=True):
    """A logistic regression on standardized features: z = (value - mean) / scale, clipped."""

    segment: str  # SMB, MID_MARKET, or POOLED
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    n_train: int  # rows the served model was fitted on
    positives: int
    auc: float | None = None  # on the held-out time split; None when it could not be measured

    def contributions(self, values: Mapping[str, float], clip: float = Z_CLIP) -> list[float]:
        out = []
        for name, mean, scale, coef in zip(
            self.features, self.mean, self.scale, self.coef, strict=True
        ):
            z = (values.get(name, 0.0) - mean) / scale
            out.append(coef * min(max(z, -clip), clip))
        return out

    def score(self, values: Mapping[str, float], clip: float = Z_CLIP) -> Score:
        terms = self.contributions(values, clip)
        log_odds = self.intercept + sum(terms)
        drivers = sorted(
            (
                (name, float(values.get(name, 0.0)), term)
                for name, term in zip(self.features, terms, strict=True)
                if term > 0
            ),
            key=lambda d: -d[2],
        )
        return Score(
            probability=_sigmoid(log_odds), drivers=drivers[:TOP_DRIVERS], segment=self.segment
        )


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class PropensityModel(msgspec.Struct, frozen=True, kw_only=True):
    """One target's models: one per segment, and the pooled model for segments without one."""

    target: str
    horizon_days: int
    segment_feature: str = SEGMENT_FEATURE
    segment_threshold: float = SEGMENT_THRESHOLD
    segments: dict[str, SegmentModel]  # SMB / MID_MARKET when they have their own; POOLED
    trained_at: str  # ISO 8601
    auc: float | None  # over every held-out row, each scored by the model that serves it
    cutoff: str = ""  # the time split: trained on label windows ending by then, tested after
    z_clip: float = Z_CLIP
    notes: list[str] = []  # plain statements about the training (a segment scored by the pooled)

    @property
    def features(self) -> list[str]:
        """Every feature some segment's model reads (the segment feature included)."""
        names = dict.fromkeys([self.segment_feature])
        for model in self.segments.values():
            names.update(dict.fromkeys(model.features))
        return list(names)

    def segment_of(self, values: Mapping[str, float]) -> str:
        return segment_of_seats(values.get(self.segment_feature, 0.0), self.segment_threshold)

    def model_for(self, values: Mapping[str, float]) -> SegmentModel | None:
        return self.segments.get(self.segment_of(values)) or self.segments.get(POOLED)

    def score(self, values: Mapping[str, float]) -> Score:
        model = self.model_for(values)
        if model is None:
            return Score(probability=0.0, drivers=[], segment="")
        return model.score(values, self.z_clip)


class PropensityModels(msgspec.Struct, frozen=True, kw_only=True):
    """Every trained target ("activation", "upgrade"), as saved by `cairn models train`."""

    models: dict[str, PropensityModel] = {}
    trained_at: str = ""  # ISO 8601

    @property
    def features(self) -> list[str]:
        """Every feature some model reads: what `features_of` must be given to score them all."""
        names: dict[str, None] = {}
        for model in self.models.values():
            names.update(dict.fromkeys(model.features))
        return list(names)

    def score(self, target: str, values: Mapping[str, float]) -> Score | None:
        """The score for `target`, or None when no model of it was trained."""
        model = self.models.get(target)
        return model.score(values) if model is not None else None

    def score_context(self, target: str, context: Mapping[str, Any]) -> Score | None:
        """The score for a `build_context` result; None when there is no model or the target
        does not apply to the user (already activated; a plan with nothing to upgrade to)."""
        model = self.models.get(target)
        if model is None or not applies(target, context):
            return None
        return model.score(features_of(context, model.features))
