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
    name: str, metric: MetricSpec, vocab: Vocabulary, *, source: str = "events"
) -> tuple[str, list[Any]] | None:
    """The statement that recomputes `name`'s rows for the tenants in `$1` (text[]), and its
    parameters after `$1`; None for metrics with no rows of their own (ratios). `source` is the
    table the events are read from: `events`, or the refresh's copy of a few tenants' events
    (`CHUNK_EVENTS`, see `copy_chunk`)."""
    if isinstance(metric, RatioMetric):
        return None
    params = _Params([None])
    scope = _Scope(tenant_unit=metric.unit == "tenant")
    units = _units_cte(metric, params, scope)
    window = params.add(metric.within_days * _DAY, "float8")
    select = _select(metric, vocab, params, scope)
    metric_name = params.add(name, "text")
    sql = f"""
WITH base AS ({units}),
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


def _units_cte(metric: MetricSpec, params: _Params, scope: _Scope) -> str:
    anchor = anchor_of(metric)
    if scope.tenant_unit:
        anchor_sql = _tenant_anchor(anchor, params)
        inner = (
            "SELECT t.tenant_id, ''::text AS unit_id, ''::text AS role,"
            f" ({anchor_sql}) AS anchor_at FROM tenants t WHERE t.tenant_id = ANY($1::text[])"
        )
    else:
        anchor_sql = _user_anchor(anchor, params)
        inner = (
            "SELECT uu.tenant_id, uu.user_id AS unit_id, coalesce(uu.traits->>'role', '') AS role,"
            f" ({anchor_sql}) AS anchor_at FROM users uu WHERE uu.tenant_id = ANY($1::text[])"
        )
    where = ["a.anchor_at IS NOT NULL"]
    if metric.population.role:
        where.append(f"a.role = ANY({params.add(metric.population.role, 'text[]')})")
    if metric.population.plan_at_anchor:
        plans = params.add(metric.population.plan_at_anchor, "text[]")
        where.append(f"{_plan_at(tenant_expr='a.tenant_id', at='a.anchor_at')} = ANY({plans})")
    return f"SELECT a.* FROM ({inner}) a WHERE {' AND '.join(where)}"


def _exposure_filter(anchor: AnchorSpec, params: _Params, alias: str) -> str:
    on = params.add(anchor.on, "text[]")
    if anchor.widget:
        widget = f"{alias}.properties->>'widget_id' = {params.add(anchor.widget, 'text')}"
    else:
        widget = f"{alias}.properties->>'widget_type' = {params.add(anchor.widget_type, 'text')}"
    return f"{alias}.type = 'track' AND {alias}.event = ANY({on}) AND {widget}"


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
    parts.append(
        f"e.type = 'track' AND e.event = ANY({params.add(_names(match, vocab), 'text[]')})"
    )
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
      FROM (SELECT (SELECT min(e.ts) FROM events e WHERE e.tenant_id = u.tenant_id
                      AND (s.tenant_scope OR e.user_id = u.unit_id)
                      AND e.type = 'track' AND e.event = s.event) AS t
              FROM unnest({events}, {tenant_scope}, {roles}) AS s(event, tenant_scope, roles)
             WHERE {_APPLIES}
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
                  JOIN events s ON s.tenant_id = u.tenant_id{who_s} AND s.type = 'track'
                   AND s.event = k.start AND s.ts >= u.anchor_at AND s.ts <= u.window_end
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
             (SELECT jsonb_agg(CASE WHEN {_APPLIES}
                                    THEN (EXISTS (SELECT 1 FROM events e
                                           WHERE e.tenant_id = u.tenant_id
                                           AND (s.tenant_scope OR e.user_id = u.unit_id)
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


async def copy_chunk(conn: Conn, tenants: list[str]) -> None:
    """Copy the track and group calls of these tenants (within the caller's transaction) into
    CHUNK_EVENTS, indexed for every lookup the metrics make, so that each metric's statement
    reads a small indexed table instead of the whole event history."""
    await conn.execute(f"""
CREATE TEMP TABLE IF NOT EXISTS {CHUNK_EVENTS} (
    tenant_id text, user_id text, type text, event text, properties jsonb, traits jsonb,
    ts timestamptz
) ON COMMIT DELETE ROWS;
CREATE INDEX IF NOT EXISTS {CHUNK_EVENTS}_user ON {CHUNK_EVENTS} (tenant_id, user_id, event, ts);
CREATE INDEX IF NOT EXISTS {CHUNK_EVENTS}_tenant ON {CHUNK_EVENTS} (tenant_id, event, ts);
CREATE INDEX IF NOT EXISTS {CHUNK_EVENTS}_type ON {CHUNK_EVENTS} (tenant_id, type, ts)""")
    await conn.execute(
        f"INSERT INTO {CHUNK_EVENTS} SELECT tenant_id, user_id, type, event, properties, traits,"
        " ts FROM events WHERE tenant_id = ANY($1::text[]) AND type IN ('track', 'group')",
        tenants,
    )
    await conn.execute(f"ANALYZE {CHUNK_EVENTS}")


async def changed_tenants(conn: Conn, since: datetime | None) -> list[str]:
    """Tenants with events received since `since` (a little before, see OVERLAP_S); all tenants
    when there was no refresh yet."""
    if since is None:
        rows = await conn.fetch("SELECT tenant_id FROM tenants ORDER BY tenant_id")
    else:
        rows = await conn.fetch(
            "SELECT DISTINCT tenant_id FROM events"
            " WHERE received_at > $1::timestamptz - make_interval(secs => $2::float8)"
            " ORDER BY tenant_id",
            since,
            float(OVERLAP_S),
        )
    return [r["tenant_id"] for r in rows]


async def all_tenants(conn: Conn) -> list[str]:
    return [r["tenant_id"] for r in await conn.fetch("SELECT tenant_id FROM tenants ORDER BY 1")]


async def recompute(
    conn: Conn, metric: str, statement: tuple[str, list[Any]] | None, tenants: list[str]
) -> None:
    """Replace the metric's rows of these tenants (in the caller's transaction)."""
    await conn.execute(
        "DELETE FROM metric_values WHERE metric = $1 AND tenant_id = ANY($2::text[])",
        metric,
        tenants,
    )
    if statement is not None:
        sql, params = statement
        await conn.execute(sql, tenants, *params)


_EXPOSURES = """
INSERT INTO metric_exposures (tenant_id, user_id, widget_id, widget_type, first_at)
SELECT tenant_id, user_id, properties->>'widget_id', coalesce(max(properties->>'widget_type'), ''),
       min(ts)
  FROM events
 WHERE tenant_id = ANY($1::text[]) AND type = 'track' AND event = 'widget_viewed'
   AND properties ? 'widget_id'
 GROUP BY tenant_id, user_id, properties->>'widget_id'
"""


async def recompute_exposures(conn: Conn, tenants: list[str]) -> None:
    await conn.execute("DELETE FROM metric_exposures WHERE tenant_id = ANY($1::text[])", tenants)
    await conn.execute(_EXPOSURES, tenants)


_UNIT_FACTS = """
SELECT u.tenant_id, u.user_id, u.first_seen,
       coalesce((SELECT min(s.ts) FROM events s WHERE s.tenant_id = u.tenant_id
                   AND s.user_id = u.user_id AND s.type = 'track' AND s.event = 'signed_up'),
                u.first_seen) AS signup_at,
       coalesce(u.traits->>'role', '') AS role
  FROM users u WHERE u.tenant_id = ANY($1::text[])
"""


class UnitFacts(msgspec.Struct, frozen=True):
    tenant_id: str
    user_id: str
    first_seen: datetime
    signup_at: datetime
    role: str


async def unit_facts(conn: Conn, tenants: list[str]) -> list[UnitFacts]:
    rows = await conn.fetch(_UNIT_FACTS, tenants)
    return [
        UnitFacts(r["tenant_id"], r["user_id"], r["first_seen"], r["signup_at"], r["role"])
        for r in rows
    ]


UNIT_COLUMNS = (
    "tenant_id", "unit", "unit_id", "signup_at", "first_event_at", "cohort", "role", "plan",
    "industry", "seat_band", "stage",
)  # fmt: skip


async def replace_units(conn: Conn, tenants: list[str], rows: list[tuple[Any, ...]]) -> None:
    await conn.execute("DELETE FROM metric_units WHERE tenant_id = ANY($1::text[])", tenants)
    if rows:
        await conn.copy_records_to_table("metric_units", records=rows, columns=UNIT_COLUMNS)


async def forget_metrics(conn: Conn, keep: list[str]) -> None:
    """Drop the rows of metrics no longer defined."""
    await conn.execute("DELETE FROM metric_values WHERE NOT (metric = ANY($1::text[]))", keep)
    await conn.execute("DELETE FROM metric_definitions WHERE NOT (metric = ANY($1::text[]))", keep)


async def save_definition(conn: Conn, metric: str, digest_: str, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO metric_definitions (metric, digest, refreshed_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (metric) DO UPDATE SET digest = EXCLUDED.digest,"
        " refreshed_at = EXCLUDED.refreshed_at",
        metric,
        digest_,
        at,
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
    )
    await conn.execute("SELECT pg_notify($1, '')", METRICS_CHANNEL)


async def database_now(conn: Conn) -> datetime:
    """The database's clock: the watermark is compared with `received_at`, which it set."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
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
    rows = await db.fetch(sql, *params.values)
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
    rows = await db.fetch(sql, *params.values)
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
    rows = await db.fetch(sql, *params.values)
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
    """Per group and week N: (key, N, units whose week N is over, those active in it)."""
    params = _Params()
    q = _slice_sql(s, params)
    at = params.add(now, "timestamptz")
    over = f"v.anchor_at + make_interval(days => 7 * (w.n + 1)) <= {at}"
    sql = (
        f"SELECT {q.select_keys()}w.n AS week, count(*) FILTER (WHERE {over}) AS n,"
        f" count(*) FILTER (WHERE {over} AND v.detail @> to_jsonb(w.n)) AS active"
        f" {q.joins} CROSS JOIN generate_series(1, {params.add(weeks, 'int')}) AS w(n)"
        f" WHERE {q.where}{q.group_by('w.n')}"
    )
    rows = await db.fetch(sql, *params.values)
    return [(q.key_of(r), r["week"], r["n"], r["active"]) for r in rows]


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
    rows = await db.fetch(sql, *params.values)
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
    rows = await db.fetch(sql, *params.values)
    return [(q.key_of(r), r["n"], r["sx"], r["sy"], r["sxx"], r["syy"], r["sxy"]) for r in rows]
