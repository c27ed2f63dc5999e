"""The decision: profile + layouts + candidates + time + seed → layout descriptor. Pure.

Every widget that is not shown has a reason in the trace, and every widget shown carries its "why".
No I/O, no clock, no randomness except what is passed in.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from app.engine.experiments import (
    EXPERIMENT_SENTENCE,
    CompiledExperiment,
    Enrolment,
    WidgetChange,
    enrol,
)
from app.engine.flags import FlagEvaluator, FlagReason, FlagResult, Unit, compile_flag_set
from app.engine.model import CompiledWidget, Layouts
from app.engine.paths import LazyContext, evaluate
from app.engine.policies import policy_exclusion, targeting_forbidden
from app.engine.profile import PeerStats, ProfileData
from app.engine.propensity import TARGETS, PropensityModels
from app.engine.reasons import Exclusion, Reason
from app.engine.recs import Recs, feed_of
from app.engine.signals import Mode, build_context
from app.engine.templates import render
from app.engine.vocabulary import Vocabulary
from widgets import SCHEMA_VERSION, WIDGET_KINDS
from widgets.base import Driver, ExperimentRef, Why, WhySource
from widgets.descriptor import (
    LayoutDescriptor,
    PresetsDescriptor,
    SlotDescriptor,
    ViewDescriptor,
    ViewOption,
    Widget,
)

_EVAL_ERRORS = (RuntimeError, ValueError, TypeError, KeyError)
_UTC_OFFSET = timedelta(0)


@dataclass(frozen=True, slots=True)
class DecisionInput:
    screen: str
    profile: ProfileData
    mode: Mode
    now: datetime
    seed: int  # 64 random bits from the caller; names the decision
    view: str | None = None
    peers: PeerStats | None = None
    degraded: bool = False
    recs: Recs | None = None  # the recommender's candidates, when it was asked
    propensity: PropensityModels | None = None  # trained models, when there are any
    holdout: bool = False  # the user is in the global holdout (the mode is then `default`)
    # the purposes the user granted (consent); None: those of the mode's preset
    purposes: frozenset[str] | None = None


@dataclass(slots=True)
class Decision:
    descriptor: LayoutDescriptor
    trace: list[Exclusion] = field(default_factory=list)  # every widget left out, and why
    flags: dict[str, FlagResult] = field(default_factory=dict)  # the flags it evaluated
    enrolments: list[Enrolment] = field(default_factory=list)  # experiment arms it served


class UnknownScreenError(LookupError):
    pass


def decision_id(seed: int) -> str:
    return f"dcs_{seed & (2**64 - 1):016x}"


def decide(layouts: Layouts, inp: DecisionInput) -> Decision:
    if inp.now.utcoffset() not in (None, _UTC_OFFSET):  # one instant, read in UTC days
        inp = dataclasses.replace(inp, now=inp.now.astimezone(UTC))
    screen = layouts.screens.get(inp.screen)
    if screen is None:
        raise UnknownScreenError(inp.screen)
    granted = granted_purposes(layouts.vocabulary, inp)
    ctx = _consented_context(layouts, inp, granted, screen.propensity_targets)
    role = ctx["user"]["role"]
    declared = _flag_context(inp, ctx, layouts)
    flags = evaluate_flags(layouts, screen.flags_evaluated, inp, declared)
    ctx["flags"] = {key: result.value for key, result in flags.items()}
    if declared is not ctx:
        declared["flags"] = ctx["flags"]
    # Eligibility reads at least the declared traits too: a tenant's enrolment must not depend
    # on whether the user who comes first has opted out.
    enrolments = enrolments_for(layouts, inp, declared, flags)
    arms = Arms.of(layouts, enrolments, flags, ctx)
    chosen_view = inp.view or arms.views.get(screen.name)
    view = (screen.view(chosen_view) if chosen_view else None) or screen.view_for_role(role)
    ctx["view"] = view.id
    env = LazyContext(ctx, layouts.context_trie)
    trace: list[Exclusion] = []

    chosen: list[tuple[CompiledWidget, Widget]] = []
    recs_missing = False  # a widget fed by the recommender had to give way to rules
    for slot in screen.slots:
        for written in slot.widgets:
            family = screen.families.get(written.id, ())
            left_out = arms.exclusion(written.id)
            if left_out is not None:
                if arms.watches(written.id):  # hidden in this arm: would it have been shown?
                    held, *_ = _eligibility(
                        written, inp, view.id, family, layouts, env, ctx, granted
                    )
                    arms.seen(written.id, held is None)
                trace.append(left_out)
                continue
            w = arms.apply(written)
            left_out, answered, w_env, w_ctx = _eligibility(
                w, inp, view.id, family, layouts, env, ctx, granted
            )
            arms.seen(w.id, left_out is None)
            recs_missing |= not answered
            if left_out is not None:
                trace.append(left_out)
                continue
            widget = _build(w, w_env, w_ctx, inp.mode)
            if isinstance(widget, Exclusion):
                trace.append(widget)
                continue
            chosen.append((w, arms.mark(w.id, widget)))

    # A widget that can be shown stands in for the widgets it replaces.
    replaced_by = {r: w.id for w, _ in chosen for r in w.spec.replaces}
    for w, _ in chosen:
        if w.id in replaced_by:
            trace.append(Exclusion(w.id, Reason.REPLACED, f"replaced by {replaced_by[w.id]}"))
    chosen = [pair for pair in chosen if pair[0].id not in replaced_by]

    # Rank within slots, then keep one next step and at most one modal on the screen.
    chosen.sort(key=lambda pair: (-pair[0].spec.priority, pair[0].order))
    kept: dict[str, list[Widget]] = {slot.id: [] for slot in screen.slots}
    limits = {slot.id: slot.max for slot in screen.slots}
    once = OncePerScreen()
    for w, widget in chosen:
        if once.taken(w.type):
            detail = _ONCE_DETAILS.get(str(w.once_per_screen), "one per screen")
            trace.append(Exclusion(w.id, Reason.ONCE_PER_SCREEN, detail))
            continue
        if len(kept[w.slot]) >= limits[w.slot]:
            trace.append(Exclusion(w.id, Reason.SLOT_FULL, f"slot '{w.slot}' is full"))
            continue
        once.take(w.type)
        kept[w.slot].append(widget)

    order = {w.id: w.order for w, _ in chosen}
    slots = [
        SlotDescriptor(id=slot.id, widgets=sorted(kept[slot.id], key=lambda x: order[x.id]))
        for slot in screen.slots
        if kept[slot.id]
    ]
    descriptor = LayoutDescriptor(
        schema_version=SCHEMA_VERSION,
        screen=screen.name,
        layout=f"{screen.name}/{view.id}",
        decision_id=decision_id(inp.seed),
        generated_at=inp.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        personalized=inp.mode != "default",
        degraded=inp.degraded or recs_missing,
        view=ViewDescriptor(
            id=view.id,
            label=view.label,
            options=[
                ViewOption(id=v.id, label=v.label) for v in screen.spec.views if v.id != view.id
            ],
        ),
        presets=_presets(ctx, layouts) if inp.mode != "default" else None,
        slots=slots,
        flags={key: flags[key].value for key in layouts.client_flags},
        holdout=inp.holdout,
    )
    enrolments = arms.exposures(layouts, enrolments, screen.name)
    return Decision(descriptor=descriptor, trace=trace, flags=flags, enrolments=enrolments)


def enrolments_for(
    layouts: Layouts, inp: DecisionInput, ctx: dict[str, Any], flags: Collection[str]
) -> list[Enrolment]:
    """The experiment arms this decision serves: for a known user outside the holdout, of the
    experiments that change this screen or a flag it evaluates."""
    experiments = layouts.experiments
    if inp.holdout or not inp.profile.known or not experiments.experiments:
        return []
    keys = experiments.for_screen.get(inp.screen)
    if keys is None:  # outside a screen (OpenFeature): the experiments of the flags evaluated
        keys = tuple(experiments.relevant(None, frozenset(flags)))
    if not keys:
        return []
    env = LazyContext(ctx, layouts.context_trie)

    def eligible(exp: CompiledExperiment) -> bool:
        if exp.when is True:
            return True
        try:
            return evaluate(exp.when, env, ctx) is True
        except _EVAL_ERRORS:
            return False

    p = inp.profile
    found = enrol(experiments, keys, p.tenant_id, p.user_id, p.assignments, eligible)
    targeting = layouts.targeting
    if not targeting or not found:
        return found
    out = []
    for e in found:  # forbid wins: an owner targets only the segment its policies allow
        exp = experiments.experiments[e.experiment]
        if not exp.spec.owner or not targeting_forbidden(targeting, exp.spec.owner, env, ctx):
            out.append(e)
        elif not e.new:  # stored: control, as for a stopped experiment; new: not enrolled
            out.append(Enrolment(e.experiment, exp.control, e.unit_id, live=False))
    return out


def _arm_may_set(result: FlagResult | None) -> bool:
    """An arm serves its variant of a flag the decision evaluated, unless the flag itself holds
    it back: switched off, outside its schedule, a prerequisite not met, or an error."""
    if result is None or result.reason in (FlagReason.DISABLED, FlagReason.ERROR):
        return False
    return not result.note.startswith("prerequisite")


@dataclass(frozen=True, slots=True)
class _Combined:
    """What one combination of arms changes whatever the decision: made once per combination."""

    views: dict[str, str]
    widgets: dict[str, WidgetChange]
    touched: dict[str, tuple[str, str]]  # widget → (experiment, arm)
    excluded: dict[str, Exclusion]
    watched: frozenset[str]
    flag_arms: tuple[tuple[str, dict[str, FlagResult]], ...]  # (experiment, flag → result)
    server_exposed: bool  # an experiment among them is exposed by the server (see exposures)

    @classmethod
    def of(
        cls, experiments: dict[str, CompiledExperiment], key: Sequence[tuple[str, str]]
    ) -> _Combined:
        views: dict[str, str] = {}
        widgets: dict[str, WidgetChange] = {}
        touched: dict[str, tuple[str, str]] = {}
        excluded: dict[str, Exclusion] = {}
        watched: set[str] = set()
        flag_arms = []
        for experiment, arm_id in key:
            exp = experiments[experiment]
            arm = exp.by_id.get(arm_id)
            if arm is None:
                continue
            for w in exp.widgets:
                touched.setdefault(w, (experiment, arm_id))
            if exp.server_exposure:
                watched |= exp.widgets
            views.update(arm.views)
            for widget_id, change in arm.widgets.items():
                widgets.setdefault(widget_id, change)
            excluded.update(arm.excluded)
            if arm.flag_results:
                flag_arms.append((experiment, arm.flag_results))
        exposed = any(experiments[experiment].server_exposure for experiment, _ in key)
        return cls(views, widgets, touched, excluded, frozenset(watched), tuple(flag_arms), exposed)


_NO_ARMS = _Combined({}, {}, {}, {}, frozenset(), (), False)
_COMBINATIONS_KEPT = 4096


class Arms:
    """What the user's experiment arms change in one decision: flags (applied at once to the
    decision's variables), the screen's view, and widgets: hidden, swapped, with other props or
    priority; every widget an experiment touches says so in its "why", in every arm."""

    __slots__ = ("_combined", "_eligible", "_excluded", "_served", "_touched", "_watched",
                 "_widgets", "views")  # fmt: skip

    def __init__(self, combined: _Combined = _NO_ARMS) -> None:
        self._combined = combined
        self.views = combined.views
        self._widgets = combined.widgets
        self._touched = combined.touched
        self._excluded = combined.excluded
        self._watched = combined.watched  # touched widgets of experiments the server exposes
        self._eligible: set[str] = set()  # those of them whose rule held in this decision
        self._served: set[str] = set()  # experiments whose flag variant this decision served

    @classmethod
    def of(
        cls,
        layouts: Layouts,
        enrolments: list[Enrolment],
        flags: dict[str, FlagResult],
        ctx: dict[str, Any],
    ) -> Arms:
        if not enrolments:
            return cls()
        experiments = layouts.experiments
        key = tuple([(e.experiment, e.arm) for e in enrolments])
        combined = experiments.combined.get(key)
        if combined is None:
            if len(experiments.combined) >= _COMBINATIONS_KEPT:
                experiments.combined.clear()
            combined = experiments.combined[key] = _Combined.of(experiments.experiments, key)
        arms = cls(combined)
        for experiment, results in combined.flag_arms:
            for flag, result in results.items():
                if not _arm_may_set(flags.get(flag)):
                    continue  # not asked for here, or held back by its kill switch or schedule
                flags[flag] = result
                ctx["flags"][flag] = result.value
                arms._served.add(experiment)
        return arms

    def watches(self, widget_id: str) -> bool:
        return widget_id in self._watched

    def seen(self, widget_id: str, eligible: bool) -> None:
        """Whether a widget an exposed-by-the-server experiment touches could be shown here."""
        if eligible and widget_id in self._watched:
            self._eligible.add(widget_id)

    def exposures(
        self, layouts: Layouts, enrolments: list[Enrolment], screen: str | None
    ) -> list[Enrolment]:
        """The enrolments this decision exposed as the server counts exposure, for units served
        the arm they are stored in: a flag variant served; for arms not seen alike, a decision
        on a screen whose view an arm changes, or a touched widget whose rule held (in any
        arm)."""
        if not self._served and not self._combined.server_exposed:
            return enrolments  # nothing this decision did counts as an exposure
        out = []
        for e in enrolments:
            exp = layouts.experiments.experiments[e.experiment]
            exposed = e.live and (
                e.experiment in self._served
                or (
                    exp.server_exposure
                    and (screen in exp.view_screens or not exp.widgets.isdisjoint(self._eligible))
                )
            )
            out.append(msgspec.structs.replace(e, exposed=True) if exposed else e)
        return out

    def exclusion(self, widget_id: str) -> Exclusion | None:
        return self._excluded.get(widget_id) if self._excluded else None

    def apply(self, w: CompiledWidget) -> CompiledWidget:
        change = self._widgets.get(w.id) if self._widgets else None
        if change is None or change.widget is None:
            return w
        changed: CompiledWidget = change.widget
        return changed

    def mark(self, widget_id: str, widget: Widget) -> Widget:
        touched = self._touched.get(widget_id) if self._touched else None
        if touched is None:
            return widget
        why = widget.why
        ref, driver = _experiment_tags(*touched)
        marked = msgspec.structs.replace(
            why,
            summary=f"{why.summary} {EXPERIMENT_SENTENCE}" if why.summary else EXPERIMENT_SENTENCE,
            source="experiment",
            drivers=[*why.drivers, driver],
            experiment=ref,
        )
        return msgspec.structs.replace(widget, why=marked)


@functools.lru_cache(maxsize=1024)
def _experiment_tags(key: str, arm: str) -> tuple[ExperimentRef, Driver]:
    """The why's reference to an experiment's arm and its driver, made once per arm."""
    return ExperimentRef(key=key, arm=arm), Driver(signal=f"experiment.{key}", value=arm)


def _flag_context(inp: DecisionInput, ctx: dict[str, Any], layouts: Layouts) -> dict[str, Any]:
    """What flag rules read: the decision's variables, but at least the declared traits (role,
    plan, industry) of a known user whose layout is not personalized (opted out, or in the
    holdout): flags are the product's switches, not personalization. Behavioural signals only
    in `full`."""
    if inp.mode != "default" or not inp.profile.known or inp.degraded:
        return ctx
    return build_context(
        inp.profile, layouts.vocabulary, now=inp.now, mode="basic", screen=inp.screen,
        propensity_targets=(),
    )  # fmt: skip


def flags_for(
    layouts: Layouts,
    keys: Collection[str],
    profile: ProfileData,
    mode: Mode,
    now: datetime,
    *,
    peers: PeerStats | None = None,
    propensity: PropensityModels | None = None,
    holdout: bool = False,
) -> FlagAnswer:
    """The flags named (unknown keys are skipped), for one user, outside any screen: what
    OpenFeature clients ask for. Rules see the signals the personalization mode allows; an
    experiment that sets one of these flags enrols the user (outside the holdout) and its arm's
    variant is served."""
    if now.utcoffset() not in (None, _UTC_OFFSET):
        now = now.astimezone(UTC)
    if mode == "default" and profile.known:
        mode = "basic"  # declared traits, whatever the personalization (see _flag_context)
    ctx = build_context(
        profile, layouts.vocabulary, now=now, mode=mode, peers=peers, propensity=propensity
    )
    inp = DecisionInput(screen="", profile=profile, mode=mode, now=now, seed=0, holdout=holdout)
    flags = evaluate_flags(layouts, {k for k in keys if k in layouts.flags}, inp, ctx)
    ctx["flags"] = {key: result.value for key, result in flags.items()}
    enrolments = enrolments_for(layouts, inp, ctx, flags)
    arms = Arms.of(layouts, enrolments, flags, ctx)
    return FlagAnswer(flags, arms.exposures(layouts, enrolments, None))


@dataclass(frozen=True, slots=True)
class FlagAnswer:
    results: dict[str, FlagResult]
    enrolments: list[Enrolment]


def evaluate_flags(
    layouts: Layouts, keys: Collection[str], inp: DecisionInput, ctx: dict[str, Any]
) -> dict[str, FlagResult]:
    """The flags named, for the decision's user and signals (before `ctx` has `flags`). Rollouts
    bucket on the ids whatever the personalization mode lets rules see."""
    if not keys:
        return {}
    wanted = keys if isinstance(keys, frozenset) else frozenset(keys)
    flag_set = layouts.flag_sets.get(wanted)
    if flag_set is None:
        if len(layouts.flag_sets) >= _FLAG_SETS_KEPT:  # OpenFeature callers name any keys
            layouts.flag_sets.clear()
        flag_set = layouts.flag_sets[wanted] = compile_flag_set(layouts.flags, wanted)
    unit = Unit(inp.profile.tenant_id, inp.profile.user_id)

    def evaluator() -> FlagEvaluator:
        env = LazyContext(ctx, layouts.context_trie)
        return FlagEvaluator(layouts.flags, unit, ctx, env, inp.now)

    result: dict[str, FlagResult] = flag_set(ctx, unit, evaluator)
    return result


_FLAG_SETS_KEPT = 256


CROSS_TENANT = "cross_tenant"
MODELLED = "modelled"
BEHAVIOURAL = "behavioural"
DECLARED = "declared"
_PRESET_OF_MODE = {"full": "full", "basic": "basic", "default": "off"}


def granted_purposes(vocab: Vocabulary, inp: DecisionInput) -> frozenset[str]:
    """The purposes this decision may read signals of: the user's own, or their level's."""
    if inp.purposes is not None:
        return inp.purposes
    return vocab.granted(_PRESET_OF_MODE[inp.mode])


def _consented_context(
    layouts: Layouts, inp: DecisionInput, granted: frozenset[str], targets: Collection[str]
) -> dict[str, Any]:
    """The decision's variables: signals of purposes not granted are never read (other teams'
    evidence, model scores, usage...)."""
    vocab = layouts.vocabulary
    cross_tenant = CROSS_TENANT in granted or not vocab.signals.purposes
    modelled = MODELLED in granted or not vocab.signals.purposes
    return build_context(
        inp.profile,
        vocab,
        now=inp.now,
        mode=_context_mode(inp.mode, granted, vocab),
        peers=inp.peers if cross_tenant else None,
        screen=inp.screen,
        recs=inp.recs if cross_tenant or inp.recs is None else _own_recs(inp.recs),
        propensity=inp.propensity if modelled else None,
        propensity_targets=targets,
    )


def _context_mode(mode: Mode, granted: frozenset[str], vocab: Vocabulary) -> Mode:
    """What the context is built with: behavioural signals only when that purpose is granted,
    declared traits only when that one is."""
    if mode == "default" or not vocab.signals.purposes:
        return mode
    if DECLARED not in granted:
        return "default"
    if mode == "full" and BEHAVIOURAL not in granted:
        return "basic"
    return mode


def _own_recs(recs: Recs) -> Recs:
    """Of the recommender's answer, only what rests on the user's own usage (help for their
    errors), when learning from other teams is not granted."""
    return msgspec.structs.replace(recs, integrations=(), templates=())


def _eligibility(
    w: CompiledWidget,
    inp: DecisionInput,
    view: str,
    family: tuple[str, ...],
    layouts: Layouts,
    env: Any,
    ctx: dict[str, Any],
    granted: frozenset[str],
) -> tuple[Exclusion | None, bool, Any, dict[str, Any]]:
    """Why the widget is left out (None if it may be shown), whether the recommender answered
    for it, and the variables it is built with (a fed widget's include its `feed`)."""
    left_out = _static_exclusion(w, inp, view, family, granted)
    if left_out is None and layouts.policies:
        covering = layouts.placements(w.id, w.type)
        if covering:
            left_out = policy_exclusion(covering, w.id, w.type, env, ctx)
    answered = True
    if left_out is None and w.feed is not None:
        left_out, answered = _feed_missing(w, inp)
        if left_out is None:
            name = w.feed.source.removeprefix("recs.")
            ctx = {**ctx, "feed": feed_of(inp.recs, name, w.feed.max)}
            env = LazyContext(ctx, layouts.context_trie)
    if left_out is None:
        left_out = _rule_exclusion(w, env, ctx, layouts.vocabulary.signals.confidence_floor)
    return left_out, answered, env, ctx


def _presets(ctx: dict[str, Any], layouts: Layouts) -> PresetsDescriptor | None:
    industry_id, industry = layouts.vocabulary.industry(ctx["tenant"]["industry"])
    if industry_id == "default":
        return None
    return PresetsDescriptor(
        industry=industry_id,
        terms=dict(industry.terms),
        default_fields=list(industry.default_fields),
        reports=list(industry.reports),
    )


def _feed_missing(w: CompiledWidget, inp: DecisionInput) -> tuple[Exclusion | None, bool]:
    """Why the recommender cannot feed this widget (None if it can), and whether it answered."""
    assert w.feed is not None
    recs = inp.recs
    if recs is None or not recs.available:
        status = recs.status if recs is not None else "off"
        detail = f": {recs.detail}" if recs is not None and recs.detail else ""
        reason = f"the recommender did not answer ({status}{detail}); rules-only widgets stand in"
        return Exclusion(w.id, Reason.RECOMMENDER_UNAVAILABLE, reason), status == "off"
    count = len(recs.feed(w.feed.source.removeprefix("recs.")))
    if count < w.feed.min:
        detail = f"{w.feed.source} has {count} candidates; this widget needs {w.feed.min}"
        return Exclusion(w.id, Reason.TOO_FEW_CANDIDATES, detail), True
    return None, True


def _static_exclusion(
    w: CompiledWidget,
    inp: DecisionInput,
    view: str,
    family: tuple[str, ...] = (),
    granted: frozenset[str] = frozenset(),
) -> Exclusion | None:
    """Why a widget is left out whatever its rule says, or None. Dismissing a widget also rests
    the widgets of its family (those it replaces or that replace it): the user said no to that
    offer, whoever fills it."""
    if w.spec.views and view not in w.spec.views:
        return Exclusion(w.id, Reason.NOT_FOR_VIEW, f"only for views {', '.join(w.spec.views)}")
    if inp.mode == "default" and not w.spec.in_default:
        return Exclusion(w.id, Reason.NOT_IN_DEFAULT, "not part of the default layout")
    if inp.mode == "default":
        return None
    missing = w.purposes - granted if w.purposes else None
    if missing:
        detail = f"rests on {', '.join(sorted(missing))}, which this user has not granted"
        return Exclusion(w.id, Reason.CONSENT, detail)
    return _suppression(w, inp, family)


def _suppression(
    w: CompiledWidget, inp: DecisionInput, family: tuple[str, ...]
) -> Exclusion | None:
    """What the user did with this widget (or its family) that rests it, or None."""
    rest = timedelta(days=w.suppress.cooldown_days)
    for other in family:
        kin = inp.profile.widgets.get(other)
        if kin is not None and kin.dismissed_at and inp.now - kin.dismissed_at < rest:
            detail = f"{other} was dismissed; resting for its cool-down"
            return Exclusion(w.id, Reason.FAMILY_DISMISSED, detail)
    state = inp.profile.widgets.get(w.id)
    if state is None:
        return None
    if state.dismissed_at and inp.now - state.dismissed_at < rest:  # the user's own choice
        return Exclusion(w.id, Reason.DISMISSED, "dismissed; resting for its cool-down")
    if w.suppress.hide_when_completed and state.completed_at:
        return Exclusion(w.id, Reason.COMPLETED, "completed")
    if w.suppress.max_views is not None and state.views >= w.suppress.max_views:
        return Exclusion(w.id, Reason.VIEW_CAP, "shown often enough")
    return None


def _rule_exclusion(
    w: CompiledWidget, env: Any, ctx: dict[str, Any], floor: float
) -> Exclusion | None:
    """Why a widget's rule or confidence leaves it out, or None."""
    try:
        if evaluate(w.when, env, ctx) is not True:
            return Exclusion(w.id, Reason.RULE_FALSE, "rule does not hold")
        confidence = (
            w.confidence
            if isinstance(w.confidence, (int, float))
            else float(evaluate(w.confidence, env, ctx))
        )
    except _EVAL_ERRORS as exc:
        return Exclusion(w.id, Reason.RULE_ERROR, f"rule could not be evaluated: {exc}")
    if confidence < floor:
        detail = f"confidence {confidence:.2f} is below the floor {floor:.2f}"
        return Exclusion(w.id, Reason.LOW_CONFIDENCE, detail)
    return None


def _build(w: CompiledWidget, env: Any, ctx: dict[str, Any], mode: Mode) -> Widget | Exclusion:
    """The widget's descriptor, or why it could not be built."""
    kind = WIDGET_KINDS[w.type]
    try:
        props: Any = msgspec.convert(render(w.props, env, ctx), kind.props)
        summary = render(w.summary, env, ctx)
        drivers = _drivers(w, env, ctx)
        confidence = (
            w.confidence
            if isinstance(w.confidence, (int, float))
            else float(evaluate(w.confidence, env, ctx))
        )
        fallback: Any = "drop"
        if w.fallback is not None:
            fb_kind = WIDGET_KINDS[w.fallback.type]
            fb_props: Any = msgspec.convert(render(w.fallback.props, env, ctx), fb_kind.props)
            fallback = fb_kind.widget(
                id=w.id, props=fb_props, why=Why(summary="", source="rule", confidence=0.0)
            )
    except (*_EVAL_ERRORS, msgspec.ValidationError) as exc:
        return Exclusion(w.id, Reason.PROPS_ERROR, f"props could not be built: {exc}")
    source: WhySource = "rule" if mode != "default" else "default"
    if w.feed is not None:
        source = "recommender"
        named = {d.signal for d in drivers}
        drivers += [
            Driver(signal=d["signal"], value=d["value"])
            for d in ctx["feed"]["drivers"]
            if d["signal"] not in named
        ]
    why = Why(
        summary=summary,
        source=source,
        confidence=round(min(max(confidence, 0.0), 1.0), 2),
        drivers=drivers,
    )
    if not isinstance(fallback, str):
        fallback = msgspec.structs.replace(fallback, why=why)
    built: Widget = kind.widget(id=w.id, props=props, why=why, fallback=fallback)
    return built


_PROPENSITY = {f"propensity.{t}": t for t in TARGETS}


def _drivers(w: CompiledWidget, env: Any, ctx: dict[str, Any]) -> list[Driver]:
    """The widget's drivers with their values; a propensity score brings the features that
    raise it most, and is left out when no model scored the user."""
    out: list[Driver] = []
    for name, prog in w.drivers:
        target = _PROPENSITY.get(name)
        if target is not None:
            if not ctx["propensity"]["scored"][target]:
                continue
            out.append(Driver(signal=name, value=ctx["propensity"][target]))
            out += [
                Driver(signal=d["signal"], value=d["value"])
                for d in ctx["propensity"]["drivers"][target]
            ]
            continue
        out.append(Driver(signal=name, value=_driver_value(evaluate(prog, env, ctx))))
    return out


def _driver_value(value: Any) -> str | int | float | bool | list[str] | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


class OncePerScreen:
    """The screen rule of the widget kinds: at most one widget of each `once_per_screen` group
    (one next step, no stacked modals), the first one offered winning."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: set[str] = set()

    def taken(self, widget_type: str) -> bool:
        group = WIDGET_KINDS[widget_type].once_per_screen
        return group is not None and group in self._groups

    def take(self, widget_type: str) -> None:
        group = WIDGET_KINDS[widget_type].once_per_screen
        if group is not None:
            self._groups.add(group)


_ONCE_DETAILS = {
    "next_step": "one next step per screen: a higher-priority one is shown",
    "modal": "no stacked modals: a higher-priority one is shown",
}


def negotiate(
    descriptor: LayoutDescriptor, widget_types: frozenset[str] | None
) -> LayoutDescriptor:
    """Replace widgets a client cannot render by their fallback, or drop them; the screen's
    rule still holds afterwards (`OncePerScreen`)."""
    if widget_types is None:
        return descriptor

    def fit(widget: Any) -> Widget | None:
        while widget is not None and not isinstance(widget, str):
            if widget.__struct_config__.tag in widget_types:
                return widget  # type: ignore[no-any-return]
            widget = widget.fallback
        return None

    once = OncePerScreen()
    slots = []
    for slot in descriptor.slots:
        widgets = []
        for original in slot.widgets:
            widget = fit(original)
            if widget is None:
                continue
            tag = str(widget.__struct_config__.tag)
            if once.taken(tag):
                continue
            once.take(tag)
            widgets.append(widget)
        if widgets:
            slots.append(SlotDescriptor(id=slot.id, widgets=widgets))
    return msgspec.structs.replace(descriptor, slots=slots)
