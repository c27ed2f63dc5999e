"""A layout decision at the edge: read the profile (in budget), decide (pure), negotiate, tag."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from app.engine.decide import Decision, DecisionInput, decide, decision_id, negotiate
from app.engine.experiments import Enrolment, in_holdout
from app.engine.model import Layouts
from app.engine.profile import ProfileData, anonymous_profile
from app.engine.reasons import Exclusion
from app.engine.recs import Recs
from app.engine.signals import Mode, build_context
from app.errors import InvalidInputError, NotFoundError, wrong_region
from app.serving.flag_events import record_evaluations
from app.serving.memo import MemoKey
from app.serving.runtime import Runtime
from app.storage.db import DATABASE_ERRORS
from app.storage.experiments import NewAssignment, store_assignments, store_exposures
from app.telemetry import tracer
from widgets import SCHEMA_VERSION, LayoutDescriptor

log = logging.getLogger("cairn.decisions")

PROFILE_BUDGET_S = 0.25  # past this the profile store counts as down for this request


@dataclass(frozen=True, slots=True)
class ClientCaps:
    platform: str = ""
    schema: int = SCHEMA_VERSION
    widgets: frozenset[str] | None = None


def parse_client(header: str | None) -> ClientCaps:
    """`X-Cairn-Client: ios/4.2.0; schema=1; widgets=shortcut_grid,checklist`."""
    if not header:
        return ClientCaps()
    parts = [p.strip() for p in header.split(";")]
    caps: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        caps[key.strip().lower()] = value.strip()
    widgets = None
    if "widgets" in caps:
        widgets = frozenset(w.strip() for w in caps["widgets"].split(",") if w.strip())
    try:
        schema = int(caps.get("schema", SCHEMA_VERSION))
    except ValueError as exc:
        raise InvalidInputError(
            "invalid_client_header",
            "schema= in X-Cairn-Client must be a whole number.",
            "X-Cairn-Client",
        ) from exc
    return ClientCaps(platform=parts[0], schema=schema, widgets=widgets)


@dataclass(frozen=True, slots=True)
class Served:
    descriptor: LayoutDescriptor
    body: bytes
    etag: str
    trace: list[Exclusion]


_ENCODER = msgspec.json.Encoder()


def etag_of(descriptor: LayoutDescriptor) -> str:
    """Changes when what the user would see changes, not with every decision id."""
    stable = msgspec.structs.replace(descriptor, decision_id="", generated_at="")
    return '"' + hashlib.blake2b(_ENCODER.encode(stable), digest_size=12).hexdigest() + '"'


def _reuse(key: MemoKey, profile: ProfileData, rt: Runtime, now: datetime) -> Served | None:
    """The same profile and layouts a moment ago give the same layout: reuse it (new id)."""
    memo = rt.decisions.get(key, profile, rt.layouts, now)
    if memo is None:
        return None
    descriptor = msgspec.structs.replace(
        memo.descriptor,
        decision_id=decision_id(secrets.randbits(64)),
        generated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return Served(descriptor, _ENCODER.encode(descriptor), memo.etag, memo.trace)


# RuntimeError: the pool is not started
_PROFILE_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, RuntimeError)


async def read_profile(
    rt: Runtime, tenant_id: str, user_id: str, now: datetime
) -> ProfileData | None:
    """The user's profile within budget, or None when the profile store cannot answer."""
    hit = rt.profiles.cached(tenant_id, user_id, now)
    rt.ops.profile_read(hit=hit is not None)
    if hit is not None:
        return hit
    try:
        with tracer.start_as_current_span("cairn.profile.load"):
            return await asyncio.wait_for(
                rt.profiles.load(tenant_id, user_id, now), PROFILE_BUDGET_S
            )
    except _PROFILE_ERRORS as exc:
        log.warning("profile store unavailable, serving the default layout: %r", exc)
        return None


async def _recs(rt: Runtime, profile: ProfileData, mode: Mode, now: datetime) -> Recs | None:
    """The recommender's candidates for a fully personalized decision (within its budget)."""
    if mode != "full" or rt.recommender is None:
        return None
    return await rt.recommender.recommend(profile, rt.vocabulary, now)


def _decide(
    rt: Runtime,
    layouts: Layouts,
    screen: str,
    profile: ProfileData,
    mode: Mode,
    now: datetime,
    view: str | None,
    *,
    degraded: bool,
    recs: Recs | None = None,
    holdout: bool = False,
) -> Decision:
    """The pure decision, given what the edge read: a fresh seed names it."""
    return decide(
        layouts,
        DecisionInput(
            screen=screen,
            profile=profile,
            mode=mode,
            now=now,
            seed=secrets.randbits(64),
            view=view,
            peers=rt.peers,
            degraded=degraded,
            recs=recs,
            propensity=rt.propensity,
            holdout=holdout,
            purposes=purposes_for(profile, layouts, mode),
        ),
    )


def purposes_for(profile: ProfileData, layouts: Layouts, mode: Mode) -> frozenset[str] | None:
    """The purposes the user granted: their level's, with their own choices on top, less what
    their tenant withholds (None when nothing is personalized: the level `off`'s)."""
    if mode == "default":
        return None
    prefs = profile.preferences
    vocab = layouts.vocabulary
    granted = vocab.granted(prefs.personalization, prefs.purposes)
    purposes = vocab.signals.purposes
    withheld = {
        name
        for name, allowed in profile.tenant_consent.items()
        if not allowed and name in purposes and not purposes[name].required
    }  # the tenant's admin withholds these from every user of the tenant
    return granted - withheld


def remember_enrolments(
    rt: Runtime, profile: ProfileData, enrolments: Iterable[Enrolment], now: datetime
) -> None:
    """Store the first assignments a decision made, and the first exposures the server saw (in
    the background: the response does not wait), then drop the user's cached profile so the
    next decision reads them back."""
    new = []
    exposed = []
    experiments = rt.layouts.experiments.experiments
    for e in enrolments:
        if e.new:
            design = experiments[e.experiment].design if e.experiment in experiments else ""
            new.append(
                NewAssignment(tenant_id=profile.tenant_id, experiment=e.experiment,
                              unit_id=e.unit_id, arm=e.arm, assigned_at=now, exposed=e.exposed,
                              design=design)
            )  # fmt: skip
        elif e.exposed and e.experiment not in profile.exposed:
            exposed.append((e.experiment, e.unit_id))
    if new or exposed:
        rt.spawn(_store(rt, profile.tenant_id, profile.user_id, new, exposed, now))


async def _store(
    rt: Runtime,
    tenant_id: str,
    user_id: str,
    rows: list[NewAssignment],
    exposed: list[tuple[str, str]],
    now: datetime,
) -> None:
    try:
        await store_assignments(rt.pool, rows)
        if exposed:
            await store_exposures(rt.pool, tenant_id, exposed, now)
    except DATABASE_ERRORS as exc:
        log.warning("experiment assignments not stored (the next decision tries again): %r", exc)
        return
    rt.forget({(tenant_id, user_id)})


def require_region(rt: Runtime, profile: ProfileData) -> None:
    """409 `wrong_region` for a tenant whose `region` trait names another region than this
    deployment's (CAIRN_REGION)."""
    named = profile.tenant_traits.get("region")
    if rt.region is not None and isinstance(named, str) and named and named != rt.region:
        raise wrong_region(profile.tenant_id, named, "tenant_id")


def require_screen(layouts: Layouts, screen: str) -> None:
    if screen not in layouts.screens:
        raise NotFoundError(
            "unknown_screen", f"There is no layout for screen '{screen}'.", "screen"
        )


def mode_for(profile: ProfileData, *, degraded: bool, holdout: bool = False) -> Mode:
    """How much to personalize: nothing for unknown users, opted-out users, users in the global
    holdout or when degraded."""
    if degraded or holdout or not profile.known or profile.preferences.personalization == "off":
        return "default"
    if profile.preferences.personalization == "basic":
        return "basic"
    return "full"


async def decide_layout(
    rt: Runtime,
    screen: str,
    tenant_id: str,
    user_id: str,
    *,
    view: str | None = None,
    caps: ClientCaps = ClientCaps(),
) -> Served:
    """The layout of `screen` for the user, as served (see `_decide_layout`), on the process's
    operational metrics."""
    started = time.perf_counter()
    served, over_budget = await _decide_layout(rt, screen, tenant_id, user_id, view, caps)
    rt.ops.decided((time.perf_counter() - started) * 1000, screen,
                   degraded=served.descriptor.degraded, over_budget=over_budget)  # fmt: skip
    return served


async def _decide_layout(
    rt: Runtime,
    screen: str,
    tenant_id: str,
    user_id: str,
    view: str | None,
    caps: ClientCaps,
) -> tuple[Served, bool]:
    """The layout as served, and whether the recommender's budget ran out for it."""
    layouts = rt.layouts
    require_screen(layouts, screen)
    if caps.schema < 1:
        raise InvalidInputError(
            "unsupported_schema",
            "This server speaks layout schema version 1.",
            "X-Cairn-Client",
        )
    now = rt.now()
    found = await read_profile(rt, tenant_id, user_id, now)
    degraded = found is None
    profile = found if found is not None else anonymous_profile(tenant_id, user_id)
    require_region(rt, profile)
    key: MemoKey = (tenant_id, user_id, screen, view, caps.widgets)
    if not degraded:
        reused = _reuse(key, profile, rt, now)
        if reused is not None:
            return reused, False
    holdout = in_holdout(layouts.experiments.holdout, tenant_id, user_id)
    mode = mode_for(profile, degraded=degraded, holdout=holdout)
    recs = await _recs(rt, profile, mode, now)
    started = time.perf_counter()
    with tracer.start_as_current_span("cairn.decide") as span:
        decision = _decide(
            rt,
            layouts,
            screen,
            profile,
            mode,
            now,
            view,
            degraded=degraded,
            recs=recs,
            holdout=holdout,
        )
        span.set_attribute("cairn.screen", screen)
        span.set_attribute("cairn.mode", mode)
        span.set_attribute("cairn.widgets_left_out", len(decision.trace))
        if recs is not None:
            span.set_attribute("cairn.recommender", recs.status)
        record_evaluations(decision.flags.values(), user_id)
    rt.flag_tally.add(decision.flags.values(), "layout")
    remember_enrolments(rt, profile, decision.enrolments, now)
    descriptor = negotiate(decision.descriptor, caps.widgets)
    if decision.enrolments:
        rt.arm_latency.add(decision.enrolments, (time.perf_counter() - started) * 1000)
    etag = etag_of(descriptor)
    if not descriptor.degraded:
        rt.decisions.put(key, profile, layouts, now, descriptor, etag, decision.trace)
    if rt.audit.sample():
        _audit_decision(rt, layouts, descriptor, decision.trace, tenant_id, user_id, now)
    served = Served(
        descriptor=descriptor,
        body=_ENCODER.encode(descriptor),
        etag=etag,
        trace=decision.trace,
    )
    return served, recs is not None and recs.status == "over_budget"


def _audit_decision(
    rt: Runtime,
    layouts: Layouts,
    descriptor: LayoutDescriptor,
    trace: list[Exclusion],
    tenant_id: str,
    user_id: str,
    now: datetime,
) -> None:
    """One decision of the sample on the audit log: what was shown and left out, and why, with
    the tenant, a pseudonym for the user and no trait values."""
    rt.audit.record(
        "decision.sampled", "process",
        {
            "decision_id": descriptor.decision_id, "screen": descriptor.screen,
            "layout": descriptor.layout, "layouts_version": layouts.version,
            "personalized": descriptor.personalized, "holdout": descriptor.holdout,
            "widgets": [w.id for slot in descriptor.slots for w in slot.widgets],
            "left_out": {e.widget_id: str(e.reason) for e in trace},
        },
        tenant_id=tenant_id, subject=rt.audit.subject(tenant_id, user_id), at=now,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Inspection:
    """A decision with everything behind it, for the admin "why" inspector."""

    profile: ProfileData
    mode: Mode
    signals: dict[str, object]
    descriptor: LayoutDescriptor
    trace: list[Exclusion]
    recs: Recs | None


async def inspect_decision(
    rt: Runtime, screen: str, tenant_id: str, user_id: str, view: str | None = None
) -> Inspection:
    """Decide afresh (no reuse) and keep the signals and the reasons for every widget left out."""
    layouts = rt.layouts
    require_screen(layouts, screen)
    now = rt.now()
    profile = await rt.profiles.fetch(tenant_id, user_id, now)
    mode = mode_for(profile, degraded=False)
    recs = await _recs(rt, profile, mode, now)
    signals = build_context(
        profile,
        layouts.vocabulary,
        now=now,
        mode=mode,
        peers=rt.peers,
        screen=screen,
        recs=recs,
        propensity=rt.propensity,
    )
    decision = _decide(rt, layouts, screen, profile, mode, now, view, degraded=False, recs=recs)
    return Inspection(profile, mode, signals, decision.descriptor, decision.trace, recs)
