"""The event store: one transaction per batch, idempotent per (tenant, messageId).

A batch is written with a handful of set-based statements whatever its size:

1. the events, in one `INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`, so the rows that
   were new are known exactly and a retried batch is never counted twice;
2. the aggregates the profile reads (users, tenants, aliases, daily event counts, facets,
   integrations, widget history), from the new rows only, pre-aggregated here so that each
   upsert touches a key once;
3. one `pg_notify('cairn_profile', '{"t": tenant, "u": user}')` per touched user, and
   `'{"t": tenant}'` per tenant whose traits or integrations changed, delivered after commit.

Each statement receives its rows as one JSON array of arrays (`jsonb_array_elements($1)`): for a
500-event batch that costs a third of the client CPU of binding `unnest` arrays, and less server
time too (see tests/bench/bench_ingest.py).

Every statement takes its keys in sorted order and the statements always run in the same order,
so concurrent batches may wait for each other but never deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec

from app.ingest import EventRow
from app.storage.db import Pool

PROFILE_CHANNEL = "cairn_profile"
MAX_KEY_LENGTH = 255  # longer property values are not identifiers; they are not aggregated

UserKey = tuple[str, str]
_WidgetState = tuple[int, datetime | None, datetime | None, datetime | None]


class StoreResult(msgspec.Struct, frozen=True):
    accepted: int  # rows stored by this call
    duplicates: int  # rows already stored (a retry) or repeated within `rows`
    touched: set[UserKey]  # (tenant_id, user_id) whose profile changed


_ROWS = "jsonb_array_elements($1::text::jsonb) AS a(r)"

_INSERT_EVENTS = f"""
INSERT INTO events (tenant_id, message_id, user_id, type, event, properties, traits, context, ts)
SELECT r->>0, r->>1, r->>2, r->>3, r->>4, r->5, r->6, r->7, (r->>8)::timestamptz
FROM {_ROWS}
ON CONFLICT (tenant_id, message_id) DO NOTHING
RETURNING tenant_id, message_id
"""

_ENSURE_TENANTS = f"""
INSERT INTO tenants (tenant_id)
SELECT r->>0 FROM {_ROWS}
ON CONFLICT (tenant_id) DO NOTHING
"""

_UPSERT_ALIASES = f"""
INSERT INTO aliases AS x (tenant_id, previous_id, user_id)
SELECT r->>0, r->>1, r->>2 FROM {_ROWS}
ON CONFLICT (tenant_id, previous_id) DO UPDATE SET user_id = EXCLUDED.user_id
WHERE x.user_id <> EXCLUDED.user_id
"""

_UPSERT_WIDGETS = f"""
INSERT INTO user_widgets AS x
    (tenant_id, user_id, widget_id, views, last_viewed, dismissed_at, completed_at)
SELECT r->>0, r->>1, r->>2, (r->>3)::integer,
       (r->>4)::timestamptz, (r->>5)::timestamptz, (r->>6)::timestamptz
FROM {_ROWS}
ON CONFLICT (tenant_id, user_id, widget_id) DO UPDATE SET
    views = x.views + EXCLUDED.views,
    last_viewed = GREATEST(x.last_viewed, EXCLUDED.last_viewed),
    dismissed_at = GREATEST(x.dismissed_at, EXCLUDED.dismissed_at),
    completed_at = LEAST(x.completed_at, EXCLUDED.completed_at)
"""

_UPSERT_FACETS = f"""
INSERT INTO user_facets AS x (tenant_id, user_id, kind, value, n, first_at, last_at)
SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::integer, (r->>5)::timestamptz, (r->>6)::timestamptz
FROM {_ROWS}
ON CONFLICT (tenant_id, user_id, kind, value) DO UPDATE SET
    n = x.n + EXCLUDED.n,
    first_at = LEAST(x.first_at, EXCLUDED.first_at),
    last_at = GREATEST(x.last_at, EXCLUDED.last_at)
"""

_UPSERT_INTEGRATIONS = f"""
INSERT INTO tenant_integrations AS x (tenant_id, integration, connected, changed_at)
SELECT r->>0, r->>1, (r->>2)::boolean, (r->>3)::timestamptz FROM {_ROWS}
ON CONFLICT (tenant_id, integration) DO UPDATE SET
    connected = EXCLUDED.connected, changed_at = EXCLUDED.changed_at
WHERE EXCLUDED.changed_at >= x.changed_at
"""

_MERGE_TENANT_TRAITS = f"""
INSERT INTO tenants AS x (tenant_id, traits, updated_at)
SELECT r->>0, r->1, now() FROM {_ROWS}
ON CONFLICT (tenant_id) DO UPDATE SET traits = x.traits || EXCLUDED.traits, updated_at = now()
"""

_COUNT_EVENT_DAYS = f"""
INSERT INTO user_event_days AS x (tenant_id, user_id, day, event, n)
SELECT r->>0, r->>1, (r->>2)::date, r->>3, (r->>4)::integer FROM {_ROWS}
ON CONFLICT (tenant_id, user_id, day, event) DO UPDATE SET n = x.n + EXCLUDED.n
"""

_UPSERT_USERS = f"""
INSERT INTO users AS x (tenant_id, user_id, traits, first_seen, last_seen)
SELECT r->>0, r->>1, r->2, (r->>3)::timestamptz, (r->>4)::timestamptz FROM {_ROWS}
ON CONFLICT (tenant_id, user_id) DO UPDATE SET
    traits = x.traits || EXCLUDED.traits,
    first_seen = LEAST(x.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(x.last_seen, EXCLUDED.last_seen)
WHERE EXCLUDED.traits <> '{{}}'::jsonb
   OR EXCLUDED.first_seen < x.first_seen
   OR EXCLUDED.last_seen > x.last_seen
"""

_NOTIFY = f"SELECT pg_notify('{PROFILE_CHANNEL}', r->>0) FROM {_ROWS}"

_INTEGRATION_EVENTS = {"integration_connected": True, "integration_disconnected": False}
_WIDGET_EVENTS = frozenset({"widget_viewed", "widget_dismissed", "widget_completed"})

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset
    TimeoutError,  # command or acquire timeout
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # connection lost or pool closing
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, query cancelled, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby after failover
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether a storage error means "the database is unavailable, try again", not a bug."""
    return isinstance(exc, _UNAVAILABLE)


async def store_events(
    pool: Pool, rows: Sequence[EventRow], *, facets: Mapping[str, str]
) -> StoreResult:
    """Store a batch atomically and update the aggregates from the rows that were new.

    `facets` maps a track event's name to the property whose value is a facet of the user
    (`{"feature_used": "feature"}`): facets are counted per (kind = property name, value).
    Rows repeating a (tenant, messageId) of `rows` or of an earlier batch count as duplicates.
    """
    unique: dict[tuple[str, str], EventRow] = {}
    for row in rows:
        unique.setdefault((row.tenant_id, row.message_id), row)
    ordered = [unique[key] for key in sorted(unique)]
    events = [
        (
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
        for r in ordered
    ]
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetch(_INSERT_EVENTS, _json(events))
        if not inserted:
            return StoreResult(accepted=0, duplicates=len(rows), touched=set())
        stored = {(r["tenant_id"], r["message_id"]) for r in inserted}
        # In event time, ties in the order sent: traits merge and "latest wins" in that order.
        new = sorted((row for key, row in unique.items() if key in stored), key=_event_time)
        aggregates = _Aggregates(new, facets)
        # Computed before the first upsert: row locks are held from there to the commit. The
        # upserts most likely to wait for a concurrent batch (users, daily counts) come last.
        statements = [
            (_ENSURE_TENANTS, [(t,) for t in sorted({row.tenant_id for row in new})]),
            (_UPSERT_ALIASES, aggregates.aliases()),
            (_UPSERT_WIDGETS, aggregates.widgets()),
            (_UPSERT_FACETS, aggregates.facets()),
            (_UPSERT_INTEGRATIONS, aggregates.integrations()),
            (_MERGE_TENANT_TRAITS, aggregates.tenant_traits()),
            (_COUNT_EVENT_DAYS, aggregates.event_days()),
            (_UPSERT_USERS, aggregates.users()),
            (_NOTIFY, aggregates.notices()),
        ]
        for statement, values in statements:
            if values:
                await conn.execute(statement, _json(values))
    return StoreResult(
        accepted=len(new),
        duplicates=len(rows) - len(new),
        touched={(row.tenant_id, row.user_id) for row in new},
    )


def _json(values: Sequence[tuple[Any, ...]]) -> str:
    return msgspec.json.encode(values).decode()


def _event_time(row: EventRow) -> datetime:
    return row.ts


def _key_value(value: object) -> str | None:
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
        self.tenants_changed: set[str] = set()

    def users(self) -> list[tuple[Any, ...]]:
        seen: dict[UserKey, tuple[datetime, datetime, dict[str, Any]]] = {}
        for row in self.rows:
            key = (row.tenant_id, row.user_id)
            first, _, traits = seen.get(key, (row.ts, row.ts, {}))
            if row.type == "identify" and row.traits:
                traits = {**traits, **row.traits}
            seen[key] = (first, row.ts, traits)
        return [(*key, traits, first, last) for key, (first, last, traits) in sorted(seen.items())]

    def tenant_traits(self) -> list[tuple[Any, ...]]:
        merged: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            if row.type == "group" and row.traits:
                merged[row.tenant_id] = {**merged.get(row.tenant_id, {}), **row.traits}
        self.tenants_changed.update(merged)
        return sorted(merged.items())

    def aliases(self) -> list[tuple[Any, ...]]:
        latest: dict[tuple[str, str], str] = {}
        for row in self.rows:
            if row.type == "alias" and row.previous_id and row.previous_id != row.user_id:
                latest[(row.tenant_id, row.previous_id)] = row.user_id
        return [(*key, user_id) for key, user_id in sorted(latest.items())]

    def event_days(self) -> list[tuple[Any, ...]]:
        counts: dict[tuple[str, str, date, str], int] = {}
        for row in self.rows:
            if row.type == "track" and row.event:
                key = (row.tenant_id, row.user_id, row.ts.date(), row.event)
                counts[key] = counts.get(key, 0) + 1
        return [(*key, n) for key, n in sorted(counts.items())]

    def facets(self) -> list[tuple[Any, ...]]:
        seen: dict[tuple[str, str, str, str], tuple[int, datetime, datetime]] = {}
        for row in self.rows:
            kind = self.facet_of.get(row.event or "") if row.type == "track" else None
            if kind is None:
                continue
            value = _key_value(row.properties.get(kind))
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
            integration = _key_value(row.properties.get("integration"))
            if integration is not None:
                latest[(row.tenant_id, integration)] = (connected, row.ts)
        self.tenants_changed.update(tenant for tenant, _ in latest)
        return [(*key, *state) for key, state in sorted(latest.items())]

    def widgets(self) -> list[tuple[Any, ...]]:
        seen: dict[tuple[str, str, str], _WidgetState] = {}
        for row in self.rows:
            if row.type != "track" or row.event not in _WIDGET_EVENTS:
                continue
            widget_id = _key_value(row.properties.get("widget_id"))
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

    def notices(self) -> list[tuple[Any, ...]]:
        """Payloads for LISTENers: every touched user, and tenants whose shared data changed.

        Call last: tenant-wide changes (traits, integrations) are known once those are computed.
        """
        encode = msgspec.json.encode
        users = sorted({(row.tenant_id, row.user_id) for row in self.rows})
        return [
            *((encode({"t": t}).decode(),) for t in sorted(self.tenants_changed)),
            *((encode({"t": t, "u": u}).decode(),) for t, u in users),
        ]
