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

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from app.engine.bucketing import bucket_ranges, choose, unit_hash, user_unit
from app.engine.paths import evaluate
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
    variants: tuple[str, ...] = ()  # a rollout's variants, in order
    ranges: tuple[tuple[float, float], ...] = ()  # and their ranges of [0, 1)


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    key: str
    spec: FlagSpec
    rules: tuple[CompiledRule, ...]
    source: str = ""  # file:line of its definition

    @property
    def client(self) -> bool:
        return self.spec.client

    @property
    def salt(self) -> str:
        return self.spec.salt if self.spec.salt is not None else self.key

    def value_of(self, variant: str) -> Any:
        return self.spec.variants[variant]


def compile_rule(spec: FlagRuleSpec, when: Any) -> CompiledRule:
    if spec.rollout is None:
        return CompiledRule(when=when, serve=spec.serve)
    variants = tuple(spec.rollout)
    total = sum(spec.rollout.values()) or 1.0
    weights = [spec.rollout[v] / total for v in variants]
    return CompiledRule(
        when=when, serve=None, variants=variants, ranges=tuple(bucket_ranges(weights))
    )


@dataclass(frozen=True, slots=True)
class FlagResult:
    key: str
    value: Any
    variant: str
    reason: FlagReason
    rule: int | None = None  # the index of the rule that decided, when one did
    detail: str = ""  # for people: why this variant


@dataclass(frozen=True, slots=True)
class Unit:
    """Who a flag is evaluated for: the ids bucketing reads, whatever the rules may see."""

    tenant_id: str
    user_id: str

    def id_for(self, unit: str) -> str:
        return self.tenant_id if unit == "tenant" else user_unit(self.tenant_id, self.user_id)


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
        return {key: self.one(key) for key in keys}

    def one(self, key: str) -> FlagResult:
        found = self._done.get(key)
        if found is None:
            found = self._done[key] = self._evaluate(self._flags[key])
        return found

    def _evaluate(self, flag: CompiledFlag) -> FlagResult:
        spec = flag.spec
        if not spec.enabled:
            return _default(flag, FlagReason.DISABLED, "the flag is switched off")
        if spec.schedule is not None and not _in_schedule(spec.schedule, self._now):
            return _default(flag, FlagReason.DISABLED, "outside the flag's schedule")
        for pre in spec.prerequisites:
            got = self.one(pre.flag)
            if got.variant not in pre.variants:
                detail = f"prerequisite {pre.flag} serves {got.variant}"
                return _default(flag, FlagReason.DEFAULT, detail)
        for i, rule in enumerate(flag.rules):
            if rule.when is not True:
                try:
                    holds = evaluate(rule.when, self._env, self._variables) is True
                except _EVAL_ERRORS as exc:
                    detail = f"rule {i + 1} could not be evaluated: {exc}"
                    return _default(flag, FlagReason.ERROR, detail)
                if not holds:
                    continue
            if rule.serve is not None:
                return FlagResult(
                    flag.key,
                    flag.value_of(rule.serve),
                    rule.serve,
                    FlagReason.TARGETING_MATCH,
                    i,
                    f"rule {i + 1} holds",
                )
            n = unit_hash(flag.salt, self._unit.id_for(spec.unit))
            picked = choose(n, rule.ranges)
            variant = rule.variants[picked] if picked >= 0 else spec.default
            detail = f"rule {i + 1}: bucket {n:.4f} of the rollout"
            return FlagResult(
                flag.key, flag.value_of(variant), variant, FlagReason.SPLIT, i, detail
            )
        if not flag.rules:
            return _default(flag, FlagReason.STATIC, "the flag has no rules")
        return _default(flag, FlagReason.DEFAULT, "no rule holds")


def _default(flag: CompiledFlag, reason: FlagReason, detail: str) -> FlagResult:
    variant = flag.spec.default
    return FlagResult(flag.key, flag.value_of(variant), variant, reason, None, detail)


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
            served.update(
                v for v, (low, high) in zip(rule.variants, rule.ranges, strict=True) if high > low
            )
        if rule.when is True and not spec.prerequisites and spec.schedule is None:
            break
    else:
        served.add(spec.default)
    return next(iter(served)) if len(served) == 1 else None
