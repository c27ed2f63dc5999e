"""Load and check layouts/flags.yaml: every problem as `file:line:col: message`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import msgspec

from app.config.yaml_source import Path_, Problem, Source, SourceError, convert
from app.engine.flags import CompiledFlag, FlagKey, FlagRuleSpec, FlagSpec, compile_rule

# Compiles one CEL rule of the file at a path (problems recorded by the compiler); None if broken.
RuleCompiler = Callable[[Source, Path_, str], Any]


class _FlagsFile(msgspec.Struct, forbid_unknown_fields=True):
    """The file's shape; each flag is then read on its own, so errors can name it."""

    flags: dict[FlagKey, dict[str, Any]] = {}


def load_flags(
    src: Source, compile_when: RuleCompiler, problems: list[Problem]
) -> dict[str, CompiledFlag]:
    """The flags of `src`, their rules compiled; problems are appended (and then none are
    returned: a broken file never half-applies)."""
    try:
        shape = convert(src, src.data, _FlagsFile)
    except SourceError as exc:
        problems.append(exc.problem)
        return {}
    specs: dict[str, FlagSpec] = {}
    for key, written in shape.flags.items():
        base: Path_ = ("flags", key)
        try:
            body = _variant_names(src, base, written)
            specs[key] = _aware(convert(src, body, FlagSpec, base=base))
        except SourceError as exc:
            problems.append(exc.problem)
    for key, spec in specs.items():
        _check_flag(src, ("flags", key), key, spec, specs, problems)
    _check_cycles(src, specs, problems)
    flags: dict[str, CompiledFlag] = {}
    for key, spec in specs.items():
        rules = []
        for i, rule in enumerate(spec.rules):
            when: Any = True
            if rule.when is not True:
                text = rule.when if isinstance(rule.when, str) else "false"
                when = compile_when(src, ("flags", key, "rules", i, "when"), text)
            rules.append(compile_rule(rule, when, spec.variants))
        line, _ = src.keys.get(("flags", key), (0, 0))
        flags[key] = CompiledFlag(key, spec, tuple(rules), source=f"{src.file}:{line + 1}")
    return flags  # with problems, the caller rejects the whole folder


def _variant_names(src: Source, base: Path_, body: Any) -> Any:
    """Where a variant's name is expected (`default`, `serve`, a prerequisite's `variants`),
    YAML's `on`/`off` booleans are taken as written."""
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if "default" in out:
        out["default"] = src.as_written((*base, "default"), out["default"])
    if isinstance(out.get("rules"), list):
        out["rules"] = [
            {**rule, "serve": src.as_written((*base, "rules", i, "serve"), rule["serve"])}
            if isinstance(rule, dict) and "serve" in rule
            else rule
            for i, rule in enumerate(out["rules"])
        ]
    if isinstance(out.get("prerequisites"), list):
        out["prerequisites"] = [
            {**pre, "variants": [
                src.as_written((*base, "prerequisites", i, "variants", j), v)
                for j, v in enumerate(pre["variants"])
            ]}
            if isinstance(pre, dict) and isinstance(pre.get("variants"), list) else pre
            for i, pre in enumerate(out["prerequisites"])
        ]  # fmt: skip
    return out


def _aware(spec: FlagSpec) -> FlagSpec:
    """Schedule times without a zone are UTC."""
    if spec.schedule is None:
        return spec
    start, end = spec.schedule.start, spec.schedule.end
    schedule = msgspec.structs.replace(
        spec.schedule,
        start=start.replace(tzinfo=UTC) if start and start.tzinfo is None else start,
        end=end.replace(tzinfo=UTC) if end and end.tzinfo is None else end,
    )
    return msgspec.structs.replace(spec, schedule=schedule)


def _check_flag(
    src: Source,
    base: Path_,
    key: str,
    spec: FlagSpec,
    specs: dict[str, FlagSpec],
    problems: list[Problem],
) -> None:
    names = ", ".join(spec.variants) or "none"
    if not spec.variants:
        problems.append(src.at((*base, "variants"), "a flag needs at least one variant"))
    if spec.default not in spec.variants:
        problems.append(
            src.at((*base, "default"), f"'{spec.default}' is not a variant (variants: {names})")
        )
    for i, rule in enumerate(spec.rules):
        _check_rule(src, (*base, "rules", i), rule, spec, problems)
    for i, pre in enumerate(spec.prerequisites):
        path = (*base, "prerequisites", i)
        other = specs.get(pre.flag)
        if pre.flag == key:
            problems.append(src.at((*path, "flag"), "a flag cannot be its own prerequisite"))
        elif other is None:
            problems.append(src.at((*path, "flag"), f"unknown flag '{pre.flag}'"))
        else:
            for j, variant in enumerate(pre.variants):
                if variant not in other.variants:
                    problems.append(
                        src.at((*path, "variants", j), f"'{pre.flag}' has no variant '{variant}'")
                    )
    schedule = spec.schedule
    if schedule and schedule.start and schedule.end and schedule.start >= schedule.end:
        problems.append(src.at((*base, "schedule", "end"), "the schedule ends before it starts"))


def _check_rule(
    src: Source, path: Path_, rule: FlagRuleSpec, spec: FlagSpec, problems: list[Problem]
) -> None:
    names = ", ".join(spec.variants) or "none"
    if (rule.serve is None) == (rule.rollout is None):
        problems.append(src.at(path, "a rule has one of serve or rollout"))
    if rule.serve is not None and rule.serve not in spec.variants:
        problems.append(
            src.at((*path, "serve"), f"'{rule.serve}' is not a variant (variants: {names})")
        )
    if rule.rollout is not None:
        for variant, percent in rule.rollout.items():
            if not 0 <= percent <= 100:
                problems.append(
                    src.at(
                        (*path, "rollout", variant),
                        f"'{variant}' gets {percent:g}%: each share is 0 to 100",
                    )
                )
            if variant not in spec.variants:
                problems.append(
                    src.at(
                        (*path, "rollout", variant),
                        f"'{variant}' is not a variant (variants: {names})",
                        key=True,
                    )
                )
        total = sum(rule.rollout.values())
        if abs(total - 100) > 1e-6:
            problems.append(
                src.at((*path, "rollout"), f"rollout percentages add up to {total:g}, not 100")
            )


def _check_cycles(src: Source, specs: dict[str, FlagSpec], problems: list[Problem]) -> None:
    """Prerequisites form no cycle (a flag cannot wait on itself through others)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(key: str, path: list[str]) -> None:
        state[key] = 1
        for i, pre in enumerate(specs[key].prerequisites):
            if pre.flag not in specs or pre.flag == key:
                continue
            if state.get(pre.flag) == 1:
                cycle = " → ".join([*path[path.index(pre.flag) :], pre.flag])
                at: Path_ = ("flags", key, "prerequisites", i, "flag")
                problems.append(src.at(at, f"prerequisites cycle: {cycle}"))
            elif state.get(pre.flag) is None:
                visit(pre.flag, [*path, pre.flag])
        state[key] = 2

    for key in specs:
        if key not in state:
            visit(key, [key])


def sample_values(flags: dict[str, CompiledFlag]) -> dict[str, Any]:
    """What `flags.*` looks like to layout rules, for checking the paths they read."""
    return {key: flag.spec.variants.get(flag.spec.default) for key, flag in flags.items()}
