"""The event store: one transaction per batch, idempotent per (tenant, messageId).

A batch costs a few statements and a commit, whatever its size. Under its tenants' lock stripes
(shared; exclusive for a batch that links two identities), every row's user is first resolved
through `aliases` (identity stitching, `app.storage.identity`: an id merged into a user stands
for that user) and rows of erased users are dropped. Then:

1. the events, in one statement: their messageIds into `event_ids` (`ON CONFLICT DO NOTHING
   RETURNING`, and not already received within the dedup window), so the rows that were new are
   known exactly and a retried batch is never counted twice; the new rows into `events`, each in
   the partition of its retention window and month (`app.storage.partitions` makes a missing one
   first), unless it arrived already older than its window: such a row counts in the aggregates
   but is not stored raw; and which windows hold which events (`event_windows`), so that readers
   of a few event names read only those windows' partitions;
2. from the new rows only, pre-aggregated here so that each upsert touches a key once: the
   aggregates the profile reads (tenants, widget history, facets, integrations, tenant
   traits, daily event counts, users), as chained upserts of one statement, which ends with one
   `pg_notify('cairn_profile', '{"t": tenant, "u": user}')` per touched user and
   `'{"t": tenant}'` per tenant whose traits or integrations changed (delivered after commit);
3. rarely, for each link the batch makes (an alias call, an identify call with both ids), the
   merge of the linked id's history into the user's.

Rows travel as one JSON array of arrays per table (`jsonb_array_elements($n)`): for a 500-event
batch that costs a third of the client CPU of binding `unnest` arrays, and less server time too.
Upserts take their keys in sorted order and always in the same table order, so concurrent
batches may wait for each other but never deadlock; the tables batches share most (users, daily
counts) come last, and with no round trip between the upserts their row locks are held briefly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import asyncpg
import msgspec

from app.engine.retention import Retention, dedup_horizon, expired, month_start, week_start
from app.storage.db import Conn, Pool
from app.storage.identity import (
    Link,
    LinkRefusedError,
    identified_among,
    known_links,
    merge,
    resolve,
)
from app.storage.partitions import partitions
from app.storage.suppressions import count_dropped, lock_for_ingest, suppressed_among

PROFILE_CHANNEL = "cairn_profile"
EventType = Literal["identify", "group", "track", "page", "screen", "alias"]


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted event, normalized: what the event store writes."""

    tenant_id: str
    message_id: str
    user_id: str  # userId, or anonymousId when there is no userId
    type: EventType
    event: str | None  # the track event's name; the page or screen name; otherwise None
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]  # direct identifiers already hashed or dropped
    ts: datetime  # UTC, corrected for client clock skew, never after the receive time
    previous_id: str | None = None  # alias calls
    group_id: str | None = None  # group calls
    anonymous: bool = False  # sent with an anonymousId only (no userId)
    anonymous_id: str | None = None  # identify calls with both ids: the anonymousId


_KEPT = Retention()  # no windows: every event kept
MAX_KEY_LENGTH = 255  # longer property values are not identifiers; they are not aggregated

UserKey = tuple[str, str]
_WidgetState = tuple[int, datetime | None, datetime | None, datetime | None]


class StoreResult(msgspec.Struct, frozen=True):
    accepted: int  # rows stored by this call
    duplicates: int  # rows already stored (a retry) or repeated within `rows`
    touched: set[UserKey]  # (tenant_id, user_id) whose profile changed
    suppressed: int = 0  # rows of erased users (or tenants) dropped, never stored
    expired: int = 0  # new rows older than their retention window: aggregated, not stored raw
    # ids sent that stand for another user (merged into it): id sent → the user's id
    resolved: dict[UserKey, str] = {}


_INSERT_EVENTS = """
WITH batch AS (SELECT r FROM jsonb_array_elements($1::text::jsonb) AS a(r)),
fresh AS (
    INSERT INTO event_ids (tenant_id, message_id, received)
    SELECT r->>0, r->>1, $2::date FROM batch
     WHERE NOT EXISTS (SELECT 1 FROM event_ids x
                        WHERE x.tenant_id = r->>0 AND x.message_id = r->>1
                          AND x.received >= $3::date AND x.received < $2::date)
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, message_id),
stored AS (
    INSERT INTO events (tenant_id, message_id, user_id, type, event, properties, traits, context,
                        ts, keep_days)
    SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->5, r->6, r->7, (r->>8)::timestamptz,
           (r->>9)::integer
      FROM batch JOIN fresh ON fresh.tenant_id = r->>0 AND fresh.message_id = r->>1
     WHERE (r->>10)::boolean),
windows AS (
    INSERT INTO event_windows (keep_days, type, event)
    SELECT (w->>0)::integer, w->>1, w->>2 FROM jsonb_array_elements($4::text::jsonb) AS b(w)
    ON CONFLICT DO NOTHING)
SELECT tenant_id, message_id FROM fresh
"""

# The aggregate upserts, in the order they run: (name, "INSERT INTO" target and SELECT list over
# the row `r`, "ON CONFLICT" clause). Each reads its own parameter and starts once the one before
# has finished, so every batch takes its row locks in the same order. Users and daily counts,
# which concurrent batches share most, come last: their locks are held the shortest.
# Tenants: every tenant of the batch is created if missing (with its group traits, if any) first;
# `tenant_traits_merged` then merges group traits into the tenants that existed before. So no
# statement touches a row twice, and tenant rows are first taken in one sorted pass.
_AGGREGATES: list[tuple[str, str, str]] = [
    (
        "tenants_created",
        "tenants (tenant_id, traits) SELECT r->>0, r->1",
        "(tenant_id) DO NOTHING",
    ),
    (
        "widgets_seen",
        """user_widgets AS x
            (tenant_id, user_id, widget_id, views, last_viewed, dismissed_at, completed_at)
        SELECT r->>0, r->>1, r->>2, (r->>3)::integer,
               (r->>4)::timestamptz, (r->>5)::timestamptz, (r->>6)::timestamptz""",
        """(tenant_id, user_id, widget_id) DO UPDATE SET
            views = x.views + EXCLUDED.views,
            last_viewed = GREATEST(x.last_viewed, EXCLUDED.last_viewed),
            dismissed_at = GREATEST(x.dismissed_at, EXCLUDED.dismissed_at),
            completed_at = LEAST(x.completed_at, EXCLUDED.completed_at)""",
    ),
    (
        "facets_counted",
        """user_facets AS x (tenant_id, user_id, kind, value, n, first_at, last_at)
        SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::integer,
               (r->>5)::timestamptz, (r->>6)::timestamptz""",
        """(tenant_id, user_id, kind, value) DO UPDATE SET
            n = x.n + EXCLUDED.n,
            first_at = LEAST(x.first_at, EXCLUDED.first_at),
            last_at = GREATEST(x.last_at, EXCLUDED.last_at)""",
    ),
    (
        "integrations_set",
        """tenant_integrations AS x (tenant_id, integration, connected, changed_at)
        SELECT r->>0, r->>1, (r->>2)::boolean, (r->>3)::timestamptz""",
        """(tenant_id, integration) DO UPDATE SET
            connected = EXCLUDED.connected, changed_at = EXCLUDED.changed_at
        WHERE EXCLUDED.changed_at >= x.changed_at""",
    ),
    (
        "tenant_traits_merged",
        "tenants AS x (tenant_id, traits, updated_at) SELECT r->>0, r->1, now()",
        "(tenant_id) DO UPDATE SET traits = x.traits || EXCLUDED.traits, updated_at = now()",
    ),
    (
        "event_days_counted",
        """user_event_days AS x (tenant_id, user_id, day, event, n)
        SELECT r->>0, r->>1, (r->>2)::date, r->>3, (r->>4)::integer""",
        "(tenant_id, user_id, day, event) DO UPDATE SET n = x.n + EXCLUDED.n",
    ),
    (
        "users_seen",
        """users AS x (tenant_id, user_id, traits, first_seen, last_seen, identified)
        SELECT r->>0, r->>1, r->2, (r->>3)::timestamptz, (r->>4)::timestamptz, (r->>5)::boolean""",
        # an identified user's first_seen is not moved back by their anonymous history
        """(tenant_id, user_id) DO UPDATE SET
            traits = x.traits || EXCLUDED.traits,
            first_seen = CASE WHEN x.identified AND NOT EXCLUDED.identified THEN x.first_seen
                              ELSE LEAST(x.first_seen, EXCLUDED.first_seen) END,
            last_seen = GREATEST(x.last_seen, EXCLUDED.last_seen),
            identified = x.identified OR EXCLUDED.identified
        WHERE EXCLUDED.traits <> '{}'::jsonb
           OR (EXCLUDED.first_seen < x.first_seen AND (EXCLUDED.identified OR NOT x.identified))
           OR EXCLUDED.last_seen > x.last_seen
           OR (EXCLUDED.identified AND NOT x.identified)""",
    ),
]


def _aggregate_statement() -> str:
    """Every upsert as a CTE, each waiting for the one before, then the notifications.

    `WHERE (SELECT count(*) FROM previous) >= 0` is always true, and makes PostgreSQL run the
    previous upsert to completion first: CTEs have no order of their own.
    """
    ctes = []
    previous = None
    for number, (name, insert, conflict) in enumerate(_AGGREGATES, start=1):
        where = [f"(SELECT count(*) FROM {previous}) >= 0"] if previous else []
        if name == "tenant_traits_merged":  # only into tenants that existed before this batch
            where.append("r->>0 NOT IN (SELECT tenant_id FROM tenants_created)")
        ctes.append(
            f"{name} AS (INSERT INTO {insert}\n"
            f"    FROM jsonb_array_elements(${number}::text::jsonb) AS a(r)"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f"\n    ON CONFLICT {conflict}\n    RETURNING tenant_id)"
        )
        previous = name
    notices = len(_AGGREGATES) + 1
    return (
        "WITH " + ",\n".join(ctes) + "\n"
        f"SELECT count(pg_notify('{PROFILE_CHANNEL}', r->>0))"
        f" FROM jsonb_array_elements(${notices}::text::jsonb) AS a(r)"
        f" WHERE (SELECT count(*) FROM {previous}) >= 0"
    )


_AGGREGATE = _aggregate_statement()

_INTEGRATION_EVENTS = {"integration_connected": True, "integration_disconnected": False}
_WIDGET_EVENTS = frozenset({"widget_viewed", "widget_dismissed", "widget_completed"})


def event_values(r: EventRow) -> tuple[Any, ...]:
    """An event as the columns of the `events` table, in order."""
    return (
        r.tenant_id,
        r.message_id,
        r.user_id,
        r.type,
        r.event,
        r.properties,
        r.traits,
        r.context,
        r.ts,
    )


async def tenants_elsewhere(pool: Pool | Conn, tenants: list[str], region: str) -> dict[str, str]:
    """Of these tenants, those whose `region` trait names another region: tenant → region."""
    rows = await pool.fetch(
        "SELECT tenant_id, traits->>'region' AS region FROM tenants"
        " WHERE tenant_id = ANY($1::text[]) AND traits ? 'region'"
        " AND traits->>'region' <> $2 AND traits->>'region' <> ''",
        tenants,
        region,
    )
    return {r["tenant_id"]: r["region"] for r in rows}


async def store_events(
    pool: Pool,
    rows: Sequence[EventRow],
    *,
    facets: Mapping[str, str],
    tenant_wide: Collection[str] = (),
    retention: Retention = _KEPT,
    now: datetime | None = None,
    trusted: bool = True,
) -> StoreResult:
    """Store a batch atomically and update the aggregates from the rows that were new.

    `facets` maps a track event's name to the property whose value is a facet of the user
    (`{"feature_used": "feature"}`): facets are counted per (kind = property name, value).
    Rows repeating a (tenant, messageId) of `rows` or of an earlier batch received within the
    dedup window count as duplicates. `tenant_wide` names track events that change every profile
    of the tenant (milestones reached by anyone): other processes are told the whole tenant
    changed. `retention` gives each row its window; `now` is the time received (the clock's).
    A batch that is not `trusted` (a browser's) may link only anonymous ids to its user:
    `LinkRefusedError` otherwise, and nothing is stored.
    """
    at = now or datetime.now(UTC)
    unique: dict[tuple[str, str], EventRow] = {}
    for row in rows:
        unique.setdefault((row.tenant_id, row.message_id), row)
    for attempt in (1, 2):
        try:
            return await _store(pool, rows, unique, facets, tenant_wide, retention, at, trusted)
        except asyncpg.CheckViolationError as exc:
            # a partition this process knew of was dropped (a test's database, a clock far
            # behind): learn again which exist
            if attempt == 2 or "no partition" not in str(exc):
                raise
            partitions.forget()
    raise AssertionError("unreachable")


async def _store(
    pool: Pool,
    rows: Sequence[EventRow],
    batch: dict[tuple[str, str], EventRow],
    facets: Mapping[str, str],
    tenant_wide: Collection[str],
    retention: Retention,
    at: datetime,
    trusted: bool,
) -> StoreResult:
    unique = dict(batch)
    windows: dict[tuple[str, str], int] = {}
    raw: set[tuple[str, str]] = set()  # stored raw: kept, or not yet past their window
    months: set[tuple[int, datetime]] = set()  # the windowed partitions they go to
    for key, r in unique.items():
        days = windows[key] = retention.days_for(r.type, r.event)
        if days == 0:
            raw.add(key)
            continue
        month = month_start(r.ts)
        if not expired(days, month, at):
            raw.add(key)
            months.add((days, month))
    today = at.astimezone(UTC).date()
    week = week_start(today)
    await partitions.ensure(pool, months, [week])
    proposed = proposed_links(unique.values())
    exclusive = await _linking_tenants(pool, proposed) if proposed else set()
    async with pool.acquire() as conn, conn.transaction():
        await lock_for_ingest(conn, (r.tenant_id for r in unique.values()), exclusive)
        stitched = await _stitch(conn, unique, proposed, trusted=trusted)
        erased = stitched.erased
        dropped: dict[tuple[str, str], int] = {}
        if erased:
            for key, row in list(unique.items()):
                if (row.tenant_id, row.user_id) in erased:
                    who = (row.tenant_id, row.user_id)
                    dropped[who] = dropped.get(who, 0) + 1
                    del unique[key]
            await count_dropped(conn, dropped)
        suppressed = sum(dropped.values())
        ordered = sorted(unique)
        values = [(*event_values(unique[k]), windows[k], k in raw) for k in ordered]
        inserted = (
            await conn.fetch(
                _INSERT_EVENTS,
                _json(values),
                week,
                dedup_horizon(retention.dedup_days, today),
                # every (window, type, name) to be stored, duplicates' too: a superset is harmless
                _json(sorted({(windows[k], batch[k].type, _name(batch[k])) for k in raw})),
            )
            if ordered
            else []
        )
        if not inserted:
            return StoreResult(
                accepted=0, duplicates=len(rows) - suppressed, touched=set(), suppressed=suppressed
            )
        fresh = {(r["tenant_id"], r["message_id"]) for r in inserted}
        # In event time, ties in the order sent: traits merge and "latest wins" in that order.
        new = sorted((row for key, row in unique.items() if key in fresh), key=event_time)
        await conn.execute(_AGGREGATE, *_aggregate_parameters(new, facets, tenant_wide))
        touched = {(row.tenant_id, row.user_id) for row in new}
        merged: set[UserKey] = set()
        for link in stitched.links:  # each made once: by the call that was stored now
            if (link.tenant_id, link.message_id) in fresh:
                await merge(conn, link)
                merged |= {(link.tenant_id, link.source), (link.tenant_id, link.target)}
        if merged:
            await conn.execute(
                f"SELECT count(pg_notify('{PROFILE_CHANNEL}', p)) FROM unnest($1::text[]) AS p",
                [msgspec.json.encode({"t": t, "u": u}).decode() for t, u in sorted(merged)],
            )
            touched |= merged
    return StoreResult(
        accepted=len(new),
        duplicates=len(rows) - len(new) - suppressed,
        touched=touched,
        suppressed=suppressed,
        expired=len(fresh - raw),
        resolved=stitched.resolved,
    )


def proposed_links(rows: Iterable[EventRow]) -> list[tuple[str, str, str, str]]:
    """The identity links these calls ask for, in event-time order: (tenant, source id, user id,
    messageId), from alias calls (previousId) and identify calls with both ids (anonymousId)."""
    links = []
    for row in rows:  # most batches have none: only those calls are sorted
        source = row.previous_id if row.type == "alias" else row.anonymous_id
        if source and source != row.user_id and row.type in ("alias", "identify"):
            links.append((row.ts, row.tenant_id, source, row.user_id, row.message_id))
    return [link[1:] for link in sorted(links, key=lambda link: link[0])]


async def _linking_tenants(pool: Pool, proposed: list[tuple[str, str, str, str]]) -> set[str]:
    """Tenants for which the batch would make a link not made yet: their stripes are taken
    exclusively. Read before the lock; `_stitch` reads again once it is held."""
    known = await known_links(pool, [k for t, s, u, _ in proposed for k in ((t, s), (t, u))])
    return {t for t, s, u, _ in proposed if resolve((t, s), known) != resolve((t, u), known) != s}


class _Stitched(msgspec.Struct):
    links: list[Link]  # new links, in the order they are made
    resolved: dict[UserKey, str]  # ids sent → the user they stand for (only those that differ)
    erased: set[UserKey]  # suppressed users among the batch's (resolved) ids


async def _stitch(
    conn: Conn,
    unique: dict[tuple[str, str], EventRow],
    proposed: list[tuple[str, str, str, str]],
    *,
    trusted: bool,
) -> _Stitched:
    """Resolve every row's user through the links (stored, and the batch's own), in place; the
    new links to make. A browser's batch (`trusted` false) may link only an anonymous id."""
    sent = {(r.tenant_id, r.user_id) for r in unique.values()}
    linked = {k for t, s, u, _ in proposed for k in ((t, s), (t, u))}
    mapping = await known_links(conn, sent | linked)
    links: dict[UserKey, Link] = {}
    for tenant_id, source, user_id, message_id in proposed:
        target = resolve((tenant_id, user_id), mapping)
        if target == source or resolve((tenant_id, source), mapping) == target:
            continue  # made already (or it would close a loop)
        mapping[(tenant_id, source)] = target
        links[(tenant_id, source)] = Link(tenant_id, source, target, message_id)
    ids = {(t, resolve((t, u), mapping)) for t, u in sent} | set(links)
    ids |= {(link.tenant_id, link.target) for link in links.values()}
    erased = await suppressed_among(conn, ids)
    if erased:  # an erased id is never linked: its later events stay dropped
        for key, link in list(links.items()):
            if key in erased or (link.tenant_id, link.target) in erased:
                del links[key], mapping[key]
    if links and not trusted:
        named = await identified_among(conn, links)
        if named:
            refused = links[min(named)]
            raise LinkRefusedError(refused.tenant_id, refused.message_id, refused.source)
    resolved: dict[UserKey, str] = {}
    for key, row in unique.items():
        user_id = resolve((row.tenant_id, row.user_id), mapping)
        if user_id != row.user_id:
            resolved[(row.tenant_id, row.user_id)] = user_id
            unique[key] = msgspec.structs.replace(row, user_id=user_id)
    return _Stitched(links=list(links.values()), resolved=resolved, erased=erased)


def _aggregate_parameters(
    rows: list[EventRow], facets: Mapping[str, str], tenant_wide: Collection[str] = ()
) -> list[str]:
    """The parameters of `_AGGREGATE`: each upsert's rows, then the notifications."""
    aggregates = _Aggregates(rows, facets)
    by_name = {
        "tenants_created": aggregates.tenants(),
        "widgets_seen": aggregates.widgets(),
        "facets_counted": aggregates.facets(),
        "integrations_set": aggregates.integrations(),
        "tenant_traits_merged": aggregates.tenant_traits(),
        "event_days_counted": aggregates.event_days(),
        "users_seen": aggregates.users(),
    }
    changed = {t for t, *_ in by_name["integrations_set"]}
    changed |= {t for t, _ in by_name["tenant_traits_merged"]}
    changed |= {row.tenant_id for row in rows if row.event in tenant_wide}
    notices = aggregates.notices(changed)
    return [_json(by_name[name]) for name, _, _ in _AGGREGATES] + [_json(notices)]


def _name(row: EventRow) -> str:
    """A track event's name; '' for other calls (event_windows' key)."""
    return (row.event or "") if row.type == "track" else ""


def _json(values: Sequence[tuple[Any, ...]]) -> str:
    return msgspec.json.encode(values).decode()


def event_time(row: EventRow) -> datetime:
    return row.ts


def key_value(value: object) -> str | None:
    """A property usable as part of a key (an id, a name), as text; anything else is skipped."""
    if isinstance(value, str):
        return value if 0 < len(value) <= MAX_KEY_LENGTH else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class _Aggregates:
    """The aggregate rows of a batch's new events: one per key, sorted by key.

    `rows` are in event-time order, so the first row of a key is its earliest and the last one
    its latest.
    """

    def __init__(self, rows: list[EventRow], facets: Mapping[str, str]) -> None:
        self.rows = rows
        self.facet_of = facets

    def users(self) -> list[tuple[Any, ...]]:
        """Per user: traits, first and last seen, identified. An identified user's first_seen
        is their first event sent with a userId: anonymous events (resolved to them) before
        it do not move it."""
        seen: dict[UserKey, tuple[datetime | None, datetime, datetime, dict[str, Any]]] = {}
        for row in self.rows:
            key = (row.tenant_id, row.user_id)
            named, first, _, traits = seen.get(key, (None, row.ts, row.ts, {}))
            if named is None and not row.anonymous:
                named = row.ts
            if row.type == "identify" and row.traits:
                traits = {**traits, **row.traits}
            seen[key] = (named, first, row.ts, traits)
        return [
            (*key, traits, named or first, last, named is not None)
            for key, (named, first, last, traits) in sorted(seen.items())
        ]

    def tenants(self) -> list[tuple[Any, ...]]:
        """Every tenant of the batch, with the traits a new tenant starts with."""
        traits = dict(self.tenant_traits())
        return [(t, traits.get(t, {})) for t in sorted({row.tenant_id for row in self.rows})]

    def tenant_traits(self) -> list[tuple[Any, ...]]:
        merged: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            if row.type == "group" and row.traits:
                merged[row.tenant_id] = {**merged.get(row.tenant_id, {}), **row.traits}
            elif row.event == "plan_upgraded" and isinstance(row.properties.get("plan"), str):
                # An upgrade changes the tenant's plan as of that moment, for every user.
                merged[row.tenant_id] = {
                    **merged.get(row.tenant_id, {}),
                    "plan": row.properties["plan"],
                }
        return sorted(merged.items())

    def event_days(self) -> list[tuple[Any, ...]]:
        counts: dict[tuple[str, str, date, str], int] = {}
        for row in self.rows:
            if row.type == "track" and row.event:
                key = (row.tenant_id, row.user_id, row.ts.astimezone(UTC).date(), row.event)
                counts[key] = counts.get(key, 0) + 1
        return [(*key, n) for key, n in sorted(counts.items())]

    def facets(self) -> list[tuple[Any, ...]]:
        seen: dict[tuple[str, str, str, str], tuple[int, datetime, datetime]] = {}
        for row in self.rows:
            kind = self.facet_of.get(row.event or "") if row.type == "track" else None
            if kind is None:
                continue
            value = key_value(row.properties.get(kind))
            if value is None:
                continue
            key = (row.tenant_id, row.user_id, kind, value)
            n, first, _ = seen.get(key, (0, row.ts, row.ts))
            seen[key] = (n + 1, first, row.ts)
        return [(*key, *counts) for key, counts in sorted(seen.items())]

    def integrations(self) -> list[tuple[Any, ...]]:
        latest: dict[tuple[str, str], tuple[bool, datetime]] = {}
        for row in self.rows:
            connected = _INTEGRATION_EVENTS.get(row.event or "") if row.type == "track" else None
            if connected is None:
                continue
            integration = key_value(row.properties.get("integration"))
            if integration is not None:
                latest[(row.tenant_id, integration)] = (connected, row.ts)
        return [(*key, *state) for key, state in sorted(latest.items())]

    def widgets(self) -> list[tuple[Any, ...]]:
        seen: dict[tuple[str, str, str], _WidgetState] = {}
        for row in self.rows:
            if row.type != "track" or row.event not in _WIDGET_EVENTS:
                continue
            widget_id = key_value(row.properties.get("widget_id"))
            if widget_id is None:
                continue
            key = (row.tenant_id, row.user_id, widget_id)
            views, viewed, dismissed, completed = seen.get(key, (0, None, None, None))
            if row.event == "widget_viewed":
                views, viewed = views + 1, row.ts
            elif row.event == "widget_dismissed":
                dismissed = row.ts
            elif completed is None:  # widget_completed: the first completion counts
                completed = row.ts
            seen[key] = (views, viewed, dismissed, completed)
        return [(*key, *state) for key, state in sorted(seen.items())]

    def notices(self, tenants_changed: set[str]) -> list[tuple[Any, ...]]:
        """Payloads for LISTENers: each changed tenant as a whole, then each touched user."""
        encode = msgspec.json.encode
        users = sorted({(row.tenant_id, row.user_id) for row in self.rows})
        return [
            *((encode({"t": t}).decode(),) for t in sorted(tenants_changed)),
            *((encode({"t": t, "u": u}).decode(),) for t, u in users),
        ]


# --------------------------------------------------------------------------------------------------
# The history, for training.

_BOUNDS_SQL = "SELECT min(ts) AS first, max(ts) AS last, count(*) AS n FROM events"
_HISTORY_SQL = """
SELECT tenant_id, message_id, user_id, type, event, properties, traits, context, ts
  FROM events ORDER BY tenant_id, ts, received_at, message_id
"""


class HistoryBounds(msgspec.Struct, frozen=True):
    first: datetime  # the earliest event's time
    last: datetime  # the latest event's time
    events: int


async def history_bounds(pool: Pool) -> HistoryBounds | None:
    """When the stored history starts and ends, and its size; None when no event is stored."""
    row = await pool.fetchrow(_BOUNDS_SQL)
    if row is None or not row["n"]:
        return None
    return HistoryBounds(first=row["first"], last=row["last"], events=row["n"])


async def tenant_histories(pool: Pool) -> AsyncIterator[tuple[str, list[EventRow]]]:
    """Every tenant's events in time order, one tenant at a time (streamed by a cursor)."""
    async with pool.acquire() as conn, conn.transaction():
        tenant: str | None = None
        events: list[EventRow] = []
        async for r in conn.cursor(_HISTORY_SQL, prefetch=5000):
            if r["tenant_id"] != tenant:
                if tenant is not None:
                    yield tenant, events
                tenant, events = r["tenant_id"], []
            events.append(
                EventRow(
                    tenant_id=r["tenant_id"],
                    message_id=r["message_id"],
                    user_id=r["user_id"],
                    type=r["type"],
                    event=r["event"],
                    properties=r["properties"],
                    traits=r["traits"],
                    context=r["context"],
                    ts=r["ts"],
                )
            )
        if tenant is not None:
            yield tenant, events
