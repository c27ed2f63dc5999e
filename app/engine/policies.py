"""Policies over what rules may read and where widgets may appear: `layouts/policies.yaml`. Pure.

Every policy forbids; nothing here permits. A widget is left out (reason code `policy`, with the
policy's name) when any placement policy that covers it holds for the decision: forbid wins, as in
Cedar, and whatever layouts, flags or experiment arms say. An attribute a policy forbids cannot be
read by any rule, template or driver: `cairn validate` (and every reload) fails with the rule's
file:line:col and the policy's name. The `when` of a placement is CEL over Cairn's signals, like
every other rule, so policies are evaluated by the decision engine itself, purely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.engine.paths import evaluate
from app.engine.reasons import Exclusion, Reason
from app.engine.specs import Spec


class WidgetsSpec(Spec, frozen=True, kw_only=True):
    """Which widgets a placement covers: of these types, or these ids (either matches)."""

    types: list[str] = []
    ids: list[str] = []


class PlacementSpec(Spec, frozen=True, kw_only=True):
    widgets: WidgetsSpec
    when: str | bool = True  # CEL over the decision's signals; true: always


class TargetingSpec(Spec, frozen=True, kw_only=True):
    """Which segments a team may target: experiments whose `owner` is one of `owners` enrol (and
    serve their arms to) only units for which `unless` holds."""

    owners: list[str]
    unless: str  # CEL over the decision's signals: the segment these owners may target


class PolicySpec(Spec, frozen=True, kw_only=True):
    description: str
    owner: str = ""
    forbid_attributes: list[str] = []  # signal paths (and everything under them) rules never read
    forbid_placement: PlacementSpec | None = None
    forbid_targeting: TargetingSpec | None = None


class PolicyCaseSpec(Spec, frozen=True, kw_only=True):
    """A policy's unit test: a widget and the signals it is decided with (a placement), or an
    attribute a rule reads; allow or deny."""

    policy: str
    widget: dict[str, str] = {}  # {type: ...} and/or {id: ...}
    signals: dict[str, Any] = {}  # merged over a typical user's signals
    reads: str | None = None  # an attribute path a rule would read
    owner: str | None = None  # an experiment's owner targeting a unit with these signals
    expect: Literal["allow", "deny"]
    description: str = ""


def run_case(
    policy: CompiledPolicy, case: PolicyCaseSpec, env: Any, variables: dict[str, Any]
) -> Literal["allow", "deny"]:
    """What the policy says of the case: `reads` against what it forbids to read; otherwise the
    widget in a decision with these variables."""
    if case.reads is not None:
        found = forbidding({policy.name: policy.spec}, case.reads)
        return "deny" if found is not None else "allow"
    if case.owner is not None:
        return "deny" if targeting_forbidden((policy,), case.owner, env, variables) else "allow"
    widget_id, widget_type = case.widget.get("id", ""), case.widget.get("type", "")
    left_out = policy_exclusion((policy,), widget_id, widget_type, env, variables)
    return "deny" if left_out is not None else "allow"


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`, maps merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


class PoliciesFileSpec(Spec, frozen=True, kw_only=True):
    policies: dict[str, PolicySpec] = {}
    tests: list[PolicyCaseSpec] = []


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    spec: PolicySpec
    when: Any  # compiled CEL (or True) of its placement; None when it forbids no placement
    types: frozenset[str]
    ids: frozenset[str]
    source: str  # file:line
    owners: frozenset[str] = frozenset()  # whose targeting it limits
    unless: Any = None  # compiled CEL: the segment those owners may target

    def covers(self, widget_id: str, widget_type: str) -> bool:
        return self.when is not None and (widget_type in self.types or widget_id in self.ids)


_ERRORS = (RuntimeError, ValueError, TypeError, KeyError)


def policy_exclusion(
    policies: tuple[CompiledPolicy, ...],
    widget_id: str,
    widget_type: str,
    env: Any,
    variables: dict[str, Any],
) -> Exclusion | None:
    """The first placement policy that forbids this widget in this decision, or None. A policy
    whose rule cannot be evaluated for this user forbids (forbid wins when in doubt)."""
    for policy in policies:
        if not policy.covers(widget_id, widget_type):
            continue
        if policy.when is not True:
            try:
                held = evaluate(policy.when, env, variables) is True
            except _ERRORS:
                held = True
            if not held:
                continue
        return Exclusion(
            widget_id, Reason.POLICY, f"policy {policy.name}: {policy.spec.description}"
        )
    return None


def targeting_forbidden(
    policies: tuple[CompiledPolicy, ...], owner: str, env: Any, variables: dict[str, Any]
) -> str | None:
    """The name of the first policy that forbids `owner` to target this unit, or None. A
    segment rule that cannot be evaluated forbids (forbid wins when in doubt)."""
    for policy in policies:
        if owner not in policy.owners:
            continue
        try:
            allowed = evaluate(policy.unless, env, variables) is True
        except _ERRORS:
            allowed = False
        if not allowed:
            return policy.name
    return None


def forbidding(policies: dict[str, PolicySpec], dotted: str) -> tuple[str, str] | None:
    """(policy, attribute) of the first policy that forbids reading `dotted`, or None."""
    for name, spec in policies.items():
        for attribute in spec.forbid_attributes:
            if dotted == attribute or dotted.startswith(attribute + "."):
                return name, attribute
    return None
