"""Metrics in PostgreSQL: each metric's per-unit rows, computed from the events by SQL.

`compute_sql(metric, ...)` turns a metric definition (app.engine.metrics) into one statement that
recomputes the metric's rows for a set of tenants: it deletes them and inserts what the events
say now, so a late event (clock skew, an offline queue) corrects its unit on the next refresh.
The statements read the events through `events_user_ts` (tenant, user, time), so a refresh costs
in proportion to the tenants it touches, not to the whole history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from app.engine.event_conditions import Condition, Const, Literal_, Logic, kind_of
from app.engine.event_conditions import parse as parse_condition
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
from app.storage.db import Conn, Pool

METRICS_CHANNEL = "cairn_metrics"  # NOTIFY here after a refresh: caches of answers are stale
# A refresh rereads events received this long before its watermark: a batch is stored in one
# transaction whose statements time out after 10 s (create_pool), so one that began before the
# watermark and committed after it is still read.
OVERLAP_S = 30
# The refresh's statements may run longer than a request's (create_pool's command timeout).
REFRESH_TIMEOUT_S = 900.0
_DAY = 86_400.0


def digest(metric: MetricSpec, vocab: Vocabulary) -> str:
    """Changes when the metric's definition (or the vocabulary it reads) changes."""
    data = msgspec.json.encode([metric, vocab.signals.events, vocab.signals.activation,
                                vocab.signals.activated_after])  # fmt: skip
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass
class _Params:
    """Positional parameters of one statement; `$1` is always the tenants' ids."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


@dataclass(frozen=True)
class _Scope:
    """The SQL names of one unit row: `u.tenant_id`, `u.unit_id` (a user id, or '' for a
    tenant), `u.anchor_at`, `u.window_end`, `u.role`."""

    tenant_unit: bool


def compute_sql(
    name: str,
    metric: MetricSpec,
    vocab: Vocabulary,
    *,
    source: str = "events",
    only_marked: bool = False,
) -> tuple[str, list[Any]] | None:
    """The statement that recomputes `name`'s rows for the tenants in `$1` (text[]), and its
    parameters after `$1`; None for metrics with no rows of their own (ratios). `source` is the
    table the events are read from: `events`, or the refresh's copy of some events
    (`CHUNK_EVENTS`, see `copy_chunk` and `copy_marked`). `only_marked`: for the units that
    `mark_units` marked for the metric named in `$1` (text) instead (see `recompute`)."""
    if isinstance(metric, RatioMetric):
        return None
    params = _Params([None])
    scope = _Scope(tenant_unit=metric.unit == "tenant")
    units = _units_cte(metric, params, scope, only_marked=only_marked)
    window = params.add(metric.within_days * _DAY, "float8")
    select = _select(metric, vocab, params, scope)
    metric_name = params.add(name, "text")
    sql = f"""
WITH base AS MATERIALIZED ({units}),
units AS (
  SELECT b.*, b.anchor_at + make_interval(secs => {window}) AS window_end FROM base b
)
INSERT INTO metric_values (tenant_id, metric, unit_id, anchor_at, window_end, reached_at, value,
                           detail)
SELECT u.tenant_id, {metric_name}, u.unit_id, u.anchor_at, r.window_end, r.reached_at, r.value,
       r.detail
  FROM units u CROSS JOIN LATERAL ({select}) r
"""
    if source != "events":
        sql = sql.replace("FROM events ", f"FROM {source} ").replace(
            "JOIN events ", f"JOIN {source} "
        )
    return sql, params.values[1:]


# --- Units and anchors ------------------------------------------------------------------------


def _signup_of(tenant: str, user: str, first_seen: str) -> str:
    return (
        f"coalesce((SELECT min(s.ts) FROM events s WHERE s.tenant_id = {tenant}"
        f" AND s.user_id = {user} AND s.type = 'track' AND s.event = 'signed_up'), {first_seen})"
    )


def _units_cte(
    metric: MetricSpec, params: _Params, scope: _Scope, *, only_marked: bool = False
) -> str:
    """The units (tenant_id, unit_id, role, anchor_at) of the tenants in `$1`, or with
    `only_marked` those marked for the metric named `$1`."""
    anchor = anchor_of(metric)
    if scope.tenant_unit:
        anchor_sql = _tenant_anchor(anchor, params)
        which = (
            f"EXISTS (SELECT 1 FROM {MARKED} m WHERE m.metric = $1::text"
            " AND m.tenant_id = t.tenant_id AND m.unit_id = '')"
            if only_marked
            else "t.tenant_id = ANY($1::text[])"
        )
        inner = (
            "SELECT t.tenant_id, ''::text AS unit_id, ''::text AS role,"
            f" ({anchor_sql}) AS anchor_at FROM tenants t WHERE {which}"
        )
    else:
        anchor_sql = _user_anchor(anchor, params)
        which = (
            f"EXISTS (SELECT 1 FROM {MARKED} m WHERE m.metric = $1::text"
            " AND m.tenant_id = uu.tenant_id AND m.unit_id = uu.user_id)"
            if only_marked
            else "uu.tenant_id = ANY($1::text[])"
        )
        inner = (
            "SELECT uu.tenant_id, uu.user_id AS unit_id, coalesce(uu.traits->>'role', '') AS role,"
            f" ({anchor_sql}) AS anchor_at FROM users uu WHERE {which}"
        )
    where = ["a.anchor_at IS NOT NULL"]
    if metric.population.role:
        where.append(f"a.role = ANY({params.add(metric.population.role, 'text[]')})")
    if metric.population.plan_at_anchor:
        plans = params.add(metric.population.plan_at_anchor, "text[]")
        where.append(f"{_plan_at(tenant_expr='a.tenant_id', at='a.anchor_at')} = ANY({plans})")
    # OFFSET 0: the anchor is computed once per unit, not once more for each use of it
    return f"SELECT a.* FROM ({inner} OFFSET 0) a WHERE {' AND '.join(where)}"


def _one_of(column: str, names: list[str], params: _Params) -> str:
    """`column` is one of `names`: one name as equality, which PostgreSQL always makes an index
    condition (an `= ANY` it may leave as a filter, reading the user's every event)."""
    if len(names) == 1:
        return f"{column} = {params.add(names[0], 'text')}"
    return f"{column} = ANY({params.add(names, 'text[]')})"


def _exposure_filter(anchor: AnchorSpec, params: _Params, alias: str) -> str:
    on = _one_of(f"{alias}.event", anchor.on, params)
    if anchor.widget:
        widget = f"{alias}.properties->>'widget_id' = {params.add(anchor.widget, 'text')}"
    else:
        widget = f"{alias}.properties->>'widget_type' = {params.add(anchor.widget_type, 'text')}"
    return f"{alias}.type = 'track' AND {on} AND {widget}"


def _user_anchor(anchor: AnchorSpec, params: _Params) -> str:
    if anchor.at == "first_event":
        return "uu.first_seen"
    if anchor.at == "signup":
        return _signup_of("uu.tenant_id", "uu.user_id", "uu.first_seen")
    return (
        "SELECT min(x.ts) FROM events x WHERE x.tenant_id = uu.tenant_id"
        f" AND x.user_id = uu.user_id AND {_exposure_filter(anchor, params, 'x')}"
    )


def _tenant_anchor(anchor: AnchorSpec, params: _Params) -> str:
    if anchor.at == "first_event":
        return "SELECT min(v.first_seen) FROM users v WHERE v.tenant_id = t.tenant_id"
    if anchor.at == "signup":
        signup = _signup_of("v.tenant_id", "v.user_id", "v.first_seen")
        return f"SELECT min({signup}) FROM users v WHERE v.tenant_id = t.tenant_id"
    return (
        "SELECT min(x.ts) FROM events x WHERE x.tenant_id = t.tenant_id"
        f" AND {_exposure_filter(anchor, params, 'x')}"
    )


def _plan_at(*, tenant_expr: str, at: str) -> str:
    """The tenant's plan at a time: from its group calls' traits and plan_upgraded events, the
    latest at or before it, else the first one after (the workspace's plan when it was set up)."""
    return f"""(SELECT p.plan FROM (
        SELECT g.ts, g.traits->>'plan' AS plan FROM events g
         WHERE g.tenant_id = {tenant_expr} AND g.type = 'group' AND g.traits ? 'plan'
        UNION ALL
        SELECT g.ts, g.properties->>'plan' FROM events g
         WHERE g.tenant_id = {tenant_expr} AND g.type = 'track' AND g.event = 'plan_upgraded'
           AND g.properties ? 'plan'
      ) p ORDER BY (p.ts > {at}), CASE WHEN p.ts <= {at} THEN p.ts END DESC, p.ts LIMIT 1)"""


# --- Which events count -------------------------------------------------------------------------


def _names(match: EventMatch, vocab: Vocabulary) -> list[str]:
    if match.event:
        return [match.event]
    if match.events:
        return list(match.events)
    classes = vocab.signals.events
    return list(getattr(classes, match.of_class or "value"))


def _match(
    match: EventMatch, vocab: Vocabulary, params: _Params, scope: _Scope, *, windowed: bool = True
) -> str:
    """A predicate over `e` (an event) for unit `u`: the event counts for the unit."""
    parts = ["e.tenant_id = u.tenant_id"]
    if not scope.tenant_unit and match.scope == "user" and match.trait_up is None:
        parts.append("e.user_id = u.unit_id")
    if windowed:
        parts.append("e.ts >= u.anchor_at AND e.ts <= u.window_end")
    if match.trait_up is not None:
        trait = params.add(match.trait_up, "text")
        number = f"jsonb_typeof(%s.traits->{trait}) = 'number'"
        before = (
            f"SELECT (b.traits->>{trait})::numeric FROM events b WHERE b.tenant_id = u.tenant_id"
            f" AND b.type = 'group' AND {number % 'b'} AND b.ts <= u.anchor_at"
            " ORDER BY b.ts DESC LIMIT 1"
        )
        first = (
            f"SELECT (b.traits->>{trait})::numeric FROM events b WHERE b.tenant_id = u.tenant_id"
            f" AND b.type = 'group' AND {number % 'b'} ORDER BY b.ts LIMIT 1"
        )
        parts.append(
            f"e.type = 'group' AND {number % 'e'}"
            f" AND (e.traits->>{trait})::numeric > coalesce(({before}), ({first}))"
        )
        return " AND ".join(parts)
    parts.append(f"e.type = 'track' AND {_one_of('e.event', _names(match, vocab), params)}")
    for prop, wanted in match.where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        key = params.add(prop, "text")
        allowed = params.add([_text(v) for v in values], "text[]")
        parts.append(f"e.properties->>{key} = ANY({allowed})")
    if match.when:
        parts.append(_condition_sql(parse_condition(match.when), params))
    if match.same_as_before:
        prop = params.add(match.same_as_before, "text")
        who = "" if scope.tenant_unit else " AND b.user_id = u.unit_id"
        parts.append(
            f"e.properties->>{prop} = (SELECT b.properties->>{prop} FROM events b"
            f" WHERE b.tenant_id = u.tenant_id{who} AND b.type = 'track' AND b.event = e.event"
            " AND b.ts < u.anchor_at ORDER BY b.ts DESC LIMIT 1)"
        )
    return " AND ".join(parts)


def _condition_sql(c: Condition, params: _Params) -> str:
    """A `when:` condition over the event row `e` (errors as NULL, as CEL leaves them out)."""
    if isinstance(c, Const):
        return "TRUE" if c.value else "FALSE"
    if isinstance(c, Logic):
        if c.op == "not":
            return f"(NOT {_condition_sql(c.parts[0], params)})"
        joined = f" {c.op.upper()} ".join(_condition_sql(p, params) for p in c.parts)
        return f"({joined})"
    if c.field.name:
        if not isinstance(c.value, str):
            return {"==": "FALSE", "!=": "TRUE"}.get(c.op, "NULL")
        op = {"==": "=", "!=": "<>"}.get(c.op, c.op)
        return f'(e.event COLLATE "C" {op} {params.add(c.value, "text")})'
    kind = kind_of(c.value)
    if kind == "null" and c.op not in ("==", "!="):
        return "NULL"  # ordering nulls is an error
    json = f"e.properties #> {params.add(list(c.field.keys), 'text[]')}"
    if c.op in ("==", "!="):
        typed = _typed(json, "=" if c.op == "==" else "<>", c.value, params)
        other = "FALSE" if c.op == "==" else "TRUE"  # values of different kinds are not equal
        return (
            f"(CASE WHEN {json} IS NULL THEN NULL"
            f" WHEN jsonb_typeof({json}) = '{kind}' THEN {typed} ELSE {other} END)"
        )
    typed = _typed(json, c.op, c.value, params)
    return f"(CASE WHEN jsonb_typeof({json}) = '{kind}' THEN {typed} END)"


def _typed(json: str, op: str, value: Literal_, params: _Params) -> str:
    kind = kind_of(value)
    if kind == "number":
        return f"({json} #>> '{{}}')::numeric {op} {params.add(value, 'numeric')}"
    if kind == "string":
        return f"({json} #>> '{{}}') COLLATE \"C\" {op} {params.add(value, 'text')}"
    if kind == "boolean":
        return f"({json} #>> '{{}}')::boolean {op} {params.add(value, 'boolean')}"
    return "TRUE" if op == "=" else "FALSE"  # null == null


def _text(value: object) -> str:
    """A scalar as PostgreSQL's `->>` gives it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _first_match(
    matches: Sequence[EventMatch], vocab: Vocabulary, params: _Params, scope: _Scope
) -> str:
    ors = " OR ".join(f"({_match(m, vocab, params, scope)})" for m in matches)
    return f"SELECT min(e.ts) FROM events e WHERE {ors}"


# An activation step applies to the unit: for every role, or the unit has no role, or its own.
_APPLIES = "s.roles = '' OR u.role = '' OR u.role = ANY(string_to_array(s.roles, ','))"


def _activation_at(vocab: Vocabulary, params: _Params, scope: _Scope) -> str:
    """When the unit reached the activation milestone: the k-th of its applicable steps' first
    times (k = signals.yaml `activated_after`, all of the role's steps when it has fewer); a
    tenant's: every step, by anyone."""
    steps = vocab.signals.activation
    events = params.add([s.event for s in steps], "text[]")
    tenant_scope = params.add([s.scope == "tenant" or scope.tenant_unit for s in steps], "bool[]")
    roles = params.add([",".join(s.for_roles) for s in steps], "text[]")
    k = params.add(vocab.signals.activated_after or 10_000, "int")
    return f"""SELECT CASE WHEN count(*) > 0 AND count(st.t) >= least({k}, count(*))
             THEN (array_agg(st.t ORDER BY st.t)
                     FILTER (WHERE st.t IS NOT NULL))[least({k}, count(*))::int]
             END
      FROM (SELECT CASE WHEN s.tenant_scope
                        THEN (SELECT min(e.ts) FROM events e WHERE e.tenant_id = u.tenant_id
                                 AND e.type = 'track' AND e.event = s.event)
                        ELSE (SELECT min(e.ts) FROM events e WHERE e.tenant_id = u.tenant_id
                                 AND e.user_id = u.unit_id AND e.type = 'track'
                                 AND e.event = s.event)
                        END AS t
              FROM unnest({events}, {tenant_scope}, {roles}) AS s(event, tenant_scope, roles)
             WHERE {_APPLIES} OFFSET 0
           ) st"""


# --- Per kind -------------------------------------------------------------------------------------


def _select(metric: MetricSpec, vocab: Vocabulary, params: _Params, scope: _Scope) -> str:
    """The lateral row of one unit: window_end, reached_at, value, detail."""
    if isinstance(metric, ConversionMetric | TimeToMetric):
        outcomes = outcomes_of(metric) if isinstance(metric, ConversionMetric) else (
            "activation" if metric.outcome == "activation" else [metric.outcome]
        )  # fmt: skip
        first = (
            _activation_at(vocab, params, scope)
            if outcomes == "activation"
            else _first_match(outcomes, vocab, params, scope)
        )
        if isinstance(metric, TimeToMetric):
            value = (
                "CASE WHEN f.at <= u.window_end"
                " THEN greatest(0, extract(epoch FROM f.at - u.anchor_at)) END"
            )
            reached = "CASE WHEN f.at <= u.window_end THEN f.at END"
        elif isinstance(metric, ConversionMetric) and metric.absent:
            value = "CASE WHEN f.at IS NULL THEN 1.0 ELSE 0.0 END"
            reached = "f.at"
        else:
            value = "CASE WHEN f.at <= u.window_end THEN 1.0 ELSE 0.0 END"
            reached = "CASE WHEN f.at <= u.window_end THEN f.at END"
        return (
            f"SELECT u.window_end, {reached} AS reached_at, ({value})::float8 AS value,"
            f" NULL::jsonb AS detail FROM ({first}) AS f(at)"
        )
    if isinstance(metric, CountMetric | DistinctMetric):
        pred = _match(metric.events, vocab, params, scope)
        if isinstance(metric, DistinctMetric):
            prop = params.add(metric.distinct, "text")
            count = f"count(DISTINCT e.properties->>{prop}) FILTER (WHERE e.properties ? {prop})"
        else:
            count = "count(*)"
        return (
            f"SELECT u.window_end, NULL::timestamptz AS reached_at, {count}::float8 AS value,"
            f" NULL::jsonb AS detail FROM events e WHERE {pred}"
        )
    if isinstance(metric, RetentionMetric):
        pred = _match(metric.activity, vocab, params, scope, windowed=False)
        weeks = params.add(metric.weeks, "int")
        headline = params.add(metric.headline, "int")
        week = "floor(extract(epoch FROM e.ts - u.anchor_at) / 604800)::int"
        return f"""
SELECT u.anchor_at + make_interval(days => 7 * ({headline} + 1)) AS window_end,
       NULL::timestamptz AS reached_at,
       (CASE WHEN {headline} = ANY(coalesce(w.weeks, '{{}}')) THEN 1.0 ELSE 0.0 END)::float8
         AS value,
       to_jsonb(coalesce(w.weeks, '{{}}'::int[])) AS detail
  FROM (SELECT array_agg(DISTINCT {week} ORDER BY {week}) AS weeks
          FROM events e WHERE {pred}
           AND e.ts >= u.anchor_at + interval '7 days'
           AND e.ts < u.anchor_at + make_interval(days => 7 * ({weeks} + 1))) w"""
    if isinstance(metric, DurationMetric):
        return _duration(metric, params, scope)
    if isinstance(metric, FunnelMetric):
        return _funnel(metric, vocab, params, scope)
    raise TypeError(f"no rows for a {type(metric).__name__}")


def _duration(metric: DurationMetric, params: _Params, scope: _Scope) -> str:
    starts = params.add([t.start for t in metric.tasks], "text[]")
    completes = params.add([t.complete for t in metric.tasks], "text[]")
    keys = params.add([t.match_on or "" for t in metric.tasks], "text[]")
    who_s = "" if scope.tenant_unit else " AND s.user_id = u.unit_id"
    return f"""SELECT u.window_end, NULL::timestamptz AS reached_at,
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds) FROM (
                SELECT extract(epoch FROM (
                         SELECT min(c.ts) FROM events c
                          WHERE c.tenant_id = s.tenant_id AND c.user_id = s.user_id
                            AND c.type = 'track' AND c.event = k.complete
                            AND c.ts >= s.ts AND c.ts <= u.window_end
                            AND (k.match_on = ''
                                 OR c.properties->>k.match_on = s.properties->>k.match_on)
                       ) - s.ts) AS seconds
                  FROM unnest({starts}, {completes}, {keys}) AS k(start, complete, match_on)
                  CROSS JOIN LATERAL (
                    SELECT * FROM events s WHERE s.tenant_id = u.tenant_id{who_s}
                       AND s.type = 'track' AND s.event = k.start
                       AND s.ts >= u.anchor_at AND s.ts <= u.window_end OFFSET 0) s
                  OFFSET 0
             ) d WHERE d.seconds IS NOT NULL)::float8 AS value,
             NULL::jsonb AS detail"""  # fmt: skip


def _funnel(metric: FunnelMetric, vocab: Vocabulary, params: _Params, scope: _Scope) -> str:
    """detail: per step 1 (taken in the window), 0 (not taken) or null (not one of the unit's)."""
    if metric.steps == "activation":
        steps = vocab.signals.activation
        events = params.add([s.event for s in steps], "text[]")
        wide = params.add([s.scope == "tenant" or scope.tenant_unit for s in steps], "bool[]")
        roles = params.add([",".join(s.for_roles) for s in steps], "text[]")
        return f"""SELECT u.window_end, NULL::timestamptz AS reached_at, NULL::float8 AS value,
             (SELECT jsonb_agg(CASE WHEN NOT ({_APPLIES}) THEN NULL
                                    WHEN s.tenant_scope
                                    THEN (EXISTS (SELECT 1 FROM events e
                                           WHERE e.tenant_id = u.tenant_id
                                           AND e.type = 'track' AND e.event = s.event
                                           AND e.ts <= u.window_end))::int
                                    ELSE (EXISTS (SELECT 1 FROM events e
                                           WHERE e.tenant_id = u.tenant_id
                                           AND e.user_id = u.unit_id
                                           AND e.type = 'track' AND e.event = s.event
                                           AND e.ts <= u.window_end))::int END ORDER BY s.n)
                FROM unnest({events}, {wide}, {roles}) WITH ORDINALITY
                     AS s(event, tenant_scope, roles, n)) AS detail"""  # fmt: skip
    taken = ", ".join(
        f"(EXISTS (SELECT 1 FROM events e WHERE {_match(step.outcome, vocab, params, scope)}))::int"
        for step in metric.steps
    )
    return (
        "SELECT u.window_end, NULL::timestamptz AS reached_at, NULL::float8 AS value,"
        f" jsonb_build_array({taken}) AS detail"
    )


def funnel_steps(metric: FunnelMetric, vocab: Vocabulary) -> list[str]:
    """The labels of a funnel's steps, in order."""
    if metric.steps == "activation":
        return [s.label for s in vocab.signals.activation]
    return [s.label for s in metric.steps]


# --- Refreshing --------------------------------------------------------------------------------


class RefreshState(msgspec.Struct, frozen=True):
    watermark: datetime
    refreshed_at: datetime
    tenants: int
    seconds: float


async def refresh_state(pool: Pool | Conn) -> RefreshState | None:
    row = await pool.fetchrow("SELECT * FROM metric_refresh WHERE id = 1")
    if row is None:
        return None
    return RefreshState(row["watermark"], row["refreshed_at"], row["tenants"], row["seconds"])


async def definitions(pool: Pool | Conn) -> dict[str, str]:
    rows = await pool.fetch("SELECT metric, digest FROM metric_definitions")
    return {r["metric"]: r["digest"] for r in rows}


CHUNK_EVENTS = "metric_events"  # a temporary copy of the tenants being refreshed


async def _create_chunk_table(conn: Conn) -> None:
    """CHUNK_EVENTS, empty, for the caller's transaction; `_index_chunk` once it is filled."""
    await conn.execute(
        f"""
SET LOCAL maintenance_work_mem = '256MB';
CREATE TEMP TABLE {CHUNK_EVENTS} (
    tenant_id text, user_id text, type text, event text, properties jsonb, traits jsonb,
    ts timestamptz
) ON COMMIT DROP""",
        timeout=REFRESH_TIMEOUT_S,
    )


async def _index_chunk(conn: Conn) -> None:
    """Index CHUNK_EVENTS for every lookup the metrics make (built once it is filled: faster
    than keeping indexes up row by row)."""
    await conn.execute(
        f"""
CREATE INDEX {CHUNK_EVENTS}_tenant ON {CHUNK_EVENTS} (tenant_id, event, user_id, ts);
CREATE INDEX {CHUNK_EVENTS}_group ON {CHUNK_EVENTS} (tenant_id, ts) WHERE type = 'group';
CREATE STATISTICS pg_temp.{CHUNK_EVENTS}_who (ndistinct, dependencies)
    ON tenant_id, user_id FROM {CHUNK_EVENTS};
ANALYZE {CHUNK_EVENTS}""",
        timeout=REFRESH_TIMEOUT_S,
    )


async def windows_holding(conn: Conn, names: Sequence[str]) -> list[int]:
    """The retention windows (keep_days) whose partitions hold group calls or track events named
    `names`: reads of those events say `keep_days = ANY(...)`, and PostgreSQL reads no other
    window's partitions (page views, say)."""
    rows = await conn.fetch(
        "SELECT DISTINCT keep_days FROM event_windows"
        " WHERE type = 'group' OR (type = 'track' AND event = ANY($1::text[]))",
        list(names),
        timeout=REFRESH_TIMEOUT_S,
    )
    return sorted(r["keep_days"] for r in rows)


async def copy_chunk(conn: Conn, tenants: list[str], names: Sequence[str]) -> None:
    """Copy the group calls of these tenants and their track events named `names` (what the
    metrics read, `event_names`) into CHUNK_EVENTS (within the caller's transaction), indexed for
    every lookup the metrics make, so that each metric's statement reads a small indexed table
    instead of the whole event history."""
    await _create_chunk_table(conn)
    await conn.execute(
        f"INSERT INTO {CHUNK_EVENTS} SELECT tenant_id, user_id, type, event, properties, traits,"
        " ts FROM events WHERE tenant_id = ANY($1::text[]) AND keep_days = ANY($3::int[])"
        " AND (type = 'group' OR (type = 'track' AND event = ANY($2::text[])))",
        tenants,
        list(names),
        await windows_holding(conn, names),
        timeout=REFRESH_TIMEOUT_S,
    )
    await _index_chunk(conn)


async def all_tenants(conn: Conn) -> list[str]:
    return [
        r["tenant_id"]
        for r in await conn.fetch(
            "SELECT tenant_id FROM tenants ORDER BY 1", timeout=REFRESH_TIMEOUT_S
        )
    ]


async def recompute(
    conn: Conn, metric: str, statement: tuple[str, list[Any]] | None, tenants: list[str] | None
) -> None:
    """Replace the metric's rows of these tenants, or (None) of the units marked for it with a
    statement made `only_marked` (in the caller's transaction)."""
    if tenants is None:
        await conn.execute(
            f"DELETE FROM metric_values v USING {MARKED} m WHERE m.metric = $1 AND v.metric = $1"
            " AND v.tenant_id = m.tenant_id AND v.unit_id = m.unit_id",
            metric,
            timeout=REFRESH_TIMEOUT_S,
        )
    else:
        await conn.execute(
            "DELETE FROM metric_values WHERE metric = $1 AND tenant_id = ANY($2::text[])",
            metric,
            tenants,
            timeout=REFRESH_TIMEOUT_S,
        )
    if statement is not None:
        sql, params = statement
        first: str | list[str] = metric if tenants is None else tenants
        await conn.execute(sql, first, *params, timeout=REFRESH_TIMEOUT_S)


_EXPOSURES = """
INSERT INTO metric_exposures (tenant_id, user_id, widget_id, widget_type, first_at)
SELECT tenant_id, user_id, properties->>'widget_id', coalesce(max(properties->>'widget_type'), ''),
       min(ts)
  FROM events
 WHERE {which} AND type = 'track' AND event = 'widget_viewed' AND properties ? 'widget_id'
 GROUP BY tenant_id, user_id, properties->>'widget_id'
"""
_OF_TENANTS = "tenant_id = ANY($1::text[])"


async def recompute_exposures(conn: Conn, tenants: list[str]) -> None:
    await conn.execute(
        "DELETE FROM metric_exposures WHERE tenant_id = ANY($1::text[])",
        tenants,
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute(_EXPOSURES.format(which=_OF_TENANTS), tenants, timeout=REFRESH_TIMEOUT_S)


# --- Refreshing only what new events can change ---------------------------------------------------
#
# An incremental refresh recomputes a metric's row for a unit only when an event received since
# the last refresh can change it: an event of the unit's own (or, for what a metric reads from
# anyone in the tenant, of its tenant) timed before the last moment the row reads (its anchor plus
# the window; retention: the last week). A later event can neither move an anchor that is the
# first of something nor fall in the window. A few events matter at any time: an identify (the
# role a population or an activation step asks for), a signed_up (a sign-up anchor is the first
# signed_up, else the first event) and, for a population by plan at the anchor, the tenant's plan
# changes.

NEW_EVENTS = "metric_new"  # what was received since the last refresh: who, what, when
MARKED = "metric_marked"  # (metric, tenant, unit) to recompute


@dataclass(frozen=True)
class Reads:
    """What a metric's rows read beyond the unit's own events."""

    tenant_names: frozenset[str]  # track events read from anyone in the unit's tenant
    group: bool  # the tenant's group calls (traits over time)
    plan_population: bool  # a population by plan at the anchor: any plan change counts
    horizon_s: float  # the rows read no event later than anchor + this
    signup_anchor: bool  # anchored at sign-up, which a later signed_up can move


def _matches(metric: MetricSpec) -> tuple[list[EventMatch], bool]:
    """The metric's event matches, and whether it reads the activation steps."""
    if isinstance(metric, ConversionMetric):
        outcomes = outcomes_of(metric)
        return ([], True) if outcomes == "activation" else (list(outcomes), False)
    if isinstance(metric, TimeToMetric):
        return ([], True) if metric.outcome == "activation" else ([metric.outcome], False)
    if isinstance(metric, CountMetric | DistinctMetric):
        return [metric.events], False
    if isinstance(metric, RetentionMetric):
        return [metric.activity], False
    if isinstance(metric, FunnelMetric):
        if metric.steps == "activation":
            return [], True
        return [step.outcome for step in metric.steps], False
    return [], False


def _names_read(metric: MetricSpec, vocab: Vocabulary, *, tenant_wide: bool) -> set[str]:
    """The track event names the metric's rows read: all of them, or (`tenant_wide`) those read
    from anyone in the unit's tenant (for a tenant unit, every name it reads)."""
    tenant_unit = metric.unit == "tenant"
    every = not tenant_wide or tenant_unit
    matches, activation = _matches(metric)
    names: set[str] = set()
    for m in matches:
        if m.trait_up is None and (every or m.scope == "tenant"):
            names.update(_names(m, vocab))
    if activation:
        names.update(s.event for s in vocab.signals.activation if every or s.scope == "tenant")
    anchor = anchor_of(metric)
    if tenant_unit if tenant_wide else anchor.at == "signup":
        names.add("signed_up")  # a tenant's anchor is its first user's sign-up
    if every and anchor.at == "exposure":
        names.update(anchor.on)
    if every and isinstance(metric, DurationMetric):
        names.update(n for t in metric.tasks for n in (t.start, t.complete))
    if metric.population.plan_at_anchor:
        names.add("plan_upgraded")
    return names


def reads(metric: MetricSpec, vocab: Vocabulary) -> Reads:
    matches, _ = _matches(metric)
    horizon = metric.within_days * _DAY
    if isinstance(metric, RetentionMetric):
        horizon = max(horizon, 7 * (metric.weeks + 1) * _DAY)
    return Reads(
        tenant_names=frozenset(_names_read(metric, vocab, tenant_wide=True)),
        group=bool(metric.population.plan_at_anchor)
        or any(m.trait_up is not None for m in matches),
        plan_population=bool(metric.population.plan_at_anchor),
        horizon_s=horizon,
        signup_anchor=anchor_of(metric).at == "signup",
    )


def event_names(metrics: Sequence[MetricSpec], vocab: Vocabulary) -> list[str]:
    """Every track event name these metrics' rows read (group calls aside): their matches,
    anchors, activation steps, tasks and the plan changes a population by plan reads. A refresh
    copies only these events for the units it recomputes."""
    return sorted({n for m in metrics for n in _names_read(m, vocab, tenant_wide=False)})


async def collect_new(conn: Conn, since: datetime) -> int:
    """Note (in the caller's transaction) who sent what, when, since `since` (a little before,
    see OVERLAP_S); the number of events."""
    await conn.execute(
        f"""
CREATE TEMP TABLE IF NOT EXISTS {NEW_EVENTS} (
    tenant_id text, user_id text, type text, event text, ts timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS {MARKED} (
    metric text, tenant_id text, unit_id text, PRIMARY KEY (metric, tenant_id, unit_id)
) ON COMMIT DELETE ROWS""",
        timeout=REFRESH_TIMEOUT_S,
    )
    status = await conn.execute(
        f"INSERT INTO {NEW_EVENTS} SELECT tenant_id, user_id, type, event, ts FROM events"
        " WHERE received_at > $1::timestamptz - make_interval(secs => $2::float8)",
        since,
        float(OVERLAP_S),
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute(f"ANALYZE {NEW_EVENTS}", timeout=REFRESH_TIMEOUT_S)
    return int(status.split()[-1])


async def new_tenants(conn: Conn) -> list[str]:
    rows = await conn.fetch(
        f"SELECT DISTINCT tenant_id FROM {NEW_EVENTS} ORDER BY 1", timeout=REFRESH_TIMEOUT_S
    )
    return [r["tenant_id"] for r in rows]


async def new_users(conn: Conn) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        f"SELECT DISTINCT tenant_id, user_id FROM {NEW_EVENTS} ORDER BY 1, 2",
        timeout=REFRESH_TIMEOUT_S,
    )
    return [(r["tenant_id"], r["user_id"]) for r in rows]


def _since(r: Reads, *, identify_matters: bool) -> str:
    """Per new event: the earliest time of a row it can change (-infinity: any row)."""
    always = []
    if identify_matters:
        always.append("n.type = 'identify'")
    if r.signup_anchor:
        # The first sign-up, else the first event: a sign-up after the first event moves it.
        always.append("n.event = 'signed_up'")
    if r.plan_population:
        always.append("n.type = 'group' OR n.event = 'plan_upgraded'")
    if not always:
        return "n.ts"
    return f"CASE WHEN {' OR '.join(always)} THEN '-infinity'::timestamptz ELSE n.ts END"


async def mark_units(conn: Conn, name: str, metric: MetricSpec, vocab: Vocabulary) -> int:
    """Mark the units whose rows of `name` the new events can change; how many."""
    r = reads(metric, vocab)
    horizon = "make_interval(secs => $2::float8)"
    if metric.unit == "tenant":
        sql = f"""
INSERT INTO {MARKED} (metric, tenant_id, unit_id)
SELECT $1, c.tenant_id, '' FROM (
  SELECT n.tenant_id, min({_since(r, identify_matters=False)}) AS since
    FROM {NEW_EVENTS} n GROUP BY 1) c
  LEFT JOIN metric_values v ON v.metric = $1 AND v.tenant_id = c.tenant_id AND v.unit_id = ''
 WHERE v.anchor_at IS NULL OR v.anchor_at + {horizon} >= c.since
ON CONFLICT DO NOTHING"""
        status = await conn.execute(sql, name, r.horizon_s, timeout=REFRESH_TIMEOUT_S)
        return int(status.split()[-1])
    wide = ""
    if r.tenant_names or r.group:
        wide = f"""
  UNION ALL
  SELECT u.tenant_id, u.user_id, false, t.since FROM (
    SELECT n.tenant_id, min({_since(r, identify_matters=False)}) AS since FROM {NEW_EVENTS} n
     WHERE (n.type = 'track' AND n.event = ANY($3::text[])) OR ($4::bool AND n.type = 'group')
     GROUP BY 1) t
  JOIN users u ON u.tenant_id = t.tenant_id"""
    sql = f"""
INSERT INTO {MARKED} (metric, tenant_id, unit_id)
SELECT DISTINCT $1, c.tenant_id, c.unit_id FROM (
  SELECT n.tenant_id, n.user_id AS unit_id, true AS own,
         min({_since(r, identify_matters=True)}) AS since
    FROM {NEW_EVENTS} n GROUP BY 1, 2{wide}
) c
  LEFT JOIN metric_values v
    ON v.metric = $1 AND v.tenant_id = c.tenant_id AND v.unit_id = c.unit_id
 WHERE (v.anchor_at IS NULL AND (c.own OR c.since = '-infinity'))
    OR v.anchor_at + {horizon} >= c.since
ON CONFLICT DO NOTHING"""
    args: list[Any] = [name, r.horizon_s]
    if wide:
        args += [sorted(r.tenant_names), r.group]
    status = await conn.execute(sql, *args, timeout=REFRESH_TIMEOUT_S)
    return int(status.split()[-1])


async def copy_marked(conn: Conn, names: Sequence[str], tenant_names: Sequence[str]) -> None:
    """Copy into CHUNK_EVENTS what the marked units' rows read: their users' own events named
    `names`, and of their tenants the group calls and the track events named in `tenant_names`
    (found through user_event_days, so a tenant's history is not scanned for them)."""
    await _create_chunk_table(conn)
    await conn.execute(
        f"""
CREATE TEMP TABLE IF NOT EXISTS metric_marked_users (
    tenant_id text, user_id text, PRIMARY KEY (tenant_id, user_id)
) ON COMMIT DROP;
INSERT INTO metric_marked_users SELECT DISTINCT tenant_id, unit_id FROM {MARKED}
 WHERE unit_id <> '';
ANALYZE metric_marked_users""",
        timeout=REFRESH_TIMEOUT_S,
    )
    columns = "e.tenant_id, e.user_id, e.type, e.event, e.properties, e.traits, e.ts"
    windows = await windows_holding(conn, [*names, *tenant_names])
    await conn.execute(
        f"""
INSERT INTO {CHUNK_EVENTS} SELECT {columns}
  FROM metric_marked_users m JOIN events e ON e.tenant_id = m.tenant_id AND e.user_id = m.user_id
 WHERE e.keep_days = ANY($2::int[])
   AND (e.type = 'group' OR (e.type = 'track' AND e.event = ANY($1::text[])))""",
        list(names),
        windows,
        timeout=REFRESH_TIMEOUT_S,
    )
    tenants = [
        r["tenant_id"]
        for r in await conn.fetch(
            f"SELECT DISTINCT tenant_id FROM {MARKED}", timeout=REFRESH_TIMEOUT_S
        )
    ]
    others = (
        "NOT EXISTS (SELECT 1 FROM metric_marked_users m"
        " WHERE m.tenant_id = e.tenant_id AND m.user_id = e.user_id)"
    )
    await conn.execute(
        f"INSERT INTO {CHUNK_EVENTS} SELECT {columns} FROM events e"
        " WHERE e.tenant_id = ANY($1::text[]) AND e.keep_days = ANY($2::int[])"
        f" AND e.type = 'group' AND {others}",
        tenants,
        windows,
        timeout=REFRESH_TIMEOUT_S,
    )
    if tenant_names:
        await conn.execute(
            f"""
INSERT INTO {CHUNK_EVENTS} SELECT {columns}
  FROM user_event_days d
  JOIN events e ON e.tenant_id = d.tenant_id AND e.user_id = d.user_id
   AND e.ts >= d.day::timestamp AT TIME ZONE 'UTC'
   AND e.ts < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
   AND e.type = 'track' AND e.event = d.event AND e.keep_days = ANY($3::int[])
 WHERE d.tenant_id = ANY($1::text[]) AND d.event = ANY($2::text[]) AND {others}""",
            tenants,
            list(tenant_names),
            windows,
            timeout=REFRESH_TIMEOUT_S,
        )
    await _index_chunk(conn)


async def add_exposures(conn: Conn, since: datetime) -> None:
    """Fold the widget_viewed events received since `since` (less OVERLAP_S) into the first
    exposures (in the caller's transaction): a view can only add an exposure or move one earlier."""
    await conn.execute(
        _EXPOSURES.format(which="received_at > $1::timestamptz - make_interval(secs => $2::float8)")
        + """ ON CONFLICT (tenant_id, user_id, widget_id) DO UPDATE
                SET first_at = least(metric_exposures.first_at, EXCLUDED.first_at),
                    widget_type = greatest(metric_exposures.widget_type, EXCLUDED.widget_type)""",
        since,
        float(OVERLAP_S),
        timeout=REFRESH_TIMEOUT_S,
    )


# The first signed_up is read on the first day user_event_days has one, not among every event.
_UNIT_FACTS = """
SELECT u.tenant_id, u.user_id, u.first_seen,
       coalesce((SELECT min(s.ts)
                   FROM (SELECT d.day FROM user_event_days d
                          WHERE d.tenant_id = u.tenant_id AND d.user_id = u.user_id
                            AND d.event = 'signed_up' ORDER BY d.day LIMIT 1) d
                   JOIN events s ON s.tenant_id = u.tenant_id AND s.user_id = u.user_id
                    AND s.ts >= d.day::timestamp AT TIME ZONE 'UTC'
                    AND s.ts < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
                    AND s.type = 'track' AND s.event = 'signed_up'
                    AND s.keep_days = ANY('{{{windows}}}'::int[])),
                u.first_seen) AS signup_at,
       coalesce(u.traits->>'role', '') AS role
  FROM users u WHERE {which}
"""


class UnitFacts(msgspec.Struct, frozen=True):
    tenant_id: str
    user_id: str
    first_seen: datetime
    signup_at: datetime
    role: str


async def unit_facts(
    conn: Conn, tenants: list[str], users: Sequence[tuple[str, str]] | None = None
) -> list[UnitFacts]:
    """The users of these tenants (or only `users`), for their metric_units rows."""
    windows = ",".join(str(int(w)) for w in await windows_holding(conn, ["signed_up"]))
    if users is None:
        sql = _UNIT_FACTS.format(which=f"u.{_OF_TENANTS}", windows=windows)
        rows = await conn.fetch(sql, tenants, timeout=REFRESH_TIMEOUT_S)
    else:
        pairs = [[t for t, _ in users], [u for _, u in users]]
        which = "(u.tenant_id, u.user_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        sql = _UNIT_FACTS.format(which=which, windows=windows)
        rows = await conn.fetch(sql, *pairs, timeout=REFRESH_TIMEOUT_S)
    return [
        UnitFacts(r["tenant_id"], r["user_id"], r["first_seen"], r["signup_at"], r["role"])
        for r in rows
    ]


UNIT_COLUMNS = (
    "tenant_id", "unit", "unit_id", "signup_at", "first_event_at", "cohort", "role", "plan",
    "industry", "seat_band", "stage",
)  # fmt: skip


async def replace_user_units(
    conn: Conn,
    tenants: list[str],
    rows: list[tuple[Any, ...]],
    users: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Replace the user rows of metric_units of these tenants (or only of `users`)."""
    if users is None:
        await conn.execute(
            f"DELETE FROM metric_units WHERE unit = 'user' AND {_OF_TENANTS}",
            tenants,
            timeout=REFRESH_TIMEOUT_S,
        )
    else:
        await conn.execute(
            "DELETE FROM metric_units WHERE unit = 'user'"
            " AND (tenant_id, unit_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [t for t, _ in users],
            [u for _, u in users],
            timeout=REFRESH_TIMEOUT_S,
        )
    if rows:
        await conn.copy_records_to_table(
            "metric_units", records=rows, columns=UNIT_COLUMNS, timeout=REFRESH_TIMEOUT_S
        )


async def tenant_traits(conn: Conn, tenants: list[str]) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT tenant_id, traits FROM tenants WHERE {_OF_TENANTS}",
        tenants,
        timeout=REFRESH_TIMEOUT_S,
    )
    return {r["tenant_id"]: r["traits"] or {} for r in rows}


async def retenant_units(conn: Conn, tenants: Sequence[tuple[str, str, str, str]]) -> None:
    """Give these tenants' (id, plan, industry, seat band) to their users' rows, and remake
    each tenant's own row from its users' (its sign-up: its first user's)."""
    columns = [list(c) for c in zip(*tenants, strict=True)] if tenants else [[], [], [], []]
    given = (
        "unnest($1::text[], $2::text[], $3::text[], $4::text[])"
        " AS x(tenant_id, plan, industry, seat_band)"
    )
    await conn.execute(
        f"""UPDATE metric_units mu SET plan = x.plan, industry = x.industry,
                  seat_band = x.seat_band
             FROM {given}
            WHERE mu.tenant_id = x.tenant_id AND mu.unit = 'user'
              AND (mu.plan, mu.industry, mu.seat_band)
                  IS DISTINCT FROM (x.plan, x.industry, x.seat_band)""",
        *columns,
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute(
        f"DELETE FROM metric_units WHERE unit = 'tenant' AND {_OF_TENANTS}",
        columns[0],
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute(
        f"""INSERT INTO metric_units ({", ".join(UNIT_COLUMNS)})
           SELECT x.tenant_id, 'tenant', '', min(mu.signup_at), min(mu.first_event_at),
                  date_trunc('week', min(mu.signup_at) AT TIME ZONE 'UTC')::date, '', x.plan,
                  x.industry, x.seat_band, ''
             FROM {given}
             JOIN metric_units mu ON mu.tenant_id = x.tenant_id AND mu.unit = 'user'
            GROUP BY x.tenant_id, x.plan, x.industry, x.seat_band""",
        *columns,
        timeout=REFRESH_TIMEOUT_S,
    )


async def forget_metrics(conn: Conn, keep: list[str]) -> None:
    """Drop the rows of metrics no longer defined."""
    await conn.execute(
        "DELETE FROM metric_values WHERE NOT (metric = ANY($1::text[]))",
        keep,
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute(
        "DELETE FROM metric_definitions WHERE NOT (metric = ANY($1::text[]))",
        keep,
        timeout=REFRESH_TIMEOUT_S,
    )


async def save_definition(conn: Conn, metric: str, digest_: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO metric_definitions (metric, digest, refreshed_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (metric) DO UPDATE SET digest = EXCLUDED.digest,"
        " refreshed_at = EXCLUDED.refreshed_at",
        metric,
        digest_,
        at,
        timeout=REFRESH_TIMEOUT_S,
    )


async def save_refresh(
    conn: Conn, watermark: datetime, at: datetime, tenants: int, seconds: float
) -> None:
    await conn.execute(
        "INSERT INTO metric_refresh (id, watermark, refreshed_at, tenants, seconds)"
        " VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET watermark = EXCLUDED.watermark,"
        " refreshed_at = EXCLUDED.refreshed_at, tenants = EXCLUDED.tenants,"
        " seconds = EXCLUDED.seconds",
        watermark,
        at,
        tenants,
        seconds,
        timeout=REFRESH_TIMEOUT_S,
    )
    await conn.execute("SELECT pg_notify($1, '')", METRICS_CHANNEL, timeout=REFRESH_TIMEOUT_S)


async def database_now(conn: Conn) -> datetime:
    """The database's clock: the watermark is compared with `received_at`, which it set."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()", timeout=REFRESH_TIMEOUT_S)
    return now


# --- Reading the rows back, grouped -----------------------------------------------------------

UNIT_KEYS = {
    "plan": "mu.plan",
    "role": "mu.role",
    "industry": "mu.industry",
    "stage": "mu.stage",
    "seat_band": "mu.seat_band",
    "cohort": "to_char(mu.cohort, 'YYYY-MM-DD')",
}


@dataclass(frozen=True)
class Slice:
    """Which units of a metric to read, and how to group them."""

    metric: str
    unit: str  # "user" | "tenant"
    start: datetime  # units anchored in [start, end)
    end: datetime
    by: tuple[str, ...] = ()  # keys of UNIT_KEYS, or "exposure"
    exposure: str | None = None  # a widget id or type, for the "exposure" key
    exposure_roles: tuple[str, ...] | None = None  # roles that can be shown it (None: all)
    weekly: bool = False  # also group by the week of the anchor
    tenant_id: str | None = None  # one tenant only
    where: tuple[tuple[str, str], ...] = ()  # (key of UNIT_KEYS, value) filters


@dataclass(frozen=True)
class _SliceSql:
    joins: str  # FROM metric_values v JOIN metric_units mu ...
    where: str  # conditions, joined by AND
    keys: list[str]  # the group-by expressions
    names: list[str]  # ... and their names

    def select_keys(self) -> str:
        return "".join(f"{k} AS k{i}, " for i, k in enumerate(self.keys))

    def group_by(self, *more: str) -> str:
        parts = [f"k{i}" for i in range(len(self.keys))] + list(more)
        return f" GROUP BY {', '.join(parts)}" if parts else ""

    def key_of(self, row: Any) -> tuple[str, ...]:
        return tuple(str(row[f"k{i}"]) for i in range(len(self.keys)))


def _slice_sql(s: Slice, params: _Params, now: datetime | None = None) -> _SliceSql:
    """The rows of a slice (`v` the metric's values, `mu` their units), matured by `now`."""
    keys: list[str] = []
    names: list[str] = []
    for name in s.by:
        if name == "exposure":
            who = "" if s.unit == "tenant" else " AND x.user_id = v.unit_id"
            widget = params.add(s.exposure, "text")
            keys.append(
                "CASE WHEN EXISTS (SELECT 1 FROM metric_exposures x WHERE x.tenant_id ="
                f" v.tenant_id{who} AND (x.widget_id = {widget} OR x.widget_type = {widget})"
                " AND x.first_at >= v.anchor_at"
                " AND x.first_at <= coalesce(v.reached_at, v.window_end))"
                " THEN 'shown' ELSE 'not shown' END"
            )
        else:
            keys.append(UNIT_KEYS[name])
        names.append(name)
    if s.weekly:
        keys.append("to_char(date_trunc('week', v.anchor_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')")
        names.append("week")
    where = [
        f"v.metric = {params.add(s.metric, 'text')}",
        f"v.anchor_at >= {params.add(s.start, 'timestamptz')}",
        f"v.anchor_at < {params.add(s.end, 'timestamptz')}",
    ]
    if now is not None:
        where.append(f"v.window_end <= {params.add(now, 'timestamptz')}")
    if s.tenant_id is not None:
        where.append(f"v.tenant_id = {params.add(s.tenant_id, 'text')}")
    for key, value in s.where:
        where.append(f"{UNIT_KEYS[key]} = {params.add(value, 'text')}")
    if "exposure" in s.by and s.exposure_roles is not None and s.unit == "user":
        where.append(f"mu.role = ANY({params.add(list(s.exposure_roles), 'text[]')})")
    joins = (
        "FROM metric_values v JOIN metric_units mu ON mu.tenant_id = v.tenant_id"
        f" AND mu.unit = {params.add(s.unit, 'text')} AND mu.unit_id = v.unit_id"
    )
    return _SliceSql(joins, " AND ".join(where), keys, names)


async def _fetch_slice(
    db: Pool | Conn, sql: str, values: list[Any], *, hashed: bool = False
) -> list[Any]:
    """Rows of a query over a slice, planned for its own parameters each time: the generic
    plan PostgreSQL moves a prepared statement to after five runs cannot see how few rows a
    date range or a metric selects, and is several times slower here. `hashed`: group by
    hashing, never by sorting (the planner underestimates the cost of sorting jsonb keys)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await _fetch_slice(conn, sql, values, hashed=hashed)
    async with db.transaction():
        # Memory to group a slice's units in (a few MB per 100,000), not on disk.
        await db.execute(
            "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL work_mem = '64MB'"
            + ("; SET LOCAL enable_sort = off" if hashed else "")
        )
        return list(await db.fetch(sql, *values))


async def moments(
    db: Pool | Conn, s: Slice, now: datetime
) -> list[tuple[tuple[str, ...], int, float, float]]:
    """Per group of matured units with a value: (key, n, sum of values, sum of their squares)."""
    params = _Params()
    q = _slice_sql(s, params, now)
    sql = (
        f"SELECT {q.select_keys()}count(*) AS n, coalesce(sum(v.value), 0) AS s,"
        f" coalesce(sum(v.value * v.value), 0) AS ss {q.joins}"
        f" WHERE {q.where} AND v.value IS NOT NULL{q.group_by()}"
    )
    rows = await _fetch_slice(db, sql, params.values)
    return [(q.key_of(r), r["n"], r["s"], r["ss"]) for r in rows]


async def group_sizes(
    db: Pool | Conn, s: Slice, now: datetime
) -> dict[tuple[str, ...], tuple[int, int]]:
    """Per group of matured units: (units, units with a value); a time_to unit without one never
    got there, and is counted."""
    params = _Params()
    q = _slice_sql(s, params, now)
    sql = (
        f"SELECT {q.select_keys()}count(*) AS n, count(v.value) AS reached {q.joins}"
        f" WHERE {q.where}{q.group_by()}"
    )
    rows = await _fetch_slice(db, sql, params.values)
    return {q.key_of(r): (r["n"], r["reached"]) for r in rows}


async def quantiles(
    db: Pool | Conn,
    s: Slice,
    now: datetime,
    fractions: dict[tuple[str, ...], list[float]],
    *,
    never_counts: bool,
) -> dict[tuple[str, ...], list[float]]:
    """Per group, the values at these fractions of its ordered values; with `never_counts` a
    unit without a value (it never got there) ranks last, as infinity."""
    if not fractions:
        return {}
    params = _Params()
    q = _slice_sql(s, params, now)
    ordered = "coalesce(v.value, 'Infinity'::float8)" if never_counts else "v.value"
    present = "" if never_counts else " AND v.value IS NOT NULL"
    # One query for every group: every group asks for all the fractions any group needs.
    every = sorted({f for wanted in fractions.values() for f in wanted})
    at = params.add(every, "float8[]")
    sql = (
        f"SELECT {q.select_keys()}percentile_disc({at}) WITHIN GROUP (ORDER BY {ordered}) AS q"
        f" {q.joins} WHERE {q.where}{present}{q.group_by()}"
    )
    rows = await _fetch_slice(db, sql, params.values)
    out: dict[tuple[str, ...], list[float]] = {}
    for r in rows:
        key = q.key_of(r)
        if key in fractions and r["q"] is not None:
            found = dict(zip(every, r["q"], strict=True))
            out[key] = [found[f] for f in fractions[key]]
    return out


async def retention_weeks(
    db: Pool | Conn, s: Slice, weeks: int, now: datetime
) -> list[tuple[tuple[str, ...], int, int, int]]:
    """Per group and week N: (key, N, units whose week N is over, those active in it).

    Units are first counted per group, weeks over (week N is over once 7 (N + 1) days have
    passed since the anchor) and weeks active: the weeks are then counted from those few rows,
    not from every unit.
    """
    params = _Params()
    q = _slice_sql(s, params)
    at = params.add(now, "timestamptz")
    over = f"floor(date_part('epoch', {at} - v.anchor_at) / 604800)::int - 1"
    counts = [
        f"coalesce(sum(g.c) FILTER (WHERE g.weeks_over >= {n}), 0) AS n{n},"
        f" coalesce(sum(g.c) FILTER (WHERE g.weeks_over >= {n}"
        f" AND g.weeks_active @> '{n}'::jsonb), 0) AS a{n}"
        for n in range(1, weeks + 1)
    ]
    inner = ", ".join(f"g.k{i}" for i in range(len(q.keys)))
    sql = (
        f"SELECT {inner + ', ' if inner else ''}{', '.join(counts)} FROM ("
        f"SELECT {q.select_keys()}{over} AS weeks_over, v.detail AS weeks_active, count(*) AS c"
        f" {q.joins}"
        f" WHERE {q.where}{q.group_by('weeks_over', 'weeks_active')}"
        f") g{' GROUP BY ' + inner if inner else ''}"
    )
    # grouped by the weeks active (a jsonb array) of every unit: hashing them is about a third
    # faster than sorting them (measured on 100,000 units)
    rows = await _fetch_slice(db, sql, params.values, hashed=True)
    return [
        (q.key_of(r), n, int(r[f"n{n}"]), int(r[f"a{n}"]))
        for r in rows
        for n in range(1, weeks + 1)
    ]


async def funnel_counts(
    db: Pool | Conn, s: Slice, now: datetime
) -> list[tuple[tuple[str, ...], int, int, int, int]]:
    """Per group and step i (from 1): (key, i, units it applies to, units that took it, units
    that took it and every earlier step that applies to them)."""
    params = _Params()
    q = _slice_sql(s, params, now)
    sql = f"""
SELECT {q.select_keys()}st.i AS step,
       count(*) FILTER (WHERE st.t <> 'null'::jsonb) AS n,
       count(*) FILTER (WHERE st.t = '1'::jsonb) AS taken,
       count(*) FILTER (WHERE st.t = '1'::jsonb AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements(v.detail) WITH ORDINALITY AS b(t, j)
            WHERE b.j < st.i AND b.t = '0'::jsonb)) AS through
  {q.joins} CROSS JOIN LATERAL jsonb_array_elements(v.detail) WITH ORDINALITY AS st(t, i)
 WHERE {q.where} AND jsonb_typeof(v.detail) = 'array'{q.group_by("st.i")}"""
    rows = await _fetch_slice(db, sql, params.values)
    return [(q.key_of(r), r["step"], r["n"], r["taken"], r["through"]) for r in rows]


async def ratio_moments(
    db: Pool | Conn, s: Slice, denominator: str, now: datetime
) -> list[tuple[tuple[str, ...], int, float, float, float, float, float]]:
    """`s` over the numerator metric; per group of units matured in both metrics:
    (key, n, Σx, Σy, Σx², Σy², Σxy), x the numerator's value and y the denominator's."""
    params = _Params()
    q = _slice_sql(s, params, now)
    den = params.add(denominator, "text")
    sql = (
        f"SELECT {q.select_keys()}count(*) AS n, sum(v.value) AS sx, sum(d.value) AS sy,"
        " sum(v.value * v.value) AS sxx, sum(d.value * d.value) AS syy,"
        f" sum(v.value * d.value) AS sxy {q.joins}"
        " JOIN metric_values d ON d.tenant_id = v.tenant_id AND d.unit_id = v.unit_id"
        f" AND d.metric = {den}"
        f" WHERE {q.where} AND d.window_end <= {params.add(now, 'timestamptz')}"
        f" AND v.value IS NOT NULL AND d.value IS NOT NULL{q.group_by()}"
    )
    rows = await _fetch_slice(db, sql, params.values)
    return [(q.key_of(r), r["n"], r["sx"], r["sy"], r["sxx"], r["syy"], r["sxy"]) for r in rows]


# --- Experiments: a metric per enrolled unit, from its exposure -----------------------------------


def experiment_sql(
    metric: MetricSpec, vocab: Vocabulary, *, tenant_unit: bool, before: bool = False
) -> tuple[str, list[Any]] | None:
    """Each enrolled unit's value of `metric` in the window after its exposure (with `before`,
    in the window of the same length before its assignment: CUPED's covariate, which the arm
    cannot have moved), for the experiment named `$1` (text) whose touched widgets are `$2`
    (text[]), counting units exposed since `$3` (timestamptz; NULL: all). Rows: arm, tenant_id,
    unit_id, anchor_at, window_end, value. A unit's exposure is when the server recorded it (a
    flag it served, a decision on a screen whose widgets an arm hides, swaps or rearranges) or
    else its first `widget_viewed` of a touched widget after its assignment; units never exposed
    have no row. The metric's population (roles, plan at exposure) applies. None for ratios."""
    if isinstance(metric, RatioMetric):
        return None
    params = _Params([None, None, None])
    scope = _Scope(tenant_unit=tenant_unit)
    window = params.add(metric.within_days * _DAY, "float8")
    who = "" if tenant_unit else " AND x.user_id = a.unit_id"
    exposure = (
        "coalesce(a.exposed_at, (SELECT min(x.ts) FROM events x WHERE x.tenant_id = a.tenant_id"
        f"{who} AND x.type = 'track' AND x.event = 'widget_viewed'"
        " AND x.properties->>'widget_id' = ANY($2::text[]) AND x.ts >= a.assigned_at))"
    )
    anchor, end = (
        (f"a0 - make_interval(secs => {window})", "a0") if before
        else ("e0", f"e0 + make_interval(secs => {window})")
    )  # fmt: skip
    where = ["q.e0 IS NOT NULL", "($3::timestamptz IS NULL OR q.e0 >= $3::timestamptz)"]
    if metric.population.role:
        where.append(f"q.role = ANY({params.add(metric.population.role, 'text[]')})")
    if metric.population.plan_at_anchor:
        plans = params.add(metric.population.plan_at_anchor, "text[]")
        where.append(f"{_plan_at(tenant_expr='q.tenant_id', at='q.e0')} = ANY({plans})")
    select = _select(metric, vocab, params, scope)
    sql = f"""
WITH enrolled AS MATERIALIZED (
  SELECT a.tenant_id, a.unit_id, a.arm, coalesce(uu.traits->>'role', '') AS role,
         a.assigned_at AS a0, ({exposure}) AS e0
    FROM experiment_assignments a
    LEFT JOIN users uu ON uu.tenant_id = a.tenant_id AND uu.user_id = a.unit_id
   WHERE a.experiment = $1::text OFFSET 0
),
units AS (
  SELECT q.tenant_id, q.unit_id, q.arm, q.role, {anchor} AS anchor_at, {end} AS window_end
    FROM enrolled q WHERE {" AND ".join(where)}
)
SELECT u.arm, u.tenant_id, u.unit_id, u.anchor_at, r.window_end, r.value
  FROM units u CROSS JOIN LATERAL ({select}) r
"""
    return sql, params.values[3:]


async def experiment_values(
    conn: Conn,
    statement: tuple[str, list[Any]],
    experiment: str,
    widgets: list[str],
    since: datetime | None = None,
) -> list[Any]:
    sql, args = statement
    return await conn.fetch(sql, experiment, widgets, since, *args)


async def experiment_exposure(
    conn: Conn, experiment: str, widgets: list[str], *, tenant_unit: bool, design: str
) -> dict[str, tuple[int, int, int]]:
    """arm → (units assigned, units exposed, units exposed that were assigned under `design`,
    the current weights)."""
    who = "" if tenant_unit else " AND x.user_id = a.unit_id"
    rows = await conn.fetch(
        "SELECT arm, count(*)::int AS units, count(exposed OR NULL)::int AS exposed,"
        " count((exposed AND design = $3) OR NULL)::int AS current FROM ("
        " SELECT a.arm, a.design, a.exposed_at IS NOT NULL OR EXISTS ("
        " SELECT 1 FROM events x WHERE x.tenant_id = a.tenant_id" + who + " AND x.type = 'track'"
        " AND x.event = 'widget_viewed' AND x.properties->>'widget_id' = ANY($2::text[])"
        " AND x.ts >= a.assigned_at) AS exposed"
        " FROM experiment_assignments a WHERE a.experiment = $1) q GROUP BY arm",
        experiment,
        widgets,
        design,
    )
    return {r["arm"]: (r["units"], r["exposed"], r["current"]) for r in rows}


async def unit_values(conn: Conn, metric: str, until: datetime) -> list[Any]:
    """The stored per-unit values of a metric whose window ended by `until` (tenant_id,
    unit_id, value): what the holdout comparison reads."""
    return await conn.fetch(
        "SELECT tenant_id, unit_id, value FROM metric_values"
        " WHERE metric = $1 AND window_end <= $2 AND value IS NOT NULL",
        metric,
        until,
    )
