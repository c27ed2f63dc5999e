"""Flags at the edge: evaluation for OpenFeature clients, the evaluation tally, the stale report.

An OpenFeature evaluation reads the user's profile as a layout decision does (within the same
budget; when the profile store cannot answer, rules see nothing of the user and rollouts still
bucket on the ids), then evaluates purely (`app.engine.decide.flags_for`). What every flag served
is counted (`app.serving.flag_events`); the stale-flag report reads the counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from app.engine.decide import flags_for
from app.engine.experiments import in_holdout
from app.engine.flags import FlagResult, serves_one_variant
from app.engine.model import Layouts
from app.engine.profile import anonymous_profile
from app.serving.decisions import mode_for, read_profile, remember_enrolments, require_region
from app.serving.flag_events import record_evaluations
from app.serving.runtime import Runtime
from app.storage.db import Pool
from app.storage.flags import first_recorded, usage_since

STALE_AFTER_DAYS = 30


@dataclass(frozen=True, slots=True)
class Evaluated:
    results: dict[str, FlagResult]
    degraded: bool  # the profile store did not answer: rules saw nothing of the user
    version: str  # of the layouts (flags.yaml) that answered


async def evaluate(rt: Runtime, tenant_id: str, user_id: str, keys: Collection[str]) -> Evaluated:
    """The flags named (those that exist), for one user, counted as read by a client."""
    layouts = rt.layouts
    now = rt.now()
    found = await read_profile(rt, tenant_id, user_id, now)
    profile = found if found is not None else anonymous_profile(tenant_id, user_id)
    require_region(rt, profile)
    holdout = in_holdout(layouts.experiments.holdout, tenant_id, user_id)
    mode = mode_for(profile, degraded=found is None, holdout=holdout)
    answer = flags_for(
        layouts, keys, profile, mode, now, peers=rt.peers, propensity=rt.propensity, holdout=holdout
    )
    results = answer.results
    remember_enrolments(rt, profile, answer.enrolments, now)
    rt.flag_tally.add(results.values(), "ofrep")
    record_evaluations(results.values(), user_id)
    return Evaluated(results, found is None, layouts.version)


# --- the stale-flag report ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaleFlag:
    key: str
    reasons: list[str]  # plain sentences
    owner: str = ""


def stale_flags(
    layouts: Layouts,
    usage: Mapping[str, Any],
    first_seen: Mapping[str, date],
    today: date,
) -> list[StaleFlag]:
    """Flags past their expiry, serving one variant to everyone for 30 days (or able to serve
    only one), or read by no layout rule and no OpenFeature client (and not sent to clients)."""
    since = today - timedelta(days=STALE_AFTER_DAYS)
    read_by_layouts = layouts.flags_read_by_layouts
    out = []
    for key, flag in layouts.flags.items():
        spec = flag.spec
        reasons = []
        if spec.expires is not None and spec.expires < today:
            reasons.append(f"expired on {spec.expires.isoformat()}")
        only = serves_one_variant(flag)
        used = usage.get(key)
        if spec.permanent:
            pass
        elif only is not None:
            reasons.append(f"can serve only '{only}', whoever asks")
        elif (
            used is not None
            and first_seen.get(key, today) <= since
            and len([v for v, n in used.variants.items() if n > 0]) == 1
        ):
            (variant,) = [v for v, n in used.variants.items() if n > 0]
            reasons.append(f"served '{variant}' to everyone for {STALE_AFTER_DAYS} days")
        client_reads = used.sources.get("ofrep", 0) if used is not None else 0
        if key not in read_by_layouts and not spec.client and client_reads == 0:
            reasons.append(
                f"no layout rule reads it and no OpenFeature client asked for it in "
                f"{STALE_AFTER_DAYS} days"
            )
        if reasons:
            out.append(StaleFlag(key, reasons, spec.owner))
    return out


async def served_lately(pool: Pool, today: date) -> dict[str, Any]:
    """What each flag served in the last STALE_AFTER_DAYS days (`FlagUsage` by flag)."""
    return await usage_since(pool, today - timedelta(days=STALE_AFTER_DAYS))


async def stale_report(
    pool: Pool, layouts: Layouts, today: date, *, usage: Mapping[str, Any] | None = None
) -> list[StaleFlag]:
    """The stale flags; `usage` is `served_lately`'s answer when the caller has it already."""
    if usage is None:
        read, first = await asyncio.gather(served_lately(pool, today), first_recorded(pool))
        return stale_flags(layouts, read, first, today)
    return stale_flags(layouts, usage, await first_recorded(pool), today)


def rule_text(rule: Any) -> str:
    """A flag rule as people read it: `when <CEL>: serve on`, `rollout on 10%, off 90%`."""
    when = "" if rule.when is True else f"when {rule.when}: "
    if rule.serve is not None:
        return f"{when}serve {rule.serve}"
    split = ", ".join(f"{v} {p:g}%" for v, p in (rule.rollout or {}).items())
    return f"{when}rollout {split}"


def describe_flag(key: str, layouts: Layouts) -> dict[str, Any]:
    """A flag as `GET /v1/flags` lists it: its definition, who reads it, where it is written."""
    import msgspec

    flag = layouts.flags[key]
    return {
        "key": key,
        **msgspec.to_builtins(flag.spec),
        "read_by_layouts": key in layouts.flags_read_by_layouts,
        "defined_at": flag.source,
    }
