"""Admin pages for people who run Cairn: status of layouts and data, and a "why" inspector.

Open in a browser; sign in with the secret key as the user name (HTTP Basic), or send it as a
Bearer token.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import msgspec
from litestar import MediaType, Request, Response, get

from app.engine.recs import FEEDS
from app.errors import CairnError
from app.http.auth import bearer_key, caller_name
from app.http.dependencies import RuntimeDep
from app.serving.decisions import inspect_decision
from app.serving.experiments import cached_results, holdout_results
from app.serving.flags import STALE_AFTER_DAYS, rule_text, served_lately, stale_report
from app.serving.metrics import format_value
from app.serving.runtime import Runtime
from app.storage.audit import entries as audit_entries
from app.storage.audit import verify as verify_chain
from app.storage.stats import row_counts

TEMPLATES = Path(__file__).resolve().parent / "templates"
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
)
ENV.filters["fmt"] = format_value

Req = Request[Any, Any, Any]


async def admin_or_challenge(request: Req, runtime: RuntimeDep) -> Response[str] | None:
    """None when the caller holds the deployment's secret key; otherwise a 401 that asks for it."""
    key = bearer_key(request.headers.get("authorization", ""))
    if key is not None:
        principal = await runtime.keyring.resolve(key)
        if principal is not None and principal.kind == "secret" and principal.tenant_id is None:
            return None
    return Response(
        content="Sign in with the secret key as the user name.",
        status_code=401,
        media_type=MediaType.TEXT,
        headers={"WWW-Authenticate": 'Basic realm="Cairn admin", charset="UTF-8"'},
    )


def admin_actor(request: Req) -> str:
    """Who is looking, for the audit log: the admin key by its fingerprint."""
    return f"admin {caller_name(request)}"


def json_island(value: Any) -> str:
    """JSON for a `<script type="application/json">` island: no `<` can close the script."""
    return json.dumps(value).replace("<", "\\u003c")


def page(name: str, **context: Any) -> Response[str]:
    html = ENV.get_template(name).render(**context)
    return Response(
        content=html,
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


@get("/admin", include_in_schema=False)
async def admin_home(request: Req, runtime: RuntimeDep) -> Response[str]:
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    rt = runtime
    counts = await row_counts(rt.pool)
    screens = [
        {
            "name": s.name,
            "source": s.source,
            "views": [v.id for v in s.spec.views],
            "widgets": sum(len(slot.widgets) for slot in s.slots),
        }
        for s in rt.layouts.screens.values()
    ]
    return page(
        "admin_home.html",
        layouts_version=rt.layouts.version,
        layout_error=rt.layout_error,
        screens=screens,
        counts=counts,
        profiles_cached=len(rt.profiles),
        catalog=_catalog_status(rt),
        peers=_peer_model_status(rt),
    )


def _catalog_status(rt: Runtime) -> dict[str, object] | None:
    """What the catalog index holds, for the status page."""
    if rt.catalog is None:
        return None
    status = rt.catalog.status
    index = rt.catalog.index
    since = None if status.last_sync is None else round(time.monotonic() - status.last_sync)
    return {
        "model": rt.catalog.model_id,
        "items": status.items,
        "indexed": len(index),
        "kind": index.kind,
        "pending": status.pending,
        "embedded_since_start": status.embedded_total,
        "last_sync_seconds_ago": since,
        "last_sync_ms": round(status.wall_ms.get("last_sync", 0.0), 1),
        "building": status.building,
        "error": status.last_error,
    }


def _peer_model_status(rt: Runtime) -> dict[str, object] | None:
    """The recommender's peer model: what it was built from, and when."""
    rec = rt.recommender
    if rec is None or not rec.enabled:
        return None
    model = rec.model
    return {
        "status": rec.status,
        **(model.size if model is not None else {}),
        "last_build": model.built_at.strftime("%Y-%m-%d %H:%M:%S UTC") if model else None,
        "build_ms": round(model.build_ms, 1) if model else None,
        "builds_since_start": rec.builds,
        "budget_ms": round(rec.budget_s * 1000, 1),
        "query_cache": len(rec.embedder.query_cache),
        "error": rec.last_error,
    }


@get("/admin/why", include_in_schema=False)
async def admin_why(
    request: Req,
    runtime: RuntimeDep,
    tenant_id: str = "",
    user_id: str = "",
    screen: str = "home",
    view: str = "",
) -> Response[str]:
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    rt = runtime
    result = None
    error = None
    if tenant_id and user_id:
        rt.audit.record(
            "user.viewed", admin_actor(request), {"page": "/admin/why", "screen": screen},
            tenant_id=tenant_id, subject=rt.audit.subject(tenant_id, user_id),
        )  # fmt: skip
        try:
            result = await inspect_decision(rt, screen, tenant_id, user_id, view or None)
        except CairnError as exc:
            error = exc.message
    shown = [
        {
            "slot": slot.id,
            "id": w.id,
            "type": w.__struct_config__.tag,
            "why": msgspec.to_builtins(w.why),
        }
        for slot in (result.descriptor.slots if result is not None else [])
        for w in slot.widgets
    ]
    return page(
        "admin_why.html",
        screens=sorted(rt.layouts.screens),
        tenant_id=tenant_id,
        user_id=user_id,
        screen=screen,
        view=view,
        error=error,
        result=result,
        shown=shown,
        candidates=[(name, result.recs.feed(name)) for name in FEEDS]
        if result is not None and result.recs is not None
        else [],
        signals_json=json.dumps(result.signals, indent=2, default=str) if result else "",
        descriptor_json=msgspec.json.format(msgspec.json.encode(result.descriptor)).decode()
        if result
        else "",
    )


@get("/admin/experiments", include_in_schema=False)
async def admin_experiments(request: Req, runtime: RuntimeDep) -> Response[str]:
    """Every experiment: status, sample ratio, guardrails, and each metric's lift with its
    interval (drawn by the dashboards' chart library, with its table beside it)."""
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    layouts = runtime.layouts
    now = runtime.now()
    shown = []
    charts = []
    for key in layouts.experiments.experiments:
        found = await cached_results(
            runtime.pool, layouts, key, runtime.experiment_states.get(key), now,
            runtime.experiment_results,
        )  # fmt: skip
        spec = layouts.experiments.experiments[key].spec
        view = msgspec.to_builtins(found)
        view["description"] = spec.description
        for m in view["metrics"]:
            m["by_arm"] = {c["arm"]: c for c in m["comparisons"]}
            lifts = [
                {"arm": c["arm"], "relative": c["relative"], "low": c["relative_ci"][0],
                 "high": c["relative_ci"][1],
                 "worse": (c["lift"] < 0) == m["higher_is_better"] and c["p_value"] < 0.05}
                for c in m["comparisons"] if c.get("relative") is not None
            ]  # fmt: skip
            if lifts:
                charts.append({"id": f"{key}-{m['metric']}", "metric": m["metric"],
                               "label": m["label"], "kind": "lift", "format": None,
                               "chart": "lift", "groups": [], "lifts": lifts})  # fmt: skip
        shown.append(view)
    held = (
        await holdout_results(runtime.pool, layouts, now)
        if layouts.experiments.holdout.percent > 0
        else None
    )
    return page(
        "admin_experiments.html",
        holdout=f"{layouts.experiments.holdout.percent:g}",
        held=held,
        experiments=shown,
        charts_json=json_island(charts),
    )


@get("/admin/flags", include_in_schema=False)
async def admin_flags(request: Req, runtime: RuntimeDep) -> Response[str]:
    """Every flag with its rules, rollout and what it served lately; the stale ones first."""
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    layouts = runtime.layouts
    today = runtime.now().date()
    await runtime.flag_tally.flush(runtime.pool, today)
    usage = await served_lately(runtime.pool, today)
    flags = []
    for key, flag in layouts.flags.items():
        spec = flag.spec
        used = usage.get(key)
        flags.append({
            "key": key, "description": spec.description, "enabled": spec.enabled,
            "unit": spec.unit, "client": spec.client, "owner": spec.owner,
            "expires": spec.expires.isoformat() if spec.expires else None,
            "permanent": spec.permanent, "read_by_layouts": key in layouts.flags_read_by_layouts,
            "default": spec.default,
            "variants": [(name, json.dumps(v)) for name, v in spec.variants.items()],
            "rules": [rule_text(rule) for rule in spec.rules],
            "served": sorted(used.variants.items()) if used else [],
        })  # fmt: skip
    return page(
        "admin_flags.html",
        version=layouts.version,
        days=STALE_AFTER_DAYS,
        flags=flags,
        stale=await stale_report(runtime.pool, layouts, today, usage=usage),
    )


AUDIT_ACTIONS = ("layouts.loaded", "key.created", "key.revoked", "experiment.stopped",
                 "experiment.resumed", "user.viewed", "user.erased", "user.exported",
                 "tenant.erased", "tenant.exported", "tenant.consent_changed",
                 "decision.sampled", "audit.entry_rejected")  # fmt: skip
AUDIT_PAGE = 100


@get("/admin/audit", include_in_schema=False)
async def admin_audit(
    request: Req,
    runtime: RuntimeDep,
    action: str = "",
    actor: str = "",
    tenant_id: str = "",
    user_id: str = "",
    start: str = "",
    end: str = "",
    before: int | None = None,
    verify: str = "",
) -> Response[str]:
    """The audit log, newest first, filtered; the chain verified on demand."""
    challenge = await admin_or_challenge(request, runtime)
    if challenge is not None:
        return challenge
    error = None
    try:
        since = _day(start)
        until = _day(end)
    except ValueError:
        since = until = None
        error = "Dates are YYYY-MM-DD."
    await runtime.audit.flush(runtime.pool)
    subject = runtime.audit.subject(tenant_id, user_id) if tenant_id and user_id else None
    found = await audit_entries(
        runtime.pool, start=since, end=until + timedelta(days=1) if until else None,
        action=action or None, actor=actor or None, tenant_id=tenant_id or None,
        subject=subject, before=before, limit=AUDIT_PAGE,
    )  # fmt: skip
    verdict = None
    if verify:
        async with runtime.pool.acquire() as conn:
            verdict = await verify_chain(conn, runtime.audit.key)
    more = None
    if len(found) == AUDIT_PAGE:
        query = {k: v for k, v in request.query_params.items() if k not in ("before", "verify")}
        more = "/admin/audit?" + urlencode({**query, "before": found[-1].seq})
    return page(
        "admin_audit.html",
        actions=AUDIT_ACTIONS, action=action, actor=actor, tenant_id=tenant_id, user_id=user_id,
        start=start, end=end, error=error, verdict=verdict, more=more,
        rows=[{"seq": e.seq, "at": e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
               "action": e.action, "actor": e.actor, "tenant_id": e.tenant_id,
               "subject": e.subject, "detail": json.dumps(e.detail, sort_keys=True)}
              for e in found],
    )  # fmt: skip


def _day(text: str) -> datetime | None:
    if not text:
        return None
    day = date.fromisoformat(text)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


ROUTES = [admin_audit, admin_experiments, admin_flags, admin_home, admin_why]
