"""Signals: the profile turned into the variables that layout rules (CEL) read. Pure.

Modes: `full` uses every signal; `basic` only declared traits (role, plan, industry...): behavioural
variables are present but empty, and widgets that read them are not shown; `default` knows nothing
of the user (personalization off, unknown user, or the profile store is down).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from app.engine.paths import LazyContext, evaluate
from app.engine.profile import CohortAdoption, PeerStats, ProfileData
from app.engine.propensity import TARGETS, PropensityModels
from app.engine.recs import Recs, recs_context
from app.engine.specs import IndustrySpec, PlanSpec, SignalsSpec
from app.engine.vocabulary import Vocabulary

Mode = Literal["full", "basic", "default"]

# Variables (or variable.member prefixes) that come from behaviour rather than declared traits.
BEHAVIOURAL = (
    "value",
    "events",
    "activation",
    "integrations",
    "features",
    "templates",
    "friction",
    "upgrade",
    "user.stage",
    "user.days_since_signup",
    "recs",
    "feed",
    "propensity",
)

ROLES = ("admin", "maker", "end_user")

# Words that layouts may use in text; industry presets override them.
DEFAULT_TERMS = {
    "customer": "customer",
    "customers": "customers",
    "deal": "deal",
    "account": "account",
}


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


@dataclass(frozen=True, slots=True)
class _Facts:
    """What every namespace's builder reads: the profile, as far as the mode lets it be read."""

    profile: ProfileData
    vocab: Vocabulary
    now: datetime
    behaviour: bool  # behavioural signals may be used (mode `full`)
    declared: bool  # declared traits may be used (mode `full` or `basic`)

    @property
    def signals(self) -> SignalsSpec:
        return self.vocab.signals


def build_context(
    profile: ProfileData,
    vocab: Vocabulary,
    *,
    now: datetime,
    mode: Mode,
    peers: PeerStats | None = None,
    screen: str = "",
    recs: Recs | None = None,
    propensity: PropensityModels | None = None,
    propensity_targets: Collection[str] = TARGETS,
) -> dict[str, Any]:
    """The variables of one decision at `now` (any zone: days are UTC days). Only the
    propensity targets named are scored (those the screen's rules read)."""
    if now.utcoffset() not in (None, timedelta(0)):
        now = now.astimezone(UTC)
    facts = _Facts(profile, vocab, now, behaviour=mode == "full", declared=mode != "default")
    role = _text(profile.user_traits.get("role")) if facts.declared else ""
    traits = profile.tenant_traits if facts.declared else {}
    plan_id = _text(traits.get("plan"), "free")
    plan = vocab.signals.plans.get(plan_id)
    industry_id, industry = vocab.industry(_text(traits.get("industry")) or None)
    cohort = (peers.integrations.get(industry_id, {}) if peers else {}) if facts.behaviour else {}
    value, events = _value_signals(facts)
    days_since_signup = (
        (now - profile.first_seen).days if profile.first_seen and facts.behaviour else 0
    )
    context: dict[str, Any] = {
        "screen": screen,
        "view": "",
        "personalization": mode,
        "user": {
            "id": profile.user_id if facts.declared else "",
            "role": role,
            "stage": "",
            "days_since_signup": days_since_signup,
        },
        "tenant": _tenant_signals(
            profile.tenant_id if facts.declared else "", traits, plan_id, industry_id
        ),
        "plan": {
            "id": plan_id,
            "label": plan.label if plan else plan_id,
            "features": list(plan.features) if plan else [],
            "next": (plan.next or "") if plan else "",
        },
        "value": value,
        "events": events,
        "activation": _activation_signals(facts, role),
        "integrations": _integration_signals(facts, industry, cohort),
        "features": _feature_signals(facts),
        "templates": _template_signals(facts, industry_id, industry),
        "friction": _friction_signals(facts),
        "upgrade": _upgrade_signals(facts, plan),
        "recs": recs_context(recs if facts.behaviour else None),
        "presets": {
            "industry": industry_id,
            "label": industry.label,
            "terms": {**DEFAULT_TERMS, **industry.terms},
        },
    }
    if facts.behaviour:
        context["user"]["stage"] = lifecycle_stage(context, vocab)
    context["propensity"] = propensity_context(
        context, propensity if facts.behaviour else None, propensity_targets
    )
    return context


def _tenant_signals(
    tenant_id: str, traits: dict[str, Any], plan_id: str, industry_id: str
) -> dict[str, Any]:
    """`tenant.*`: declared account traits (the industry as presets know it), and seat use."""
    seats = _int(traits.get("seats"))
    seats_used = _int(traits.get("seats_used"))
    return {
        "id": tenant_id,
        "plan": plan_id,
        "industry": industry_id,
        "region": _text(traits.get("region")),
        "seats": seats,
        "seats_used": seats_used,
        "seat_utilization": round(seats_used / seats, 3) if seats else 0.0,
        "at_seat_limit": bool(seats) and seats_used >= seats,
    }


def _value_signals(facts: _Facts) -> tuple[dict[str, Any], dict[str, Any]]:
    """`value.*` (value events in 7, 30 and 90 days, the trend, recency, power use) and
    `events.<name>.d7|d30|d90` for every event the signals speak of (and any other seen)."""
    signals = facts.signals
    today = facts.now.date()
    windows: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in facts.vocab.tracked_events}
    value_events = set(signals.events.value)
    power_events = set(signals.events.power)
    value = [0, 0, 0, 0]  # d7, d30, d90, previous 7 days
    power_d30 = 0
    last_value_day = None
    if facts.behaviour:
        for row in facts.profile.event_days:
            age = (today - row.day).days
            if age < 0 or age >= 90:
                continue
            w = windows.setdefault(row.event, [0, 0, 0, 0])
            slots = (age < 7, age < 30, True, 7 <= age < 14)
            for i, hit in enumerate(slots):
                if hit:
                    w[i] += row.n
                    if row.event in value_events:
                        value[i] += row.n
            if row.event in value_events and (last_value_day is None or row.day > last_value_day):
                last_value_day = row.day
            if row.event in power_events and age < 30:
                power_d30 += row.n
    days_since_last = (today - last_value_day).days if last_value_day else -1
    return (
        {
            "d7": value[0],
            "d30": value[1],
            "d90": value[2],
            "trend_7d": value[0] - value[3],
            "days_since_last": days_since_last,
            "power_d30": power_d30,
        },
        {name: {"d7": w[0], "d30": w[1], "d90": w[2]} for name, w in windows.items()},
    )


_EMPTY_STEP = {"id": "", "label": "", "body": "", "href": "", "done": False}


def _activation_signals(facts: _Facts, role: str) -> dict[str, Any]:
    """`activation.*`: the role's activation steps, which are done, and the next one."""
    profile = facts.profile
    seen_user = (
        {row.event for row in profile.event_days} | set(profile.milestones)
        if facts.behaviour
        else set()
    )
    seen_anyone = (set(profile.tenant_events) if facts.behaviour else set()) | seen_user
    items = []
    steps: dict[str, bool] = {}  # every step, so rules may name any of them whatever the role
    for step in facts.signals.activation:
        done = step.event in (seen_anyone if step.scope == "tenant" else seen_user)
        steps[step.id] = done
        if step.for_roles and role and role not in step.for_roles:
            continue
        items.append(
            {"id": step.id, "label": step.label, "body": step.body, "href": step.href, "done": done}
        )
    done_count = sum(1 for item in items if item["done"])
    upcoming = next((item for item in items if not item["done"]), None)
    return {
        "done": done_count,
        "total": len(items),
        "complete": bool(items) and done_count == len(items),
        "activated": bool(items) and done_count >= steps_to_activate(facts.signals, len(items)),
        "has_next": upcoming is not None,
        "next": upcoming or _EMPTY_STEP,
        "items": items,
        "steps": steps,
    }


def steps_to_activate(signals: SignalsSpec, steps: int) -> int:
    """How many of a role's `steps` activation steps make a user activated."""
    wanted = signals.activated_after
    return steps if wanted is None else min(wanted, steps)


def _integration_signals(
    facts: _Facts, industry: IndustrySpec, cohort: dict[str, CohortAdoption]
) -> dict[str, Any]:
    """`integrations.*`: what the tenant connected, and the industry's suggestions it has not,
    most adopted by its cohort first."""
    connected = (
        sorted(k for k, v in facts.profile.integrations.items() if v) if facts.behaviour else []
    )
    suggested: list[dict[str, Any]] = []
    for integration_id in industry.integrations:
        if integration_id in connected:
            continue
        spec = facts.vocab.presets.integrations.get(integration_id)
        adoption = cohort.get(integration_id)
        suggested.append(
            {
                "id": integration_id,
                "name": spec.name if spec else integration_id,
                "connect_href": (
                    spec.connect_href
                    if spec and spec.connect_href
                    else f"/settings/integrations/{integration_id}/connect"
                ),
                "peer_adoption": (
                    {"share": round(adoption.share, 2), "cohort": adoption.cohort}
                    if adoption
                    else None
                ),
            }
        )
    suggested.sort(key=lambda s: -(s["peer_adoption"] or {"share": 0.0})["share"])
    return {
        "count": len(connected),
        "connected": connected,
        "suggested": suggested[:3],
        # a prompt offers two or three tools: one left is not worth a prompt
        "has_suggestions": len(suggested) >= 2,
    }


def _facet_values(facts: _Facts, kind: str) -> list[str]:
    if not facts.behaviour:
        return []
    return sorted(f.value for f in facts.profile.facets if f.kind == kind)


def _feature_signals(facts: _Facts) -> dict[str, Any]:
    """`features.*`: the distinct features used."""
    used = _facet_values(facts, "feature")
    return {"diversity": len(used), "used": used}


def _template_signals(facts: _Facts, industry_id: str, industry: IndustrySpec) -> dict[str, Any]:
    """`templates.*`: templates used, and the industry's templates not used yet."""
    used = _facet_values(facts, "template")
    label = industry.label.lower() if industry_id != "default" else "teams like yours"
    offers = [
        {
            "id": t.id,
            "name": t.name,
            "href": t.href or f"/templates/{t.id}",
            "reason": f"Popular with {label} teams"
            if industry_id != "default"
            else "Popular with teams like yours",
        }
        for t in industry.templates
        if t.id not in used
    ]
    return {
        "count": len(used),
        "used": used,
        "suggested": offers[:3],
        "has_suggestions": bool(offers),
    }


def _friction_signals(facts: _Facts) -> dict[str, Any]:
    """`friction.*`: errors within the friction window, by feature; the feature with the most,
    its latest message, and the shipped help article for it."""
    signals = facts.signals
    friction_window = facts.now - timedelta(minutes=signals.friction.window_minutes)
    errors = Counter[str]()
    last_message: dict[str, str] = {}
    if facts.behaviour:
        for ev in facts.profile.recent:
            if ev.event == "error_shown" and ev.ts >= friction_window:
                feature = _text(ev.properties.get("feature"), "unknown")
                errors[feature] += 1
                last_message[feature] = _text(ev.properties.get("message"))
    top_feature, top_errors = errors.most_common(1)[0] if errors else ("", 0)
    article = next(
        (a for a in facts.vocab.help.articles if top_feature and top_feature in a.features), None
    )
    return {
        "errors": sum(errors.values()),
        "feature": top_feature,
        "feature_errors": top_errors,
        "repeated": top_errors >= signals.friction.repeat_threshold,
        "message": last_message.get(top_feature, ""),
        "has_article": article is not None,
        "article": {
            "id": article.id,
            "title": article.title,
            "href": article.href,
            "kind": article.kind,
            "summary": article.summary,
        }
        if article
        else {"id": "", "title": "", "href": "", "kind": "article", "summary": ""},
    }


_NO_UPGRADE: dict[str, Any] = {
    "pending": False,
    "kind": "limit",
    "name": "",
    "screen": "",
    "plan": "",
    "plan_label": "",
    "used": 0,
    "max": 0,
    "reason": "",
    "label": "",
    "roi": "",
}


def _upgrade_signals(facts: _Facts, plan: PlanSpec | None) -> dict[str, Any]:
    """`upgrade.*`: the latest upgrade trigger within the trigger window (a limit hit, or a
    feature attempted that the plan lacks and a plan up the path has), since any upgrade."""
    if not facts.behaviour or plan is None:
        return dict(_NO_UPGRADE)
    signals = facts.signals
    recent = facts.profile.recent
    horizon = facts.now - timedelta(hours=signals.friction.trigger_hours)
    upgraded_at = max((ev.ts for ev in recent if ev.event == "plan_upgraded"), default=None)
    for ev in sorted(recent, key=lambda e: e.ts, reverse=True):
        if ev.ts < horizon or (upgraded_at and ev.ts <= upgraded_at):
            break
        target_id = plan.next or ""
        if ev.event == "limit_reached" and plan.next:
            name = _text(ev.properties.get("limit"))
        elif ev.event == "feature_attempted":
            name = _text(ev.properties.get("feature"))
            if not name or name in plan.features:
                continue
            target_id = _first_plan_with(signals.plans, plan.next, name)
            if not target_id:
                continue  # no plan offers it: nothing to upgrade to
        else:
            continue
        target = signals.plans.get(target_id)
        feature_spec = signals.features.get(name)
        label = feature_spec.label if feature_spec else name
        return {
            "pending": True,
            "kind": "limit" if ev.event == "limit_reached" else "feature",
            "name": name,
            "screen": _text(ev.properties.get("screen")),
            "plan": target_id,
            "plan_label": target.label if target else target_id,
            "used": _int(ev.properties.get("used")),
            "max": _int(ev.properties.get("max")),
            "reason": (
                f"You reached the {name} limit of the {plan.label} plan."
                if ev.event == "limit_reached"
                else f"You tried {label}, which the {plan.label} plan does not include."
            ),
            "label": label,
            "roi": feature_spec.roi if feature_spec else "",
        }
    return dict(_NO_UPGRADE)


def propensity_context(
    context: dict[str, Any],
    models: PropensityModels | None,
    targets: Collection[str] = TARGETS,
) -> dict[str, Any]:
    """`propensity.<target>`: the trained models' probability for this user (0 when there is no
    model or the target does not apply), `propensity.scored.<target>`, and the features that raise
    each score most, as `propensity.drivers.<target>` ({signal, value} each)."""
    out: dict[str, Any] = {"scored": {}, "drivers": {}}
    for target in TARGETS:
        score = (
            models.score_context(target, context)
            if models is not None and target in targets
            else None
        )
        out[target] = round(score.probability, 3) if score is not None else 0.0
        out["scored"][target] = score is not None
        out["drivers"][target] = (
            [_driver(name, value) for name, value, _ in score.drivers] if score is not None else []
        )
    return out


def _driver(name: str, value: float) -> dict[str, Any]:
    """A model feature as a why driver: `tenant.plan=trial` reads as tenant.plan = trial (or
    'not trial'); counts are whole numbers."""
    path, equals, expected = name.partition("=")
    if equals:
        return {"signal": path, "value": expected if value else f"not {expected}"}
    return {"signal": path, "value": int(value) if float(value).is_integer() else round(value, 3)}


def _first_plan_with(plans: dict[str, PlanSpec], start: str | None, feature: str) -> str:
    """The first plan up the upgrade path from `start` that includes `feature`, or ''."""
    seen: set[str] = set()
    while start and start not in seen and start in plans:
        if feature in plans[start].features:
            return start
        seen.add(start)
        start = plans[start].next
    return ""


# Context roots built from a profile's recent raw events (the rest come from its aggregates).
RECENT_ROOTS = frozenset({"friction", "upgrade"})


def reads_recent(trie: Mapping[str, Any]) -> bool:
    """Whether rules reading the paths of `trie` (as `build_trie` makes it) need the profile's
    recent events."""
    return not RECENT_ROOTS.isdisjoint(trie)


def lifecycle_stage(context: dict[str, Any], vocab: Vocabulary) -> str:
    """The first lifecycle stage whose rule holds; rules that fail to evaluate are skipped."""
    env = LazyContext(context, vocab.stage_trie)
    for stage in vocab.stages:
        try:
            if evaluate(stage.program, env, context) is True:
                return stage.stage
        except (RuntimeError, ValueError, TypeError, KeyError):
            continue
    return ""


def signal_schema(vocab: Vocabulary) -> dict[str, Any]:
    """A full context for a typical user: the names rules may use, and sample values."""
    sample = ProfileData(
        tenant_id="t",
        user_id="u",
        known=True,
        user_traits={"role": "admin"},
        tenant_traits={"plan": "trial"},
    )
    return build_context(sample, vocab, now=datetime(2026, 1, 1), mode="full", screen="home")
