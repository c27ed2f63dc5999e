"""Load and check layouts/metrics.yaml: every problem as `file:line:col: message`."""

from __future__ import annotations

import re
from typing import Any

import cel
import msgspec

from app.config.yaml_source import Path_, Problem, Source, SourceError, convert
from app.engine.event_conditions import ConditionError
from app.engine.event_conditions import parse as parse_condition
from app.engine.metrics import (
    KINDS,
    AnchorSpec,
    ConversionMetric,
    CountMetric,
    DistinctMetric,
    DurationMetric,
    EventMatch,
    FunnelMetric,
    MetricSpec,
    Name,
    RatioMetric,
    RetentionMetric,
    TimeToMetric,
)
from app.engine.model import CompiledScreen
from widgets import WIDGET_KINDS


def load_metrics(
    src: Source, screens: dict[str, CompiledScreen], problems: list[Problem]
) -> dict[str, MetricSpec]:
    """The metrics of `src`, checked against the screens' widgets; problems are appended."""
    try:
        spec = convert(src, src.data, _MetricsFile)
    except SourceError as exc:
        problems.append(exc.problem)
        return {}
    metrics: dict[str, MetricSpec] = {}
    for name, body in spec.metrics.items():
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind is not None and kind not in KINDS:
            message = f"unknown kind '{kind}' (known: {', '.join(KINDS)})"
            problems.append(src.at(("metrics", name, "kind"), message))
            continue
        try:
            metrics[name] = convert(src, body, MetricSpec, base=("metrics", name))  # type: ignore[arg-type]
        except SourceError as exc:
            problems.append(exc.problem)
    if len(metrics) < len(spec.metrics):
        return {}
    widget_ids = {
        w.id for screen in screens.values() for slot in screen.slots for w in slot.widgets
    }
    before = len(problems)
    for name, metric in metrics.items():
        _check_metric(src, ("metrics", name), metric, metrics, widget_ids, problems)
    return metrics if len(problems) == before else {}


class _MetricsFile(msgspec.Struct, forbid_unknown_fields=True):
    """The file's shape; each metric is then read on its own, so errors can name it."""

    metrics: dict[Name, dict[str, Any]] = {}


def _check_metric(
    src: Source,
    base: Path_,
    metric: MetricSpec,
    metrics: dict[str, MetricSpec],
    widget_ids: set[str],
    problems: list[Problem],
) -> None:
    if isinstance(metric.anchor, AnchorSpec):
        _check_anchor(src, (*base, "anchor"), metric.anchor, widget_ids, problems)
    if metric.population.role and metric.unit == "tenant":
        problems.append(
            src.at((*base, "population", "role"), "a tenant metric has no role to filter on")
        )
    for path, match in _matches(metric):
        _check_match(src, (*base, *path), match, problems)
    if isinstance(metric, ConversionMetric) and metric.absent and metric.outcome == "activation":
        problems.append(src.at((*base, "absent"), "absent needs events, not activation"))
    if isinstance(metric, RetentionMetric) and metric.headline > metric.weeks:
        problems.append(
            src.at((*base, "headline"), f"headline week {metric.headline} is after week "
                   f"{metric.weeks}, the last one measured")
        )  # fmt: skip
    if isinstance(metric, RatioMetric):
        for part in ("numerator", "denominator"):
            other = metrics.get(getattr(metric, part))
            if other is None:
                problems.append(src.at((*base, part), f"unknown metric '{getattr(metric, part)}'"))
            elif isinstance(other, RatioMetric | RetentionMetric | FunnelMetric):
                problems.append(
                    src.at((*base, part), f"a ratio takes a metric with one value per unit, "
                           f"not a {other.__struct_config__.tag} metric")
                )  # fmt: skip
            elif other.unit != metric.unit:
                problems.append(
                    src.at((*base, part), f"'{getattr(metric, part)}' is measured per "
                           f"{other.unit}, this ratio per {metric.unit}")
                )  # fmt: skip


def _check_anchor(
    src: Source, path: Path_, anchor: AnchorSpec, widget_ids: set[str], problems: list[Problem]
) -> None:
    if anchor.at != "exposure":
        if anchor.widget or anchor.widget_type:
            problems.append(src.at(path, "widget and widget_type go with at: exposure"))
        return
    if bool(anchor.widget) == bool(anchor.widget_type):
        problems.append(src.at(path, "an exposure anchor names one widget or one widget_type"))
    if anchor.widget and anchor.widget not in widget_ids:
        problems.append(src.at((*path, "widget"), f"no screen has a widget '{anchor.widget}'"))
    if anchor.widget_type and anchor.widget_type not in WIDGET_KINDS:
        problems.append(
            src.at(
                (*path, "widget_type"),
                f"unknown widget type '{anchor.widget_type}' (known: {', '.join(WIDGET_KINDS)})",
            )
        )
    if not anchor.on:
        problems.append(src.at((*path, "on"), "name the events that count as exposure"))


def _check_match(src: Source, path: Path_, match: EventMatch, problems: list[Problem]) -> None:
    named = [bool(match.event), bool(match.events), match.of_class is not None]
    if match.trait_up is not None:
        if any(named) or match.where:
            problems.append(
                src.at(path, "trait_up matches group calls: give no event names or where")
            )
        return
    if sum(named) != 1:
        problems.append(src.at(path, "name the events: one of event, events or class"))
    if match.when is not None:
        _check_condition(src, (*path, "when"), match.when, problems)


def _check_condition(src: Source, path: Path_, expr: str, problems: list[Problem]) -> None:
    """A `when:` is CEL, and within what the database evaluates."""
    quote = 1 if path in src.quoted else 0
    try:
        cel.compile(expr)
    except ValueError as exc:
        m = re.search(r"<input>:\d+:(\d+): (.*?)(?:\n|$)", str(exc))
        at, what = (int(m.group(1)), m.group(2)) if m else (0, str(exc))
        problems.append(src.at(path, f"CEL: {what}", offset=quote + at))
        return
    try:
        parse_condition(expr)
    except ConditionError as exc:
        problems.append(
            src.at(path, f"CEL: {exc} (metrics read events in the database)", offset=quote + exc.at)
        )


def _matches(metric: MetricSpec) -> list[tuple[Path_, EventMatch]]:
    """Every event match of a metric, with its path under the metric."""
    if isinstance(metric, ConversionMetric | TimeToMetric):
        if metric.outcome == "activation":
            return []
        if isinstance(metric.outcome, list):
            return [(("outcome", i), m) for i, m in enumerate(metric.outcome)]
        return [(("outcome",), metric.outcome)]
    if isinstance(metric, CountMetric | DistinctMetric):
        return [(("events",), metric.events)]
    if isinstance(metric, RetentionMetric):
        return [(("activity",), metric.activity)]
    if isinstance(metric, FunnelMetric) and not isinstance(metric.steps, str):
        return [(("steps", i, "outcome"), s.outcome) for i, s in enumerate(metric.steps)]
    if isinstance(metric, DurationMetric):
        return []
    return []
