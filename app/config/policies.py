"""Load and check layouts/policies.yaml: every problem as `file:line:col: message`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.config.yaml_source import Problem, Source, SourceError, convert
from app.engine.policies import CompiledPolicy, PoliciesFileSpec, PolicySpec

RuleCompiler = Callable[[Source, Any, str], Any]


def read_policies(
    src: Source, problems: list[Problem]
) -> tuple[dict[str, PolicySpec], PoliciesFileSpec | None]:
    """The policies' specs (read first: what they forbid is checked while everything else
    compiles), and the whole file."""
    try:
        shape = convert(src, src.data, PoliciesFileSpec)
    except SourceError as exc:
        problems.append(exc.problem)
        return {}, None
    return dict(shape.policies), shape


def compile_policies(
    src: Source,
    shape: PoliciesFileSpec,
    compile_when: RuleCompiler,
    widget_types: frozenset[str],
    widget_ids: frozenset[str] | None,
    problems: list[Problem],
) -> tuple[CompiledPolicy, ...]:
    """The placement rules compiled; a policy naming an unknown widget type or id (ids are not
    checked when `widget_ids` is None), or a test of an unknown policy, is a problem."""
    out = []
    for name, spec in shape.policies.items():
        base = ("policies", name)
        if (
            not spec.forbid_attributes
            and spec.forbid_placement is None
            and (spec.forbid_targeting is None)
        ):
            problems.append(src.at(base, f"policy '{name}' forbids nothing", key=True))
        when: Any = None
        types: frozenset[str] = frozenset()
        ids: frozenset[str] = frozenset()
        placement = spec.forbid_placement
        if placement is not None:
            where = (*base, "forbid_placement")
            for i, kind in enumerate(placement.widgets.types):
                if kind not in widget_types:
                    problems.append(src.at((*where, "widgets", "types", i),
                                           f"unknown widget type '{kind}'"))  # fmt: skip
            for i, wid in enumerate(placement.widgets.ids):
                if widget_ids is not None and wid not in widget_ids:
                    problems.append(src.at((*where, "widgets", "ids", i),
                                           f"no layout has a widget '{wid}'"))  # fmt: skip
            if not placement.widgets.types and not placement.widgets.ids:
                problems.append(src.at((*where, "widgets"), "name widget types or ids"))
            when = True
            if placement.when is not True:
                text = placement.when if isinstance(placement.when, str) else "false"
                when = compile_when(src, (*where, "when"), text)
            types, ids = frozenset(placement.widgets.types), frozenset(placement.widgets.ids)
        owners: frozenset[str] = frozenset()
        unless: Any = None
        if spec.forbid_targeting is not None:
            owners = frozenset(spec.forbid_targeting.owners)
            unless = compile_when(
                src, (*base, "forbid_targeting", "unless"), spec.forbid_targeting.unless
            )
        line, _ = src.keys.get(base, (0, 0))
        out.append(CompiledPolicy(name, spec, when, types, ids, f"{src.file}:{line + 1}",
                                  owners, unless))  # fmt: skip
    for i, case in enumerate(shape.tests):
        if case.policy not in shape.policies:
            problems.append(src.at(("tests", i, "policy"), f"unknown policy '{case.policy}'"))
        if sum((case.reads is not None, bool(case.widget), case.owner is not None)) != 1:
            problems.append(src.at(("tests", i), "a case has one of `reads`, `widget`, `owner`"))
    return tuple(out)
