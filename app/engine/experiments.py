"""Experiments and the global holdout: what `layouts/experiments.yaml` says, and who gets which
arm. Pure.

- **Holdout.** `holdout: {percent: 5}` keeps a stable share of users (by the hash of
  app.engine.bucketing, salt `holdout.salt`) on the default layouts, never personalized and never
  in an experiment: the comparison for personalization's total lift.
- **Enrolment.** A running experiment enrols a unit (a user, or a tenant with `unit: tenant`)
  whose eligibility rule (`when`, CEL over Cairn's signals) holds and whose traffic hash falls in
  the experiment's share: of its layer, when it has one (the experiments of a layer take
  consecutive ranges of one hash, so they never share a unit), else of its own. The arm is the
  range of the experiment's hash (`salt`, the key by default) its weights put the unit in.
- **Stickiness.** The first assignment is stored (PostgreSQL) and read back with the profile; a
  stored arm is served from then on, whatever the weights, traffic or rule say later. A stopped
  experiment serves its control arm to everyone and enrols nobody.
- **Arms** change what a screen shows: a widget's props (merged over its own) or priority, a
  widget hidden, a widget swapped for another of its screen, the screen's view (a layout
  variant), a flag's variant. Widgets an experiment touches say so in their "why", in every arm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from app.engine.bucketing import bucket_ranges, choose, salted_hash, unit_hash, user_unit
from app.engine.specs import Spec

ExperimentKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]

EXPERIMENT_SENTENCE = "You're seeing a version we're trying out."


class ArmChangeSpec(Spec, frozen=True, kw_only=True):
    """One change an arm makes. A widget change names the `widget` and any of `props` (merged
    over its own, `{{ cel }}` templates allowed), `priority`, `hide: true` or `swap` (another
    widget of its screen shown in its place when that one's rule holds); a layout variant names
    the `screen` and its `view`; a flag change names the `flag` and the `variant` it serves."""

    widget: str | None = None
    props: dict[str, Any] | None = None
    priority: int | None = None
    hide: bool = False
    swap: str | None = None
    screen: str | None = None
    view: str | None = None
    flag: str | None = None
    variant: str | None = None


class ArmSpec(Spec, frozen=True, kw_only=True):
    id: str
    weight: float
    description: str = ""
    set: ArmChangeSpec | list[ArmChangeSpec] = []


class GuardrailSpec(Spec, frozen=True, kw_only=True):
    """A metric no arm may make significantly worse than control by more than `threshold`
    (relative: 0.1 is 10% worse)."""

    metric: str
    threshold: float = 0.1


class ExperimentMetricsSpec(Spec, frozen=True, kw_only=True):
    primary: str
    secondary: list[str] = []
    guardrails: list[str | GuardrailSpec] = []


class AnalysisSpec(Spec, frozen=True, kw_only=True):
    """How results are read. `sequential: true` (the default) gives always-valid intervals, so
    results may be looked at any time; `false` reads at a fixed horizon (`horizon_units` exposed
    units per arm) and results before it are marked early. `correction` adjusts p-values for
    several arms and metrics (Holm's step-down, or Benjamini-Hochberg), or leaves them with a
    warning (`none`). `mde` and `power` are the design the sample size is stated for."""

    alpha: Annotated[float, msgspec.Meta(gt=0, lt=0.5)] = 0.05
    power: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.8
    mde: Annotated[float, msgspec.Meta(gt=0)] = 0.1  # relative, on the primary metric
    sequential: bool = True
    horizon_units: int | None = None
    correction: Literal["holm", "bh", "none"] = "holm"
    cuped: bool = True


class ExperimentSpec(Spec, frozen=True, kw_only=True):
    description: str = ""
    owner: str = ""
    hypothesis: str = ""
    status: Literal["running", "draft", "concluded"] = "running"
    unit: Literal["user", "tenant"] = "user"
    when: str | bool = True
    traffic: Annotated[float, msgspec.Meta(ge=0, le=100)] = 100
    layer: str | None = None
    salt: str | None = None
    control: str | None = None  # the arm others are compared with; the first arm when unset
    arms: list[ArmSpec]
    metrics: ExperimentMetricsSpec
    analysis: AnalysisSpec = AnalysisSpec()


class HoldoutSpec(Spec, frozen=True, kw_only=True):
    percent: Annotated[float, msgspec.Meta(ge=0, le=50)] = 0
    salt: str = "cairn-holdout"


# --- Compiled -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WidgetChange:
    props: Any = None  # a compiled props tree merged over the widget's own, or None
    priority: int | None = None
    hide: bool = False
    swap: str | None = None
    widget: Any = None  # the CompiledWidget with these props and priority, built once


@dataclass(frozen=True, slots=True)
class CompiledArm:
    id: str
    widgets: dict[str, WidgetChange] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)  # screen → view
    flags: dict[str, str] = field(default_factory=dict)  # flag → variant
    # made once at load, what every decision in this arm uses as it is:
    excluded: dict[str, Any] = field(default_factory=dict)  # widget → its Exclusion (hide, swap)
    flag_results: dict[str, Any] = field(default_factory=dict)  # flag → the FlagResult served


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    key: str
    spec: ExperimentSpec
    when: Any  # a compiled expression, or True
    arms: tuple[CompiledArm, ...]
    control: str
    ranges: tuple[tuple[float, float], ...]  # the arms' ranges of [0, 1), in order
    traffic_range: tuple[float, float]  # of its layer's hash, or of its own traffic hash
    screens: frozenset[str]  # the screens whose widgets or views it changes
    flags: frozenset[str]  # the flags its arms set
    widgets: frozenset[str]  # every widget an arm touches (exposure is a view of one of them)
    # An arm hides, swaps, reorders or changes the view: a touched widget is not seen alike in
    # every arm, so exposure is the server's (a decision where a touched widget's rule holds,
    # whatever the arm; any decision on the screen for a view), not the client's widget_viewed.
    server_exposure: bool = False
    view_screens: frozenset[str] = frozenset()  # screens whose view an arm changes
    by_id: dict[str, CompiledArm] = field(default_factory=dict)
    # unit id → its place in [0, 1) under the traffic salt and under the arms' salt
    tenant_unit: bool = field(init=False, repr=False, compare=False)
    traffic_hash: Callable[[str], float] = field(init=False, repr=False, compare=False)
    arm_hash: Callable[[str], float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {a.id: a for a in self.arms})
        object.__setattr__(self, "view_screens", frozenset(s for a in self.arms for s in a.views))
        object.__setattr__(self, "tenant_unit", self.spec.unit == "tenant")
        object.__setattr__(self, "traffic_hash", salted_hash(self.traffic_salt()))
        object.__setattr__(self, "arm_hash", salted_hash(self.salt))

    @property
    def running(self) -> bool:
        return self.spec.status == "running"

    def arm(self, arm_id: str) -> CompiledArm | None:
        return self.by_id.get(arm_id)

    @property
    def design(self) -> str:
        """The arms' weights, as stored with each assignment: "control:50,treatment:50"."""
        return ",".join(f"{a.id}:{a.weight:g}" for a in self.spec.arms)

    def traffic_salt(self) -> str:
        return f"layer:{self.spec.layer}" if self.spec.layer else f"{self.salt}:traffic"

    @property
    def salt(self) -> str:
        """`exp:<key>` unless set: never a flag's salt, so a flag and an experiment of one name
        do not split units alike."""
        return self.spec.salt if self.spec.salt is not None else f"exp:{self.key}"


@dataclass(frozen=True, slots=True)
class Experiments:
    """Everything experiments.yaml compiles to; replaced whole on a reload."""

    holdout: HoldoutSpec = field(default_factory=HoldoutSpec)
    experiments: dict[str, CompiledExperiment] = field(default_factory=dict)
    by_screen: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_flag: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stopped: frozenset[str] = frozenset()  # stopped at run time (guardrails, a person)
    # screen → the experiments its decisions may enrol in: those that change it, and those that
    # set a flag its decisions evaluate (the flags its rules read, and the client flags)
    for_screen: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # what a combination of arms changes, made once per combination (see app.engine.decide.Arms)
    combined: dict[tuple[tuple[str, str], ...], Any] = field(
        default_factory=dict, repr=False, compare=False
    )
    live: frozenset[str] = field(init=False, repr=False, compare=False)  # running, not stopped

    def __post_init__(self) -> None:
        running = (k for k, e in self.experiments.items() if e.running and k not in self.stopped)
        object.__setattr__(self, "live", frozenset(running))

    def relevant(self, screen: str | None, flags: frozenset[str] | set[str]) -> list[str]:
        """The experiments a decision on `screen` evaluating `flags` may enrol units in."""
        keys = list(self.by_screen.get(screen or "", ()))
        for flag in flags:
            keys.extend(k for k in self.by_flag.get(flag, ()) if k not in keys)
        return keys


def arm_ranges(weights: list[float]) -> tuple[tuple[float, float], ...]:
    total = sum(weights) or 1.0
    return tuple(bucket_ranges([w / total for w in weights]))


def in_holdout(holdout: HoldoutSpec, tenant_id: str, user_id: str) -> bool:
    """Whether this user is in the global holdout (stable: a hash of the user)."""
    if holdout.percent <= 0:
        return False
    return unit_hash(holdout.salt, user_unit(tenant_id, user_id)) < holdout.percent / 100


class Enrolment(msgspec.Struct, frozen=True, gc=False):
    """A unit in an experiment's arm: `new` when this decision assigned it (to be stored);
    `exposed` when this decision exposed it as the server counts exposure (a flag served, a
    screen whose arms are not seen alike)."""

    experiment: str
    arm: str
    unit_id: str  # the user id, or "" for a tenant experiment
    new: bool = False
    exposed: bool = False
    live: bool = True  # served the arm it is stored in (not stopped, the arm still defined)


def unit_of(exp: CompiledExperiment, tenant_id: str, user_id: str) -> tuple[str, str]:
    """(the id stored with the assignment, the id hashed)."""
    if exp.spec.unit == "tenant":
        return "", tenant_id
    return user_id, user_unit(tenant_id, user_id)


def propose(exp: CompiledExperiment, tenant_id: str, user_id: str) -> str | None:
    """The arm a new unit would get, or None when the traffic hash leaves it out."""
    _, hashed = unit_of(exp, tenant_id, user_id)
    low, high = exp.traffic_range
    n = exp.traffic_hash(hashed)
    if not low <= n < high:
        return None
    picked = choose(exp.arm_hash(hashed), exp.ranges)
    return exp.arms[picked].id if picked >= 0 else None


def enrol(
    experiments: Experiments,
    keys: Sequence[str],
    tenant_id: str,
    user_id: str,
    stored: Mapping[str, str],
    eligible: Any,  # Callable[[CompiledExperiment], bool]: the unit's eligibility, evaluated
) -> list[Enrolment]:
    """The arms this unit is in, for the experiments named: stored ones as they are (control
    once stopped), new ones where the unit is eligible and in the traffic."""
    out = []
    running = experiments.live
    for key in keys:
        exp = experiments.experiments[key]
        unit_id = "" if exp.tenant_unit else user_id
        arm = stored.get(key)
        if arm is not None:  # stored: kept; an arm since removed from the file serves control
            if key in running and arm in exp.by_id:
                out.append(Enrolment(key, arm, unit_id))
            else:
                out.append(Enrolment(key, exp.control, unit_id, live=False))
            continue
        if key not in running or not eligible(exp):
            continue
        proposed = propose(exp, tenant_id, user_id)
        if proposed is not None:
            out.append(Enrolment(key, proposed, unit_id, new=True))
    return out
