"""Answers about metrics: values by segment and exposure, each with a 95% confidence interval.

Rates (conversion, retention, funnel steps) have Wilson intervals; means (count, distinct) t
intervals; medians (time_to, duration) distribution-free intervals from order statistics (the
ranks a binomial says hold the median 95% of the time); ratios delta-method intervals. All come
from scipy. Groups of fewer than SMALL_GROUP units are marked `small`, so nobody reads noise as a
finding. Only units whose window has ended are counted.

An exposure breakdown (`exposure:<widget id or type>`) compares units shown the widget within
their window with units that could have been (their role sees the widget's views) and were not.
That comparison is observational, and every such answer says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from scipy import stats

from app.engine.metrics import (
    BREAKDOWNS,
    EXPOSURE,
    ConversionMetric,
    CountMetric,
    DistinctMetric,
    DurationMetric,
    FunnelMetric,
    MetricSpec,
    RatioMetric,
    RetentionMetric,
    TimeToMetric,
)
from app.engine.model import Layouts
from app.errors import InvalidInputError, NotFoundError
from app.storage.db import Pool
from app.storage.metrics import (
    Slice,
    funnel_counts,
    funnel_steps,
    group_sizes,
    moments,
    quantiles,
    ratio_moments,
    refresh_state,
    retention_weeks,
)
from widgets import WIDGET_KINDS

SMALL_GROUP = 30  # fewer units than this: the interval is wide, the group is marked small
LEVEL = 0.95
DEFAULT_DAYS = 90
MAX_DAYS = 3 * 366
OBSERVATIONAL = (
    "Observational: units shown {widget} are compared with units that could have been shown it "
    "and were not. They differ in more than the widget, so the gap is not its effect; a "
    "randomized comparison (an experiment, or a holdout never shown it) measures that."
)

Key = tuple[str, ...]


class Point(msgspec.Struct, omit_defaults=True):
    """A value with its interval; `week` on time series, `step`/`label` in funnels, `week_n`
    in retention curves."""

    n: int
    value: float | None
    ci: tuple[float | None, float | None] | None = None
    small: bool = False
    week: str | None = None
    week_n: int | None = None
    step: int | None = None
    label: str | None = None
    through: float | None = None  # funnels: took this step and every earlier one


class Group(msgspec.Struct, omit_defaults=True):
    key: dict[str, str]
    n: int
    value: float | None
    ci: tuple[float | None, float | None] | None  # None within: not reached (time_to)
    small: bool = False
    reached: int | None = None  # time_to: units that got there within the window
    percentiles: dict[str, float | None] | None = None  # time_to, duration (seconds)
    weeks: list[Point] | None = None  # retention: week 1..N
    steps: list[Point] | None = None  # funnel
    series: list[Point] | None = None  # interval=week


class MetricAnswer(msgspec.Struct, omit_defaults=True, rename={"start": "from", "end": "to"}):
    metric: str
    label: str
    kind: str
    unit: str
    start: str
    end: str  # exclusive
    by: list[str]
    groups: list[Group]
    refreshed_at: str | None
    format: str | None = None
    higher_is_better: bool = True
    note: str | None = None


class MetricInfo(msgspec.Struct, omit_defaults=True):
    name: str
    label: str
    kind: str
    unit: str
    description: str = ""
    format: str | None = None
    higher_is_better: bool = True
    definition: dict[str, Any] = {}


def describe(layouts: Layouts) -> list[MetricInfo]:
    return [_info(name, m) for name, m in layouts.metrics.items()]


def _info(name: str, m: MetricSpec) -> MetricInfo:
    return MetricInfo(
        name=name,
        label=m.label,
        kind=str(m.__struct_config__.tag),
        unit=m.unit,
        description=m.description,
        format=m.format,
        higher_is_better=m.higher_is_better,
        definition=msgspec.to_builtins(m),
    )


def format_value(value: float | None, form: str | None) -> str:
    """A value as people read it: 61.2%, 3.4 h or 2.1 d, 1,234.50; None is never reached."""
    if value is None:
        return "not reached"
    if form == "percent":
        return f"{value * 100:.1f}%"
    if form == "duration":
        hours = value / 3600
        return f"{hours / 24:.1f} d" if hours >= 48 else f"{hours:.1f} h"
    return f"{value:,.2f}"


# --- Asking -------------------------------------------------------------------------------------


class Question(msgspec.Struct, frozen=True):
    metric: str
    start: datetime
    end: datetime
    by: tuple[str, ...] = ()
    exposure: str | None = None
    weekly: bool = False
    tenant_id: str | None = None
    where: tuple[tuple[str, str], ...] = ()


def question(
    layouts: Layouts,
    name: str,
    *,
    start: str | None,
    end: str | None,
    by: Sequence[str],
    interval: str | None,
    tenant_id: str | None,
    where: dict[str, str],
    today: date,
) -> Question:
    """A checked question; InvalidInputError names the parameter at fault."""
    metric = layouts.metrics.get(name)
    if metric is None:
        raise NotFoundError("unknown_metric", f"There is no metric '{name}'.", "name")
    last = _date(end, "to") if end else today
    first = _date(start, "from") if start else last - timedelta(days=DEFAULT_DAYS)
    if first > last:
        raise InvalidInputError("invalid_request", "'from' is after 'to'.", "from")
    if (last - first).days > MAX_DAYS:
        raise InvalidInputError(
            "invalid_request", f"Ask for at most {MAX_DAYS} days at a time.", "from"
        )
    keys: list[str] = []
    exposure = None
    for part in by:
        if part.startswith(EXPOSURE):
            exposure = part.removeprefix(EXPOSURE)
            if exposure not in WIDGET_KINDS and exposure not in _widget_ids(layouts):
                raise InvalidInputError(
                    "invalid_request", f"No widget or widget type '{exposure}' to break down by.",
                    "by",
                )  # fmt: skip
            keys.append("exposure")
            continue
        if part not in BREAKDOWNS:
            known = ", ".join([*BREAKDOWNS, EXPOSURE + "<widget>"])
            raise InvalidInputError(
                "invalid_request", f"Unknown breakdown '{part}' (known: {known}).", "by"
            )
        if metric.unit not in BREAKDOWNS[part]:
            raise InvalidInputError(
                "invalid_request", f"'{part}' is not a breakdown of a {metric.unit} metric.", "by"
            )
        keys.append(part)
    for part in set(keys):
        if keys.count(part) > 1:
            raise InvalidInputError("invalid_request", f"'{part}' is given twice.", "by")
    if interval not in (None, "", "week"):
        raise InvalidInputError("invalid_request", "interval may only be 'week'.", "interval")
    for key in where:
        if key not in BREAKDOWNS or metric.unit not in BREAKDOWNS[key]:
            raise InvalidInputError(
                "invalid_request", f"'{key}' cannot filter a {metric.unit} metric.", key
            )
    return Question(
        metric=name,
        start=datetime(first.year, first.month, first.day, tzinfo=UTC),
        end=datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1),
        by=tuple(keys),
        exposure=exposure,
        weekly=interval == "week",
        tenant_id=tenant_id,
        where=tuple(sorted(where.items())),
    )


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            "invalid_request", f"'{field}' must be a date such as 2026-11-01.", field
        ) from None


def _widget_ids(layouts: Layouts) -> set[str]:
    return {w.id for s in layouts.screens.values() for slot in s.slots for w in slot.widgets}


def exposure_roles(layouts: Layouts, widget: str) -> tuple[str, ...] | None:
    """The roles whose views can show the widget (or widgets of the type); None: every role
    (some view that shows it is the one users of any other role get)."""
    roles: set[str] = set()
    for screen in layouts.screens.values():
        for slot in screen.slots:
            for w in slot.widgets:
                if widget not in (w.id, w.type):
                    continue
                views = [v for v in screen.spec.views if not w.spec.views or v.id in w.spec.views]
                if any(v.id == screen.spec.default_view for v in views):
                    return None
                for v in views:
                    roles.update(v.roles)
    return tuple(sorted(roles))


# --- Answering -----------------------------------------------------------------------------------


class MetricsService:
    """Answers questions from the refreshed rows; answers are kept until the next refresh."""

    CACHE = 512

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._answers: OrderedDict[tuple[Any, ...], MetricAnswer] = OrderedDict()

    def forget(self) -> None:
        """A refresh finished (NOTIFY cairn_metrics): answers are stale."""
        self._answers.clear()

    async def answer(self, layouts: Layouts, q: Question, now: datetime) -> MetricAnswer:
        key = (q, layouts.version, now.date())
        hit = self._answers.get(key)
        if hit is not None:
            self._answers.move_to_end(key)
            return hit
        found = await answer(self.pool, layouts, q, now)
        self._answers[key] = found
        if len(self._answers) > self.CACHE:
            self._answers.popitem(last=False)
        return found


async def answer(pool: Pool, layouts: Layouts, q: Question, now: datetime) -> MetricAnswer:
    metric = layouts.metrics[q.metric]
    base = Slice(
        metric=q.metric,
        unit=metric.unit,
        start=q.start,
        end=q.end,
        by=q.by,
        exposure=q.exposure,
        exposure_roles=exposure_roles(layouts, q.exposure) if q.exposure else None,
        tenant_id=q.tenant_id,
        where=q.where,
    )
    groups = {k: g for k, g in (await _groups(pool, layouts, metric, base, now)).items() if g.n}
    if q.weekly:
        weekly = await _groups(pool, layouts, metric, dataclasses.replace(base, weekly=True), now)
        series: dict[Key, list[Point]] = {}
        for key, g in weekly.items():
            series.setdefault(key[:-1], []).append(
                Point(n=g.n, value=g.value, ci=g.ci, small=g.small, week=key[-1])
            )
        for key, g in groups.items():
            g.series = sorted(series.get(key, []), key=lambda p: p.week or "")
    state = await refresh_state(pool)
    return MetricAnswer(
        metric=q.metric,
        label=metric.label,
        kind=str(metric.__struct_config__.tag),
        unit=metric.unit,
        start=q.start.date().isoformat(),
        end=q.end.date().isoformat(),
        by=[f"{EXPOSURE}{q.exposure}" if b == "exposure" else b for b in q.by],
        groups=[groups[k] for k in sorted(groups)],
        refreshed_at=state.refreshed_at.isoformat() if state is not None else None,
        format=metric.format,
        higher_is_better=metric.higher_is_better,
        note=OBSERVATIONAL.format(widget=q.exposure) if q.exposure else None,
    )


def _keyed(s: Slice, key: Key) -> dict[str, str]:
    names = [*s.by, *(["week"] if s.weekly else [])]
    return dict(zip(names, key, strict=True))


async def _groups(
    pool: Pool, layouts: Layouts, metric: MetricSpec, s: Slice, now: datetime
) -> dict[Key, Group]:
    if isinstance(metric, ConversionMetric):
        return {
            k: _rate_group(_keyed(s, k), n, round(total))
            for k, n, total, _ in await moments(pool, s, now)
        }
    if isinstance(metric, CountMetric | DistinctMetric):
        return {
            k: _mean_group(_keyed(s, k), n, total, squares)
            for k, n, total, squares in await moments(pool, s, now)
        }
    if isinstance(metric, TimeToMetric | DurationMetric):
        return await _median_groups(pool, s, now, never_counts=isinstance(metric, TimeToMetric))
    if isinstance(metric, RetentionMetric):
        return await _retention_groups(pool, s, metric, now)
    if isinstance(metric, FunnelMetric):
        return await _funnel_groups(pool, s, funnel_steps(metric, layouts.vocabulary), now)
    assert isinstance(metric, RatioMetric)
    num = dataclasses.replace(s, metric=metric.numerator)
    return {
        k: _ratio_group(_keyed(s, k), n, *sums)
        for k, n, *sums in await ratio_moments(pool, num, metric.denominator, now)
    }


def wilson(k: int, n: int) -> tuple[float, float] | None:
    if n <= 0:
        return None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=LEVEL, method="wilson")
    return (round(float(ci.low), 4), round(float(ci.high), 4))


def _rate_group(key: dict[str, str], n: int, k: int) -> Group:
    return Group(
        key=key, n=n, value=round(k / n, 4) if n else None, ci=wilson(k, n), small=n < SMALL_GROUP
    )


def t_interval(n: int, total: float, squares: float) -> tuple[float, float] | None:
    if n < 2:
        return None
    mean = total / n
    variance = max((squares - total * total / n) / (n - 1), 0.0)
    if variance == 0:
        return (round(mean, 4), round(mean, 4))
    low, high = stats.t.interval(LEVEL, n - 1, loc=mean, scale=math.sqrt(variance / n))
    return (round(float(low), 4), round(float(high), 4))


def _mean_group(key: dict[str, str], n: int, total: float, squares: float) -> Group:
    return Group(
        key=key,
        n=n,
        value=round(total / n, 4) if n else None,
        ci=t_interval(n, total, squares),
        small=n < SMALL_GROUP,
    )


def median_ranks(n: int, p: float = 0.5) -> tuple[int, int]:
    """1-based ranks (lo, hi) of the order statistics that hold the p-quantile of the population
    with at least 95% confidence (distribution-free)."""
    lo = int(stats.binom.ppf((1 - LEVEL) / 2, n, p))
    hi = int(stats.binom.ppf(1 - (1 - LEVEL) / 2, n, p)) + 1
    return max(lo, 1), min(hi, n)


_PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9}


def _seconds(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 1)


async def _median_groups(
    pool: Pool, s: Slice, now: datetime, *, never_counts: bool
) -> dict[Key, Group]:
    sizes = await group_sizes(pool, s, now)
    fractions: dict[Key, list[float]] = {}
    counted: dict[Key, int] = {}
    for key, (n, reached) in sizes.items():
        m = n if never_counts else reached
        counted[key] = m
        if m == 0:
            continue
        lo, hi = median_ranks(m)
        fractions[key] = [lo / m, hi / m, *_PERCENTILES.values()]
    found = await quantiles(pool, s, now, fractions, never_counts=never_counts)
    out: dict[Key, Group] = {}
    for key, (_, reached) in sizes.items():
        m = counted[key]
        q = found.get(key)
        if not q:
            out[key] = Group(key=_keyed(s, key), n=m, value=None, ci=None, small=True,
                             reached=reached if never_counts else None)  # fmt: skip
            continue
        low, high, *rest = q
        percentiles = {name: _seconds(v) for name, v in zip(_PERCENTILES, rest, strict=True)}
        out[key] = Group(
            key=_keyed(s, key),
            n=m,
            value=percentiles["p50"],
            ci=(_seconds(low), _seconds(high)),
            small=m < SMALL_GROUP,
            reached=reached if never_counts else None,
            percentiles=percentiles,
        )
    return out


async def _retention_groups(
    pool: Pool, s: Slice, metric: RetentionMetric, now: datetime
) -> dict[Key, Group]:
    weeks: dict[Key, list[Point]] = {}
    for key, week, n, active in await retention_weeks(pool, s, metric.weeks, now):
        weeks.setdefault(key, []).append(
            Point(n=n, value=round(active / n, 4) if n else None, ci=wilson(active, n),
                  small=n < SMALL_GROUP, week_n=week)
        )  # fmt: skip
    out: dict[Key, Group] = {}
    for key, points in weeks.items():
        points.sort(key=lambda p: p.week_n or 0)
        head = next(p for p in points if p.week_n == metric.headline)
        if head.n == 0 and all(p.n == 0 for p in points):
            continue
        out[key] = Group(
            key=_keyed(s, key), n=head.n, value=head.value, ci=head.ci, small=head.small,
            weeks=points,
        )  # fmt: skip
    return out


async def _funnel_groups(
    pool: Pool, s: Slice, labels: list[str], now: datetime
) -> dict[Key, Group]:
    steps: dict[Key, list[Point]] = {}
    for key, i, n, taken, through in await funnel_counts(pool, s, now):
        steps.setdefault(key, []).append(
            Point(n=n, value=round(taken / n, 4) if n else None, ci=wilson(taken, n),
                  small=n < SMALL_GROUP, step=i, through=round(through / n, 4) if n else None,
                  label=labels[i - 1] if i - 1 < len(labels) else str(i))
        )  # fmt: skip
    out: dict[Key, Group] = {}
    for key, points in steps.items():
        points.sort(key=lambda p: p.step or 0)
        last = points[-1]
        n = max(p.n for p in points)
        out[key] = Group(
            key=_keyed(s, key), n=n, value=last.through, ci=None, small=n < SMALL_GROUP,
            steps=points,
        )  # fmt: skip
    return out


def delta_ratio(n: int, *sums: float) -> tuple[float | None, tuple[float, float] | None]:
    """Σx/Σy over units, with the delta method's 95% interval; `sums` are Σx, Σy, Σx², Σy², Σxy."""
    sx, sy, sxx, syy, sxy = sums
    if n == 0 or sy == 0:
        return None, None
    ratio = sx / sy
    if n < 2:
        return ratio, None
    mx, my = sx / n, sy / n
    vx = (sxx - n * mx * mx) / (n - 1)
    vy = (syy - n * my * my) / (n - 1)
    cxy = (sxy - n * mx * my) / (n - 1)
    variance = max((vx - 2 * ratio * cxy + ratio * ratio * vy) / (n * my * my), 0.0)
    z = float(stats.norm.ppf(1 - (1 - LEVEL) / 2))
    half = z * math.sqrt(variance)
    return ratio, (round(ratio - half, 4), round(ratio + half, 4))


def _ratio_group(key: dict[str, str], n: int, *sums: float) -> Group:
    value, ci = delta_ratio(n, *sums)
    return Group(
        key=key, n=n, value=None if value is None else round(value, 4), ci=ci,
        small=n < SMALL_GROUP,
    )  # fmt: skip
