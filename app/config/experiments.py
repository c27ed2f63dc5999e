"""Load and check layouts/experiments.yaml: every problem as `file:line:col: message`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec

from app.config.yaml_source import Path_, Problem, Source, SourceError, convert
from app.engine.experiments import (
    ArmChangeSpec,
    ArmSpec,
    CompiledArm,
    CompiledExperiment,
    ExperimentKey,
    Experiments,
    ExperimentSpec,
    GuardrailSpec,
    HoldoutSpec,
    WidgetChange,
    arm_ranges,
)
from app.engine.flags import CompiledFlag, FlagReason, FlagResult
from app.engine.metrics import MetricSpec
from app.engine.model import CompiledScreen, CompiledWidget
from app.engine.reasons import Exclusion, Reason

# (source, path, expression) → a compiled CEL rule; (source, path, props) → a compiled props tree
RuleCompiler = Callable[[Source, Path_, str], Any]
PropsCompiler = Callable[[Source, Path_, Any], Any]


class _ExperimentsFile(msgspec.Struct, forbid_unknown_fields=True):
    holdout: dict[str, Any] = {}
    experiments: dict[ExperimentKey, dict[str, Any]] = {}


class _Known:
    """What experiments may refer to."""

    def __init__(
        self,
        screens: dict[str, CompiledScreen],
        flags: dict[str, CompiledFlag],
        metrics: dict[str, MetricSpec] | None,  # None: metrics.yaml has problems of its own
    ) -> None:
        self.screens = screens
        self.flags = flags
        self.metrics = metrics
        self.widget_screen = {
            w.id: name
            for name, screen in screens.items()
            for slot in screen.slots
            for w in slot.widgets
        }
        self.widgets = {
            w.id: w for screen in screens.values() for slot in screen.slots for w in slot.widgets
        }


def load_experiments(
    src: Source,
    screens: dict[str, CompiledScreen],
    flags: dict[str, CompiledFlag],
    metrics: dict[str, MetricSpec] | None,
    compile_when: RuleCompiler,
    compile_props: PropsCompiler,
    problems: list[Problem],
    references: Callable[[str], list[tuple[str, int]]] | None = None,
) -> Experiments:
    try:
        shape = convert(src, src.data, _ExperimentsFile)
        holdout = convert(src, shape.holdout, HoldoutSpec, base=("holdout",))
    except SourceError as exc:
        problems.append(exc.problem)
        return Experiments()
    known = _Known(screens, flags, metrics)
    specs: dict[str, ExperimentSpec] = {}
    for key, body in shape.experiments.items():
        try:
            written = _variant_names(src, ("experiments", key), body)
            specs[key] = convert(src, written, ExperimentSpec, base=("experiments", key))
        except SourceError as exc:
            problems.append(exc.problem)
    compiled = {}
    for key, spec in specs.items():
        base: Path_ = ("experiments", key)
        _check_experiment(src, base, spec, known, problems)
        when: Any = True
        if spec.when is not True:
            text = spec.when if isinstance(spec.when, str) else "false"
            when = compile_when(src, (*base, "when"), text)
            if spec.unit == "tenant" and references is not None:
                _check_tenant_rule(src, (*base, "when"), text, references, problems)
        arms = tuple(
            _compile_arm(src, (*base, "arms", i), arm, known, compile_props)
            for i, arm in enumerate(spec.arms)
        )
        compiled[key] = (spec, when, arms)
    layers = _layer_ranges(src, specs, problems)
    _check_overlaps(src, compiled, known, problems)
    experiments = {}
    for key, (spec, when, arms) in compiled.items():
        touched = {w for arm in arms for w, change in arm.widgets.items()} | {
            change.swap for arm in arms for change in arm.widgets.values() if change.swap
        }
        screens_changed = {known.widget_screen[w] for w in touched if w in known.widget_screen}
        screens_changed |= {s for arm in arms for s in arm.views}
        experiments[key] = CompiledExperiment(
            key=key,
            spec=spec,
            when=when,
            arms=arms,
            control=spec.control or (spec.arms[0].id if spec.arms else ""),
            ranges=arm_ranges([a.weight for a in spec.arms]),
            traffic_range=layers.get(key, (0.0, spec.traffic / 100)),
            screens=frozenset(screens_changed),
            flags=frozenset(f for arm in arms for f in arm.flags),
            widgets=frozenset(w for w in touched if w is not None),
            server_exposure=any(
                arm.views or any(c.hide or c.swap or c.priority is not None
                                 for c in arm.widgets.values())
                for arm in arms
            ),
        )  # fmt: skip
    by_screen: dict[str, list[str]] = {}
    by_flag: dict[str, list[str]] = {}
    for key, exp in experiments.items():
        for screen in exp.screens:
            by_screen.setdefault(screen, []).append(key)
        for flag in exp.flags:
            by_flag.setdefault(flag, []).append(key)
    return Experiments(
        holdout=holdout,
        experiments=experiments,
        by_screen={k: tuple(v) for k, v in by_screen.items()},
        by_flag={k: tuple(v) for k, v in by_flag.items()},
    )


TENANT_SIGNALS = ("tenant", "plan", "presets")


def _check_tenant_rule(
    src: Source,
    path: Path_,
    text: str,
    references: Callable[[str], list[tuple[str, int]]],
    problems: list[Problem],
) -> None:
    """An experiment on tenants enrols a whole tenant on the rule of whichever user comes first:
    the rule may read only what every user of the tenant shares."""
    quote = 1 if path in src.quoted else 0
    for dotted, at in references(text):
        if dotted.split(".")[0] not in TENANT_SIGNALS:
            problems.append(
                src.at(
                    path,
                    f"an experiment on tenants reads what its users share ("
                    f"{', '.join(TENANT_SIGNALS)}), not '{dotted}'",
                    offset=quote + at,
                )
            )


def _check_overlaps(
    src: Source,
    compiled: dict[str, tuple[ExperimentSpec, Any, tuple[CompiledArm, ...]]],
    known: _Known,
    problems: list[Problem],
) -> None:
    """Running experiments that change the same widget, view or flag share a layer: otherwise a
    unit in both would be counted in an arm whose change it never saw."""
    owners: dict[str, tuple[str, str | None]] = {}
    for key, (spec, _, arms) in compiled.items():
        if spec.status != "running":
            continue
        touched = {f"widget {w}" for arm in arms for w in arm.widgets}
        touched |= {f"widget {c.swap}" for arm in arms for c in arm.widgets.values() if c.swap}
        touched |= {f"the view of screen {s}" for arm in arms for s in arm.views}
        touched |= {f"flag {f}" for arm in arms for f in arm.flags}
        for thing in sorted(touched):
            other = owners.get(thing)
            if other is not None and (spec.layer is None or other[1] != spec.layer):
                message = (
                    f"{thing} is also changed by experiment '{other[0]}': put both in one "
                    "layer, so that no unit is in both"
                )
                at = (
                    src.at(("experiments", key, "layer"), message)
                    if spec.layer
                    else src.at(("experiments", key), message, key=True)
                )
                problems.append(at)
            else:
                owners.setdefault(thing, (key, spec.layer))
    del known


def _variant_names(src: Source, base: Path_, body: Any) -> Any:
    """A flag change's `variant` is a name: YAML's `on`/`off` booleans taken as written."""
    if not isinstance(body, dict) or not isinstance(body.get("arms"), list):
        return body

    def fix(change: Any, at: Path_) -> Any:
        if isinstance(change, dict) and "variant" in change:
            return {**change, "variant": src.as_written((*at, "variant"), change["variant"])}
        return change

    arms = []
    for i, arm in enumerate(body["arms"]):
        if isinstance(arm, dict) and "set" in arm:
            at: Path_ = (*base, "arms", i, "set")
            changes = arm["set"]
            arm = {  # noqa: PLW2901 - the arm as written, with its variant names
                **arm,
                "set": [fix(c, (*at, j)) for j, c in enumerate(changes)]
                if isinstance(changes, list)
                else fix(changes, at),
            }
        arms.append(arm)
    return {**body, "arms": arms}


def _layer_ranges(
    src: Source, specs: dict[str, ExperimentSpec], problems: list[Problem]
) -> dict[str, tuple[float, float]]:
    """Consecutive ranges of each layer's hash, in the file's order; a layer is 100% at most."""
    taken: dict[str, float] = {}
    units: dict[str, str] = {}
    out = {}
    for key, spec in specs.items():
        if spec.layer is None:
            continue
        unit = units.setdefault(spec.layer, spec.unit)
        if unit != spec.unit:
            problems.append(
                src.at(
                    ("experiments", key, "layer"),
                    f"layer '{spec.layer}' splits {unit}s, this experiment {spec.unit}s: a "
                    "layer keeps units apart only when its experiments share the unit",
                )
            )
        start = taken.get(spec.layer, 0.0)
        end = start + spec.traffic
        if end > 100 + 1e-9:
            problems.append(
                src.at(
                    ("experiments", key, "traffic"),
                    f"layer '{spec.layer}' is over 100% of traffic: its experiments before this "
                    f"one take {start:g}%, this one {spec.traffic:g}%",
                )
            )
        taken[spec.layer] = end
        out[key] = (start / 100, min(end, 100) / 100)
    return out


def _changes(arm: ArmSpec) -> list[ArmChangeSpec]:
    return arm.set if isinstance(arm.set, list) else [arm.set]


def _check_experiment(
    src: Source, base: Path_, spec: ExperimentSpec, known: _Known, problems: list[Problem]
) -> None:
    if len(spec.arms) < 2:
        problems.append(src.at((*base, "arms"), "an experiment needs at least two arms"))
    ids = [a.id for a in spec.arms]
    for i, arm_id in enumerate(ids):
        if arm_id in ids[:i]:
            problems.append(src.at((*base, "arms", i, "id"), f"arm '{arm_id}' is used twice"))
    total = sum(a.weight for a in spec.arms)
    if spec.arms and abs(total - 100) > 1e-6:
        problems.append(src.at((*base, "arms"), f"arm weights add up to {total:g}, not 100"))
    for i, arm in enumerate(spec.arms):
        if arm.weight < 0:
            problems.append(src.at((*base, "arms", i, "weight"), "a weight is 0 to 100"))
    if spec.control is not None and spec.control not in ids:
        problems.append(src.at((*base, "control"), f"'{spec.control}' is not an arm"))
    named: list[tuple[Path_, str]] = [(("primary",), spec.metrics.primary)]
    named += [(("secondary", i), m) for i, m in enumerate(spec.metrics.secondary)]
    named += [
        (("guardrails", i), g.metric if isinstance(g, GuardrailSpec) else g)
        for i, g in enumerate(spec.metrics.guardrails)
    ]
    for where, metric in named:
        path = (*base, "metrics", *where)
        if known.metrics is not None and metric not in known.metrics:
            known_names = ", ".join(sorted(known.metrics)) or "none"
            problems.append(
                src.at(path, f"unknown metric '{metric}' (metrics.yaml defines: {known_names})")
            )
    if spec.analysis.horizon_units is not None and spec.analysis.horizon_units < 1:
        problems.append(src.at((*base, "analysis", "horizon_units"), "a horizon is 1 unit or more"))
    for i, arm in enumerate(spec.arms):
        changes = _changes(arm)
        for j, change in enumerate(changes):
            at: Path_ = (
                (*base, "arms", i, "set", j)
                if isinstance(arm.set, list)
                else (*base, "arms", i, "set")
            )
            _check_change(src, at, change, known, problems)


def _check_change(
    src: Source, at: Path_, change: ArmChangeSpec, known: _Known, problems: list[Problem]
) -> None:
    kinds = [change.widget is not None, change.screen is not None, change.flag is not None]
    if sum(kinds) != 1:
        problems.append(src.at(at, "a change names one of widget, screen (with view) or flag"))
        return
    if change.widget is not None:
        screen = known.widget_screen.get(change.widget)
        if screen is None:
            problems.append(src.at((*at, "widget"), f"no screen has a widget '{change.widget}'"))
            return
        if change.props is None and change.priority is None and not change.hide and not change.swap:
            problems.append(src.at(at, "say what changes: props, priority, hide or swap"))
        if change.swap is not None and known.widget_screen.get(change.swap) != screen:
            problems.append(
                src.at((*at, "swap"), f"'{change.swap}' is not another widget of screen '{screen}'")
            )
    elif change.screen is not None:
        compiled = known.screens.get(change.screen)
        if compiled is None:
            problems.append(src.at((*at, "screen"), f"unknown screen '{change.screen}'"))
        elif change.view is None or compiled.view(change.view) is None:
            views = ", ".join(v.id for v in compiled.spec.views)
            problems.append(
                src.at((*at, "view") if change.view else at, f"name a view of '{change.screen}' "
                       f"(views: {views})")
            )  # fmt: skip
    else:
        flag = known.flags.get(change.flag or "")
        if flag is None:
            problems.append(src.at((*at, "flag"), f"unknown flag '{change.flag}'"))
        elif change.variant not in flag.spec.variants:
            names = ", ".join(flag.spec.variants)
            problems.append(
                src.at((*at, "variant") if change.variant else at,
                       f"'{change.flag}' has no variant '{change.variant}' (variants: {names})")
            )  # fmt: skip


def _compile_arm(
    src: Source, base: Path_, arm: ArmSpec, known: _Known, compile_props: PropsCompiler
) -> CompiledArm:
    widgets: dict[str, WidgetChange] = {}
    views: dict[str, str] = {}
    flags: dict[str, str] = {}
    for j, change in enumerate(_changes(arm)):
        at: Path_ = (*base, "set", j) if isinstance(arm.set, list) else (*base, "set")
        if change.widget is not None:
            props = (
                compile_props(src, (*at, "props"), change.props)
                if change.props is not None
                else None
            )
            widgets[change.widget] = WidgetChange(
                props=props,
                priority=change.priority,
                hide=change.hide,
                swap=change.swap,
                widget=_changed(known.widgets.get(change.widget), props, change.priority),
            )
        elif change.screen is not None and change.view is not None:
            views[change.screen] = change.view
        elif change.flag is not None and change.variant is not None:
            flags[change.flag] = change.variant
    key = str(base[1])
    tag = f"experiment {key}, arm {arm.id}"
    excluded = {
        widget: Exclusion(
            widget, Reason.EXPERIMENT, tag if change.hide else f"{tag}: swapped for {change.swap}"
        )
        for widget, change in widgets.items()
        if change.hide or change.swap
    }
    flag_results = {
        flag: FlagResult(flag, known.flags[flag].spec.variants.get(variant), variant,
                         FlagReason.SPLIT, note=tag)
        for flag, variant in flags.items()
        if flag in known.flags
    }  # fmt: skip
    return CompiledArm(
        id=arm.id,
        widgets=widgets,
        views=views,
        flags=flags,
        excluded=excluded,
        flag_results=flag_results,
    )


def _changed(widget: CompiledWidget | None, props: Any, priority: int | None) -> Any:
    """The widget as an arm shows it: its props with the arm's merged over, its priority."""
    if widget is None or (props is None and priority is None):
        return None
    spec = widget.spec
    if priority is not None:
        spec = msgspec.structs.replace(spec, priority=priority)
    merged = {**widget.props, **props} if props is not None else widget.props
    return dataclasses.replace(widget, spec=spec, props=merged)
