"""The profile store: one round trip reads everything the engine needs to know of a user."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from app.engine.profile import CohortAdoption, PeerStats, Preferences, ProfileData
from app.engine.vocabulary import Vocabulary
from app.storage.db import Pool

_PROFILE_SQL = """
SELECT
  (SELECT json_build_object('traits', traits, 'first_seen', first_seen, 'last_seen', last_seen)
     FROM users WHERE tenant_id = $1 AND user_id = $2) AS u,
  (SELECT traits FROM tenants WHERE tenant_id = $1) AS t,
  (SELECT coalesce(json_agg(json_build_array(day, event, n)), '[]')
     FROM user_event_days WHERE tenant_id = $1 AND user_id = $2 AND day >= $3) AS days,
  (SELECT coalesce(json_agg(DISTINCT event), '[]')
     FROM user_event_days WHERE tenant_id = $1 AND event = ANY($4::text[])) AS tenant_events,
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
     FROM (SELECT event, ts, properties FROM events
            WHERE tenant_id = $1 AND user_id = $2 AND type = 'track'
              AND event = ANY($5::text[]) AND ts >= $6
            ORDER BY ts DESC LIMIT 200) r) AS recent,
  (SELECT body FROM preferences WHERE tenant_id = $1 AND user_id = $2) AS prefs
"""

_PEERS_SQL = """
WITH cohorts AS (
  SELECT coalesce(traits->>'industry', 'default') AS cohort, tenant_id FROM tenants
), sizes AS (
  SELECT cohort, count(*) AS tenants FROM cohorts GROUP BY cohort
)
SELECT c.cohort, i.integration, count(*) AS adopters, s.tenants
  FROM tenant_integrations i
  JOIN cohorts c USING (tenant_id)
  JOIN sizes s USING (cohort)
 WHERE i.connected AND s.tenants >= $1
 GROUP BY c.cohort, i.integration, s.tenants
"""

TRIGGER_EVENTS = ("error_shown", "limit_reached", "feature_attempted", "plan_upgraded")
MIN_COHORT = 5  # peer proof only from cohorts of at least this many tenants


class ProfileSource(Protocol):
    async def load(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData: ...


class ProfileStore:
    """Profiles from PostgreSQL, remembered until an event for the user arrives (LISTEN/NOTIFY)."""

    def __init__(self, pool: Pool, vocab: Vocabulary, *, cache_size: int = 50_000) -> None:
        self.pool = pool
        self.vocab = vocab
        self._cache: OrderedDict[tuple[str, str], ProfileData] = OrderedDict()
        self._cache_size = cache_size
        self._cached_at: dict[tuple[str, str], datetime] = {}

    def invalidate(self, tenant_id: str | None = None, user_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
            self._cached_at.clear()
            return
        if user_id is None:
            for key in [k for k in self._cache if k[0] == tenant_id]:
                self._cache.pop(key, None)
            return
        self._cache.pop((tenant_id, user_id), None)

    async def load(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData:
        key = (tenant_id, user_id)
        cached = self._cache.get(key)
        # Recent-event windows move with the clock: keep a cached profile for one minute at most.
        if cached is not None and now - self._cached_at.get(key, now) < timedelta(minutes=1):
            self._cache.move_to_end(key)
            return cached
        profile = await self.fetch(tenant_id, user_id, now)
        self._cache[key] = profile
        self._cached_at[key] = now
        if len(self._cache) > self._cache_size:
            old, _ = self._cache.popitem(last=False)
            self._cached_at.pop(old, None)
        return profile

    async def fetch(self, tenant_id: str, user_id: str, now: datetime) -> ProfileData:
        signals = self.vocab.signals
        tenant_steps = [s.event for s in signals.activation if s.scope == "tenant"]
        horizon = now - timedelta(hours=max(signals.friction.trigger_hours, 1))
        row = await self.pool.fetchrow(
            _PROFILE_SQL,
            tenant_id,
            user_id,
            (now - timedelta(days=90)).date(),
            tenant_steps,
            list(TRIGGER_EVENTS),
            horizon,
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
            "facets": row["facets"],
            "integrations": row["integrations"],
            "widgets": row["widgets"],
            "recent": row["recent"],
            "preferences": row["prefs"] or {},
        }
        return msgspec.convert(raw, ProfileData)


async def load_peer_stats(pool: Pool) -> PeerStats:
    rows = await pool.fetch(_PEERS_SQL, MIN_COHORT)
    out: dict[str, dict[str, CohortAdoption]] = {}
    for r in rows:
        label = "teams like yours" if r["cohort"] == "default" else f"{r['cohort']} teams"
        out.setdefault(r["cohort"], {})[r["integration"]] = CohortAdoption(
            cohort=label, tenants=r["tenants"], share=r["adopters"] / r["tenants"]
        )
    return PeerStats(integrations=out)


async def save_preferences(pool: Pool, tenant_id: str, user_id: str, prefs: Preferences) -> None:
    await pool.execute(
        "INSERT INTO preferences (tenant_id, user_id, body, updated_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET body = EXCLUDED.body,"
        " updated_at = now()",
        tenant_id,
        user_id,
        msgspec.to_builtins(prefs),
    )
    await pool.execute(
        "SELECT pg_notify('cairn_profile', $1)",
        msgspec.json.encode({"t": tenant_id, "u": user_id}).decode(),
    )
