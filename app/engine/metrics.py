"""Metric definitions: what analysts write in layouts/metrics.yaml. Pure data, no computation.

A metric measures one thing per *unit* (a user, or a tenant) relative to an *anchor* (the
unit's sign-up, its first event, its first exposure to a widget), within a window after it:

- `conversion`: the unit converts when a matching event happens within the window (or, with
  `absent: true`, when none does: a deflection). The value is the share of units that converted.
- `time_to`: the time from the anchor to the first matching event; units that never get there
  are counted (as never), not dropped.
- `count` / `distinct`: matching events per unit within the window, or distinct values of one of
  their properties.
- `retention`: active (any matching event) in week N after the anchor, N = 1..`weeks`.
- `duration`: the time from a start event to the next completion of the same task, per unit.
- `funnel`: the share of units that took each of a list of steps within the window.
- `ratio`: one metric's total over another's, on the same units.

Only units whose window has ended (or that converted already) are counted in rates, so a unit
that signed up yesterday is not counted as one that failed to activate in 14 days.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Scalar = str | int | float | bool
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class MetricSpecBase(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of analyst input."""


class EventMatch(MetricSpecBase, frozen=True, kw_only=True):
    """Which events count. Give names (`event` or `events`) or a class of signals.yaml
    (`value`, `power`, `friction`); `where` keeps events whose properties have these values (a
    list: any of them); `scope: tenant` counts events of anyone in the unit's tenant.

    `same_as_before: <property>` keeps events whose property equals that of the unit's latest
    event of the same name before the anchor (the feature a help tip was shown for).
    `trait_up: <trait>` matches a group call raising a numeric trait (seats) above its value at
    the anchor, instead of named events. `when` is a CEL condition on the event.
    """

    event: str | None = None
    events: list[str] = []
    of_class: Literal["value", "power", "friction"] | None = msgspec.field(
        default=None, name="class"
    )
    where: dict[str, Scalar | list[Scalar]] = {}
    scope: Literal["user", "tenant"] = "user"
    same_as_before: str | None = None
    trait_up: str | None = None
    # A CEL condition on the event, e.g. "event.properties.seats > 10 && event.name != 'x'"
    # (the subset of app.engine.event_conditions, evaluated by the database).
    when: str | None = None


class AnchorSpec(MetricSpecBase, frozen=True, kw_only=True):
    """Where a unit's window starts: `signup` (its first `signed_up`, else its first event; a
    tenant's: its first user's), `first_event`, or the first exposure to a widget (`widget`, by
    id) or to a widget type (`widget_type`), seen in `widget_viewed` (or the `on` events)."""

    at: Literal["signup", "first_event", "exposure"] = "signup"
    widget: str | None = None
    widget_type: str | None = None
    on: list[str] = msgspec.field(default_factory=lambda: ["widget_viewed"])


class PopulationSpec(MetricSpecBase, frozen=True, kw_only=True):
    """Which units a metric is about: by role (users), or by plan at the anchor."""

    role: list[str] = []
    plan_at_anchor: list[str] = []


class _Metric(
    MetricSpecBase, tag_field="kind", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    label: str
    description: str = ""
    unit: Literal["user", "tenant"] = "user"
    anchor: AnchorSpec | Literal["signup", "first_event"] = "signup"
    population: PopulationSpec = PopulationSpec()
    within_days: Annotated[float, msgspec.Meta(gt=0, le=3660)] = 30
    higher_is_better: bool = True
    format: Literal["percent", "number", "duration"] | None = None  # how values read


class ConversionMetric(_Metric, tag="conversion", frozen=True, kw_only=True):
    """Converts when any of `outcome` happens in the window (with `absent`, when none does).
    `outcome: activation` means the unit did all of its role's activation steps."""

    outcome: EventMatch | list[EventMatch] | Literal["activation"]
    absent: bool = False


class TimeToMetric(_Metric, tag="time_to", frozen=True, kw_only=True):
    outcome: EventMatch | Literal["activation"]


class CountMetric(_Metric, tag="count", frozen=True, kw_only=True):
    events: EventMatch


class DistinctMetric(_Metric, tag="distinct", frozen=True, kw_only=True):
    events: EventMatch
    distinct: str  # the property whose distinct values are counted


class RetentionMetric(_Metric, tag="retention", frozen=True, kw_only=True):
    """Active in week N after the anchor (days 7N to 7N + 7); the value is week `headline`'s."""

    activity: EventMatch = EventMatch(of_class="value")
    weeks: Annotated[int, msgspec.Meta(ge=1, le=52)] = 12
    headline: Annotated[int, msgspec.Meta(ge=1, le=52)] = 4


class TaskSpec(MetricSpecBase, frozen=True, kw_only=True):
    label: str
    start: str  # event name
    complete: str  # event name
    match_on: str | None = None  # a property both carry (the task's id)


class DurationMetric(_Metric, tag="duration", frozen=True, kw_only=True):
    """Per unit, the median time from a task's start to its next completion."""

    tasks: Annotated[list[TaskSpec], msgspec.Meta(min_length=1)]


class FunnelStep(MetricSpecBase, frozen=True, kw_only=True):
    label: str
    outcome: EventMatch


class FunnelMetric(_Metric, tag="funnel", frozen=True, kw_only=True):
    """The share of units that took each step within the window (`steps: activation`: the
    activation steps of signals.yaml), and that took every step up to it."""

    steps: list[FunnelStep] | Literal["activation"]


class RatioMetric(_Metric, tag="ratio", frozen=True, kw_only=True):
    numerator: str  # metric names, on the same unit
    denominator: str


MetricSpec = (
    ConversionMetric
    | TimeToMetric
    | CountMetric
    | DistinctMetric
    | RetentionMetric
    | DurationMetric
    | FunnelMetric
    | RatioMetric
)


class MetricsFileSpec(MetricSpecBase, frozen=True, kw_only=True):
    metrics: dict[Name, MetricSpec] = {}


KINDS: tuple[str, ...] = tuple(str(m.__struct_config__.tag) for m in MetricSpec.__args__)

# Breakdowns a metric's units can be grouped by (`by=`), and which units have them.
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    "plan": ("user", "tenant"),
    "industry": ("user", "tenant"),
    "seat_band": ("user", "tenant"),
    "cohort": ("user", "tenant"),  # the week of the unit's sign-up
    "role": ("user",),
    "stage": ("user",),  # the lifecycle stage now
}
EXPOSURE = "exposure:"  # `exposure:<widget id or widget type>`


def anchor_of(metric: MetricSpec) -> AnchorSpec:
    return metric.anchor if isinstance(metric.anchor, AnchorSpec) else AnchorSpec(at=metric.anchor)


def outcomes_of(metric: ConversionMetric) -> list[EventMatch] | Literal["activation"]:
    if metric.outcome == "activation":
        return "activation"
    return metric.outcome if isinstance(metric.outcome, list) else [metric.outcome]
