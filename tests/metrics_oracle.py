"""A test oracle: every metric's per-unit rows, computed in plain Python from raw events.

It reads the definitions of app.engine.metrics as their docstrings and layouts/metrics.yaml say,
without any of the SQL: the property tests hold the database's rows equal to these.
Timestamps are taken to be distinct (the tests generate them so), so "the latest before" is
never a tie.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cel
import msgspec

from app.engine.metrics import (
    AnchorSpec,
    ConversionMetric,
    CountMetric,
    DistinctMetric,
    DurationMetric,
    EventMatch,
    FunnelMetric,
    MetricSpec,
    RatioMetric,
    RetentionMetric,
    TimeToMetric,
    anchor_of,
    outcomes_of,
)
from app.engine.vocabulary import Vocabulary
from app.storage.events import EventRow

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Row:
    """What the database keeps for one unit of one metric."""

    tenant_id: str
    unit_id: str
    anchor_at: datetime
    window_end: datetime
    reached_at: datetime | None
    value: float | None
    detail: Any


def arrow_text(value: object) -> str | None:
    """What PostgreSQL's `->>` gives for a JSON value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class History:
    """Every event, by tenant and by user, in time order."""

    def __init__(self, events: Iterable[EventRow]) -> None:
        self.events = sorted(events, key=lambda e: e.ts)
        self.tenants = sorted({e.tenant_id for e in self.events})
        self.users: dict[tuple[str, str], list[EventRow]] = {}
        for e in self.events:
            self.users.setdefault((e.tenant_id, e.user_id), []).append(e)

    def tenant_events(self, tenant_id: str) -> list[EventRow]:
        return [e for e in self.events if e.tenant_id == tenant_id]

    def role(self, tenant_id: str, user_id: str) -> str:
        role: Any = ""
        for e in self.users[(tenant_id, user_id)]:
            if e.type == "identify" and "role" in e.traits:
                role = e.traits["role"]
        return role if isinstance(role, str) else arrow_text(role) or ""

    def first_seen(self, tenant_id: str, user_id: str) -> datetime:
        return first_seen(self.users[(tenant_id, user_id)])

    def signup(self, tenant_id: str, user_id: str) -> datetime:
        own = self.users[(tenant_id, user_id)]
        signed = [e.ts for e in own if e.type == "track" and e.event == "signed_up"]
        return min(signed) if signed else first_seen(own)

    def users_of(self, tenant_id: str) -> list[str]:
        return sorted(u for t, u in self.users if t == tenant_id)


def first_seen(events: list[EventRow]) -> datetime:
    """A user's first event (events in time order): the first sent with a userId, when any was;
    an anonymous history merged into the user comes before it and does not count."""
    return next((e.ts for e in events if not e.anonymous), events[0].ts)


@dataclass(frozen=True)
class Unit:
    tenant_id: str
    unit_id: str  # "" for a tenant
    role: str
    anchor_at: datetime
    window_end: datetime

    def events(self, h: History, scope: str = "user") -> list[EventRow]:
        if self.unit_id == "" or scope == "tenant":
            return h.tenant_events(self.tenant_id)
        return h.users.get((self.tenant_id, self.unit_id), [])


def _anchor(h: History, anchor: AnchorSpec, tenant_id: str, user_id: str | None) -> datetime | None:
    users = [user_id] if user_id is not None else h.users_of(tenant_id)
    if anchor.at == "signup":
        return min((h.signup(tenant_id, u) for u in users), default=None)
    if anchor.at == "first_event":
        return min((h.first_seen(tenant_id, u) for u in users), default=None)
    times = [
        e.ts
        for u in users
        for e in h.users[(tenant_id, u)]
        if e.type == "track"
        and e.event in anchor.on
        and (
            arrow_text(e.properties.get("widget_id")) == anchor.widget
            if anchor.widget
            else arrow_text(e.properties.get("widget_type")) == anchor.widget_type
        )
    ]
    return min(times, default=None)


def plan_at(h: History, tenant_id: str, at: datetime) -> str | None:
    changes = [
        (e.ts, arrow_text(e.traits["plan"]))
        for e in h.tenant_events(tenant_id)
        if e.type == "group" and "plan" in e.traits
    ] + [
        (e.ts, arrow_text(e.properties["plan"]))
        for e in h.tenant_events(tenant_id)
        if e.type == "track" and e.event == "plan_upgraded" and "plan" in e.properties
    ]
    before = [c for c in changes if c[0] <= at]
    if before:
        return max(before)[1]
    return min(changes)[1] if changes else None


def units(h: History, metric: MetricSpec) -> list[Unit]:
    anchor = anchor_of(metric)
    window = timedelta(days=metric.within_days)
    out = []
    for tenant_id in h.tenants:
        keys: list[tuple[str, str | None, str]] = (
            [(tenant_id, None, "")]
            if metric.unit == "tenant"
            else [(tenant_id, u, h.role(tenant_id, u)) for u in h.users_of(tenant_id)]
        )
        for t, u, role in keys:
            at = _anchor(h, anchor, t, u)
            if at is None:
                continue
            if metric.population.role and role not in metric.population.role:
                continue
            if metric.population.plan_at_anchor and (
                plan_at(h, t, at) not in metric.population.plan_at_anchor
            ):
                continue
            out.append(Unit(t, u or "", role, at, at + window))
    return out


def _names(match: EventMatch, vocab: Vocabulary) -> list[str]:
    if match.event:
        return [match.event]
    if match.events:
        return list(match.events)
    return list(getattr(vocab.signals.events, match.of_class or "value"))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def matches(
    h: History, u: Unit, match: EventMatch, vocab: Vocabulary, *, windowed: bool = True
) -> list[EventRow]:
    """The events that count for the unit, in time order."""
    pool = u.events(h, match.scope if match.trait_up is None else "tenant")
    if windowed:
        pool = [e for e in pool if u.anchor_at <= e.ts <= u.window_end]
    if match.trait_up is not None:
        trait = match.trait_up
        numbers = [
            (g.ts, n)
            for g in h.tenant_events(u.tenant_id)
            if g.type == "group" and (n := _number(g.traits.get(trait))) is not None
        ]
        before = [n for ts, n in numbers if ts <= u.anchor_at]
        baseline = before[-1] if before else (numbers[0][1] if numbers else None)
        return [
            e
            for e in pool
            if e.type == "group"
            and (n := _number(e.traits.get(trait))) is not None
            and baseline is not None
            and n > baseline
        ]
    names = set(_names(match, vocab))
    found = []
    for e in pool:
        if e.type != "track" or e.event not in names:
            continue
        if any(
            arrow_text(e.properties.get(prop))
            not in {scalar_text(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
            for prop, wanted in match.where.items()
        ):
            continue
        if match.when and not passes(match.when, e):
            continue
        if match.same_as_before:
            own = u.events(h, "tenant" if u.unit_id == "" else "user")
            earlier = [
                b for b in own if b.type == "track" and b.event == e.event and b.ts < u.anchor_at
            ]
            then = arrow_text(earlier[-1].properties.get(match.same_as_before)) if earlier else None
            now = arrow_text(e.properties.get(match.same_as_before))
            if then is None or now is None or then != now:
                continue
        found.append(e)
    return found


def passes(condition: str, e: EventRow) -> bool:
    """What the CEL runtime says of a `when:` on the event; an error leaves it out."""
    try:
        result = cel.compile(condition).execute(
            {"event": {"name": e.event, "properties": e.properties}}
        )
    except Exception:  # noqa: BLE001 - CEL's errors (no such key, no such overload) leave it out
        return False
    return result is True


def _applies(for_roles: list[str], role: str) -> bool:
    return not for_roles or not role or role in for_roles


def activation_at(h: History, u: Unit, vocab: Vocabulary) -> datetime | None:
    times: list[datetime | None] = []
    for step in vocab.signals.activation:
        if not _applies(step.for_roles, u.role):
            continue
        scope = "tenant" if step.scope == "tenant" else "user"
        seen = [e.ts for e in u.events(h, scope) if e.type == "track" and e.event == step.event]
        times.append(min(seen) if seen else None)
    if not times:
        return None
    wanted = vocab.signals.activated_after
    k = len(times) if wanted is None else min(wanted, len(times))
    done = sorted(t for t in times if t is not None)
    return done[k - 1] if len(done) >= k else None


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def rows(h: History, metric: MetricSpec, vocab: Vocabulary) -> list[Row]:
    """The rows the database should hold for `metric`, sorted by (tenant, unit)."""
    if isinstance(metric, RatioMetric):
        return []
    out = []
    for u in units(h, metric):
        end, reached, value = u.window_end, None, None
        detail: list[int] | list[int | None] | None = None
        if isinstance(metric, ConversionMetric | TimeToMetric):
            outcome = (
                outcomes_of(metric)
                if isinstance(metric, ConversionMetric)
                else ("activation" if metric.outcome == "activation" else [metric.outcome])
            )
            if outcome == "activation":
                first = activation_at(h, u, vocab)
            else:
                found = [e.ts for m in outcome for e in matches(h, u, m, vocab)]
                first = min(found) if found else None
            hit = first is not None and first <= u.window_end
            if isinstance(metric, TimeToMetric):
                value = max(0.0, _seconds(first, u.anchor_at)) if hit and first else None
                reached = first if hit else None
            elif isinstance(metric, ConversionMetric) and metric.absent:
                value, reached = (1.0 if first is None else 0.0), first
            else:
                value, reached = (1.0 if hit else 0.0), (first if hit else None)
        elif isinstance(metric, CountMetric):
            value = float(len(matches(h, u, metric.events, vocab)))
        elif isinstance(metric, DistinctMetric):
            texts = {
                arrow_text(e.properties.get(metric.distinct))
                for e in matches(h, u, metric.events, vocab)
            }
            value = float(len(texts - {None}))
        elif isinstance(metric, RetentionMetric):
            weeks = sorted(
                {
                    int(_seconds(e.ts, u.anchor_at) // WEEK.total_seconds())
                    for e in matches(h, u, metric.activity, vocab, windowed=False)
                    if u.anchor_at + WEEK <= e.ts < u.anchor_at + WEEK * (metric.weeks + 1)
                }
            )
            end = u.anchor_at + WEEK * (metric.headline + 1)
            value, detail = (1.0 if metric.headline in weeks else 0.0), weeks
        elif isinstance(metric, DurationMetric):
            value = _duration(h, u, metric)
        elif isinstance(metric, FunnelMetric):
            detail = _funnel(h, u, metric, vocab)
        out.append(Row(u.tenant_id, u.unit_id, u.anchor_at, end, reached, value, detail))
    return sorted(out, key=lambda r: (r.tenant_id, r.unit_id))


def _duration(h: History, u: Unit, metric: DurationMetric) -> float | None:
    seconds = []
    for task in metric.tasks:
        for s in u.events(h):
            if s.type != "track" or s.event != task.start:
                continue
            if not u.anchor_at <= s.ts <= u.window_end:
                continue
            ends = [
                c.ts
                for c in h.users[(s.tenant_id, s.user_id)]
                if c.type == "track"
                and c.event == task.complete
                and s.ts <= c.ts <= u.window_end
                and (
                    not task.match_on
                    or (
                        arrow_text(c.properties.get(task.match_on)) is not None
                        and arrow_text(c.properties.get(task.match_on))
                        == arrow_text(s.properties.get(task.match_on))
                    )
                )
            ]
            if ends:
                seconds.append(_seconds(min(ends), s.ts))
    return float(statistics.median(seconds)) if seconds else None


def _funnel(h: History, u: Unit, metric: FunnelMetric, vocab: Vocabulary) -> list[int | None]:
    if metric.steps == "activation":
        taken: list[int | None] = []
        for step in vocab.signals.activation:
            if not _applies(step.for_roles, u.role):
                taken.append(None)
                continue
            scope = "tenant" if step.scope == "tenant" else "user"
            taken.append(
                int(
                    any(
                        e.type == "track" and e.event == step.event and e.ts <= u.window_end
                        for e in u.events(h, scope)
                    )
                )
            )
        return taken
    return [int(bool(matches(h, u, step.outcome, vocab))) for step in metric.steps]


def unit_values(population: Any, layouts: Any, metric: str, now: datetime) -> dict[str, float]:
    """Each unit's value of a shipped metric over a demo population (units whose window ended
    by `now`), keyed `<tenant_id>:<unit_id>`: the population's events as ingestion parses them,
    measured by this oracle."""
    import msgspec

    from app.ingest.segment import parse_batch, pii_key

    events: list[EventRow] = []
    key = pii_key("oracle")
    for batch in population.batches(500):
        parsed = parse_batch(msgspec.json.encode(batch), received_at=now, pii_mode="hash",
                             pii_key=key)  # fmt: skip
        events.extend(parsed.rows)
    found = rows(History(events), layouts.metrics[metric], layouts.vocabulary)
    return {
        f"{r.tenant_id}:{r.unit_id}": float(r.value)
        for r in found
        if r.window_end <= now and r.value is not None
    }
