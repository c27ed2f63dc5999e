"""Feature flags: what `layouts/flags.yaml` says, and the evaluation of a flag for one unit. Pure.

A flag has named variants (any JSON values) and a default variant. Evaluation, first exit wins:

1. `enabled: false` (the kill switch), or outside its `schedule` → the default, `DISABLED`.
2. A prerequisite flag not serving one of the variants it requires → the default, `DEFAULT`.
3. Rules in order, the first whose `when` holds: `serve` → that variant (`TARGETING_MATCH`);
   `rollout` → the variant whose range holds the unit's hash (`SPLIT`, see app.engine.bucketing).
4. No rule holds → the default: `STATIC` for a flag with no rules, else `DEFAULT`.
A rule that cannot be evaluated for this unit gives the default with `ERROR`, never an exception.
The reasons are OpenFeature's, so OFREP clients read them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from app.engine.bucketing import bucket_ranges, salted_hash, user_unit
from app.engine.fastcel import Translation
from app.engine.paths import FastExpr, PathRef, evaluate
from app.engine.specs import Spec

FlagKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class FlagRuleSpec(Spec, frozen=True, kw_only=True):
    """`when` (CEL over Cairn's signals; no `when`: everyone) and one of `serve` or `rollout`."""

    when: str | bool = True
    serve: str | None = None
    rollout: dict[str, float] | None = None  # variant → percent of units, summing to 100
    description: str = ""


class PrerequisiteSpec(Spec, frozen=True, kw_only=True):
    """Another flag that must serve one of these variants for this flag to be evaluated."""

    flag: str
    variants: list[str]


class ScheduleSpec(Spec, frozen=True, kw_only=True):
    """The flag serves its rules from `start` until `end` (either may be open); outside, its
    default."""

    start: datetime | None = None
    end: datetime | None = None


class FlagSpec(Spec, frozen=True, kw_only=True):
    description: str = ""
    owner: str = ""
    variants: dict[str, Any]
    default: str
    unit: Literal["user", "tenant"] = "user"
    enabled: bool = True
    client: bool = False  # sent to browsers and apps: in descriptors, and to publishable keys
    salt: str | None = None  # the hash's salt; the flag's key when unset
    expires: date | None = None  # past this day the flag is reported stale
    permanent: bool = False  # a kill switch kept on purpose: never reported for serving one variant
    prerequisites: list[PrerequisiteSpec] = []
    schedule: ScheduleSpec | None = None
    rules: list[FlagRuleSpec] = []


class FlagReason(StrEnum):
    """OpenFeature's resolution reasons."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    when: Any  # a compiled expression (app.engine.paths), or True
    serve: str | None
    value: Any = None  # what `serve` serves
    # a rollout's variants in order, each with its range of [0, 1): (low, high, variant, value)
    buckets: tuple[tuple[float, float, str, Any], ...] = ()
    fast: Any = None  # the rule's compiled Python, when it has one (app.engine.fastcel)
    python: Translation | None = None  # the Python source `fast` was compiled from


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    key: str
    spec: FlagSpec
    rules: tuple[CompiledRule, ...]
    source: str = ""  # file:line of its definition
    # unit id → the unit's place in [0, 1) under this flag's salt (app.engine.bucketing)
    hash: Callable[[str], float] = field(init=False, repr=False, compare=False)
    # what no rule holding gives (STATIC or DEFAULT), and whether anything runs before the rules
    fallthrough: FlagResult = field(init=False, repr=False, compare=False)
    gated: bool = field(init=False, repr=False, compare=False)
    per_tenant: bool = field(init=False, repr=False, compare=False)
    # each `serve` rule's answer (the same for everyone it holds for), None for rollouts
    matched: tuple[FlagResult | None, ...] = field(init=False, repr=False, compare=False)
    # the whole flag as one Python function of (variables, unit), when every rule has Python:
    # its answer, or None where the rules' own evaluation must say (see `_compile`)
    fast: FastFlag | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.spec
        reason = FlagReason.DEFAULT if self.rules else FlagReason.STATIC
        default = FlagResult(self.key, spec.variants.get(spec.default), spec.default, reason)
        gated = not spec.enabled or spec.schedule is not None or bool(spec.prerequisites)
        matched = tuple(
            None
            if rule.serve is None
            else FlagResult(self.key, rule.value, rule.serve, FlagReason.TARGETING_MATCH, i)
            for i, rule in enumerate(self.rules)
        )
        for name, value in (
            ("matched", matched),
            ("hash", salted_hash(self.salt)),
            ("fallthrough", default),
            ("gated", gated),
            ("per_tenant", spec.unit == "tenant"),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "fast", None if gated else _compile(self))

    @property
    def client(self) -> bool:
        return self.spec.client

    @property
    def salt(self) -> str:
        return self.spec.salt if self.spec.salt is not None else self.key

    def value_of(self, variant: str) -> Any:
        return self.spec.variants[variant]


def compile_rule(spec: FlagRuleSpec, when: Any, variants: Mapping[str, Any]) -> CompiledRule:
    fast = when.fast if isinstance(when, FastExpr) else None
    python = when.python if isinstance(when, FastExpr) else None
    if isinstance(when, PathRef):
        python = Translation("v" + "".join(f"[{p!r}]" for p in when.parts), {})
    if spec.rollout is None:
        value = variants.get(spec.serve or "")
        return CompiledRule(when=when, serve=spec.serve, value=value, fast=fast, python=python)
    names = tuple(spec.rollout)
    total = sum(spec.rollout.values()) or 1.0
    ranges = tuple(bucket_ranges([spec.rollout[v] / total for v in names]))
    buckets = tuple(
        (low, high, v, variants.get(v)) for v, (low, high) in zip(names, ranges, strict=True)
    )
    return CompiledRule(when=when, serve=None, buckets=buckets, fast=fast, python=python)


FastFlag = Callable[[dict[str, Any], "Unit"], "FlagResult | None"]


def _compile(flag: CompiledFlag) -> FastFlag | None:
    """The flag's rules as one Python function, for a flag with no kill switch, schedule or
    prerequisite whose every rule has a Python translation: the answer `evaluate_flag` gives,
    or None (or an exception) where it must evaluate the rules itself (a rule's CEL has the last
    word on errors; a bucket in no range)."""
    scope: dict[str, Any] = {
        "_R": FlagResult, "_SPLIT": FlagReason.SPLIT, "_key": flag.key, "_hash": flag.hash,
        "_fallthrough": flag.fallthrough, "__builtins__": {},
    }  # fmt: skip
    unit = "unit.tenant_id" if flag.per_tenant else "unit.user_unit"
    lines = ["def _flag(v, unit):"]
    for i, rule in enumerate(flag.rules):
        indent = "    "
        if rule.when is not True:
            if rule.python is None:
                return None
            scope.update(rule.python.scope)
            lines.append(f"    if ({rule.python.source}) is True:")
            indent = "        "
        if rule.serve is not None:
            scope[f"_m{i}"] = flag.matched[i]
            lines.append(f"{indent}return _m{i}")
            continue
        lines.append(f"{indent}n = _hash({unit})")
        for j, (low, high, variant, value) in enumerate(rule.buckets):
            scope[f"_v{i}_{j}"] = value
            lines.append(
                f"{indent}if {low!r} <= n < {high!r}: return _R(_key, _v{i}_{j}, {variant!r},"
                f" _SPLIT, {i}, n)"
            )
        lines.append(f"{indent}return None")
    lines.append("    return _fallthrough")
    code = compile("\n".join(lines), f"<flag {flag.key}>", "exec")
    exec(code, scope)  # noqa: S102 - our own output, from a validated flag
    fn: FastFlag = scope["_flag"]
    return fn


class FlagResult(msgspec.Struct, frozen=True, gc=False):
    """One flag's answer for one unit. `detail` says why, for people; it is built when read."""

    key: str
    value: Any
    variant: str
    reason: FlagReason
    rule: int | None = None  # the index of the rule that decided, when one did
    bucket: float | None = None  # the unit's hash, when a rollout decided
    note: str = ""  # what went wrong, or what held the flag back

    @property
    def detail(self) -> str:
        if self.note:
            return self.note
        if self.bucket is not None:
            return f"rule {(self.rule or 0) + 1}: bucket {self.bucket:.4f} of the rollout"
        if self.rule is not None:
            return f"rule {self.rule + 1} holds"
        return _DEFAULT_DETAILS.get(self.reason, "")


_DEFAULT_DETAILS = {
    FlagReason.STATIC: "the flag has no rules",
    FlagReason.DEFAULT: "no rule holds",
}


class Unit:
    """Who a flag is evaluated for: the ids bucketing reads, whatever the rules may see."""

    __slots__ = ("tenant_id", "user_id", "user_unit")

    def __init__(self, tenant_id: str, user_id: str) -> None:
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.user_unit = user_unit(tenant_id, user_id)


_EVAL_ERRORS = (RuntimeError, ValueError, TypeError, KeyError)


class FlagEvaluator:
    """Evaluates flags for one unit and one set of signals, each flag once (prerequisites are
    shared)."""

    __slots__ = ("_done", "_env", "_flags", "_now", "_unit", "_variables")

    def __init__(
        self,
        flags: Mapping[str, CompiledFlag],
        unit: Unit,
        variables: dict[str, Any],
        env: Any,
        now: datetime,
    ) -> None:
        self._flags = flags
        self._unit = unit
        self._variables = variables
        self._env = env
        self._now = now
        self._done: dict[str, FlagResult] = {}

    def all(self, keys: Collection[str]) -> dict[str, FlagResult]:
        """Every flag named; a flag without prerequisites is evaluated straight away."""
        done = self._done
        flags = self._flags
        unit, variables, env, now = self._unit, self._variables, self._env, self._now
        out = {}
        for key in keys:
            found = done.get(key)
            if found is None:
                flag = flags[key]
                fast = flag.fast
                if fast is not None:  # evaluate_flag's first step, without its call
                    try:
                        found = fast(variables, unit)
                    except Exception:  # noqa: BLE001 - evaluate_flag says what went wrong
                        found = None
                if found is None:
                    if flag.gated:
                        found = self.one(key)
                    else:
                        found = evaluate_flag(flag, unit, variables, env, now, self.one)
                done[key] = found
            out[key] = found
        return out

    def one(self, key: str) -> FlagResult:
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = evaluate_flag(
                self._flags[key], self._unit, self._variables, self._env, self._now, self.one
            )
        return found


FlagSet = Callable[[dict[str, Any], Unit, Callable[[], FlagEvaluator]], dict[str, FlagResult]]


def compile_flag_set(flags: Mapping[str, CompiledFlag], keys: Collection[str]) -> FlagSet:
    """Every flag named, in one generated function of (variables, unit, a maker of the
    FlagEvaluator): each flag's own function (`CompiledFlag.fast`) called straight away, the
    evaluator (made at most once) for a flag without one or where it does not answer. What
    `FlagEvaluator.all` returns, without its lookups per flag."""
    scope: dict[str, Any] = {"__builtins__": {}, "Exception": Exception}
    lines = ["def _flags(v, unit, evaluator):", "    ev = None"]
    names = sorted(keys)
    for i, key in enumerate(names):
        fast = flags[key].fast
        if fast is not None:
            scope[f"_f{i}"] = fast
            lines += [
                "    try:",
                f"        r{i} = _f{i}(v, unit)",
                "    except Exception:",
                f"        r{i} = None",
                f"    if r{i} is None:",
            ]
            indent = "        "
        else:
            indent = "    "
        lines += [
            f"{indent}if ev is None:",
            f"{indent}    ev = evaluator()",
            f"{indent}r{i} = ev.one({key!r})",
        ]
    lines.append("    return {" + ", ".join(f"{k!r}: r{i}" for i, k in enumerate(names)) + "}")
    code = compile("\n".join(lines), "<flags>", "exec")
    exec(code, scope)  # noqa: S102 - our own output, from validated flag keys
    fn: FlagSet = scope["_flags"]
    return fn


def evaluate_flag(
    flag: CompiledFlag,
    unit: Unit,
    variables: dict[str, Any],
    env: Any,
    now: datetime,
    prerequisite: Callable[[str], FlagResult],
) -> FlagResult:
    """One flag for one unit: the first exit wins (see the module's docstring)."""
    fast = flag.fast
    if fast is not None:
        try:
            found = fast(variables, unit)
        except Exception:  # noqa: BLE001 - the rules' own evaluation says what went wrong
            found = None
        if found is not None:
            return found
    if flag.gated:
        held = _gate(flag, now, prerequisite)
        if held is not None:
            return held
    matched = flag.matched
    for i, rule in enumerate(flag.rules):
        when = rule.when
        if when is not True:
            try:
                fast = rule.fast
                if fast is None:
                    held = evaluate(when, env, variables)
                else:
                    try:
                        held = fast(variables)
                    except Exception:  # noqa: BLE001 - CEL has the last word on every error
                        held = evaluate(when.program, env, variables)
            except _EVAL_ERRORS as exc:
                note = f"rule {i + 1} could not be evaluated: {exc}"
                return _default(flag, FlagReason.ERROR, note)
            if held is not True:
                continue
        answer = matched[i]
        if answer is not None:
            return answer
        n = flag.hash(unit.tenant_id if flag.per_tenant else unit.user_unit)
        for low, high, variant, value in rule.buckets:
            if low <= n < high:
                return FlagResult(flag.key, value, variant, FlagReason.SPLIT, i, n)
        return _default(flag, FlagReason.SPLIT, f"rule {i + 1}: bucket {n:.4f} is in no range")
    return flag.fallthrough


def _gate(
    flag: CompiledFlag, now: datetime, prerequisite: Callable[[str], FlagResult]
) -> FlagResult | None:
    """The default when the kill switch, the schedule or a prerequisite holds the flag back."""
    spec = flag.spec
    if not spec.enabled:
        return _default(flag, FlagReason.DISABLED, "the flag is switched off")
    if spec.schedule is not None and not _in_schedule(spec.schedule, now):
        return _default(flag, FlagReason.DISABLED, "outside the flag's schedule")
    for pre in spec.prerequisites:
        got = prerequisite(pre.flag)
        if got.variant not in pre.variants:
            note = f"prerequisite {pre.flag} serves {got.variant}"
            return _default(flag, FlagReason.DEFAULT, note)
    return None


def _default(flag: CompiledFlag, reason: FlagReason, note: str = "") -> FlagResult:
    variant = flag.spec.default
    return FlagResult(flag.key, flag.value_of(variant), variant, reason, note=note)


def _in_schedule(schedule: ScheduleSpec, now: datetime) -> bool:
    if schedule.start is not None and now < schedule.start:
        return False
    return schedule.end is None or now < schedule.end


def serves_one_variant(flag: CompiledFlag) -> str | None:
    """The one variant this flag can serve whoever asks, or None when it can serve several.
    Rules after one that holds for everyone are never reached, nor is the default then."""
    spec = flag.spec
    if not spec.enabled:
        return spec.default
    served: set[str] = set()
    for rule in flag.rules:
        if rule.serve is not None:
            served.add(rule.serve)
        else:
            served.update(v for low, high, v, _ in rule.buckets if high > low)
        if rule.when is True and not spec.prerequisites and spec.schedule is None:
            break
    else:
        served.add(spec.default)
    return next(iter(served)) if len(served) == 1 else None
