"""The profile store: one round trip reads everything the engine needs to know of a user."""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from app.engine.profile import ProfileData
from app.engine.signals import reads_recent
from app.engine.vocabulary import Vocabulary
from app.storage.db import Conn, Pool

_PROFILE_SQL = """
SELECT
  (SELECT json_build_object('traits', traits, 'first_seen', first_seen, 'last_seen', last_seen)
     FROM users WHERE tenant_id = $1 AND user_id = $2) AS u,
  (SELECT traits FROM tenants WHERE tenant_id = $1) AS t,
  (SELECT coalesce(json_agg(json_build_array(day, event, n)), '[]')
     FROM user_event_days WHERE tenant_id = $1 AND user_id = $2 AND day >= $3) AS days,
  (SELECT coalesce(json_agg(step ORDER BY i), '[]')
     FROM unnest($4::text[]) WITH ORDINALITY s(step, i)
    WHERE EXISTS (SELECT 1 FROM user_event_days d WHERE d.tenant_id = $1 AND d.event = step))
    AS tenant_events,
  (SELECT coalesce(json_agg(step ORDER BY i), '[]')
     FROM unnest($7::text[]) WITH ORDINALITY s(step, i)
    WHERE EXISTS (SELECT 1 FROM user_event_days d
                   WHERE d.tenant_id = $1 AND d.user_id = $2 AND d.event = step))
    AS milestones,
  (SELECT coalesce(json_agg(json_build_object('kind', kind, 'value', value, 'n', n,
                                              'first_at', first_at, 'last_at', last_at)), '[]')
     FROM user_facets WHERE tenant_id = $1 AND user_id = $2) AS facets,
  (SELECT coalesce(json_object_agg(integration, connected), '{}')
     FROM tenant_integrations WHERE tenant_id = $1) AS integrations,
  (SELECT coalesce(json_object_agg(widget_id, json_build_object(
            'views', views, 'last_viewed', last_viewed, 'dismissed_at', dismissed_at,
            'completed_at', completed_at)), '{}')
     FROM user_widgets WHERE tenant_id = $1 AND user_id = $2) AS widgets,
  (SELECT coalesce(json_agg(json_build_object('event', event, 'ts', ts, 'properties', properties)
                            ORDER BY ts DESC), '[]')
     FROM (SELECT event, ts,
                  -- where it happened: the property, else the Segment context's screen or page
                  properties || jsonb_build_object('screen', coalesce(
                      properties->>'screen', context->'screen'->>'name',
                      context->'page'->>'name', '')) AS properties
             FROM events
            WHERE tenant_id = $1 AND user_id = $2 AND type = 'track'
              AND event = ANY($5::text[]) AND ts >= $6
            ORDER BY ts DESC LIMIT 200) r) AS recent,
  (SELECT body FROM preferences WHERE tenant_id = $1 AND user_id = $2) AS prefs,
  (SELECT body->'purposes' FROM preferences WHERE tenant_id = $1 AND user_id = '')
    AS tenant_consent,
  (SELECT coalesce(json_object_agg(experiment, arm), '{}') FROM experiment_assignments
    WHERE tenant_id = $1 AND unit_id IN ($2, '')) AS assignments,
  (SELECT coalesce(json_agg(experiment ORDER BY experiment), '[]') FROM experiment_assignments
    WHERE tenant_id = $1 AND unit_id IN ($2, '') AND exposed_at IS NOT NULL) AS exposed
"""

TRIGGER_EVENTS = ("error_shown", "limit_reached", "feature_attempted", "plan_upgraded")


class ProfileStore:
    """Profiles from PostgreSQL, remembered until an event for the user arrives (LISTEN/NOTIFY).

    Time windows move with the clock, so an entry also expires after about a minute (spread per
    user, so that users cached together do not all expire together). Concurrent loads of one user
    share a single query.
    """

    def __init__(self, pool: Pool, vocab: Vocabulary, *, cache_size: int = 50_000) -> None:
        self.pool = pool
        self.vocab = vocab
        self._cache: OrderedDict[tuple[str, str], tuple[ProfileData, datetime]] = OrderedDict()
        self._by_tenant: dict[str, set[str]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[ProfileData]] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self._cache)

    def _drop(self, key: tuple[str, str]) -> None:
        if self._cache.pop(key, None) is not None:
            users = self._by_tenant.get(key[0])
            if users is not None:
                users.discard(key[1])
                if not users:
                    del self._by_tenant[key[0]]

    def invalidate(self, tenant_id: str | None = None, user_id: str | None = None) -> None:
        """Forget one user, one tenant's users, or everyone."""
        if tenant_id is None:
            self._cache.clear()
            self._by_tenant.clear()
        elif user_id is None:
            for user in list(self._by_tenant.get(tenant_id, ())):
                self._drop((tenant_id, user))
        else:
            self._drop((tenant_id, user_id))
        # A load under way may have read the old state: it must not be remembered.
        for key in [
            k for k in self._loading if tenant_id in (None, k[0]) and user_id in (None, k[1])
        ]:
            self._loading.pop(key, None)

    @staticmethod
    def _ttl(key: tuple[str, str]) -> timedelta:
        spread = zlib.crc32(f"{key[0]}\x1f{key[1]}".encode()) % 30_000
        return timedelta(milliseconds=45_000 + spread)

    def cached(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData | None:
        """The remembered profile, if it is still fresh (no I/O, no awaiting)."""
        key = (tenant_id, user_id)
        entry = self._cache.get(key)
        if entry is not None and now - entry[1] < self._ttl(key):
            self._cache.move_to_end(key)
            return entry[0]
        return None

    async def load(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData:
        key = (tenant_id, user_id)
        hit = self.cached(tenant_id, user_id, now)
        if hit is not None:
            return hit
        task = self._loading.get(key)
        if task is None:
            # The read runs as its own task: a caller that gives up (its time budget ran out)
            # cancels only its own wait, never the read that other callers share.
            task = asyncio.ensure_future(self.fetch(tenant_id, user_id, now))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._settle(key, done, now))
        return await asyncio.shield(task)

    def _settle(
        self, key: tuple[str, str], task: asyncio.Future[ProfileData], now: datetime
    ) -> None:
        current = self._loading.get(key) is task
        if current:
            del self._loading[key]
        if task.cancelled():
            return
        if task.exception() is not None or not current:  # failed, or invalidated meanwhile
            return
        self._cache[key] = (task.result(), now)
        self._cache.move_to_end(key)
        self._by_tenant.setdefault(key[0], set()).add(key[1])
        if len(self._cache) > self._cache_size:
            self._drop(next(iter(self._cache)))

    async def fetch(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData:
        signals = self.vocab.signals
        tenant_steps = [s.event for s in signals.activation if s.scope == "tenant"]
        user_steps = sorted({s.event for s in signals.activation})
        horizon = now - timedelta(hours=max(signals.friction.trigger_hours, 1))
        row = await self.pool.fetchrow(
            _PROFILE_SQL,
            tenant_id,
            user_id,
            (now - timedelta(days=90)).date(),
            tenant_steps,
            list(TRIGGER_EVENTS),
            horizon,
            user_steps,
        )
        assert row is not None
        user: dict[str, Any] | None = row["u"]
        raw: dict[str, Any] = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "known": user is not None,
            "user_traits": (user or {}).get("traits") or {},
            "tenant_traits": row["t"] or {},
            "first_seen": (user or {}).get("first_seen"),
            "last_seen": (user or {}).get("last_seen"),
            "event_days": row["days"],
            "tenant_events": row["tenant_events"],
            "milestones": row["milestones"],
            "facets": row["facets"],
            "integrations": row["integrations"],
            "widgets": row["widgets"],
            "recent": row["recent"],
            "preferences": row["prefs"] or {},
            "tenant_consent": row["tenant_consent"] or {},
            "assignments": row["assignments"],
            "exposed": row["exposed"],
        }
        return msgspec.convert(raw, ProfileData)


# --- Many profiles at once ------------------------------------------------------------------------

# Each query reads the tenants in $1; `{users}` narrows the user-keyed ones to some users.
_MANY_SQL = {
    "users": "SELECT tenant_id, user_id, traits, first_seen, last_seen FROM users"
    " WHERE tenant_id = ANY($1::text[]){users}",
    "tenants": "SELECT tenant_id, traits FROM tenants WHERE tenant_id = ANY($1::text[])",
    "days": "SELECT tenant_id, user_id, day, event, n FROM user_event_days"
    " WHERE tenant_id = ANY($1::text[]) AND day >= $2::date{users}",
    "reached": "SELECT DISTINCT tenant_id, event FROM user_event_days"
    " WHERE tenant_id = ANY($1::text[]) AND event = ANY($2::text[])",
    "milestones": "SELECT DISTINCT tenant_id, user_id, event FROM user_event_days"
    " WHERE tenant_id = ANY($1::text[]) AND event = ANY($2::text[]){users}",
    "facets": "SELECT tenant_id, user_id, kind, value, n, first_at, last_at FROM user_facets"
    " WHERE tenant_id = ANY($1::text[]){users}",
    "integrations": "SELECT tenant_id, integration, connected FROM tenant_integrations"
    " WHERE tenant_id = ANY($1::text[])",
    "widgets": "SELECT tenant_id, user_id, widget_id, views, last_viewed, dismissed_at,"
    " completed_at FROM user_widgets WHERE tenant_id = ANY($1::text[]){users}",
    "recent": """SELECT tenant_id, user_id, event, ts,
                  properties || jsonb_build_object('screen', coalesce(
                      properties->>'screen', context->'screen'->>'name',
                      context->'page'->>'name', '')) AS properties
             FROM events
            WHERE tenant_id = ANY($1::text[]) AND type = 'track'
              AND event = ANY($2::text[]) AND ts >= $3{users}
            ORDER BY tenant_id, user_id, ts DESC""",
    "prefs": "SELECT tenant_id, user_id, body FROM preferences"
    " WHERE tenant_id = ANY($1::text[]){users}",
    # unit_id '' is the tenant's own assignment (an experiment on tenants)
    "assignments": "SELECT tenant_id, unit_id, experiment, arm, exposed_at IS NOT NULL AS exposed"
    " FROM experiment_assignments WHERE tenant_id = ANY($1::text[])",
}
_RECENT_LIMIT = 200


class _Narrowed:
    """Runs one of _MANY_SQL, narrowed to some users when given."""

    def __init__(
        self, db: Pool | Conn, users: Sequence[tuple[str, str]] | None, timeout: float | None
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.extra: list[Any] = []
        if users is not None:
            self.extra = [[t for t, _ in users], [u for _, u in users]]

    async def __call__(self, name: str, *args: Any, narrowed: bool = True) -> list[Any]:
        narrow = ""
        if self.extra and narrowed:
            t, u = len(args) + 1, len(args) + 2
            narrow = (
                f" AND (tenant_id, user_id) IN (SELECT * FROM unnest(${t}::text[], ${u}::text[]))"
            )
        extra = self.extra if narrowed else []
        rows: list[Any] = await self.db.fetch(
            _MANY_SQL[name].format(users=narrow), *args, *extra, timeout=self.timeout
        )
        return rows


def _arms_by_unit(rows: list[Any]) -> dict[tuple[str, str], dict[str, str]]:
    """(tenant, unit) → experiment → arm; unit '' is the tenant's own."""
    arms: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        arms.setdefault((r["tenant_id"], r["unit_id"]), {})[r["experiment"]] = r["arm"]
    return arms


def _exposed_by_unit(rows: list[Any]) -> dict[tuple[str, str], list[str]]:
    """(tenant, unit) → the experiments the server recorded its exposure to."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["exposed"]:
            out.setdefault((r["tenant_id"], r["unit_id"]), []).append(r["experiment"])
    return out


async def fetch_tenant_profiles(
    db: Pool | Conn,
    vocab: Vocabulary,
    tenants: list[str],
    now: datetime,
    *,
    users: Sequence[tuple[str, str]] | None = None,
    command_timeout: float | None = None,
    signals_only: Mapping[str, Any] | None = None,
) -> list[ProfileData]:
    """Every known user's profile in these tenants (or only `users`' of them), as
    `ProfileStore.fetch` reads one user's, in one set-based query per table (for background
    work over many users: metrics, previews).

    `signals_only`: the paths (a trie) the caller's rules read of a context built in mode
    `full` (a lifecycle stage, say): what only decisions read (widget history, preferences,
    experiment assignments) is left empty, and so are recent events unless those paths need
    them."""
    signals = vocab.signals
    tenant_steps = [s.event for s in signals.activation if s.scope == "tenant"]
    user_steps = sorted({s.event for s in signals.activation})
    horizon = now - timedelta(hours=max(signals.friction.trigger_hours, 1))
    fetch = _Narrowed(db, users, command_timeout)
    user_rows = await fetch("users", tenants)
    tenant_rows = await fetch("tenants", tenants, narrowed=False)
    days = await fetch("days", tenants, (now - timedelta(days=90)).date())
    reached_rows = await fetch("reached", tenants, tenant_steps, narrowed=False)
    steps = await fetch("milestones", tenants, user_steps)
    facets = await fetch("facets", tenants)
    integrations = await fetch("integrations", tenants, narrowed=False)
    decisions = signals_only is None
    widgets = await fetch("widgets", tenants) if decisions else []
    recent = (
        await fetch("recent", tenants, list(TRIGGER_EVENTS), horizon)
        if signals_only is None or reads_recent(signals_only)
        else []
    )
    prefs = await fetch("prefs", tenants) if decisions else []
    assigned = await fetch("assignments", tenants, narrowed=False) if decisions else []
    by_user: dict[tuple[str, str], dict[str, Any]] = {
        (r["tenant_id"], r["user_id"]): {
            "event_days": [],
            "milestones": [],
            "facets": [],
            "widgets": {},
            "recent": [],
        }
        for r in user_rows
    }

    def of(r: Any) -> dict[str, Any] | None:
        return by_user.get((r["tenant_id"], r["user_id"]))

    for r in days:
        if (u := of(r)) is not None:
            u["event_days"].append([r["day"], r["event"], r["n"]])
    reached: dict[str, set[str]] = {}
    for r in reached_rows:
        reached.setdefault(r["tenant_id"], set()).add(r["event"])
    for r in steps:
        if (u := of(r)) is not None:
            u["milestones"].append(r["event"])
    for r in facets:
        if (u := of(r)) is not None:
            u["facets"].append({k: r[k] for k in ("kind", "value", "n", "first_at", "last_at")})
    for r in widgets:
        if (u := of(r)) is not None:
            u["widgets"][r["widget_id"]] = {
                k: r[k] for k in ("views", "last_viewed", "dismissed_at", "completed_at")
            }
    for r in recent:
        if (u := of(r)) is not None and len(u["recent"]) < _RECENT_LIMIT:
            u["recent"].append({"event": r["event"], "ts": r["ts"], "properties": r["properties"]})
    body = {(r["tenant_id"], r["user_id"]): r["body"] for r in prefs}
    arms = _arms_by_unit(assigned)
    exposures = _exposed_by_unit(assigned)
    traits = {r["tenant_id"]: r["traits"] for r in tenant_rows}
    connected: dict[str, dict[str, bool]] = {}
    for r in integrations:
        connected.setdefault(r["tenant_id"], {})[r["integration"]] = r["connected"]
    out = []
    for r in user_rows:
        key = (r["tenant_id"], r["user_id"])
        u = by_user[key]
        raw = {
            "tenant_id": key[0],
            "user_id": key[1],
            "known": True,
            "user_traits": r["traits"] or {},
            "tenant_traits": traits.get(key[0]) or {},
            "first_seen": r["first_seen"],
            "last_seen": r["last_seen"],
            "event_days": u["event_days"],
            "tenant_events": [s for s in tenant_steps if s in reached.get(key[0], set())],
            "milestones": sorted(set(u["milestones"])),
            "facets": u["facets"],
            "integrations": connected.get(key[0], {}),
            "widgets": u["widgets"],
            "recent": u["recent"],
            "preferences": body.get(key) or {},
            "tenant_consent": (body.get((key[0], "")) or {}).get("purposes") or {},
            "assignments": {**arms.get((key[0], ""), {}), **arms.get(key, {})},
            "exposed": sorted({*exposures.get((key[0], ""), ()), *exposures.get(key, ())}),
        }
        out.append(msgspec.convert(raw, ProfileData))
    return out
