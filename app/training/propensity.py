"""Training the propensity models from the event history in PostgreSQL (`cairn models train`).

For every user and every snapshot time T (every 3 days back from the end of the history), the
user's profile as of T is rebuilt from the events stored before T (`app.training.history`, which
mirrors what the event store aggregates and the profile store reads), turned into signals by the
engine's own `build_context(profile, vocab, now=T, mode="full")`, and into features by
`features_of`: the same code that serves the scores computes the features they are trained on.
The labels:

- activation: a user not activated at T (see `app.engine.propensity.activated`) is activated at
  T + 14 days;
- upgrade: the user's tenant, on a plan that has a next plan at T, sends `plan_upgraded` within
  the 30 days after T.

Users whose personalization preference is not `full` are left out: their behaviour is not used.
Events stream from the database one tenant at a time, in time order.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import numpy as np

from app.engine.propensity import (
    ACTIVATION,
    FEATURES,
    HORIZON_DAYS,
    SEGMENT_FEATURE,
    SEGMENT_LABELS,
    SEGMENTS,
    TARGETS,
    UPGRADE,
    Z_CLIP,
    PropensityModel,
    PropensityModels,
    SegmentModel,
    activated,
    applies,
    features_of,
    segment_of_seats,
)
from app.engine.signals import build_context
from app.engine.vocabulary import Vocabulary
from app.storage.db import Pool, create_pool, migrate
from app.storage.events import EventRow, history_bounds, tenant_histories
from app.storage.models import save_models
from app.storage.preferences import held_back_users
from app.training.history import ProfileBuilder, snapshot_times
from recommender.logistic import LogisticFit, NotEnoughDataError, train_target

DEFINITIONS: Final[Mapping[str, str]] = {
    ACTIVATION: (
        "a user not yet activated reaches the activation milestone (signals.yaml "
        "`activated_after` steps, all of their role's when it has fewer) within "
        f"{HORIZON_DAYS[ACTIVATION]} days"
    ),
    UPGRADE: (
        "the user's tenant, on a plan that has a next plan, sends plan_upgraded within "
        f"{HORIZON_DAYS[UPGRADE]} days"
    ),
}
# Snapshots every 3 days: windows of 14 and 30 days overlap a lot, but a 90-day history holds few
# outcomes (upgrades especially), and more snapshot times let each segment have its own model.
SNAPSHOT_EVERY: Final = timedelta(days=3)
LOW_AUC: Final = 0.6
TOP_FEATURES: Final = 4


# --------------------------------------------------------------------------------------------------
# Training rows.


@dataclass
class TargetRows:
    features: list[str]
    values: list[list[float]] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # snapshot time, seconds since the epoch
    segments: list[str] = field(default_factory=list)
    users: set[tuple[str, str]] = field(default_factory=set)


class RowCollector:
    """Training rows of every target, from one tenant's history at a time. Pure."""

    def __init__(
        self,
        vocab: Vocabulary,
        snapshots: Sequence[datetime],
        end: datetime,
        *,
        excluded: Container[tuple[str, str]] = (),
    ) -> None:
        self.vocab = vocab
        self.snapshots = list(snapshots)
        self.end = end
        self.excluded = excluded
        self.horizons = {t: timedelta(days=HORIZON_DAYS[t]) for t in TARGETS}
        label_times = {
            s + self.horizons[ACTIVATION]
            for s in self.snapshots
            if s + self.horizons[ACTIVATION] <= end
        }
        self.times = sorted(set(self.snapshots) | label_times)
        self.rows = {
            target: TargetRows(features=list(dict.fromkeys([*FEATURES[target], SEGMENT_FEATURE])))
            for target in TARGETS
        }
        self.tenants = 0
        self.events = 0

    def add_tenant(self, tenant_id: str, events: Sequence[EventRow]) -> None:
        """Every snapshot of the tenant's users; `events` in time order."""
        builder = ProfileBuilder(tenant_id, self.vocab)
        snapshots = set(self.snapshots)
        active: dict[tuple[str, datetime], bool] = {}
        pending: dict[str, list[tuple[str, datetime, dict[str, float]]]] = {t: [] for t in TARGETS}
        i = 0
        for at in self.times:
            while i < len(events) and events[i].ts < at:
                builder.add(events[i])
                i += 1
            for user_id in builder.users:
                if (tenant_id, user_id) in self.excluded:
                    continue
                context = build_context(
                    builder.profile(user_id, at), self.vocab, now=at, mode="full"
                )
                active[(user_id, at)] = activated(context)
                if at not in snapshots:
                    continue
                for target in TARGETS:
                    if at + self.horizons[target] <= self.end and applies(target, context):
                        values = features_of(context, self.rows[target].features)
                        pending[target].append((user_id, at, values))
        for row in events[i:]:
            builder.add(row)
        self.tenants += 1
        self.events += len(events)
        upgrades = builder.upgrades
        for target, found in pending.items():
            rows = self.rows[target]
            horizon = self.horizons[target]
            for user_id, at, values in found:
                if target == ACTIVATION:
                    label = active.get((user_id, at + horizon), False)
                else:
                    label = any(at < u <= at + horizon for u in upgrades)
                rows.values.append([values[name] for name in rows.features])
                rows.labels.append(label)
                rows.times.append(at.timestamp())
                rows.segments.append(segment_of_seats(values[SEGMENT_FEATURE]))
                rows.users.add((tenant_id, user_id))


# --------------------------------------------------------------------------------------------------
# Reading the history.

# --------------------------------------------------------------------------------------------------
# Training, and what it reports.


class SegmentReport(msgspec.Struct, frozen=True, kw_only=True):
    segment: str  # "smb", "mid_market", or "all" (the pooled model)
    label: str
    rows_train: int  # snapshots before the cutoff (label window ended by then)
    rows_test: int  # snapshots from the cutoff on
    positives_train: int
    positives_test: int
    test_auc: float | None
    own_model: bool  # False: scored by the pooled model
    fallback: str = ""  # why it has no model of its own
    # (feature, coefficient on the standardized feature) of the served model, largest |coef| first
    top_features: list[tuple[str, float]] = []


class TargetReport(msgspec.Struct, frozen=True, kw_only=True):
    target: str
    definition: str
    horizon_days: int
    features: list[str]
    rows: int = 0
    users: int = 0
    positives: int = 0
    cutoff: str = ""
    test_auc: float | None = None
    segments: list[SegmentReport] = []
    notes: list[str] = []
    error: str = ""  # set when no model could be trained


class TrainingReport(msgspec.Struct, frozen=True, kw_only=True):
    trained_at: str
    history_from: str = ""
    history_to: str = ""
    events: int = 0
    tenants: int = 0
    snapshot_every_days: int = 3
    snapshots: int = 0
    users_held_back: int = 0  # personalization basic or off: not used
    targets: list[TargetReport] = []
    saved: bool = False


async def train(
    pool: Pool, vocab: Vocabulary, *, now: datetime, every: timedelta = SNAPSHOT_EVERY
) -> tuple[PropensityModels | None, TrainingReport]:
    """Train every target on the stored history; None when no target could be trained."""
    trained_at = now.astimezone(UTC).isoformat()
    bounds = await history_bounds(pool)
    if bounds is None:
        return None, TrainingReport(
            trained_at=trained_at,
            targets=[
                TargetReport(
                    target=t,
                    definition=DEFINITIONS[t],
                    horizon_days=HORIZON_DAYS[t],
                    features=list(FEATURES[t]),
                    error="no events are stored",
                )
                for t in TARGETS
            ],
        )
    first = bounds.first
    end = bounds.last + timedelta(seconds=1)  # every event is before the end
    held_back = await held_back_users(pool)
    collector = RowCollector(vocab, snapshot_times(first, end, every), end, excluded=held_back)
    async for tenant_id, events in tenant_histories(pool):
        collector.add_tenant(tenant_id, events)
    models: dict[str, PropensityModel] = {}
    reports = []
    for target in TARGETS:
        model, target_report = _train_target(target, collector.rows[target], trained_at)
        if model is not None:
            models[target] = model
        reports.append(target_report)
    report = TrainingReport(
        trained_at=trained_at,
        history_from=first.isoformat(),
        history_to=bounds.last.isoformat(),
        events=collector.events,
        tenants=collector.tenants,
        snapshot_every_days=round(every / timedelta(days=1)),
        snapshots=len(collector.snapshots),
        users_held_back=len(held_back),
        targets=reports,
    )
    if not models:
        return None, report
    return PropensityModels(models=models, trained_at=trained_at), report


def _train_target(
    target: str, rows: TargetRows, trained_at: str
) -> tuple[PropensityModel | None, TargetReport]:
    horizon = timedelta(days=HORIZON_DAYS[target])
    base = TargetReport(
        target=target,
        definition=DEFINITIONS[target],
        horizon_days=HORIZON_DAYS[target],
        features=list(FEATURES[target]),
        rows=len(rows.labels),
        users=len(rows.users),
        positives=sum(rows.labels),
    )
    try:
        result = train_target(
            np.array(rows.values, dtype=np.float64).reshape(len(rows.labels), len(rows.features)),
            np.array(rows.labels, dtype=bool),
            np.array(rows.times, dtype=np.float64),
            rows.segments,
            rows.features,
            horizon=horizon.total_seconds(),
            segment_names=SEGMENTS,
            clip=Z_CLIP,
        )
    except NotEnoughDataError as exc:
        return None, msgspec.structs.replace(base, error=str(exc))
    cutoff = datetime.fromtimestamp(result.cutoff, UTC).isoformat()
    segments: dict[str, SegmentModel] = {}
    reports = []
    notes = []
    for seg in [*result.segments, result.pooled]:
        label = SEGMENT_LABELS[seg.segment]
        served = seg.model if seg.model is not None else result.pooled.model
        assert served is not None  # the pooled model is always fitted
        if seg.model is not None:
            segments[seg.segment] = segment_model(
                seg.segment, seg.model, rows.features, seg.test_auc
            )
        else:
            notes.append(f"{target}, {label}: scored by the pooled model ({seg.fallback}).")
        if seg.test_auc is None:
            notes.append(
                f"{target}, {label}: no test AUC ({seg.n_test} test rows, "
                f"{seg.positives_test} positives)."
            )
        elif seg.test_auc < LOW_AUC:
            notes.append(
                f"{target}, {label}: the held-out AUC is {seg.test_auc:.2f}, below {LOW_AUC}: "
                "its scores rank users little better than chance."
            )
        reports.append(
            SegmentReport(
                segment=seg.segment,
                label=label,
                rows_train=seg.n_train,
                rows_test=seg.n_test,
                positives_train=seg.positives_train,
                positives_test=seg.positives_test,
                test_auc=_round(seg.test_auc),
                own_model=seg.model is not None,
                fallback=seg.fallback,
                top_features=_top_features(served, rows.features),
            )
        )
    if result.test_auc is not None and result.test_auc < LOW_AUC:
        notes.append(
            f"{target}: the held-out AUC over all segments is {result.test_auc:.2f}, "
            f"below {LOW_AUC}."
        )
    model = PropensityModel(
        target=target,
        horizon_days=HORIZON_DAYS[target],
        segments=segments,
        trained_at=trained_at,
        auc=_round(result.test_auc),
        cutoff=cutoff,
        notes=notes,
    )
    report = msgspec.structs.replace(
        base, cutoff=cutoff, test_auc=_round(result.test_auc), segments=reports, notes=notes
    )
    return model, report


def segment_model(
    name: str, fit: LogisticFit, features: Sequence[str], auc: float | None = None
) -> SegmentModel:
    """A fitted logistic regression as the engine's scorer reads it."""
    return SegmentModel(
        segment=name,
        features=list(features),
        mean=[float(v) for v in fit.mean],
        scale=[float(v) for v in fit.scale],
        coef=[float(v) for v in fit.coef],
        intercept=fit.intercept,
        n_train=fit.n,
        positives=fit.positives,
        auc=_round(auc),
    )


def _top_features(fit: LogisticFit, features: Sequence[str]) -> list[tuple[str, float]]:
    ranked = sorted(zip(features, fit.coef, strict=True), key=lambda fc: -abs(fc[1]))
    return [(name, round(float(coef), 3)) for name, coef in ranked[:TOP_FEATURES] if coef != 0]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def train_models(
    dsn: str, vocab: Vocabulary, *, every: timedelta, save: bool = True
) -> TrainingReport:
    """Train the propensity models on the history in `dsn` and (by default) save them, where
    running servers pick them up."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        models, report = await train(pool, vocab, now=datetime.now(UTC), every=every)
        if models is not None and save:
            await save_models(pool, models)
            report = msgspec.structs.replace(report, saved=True)
        return report
    finally:
        await pool.close()
