"""Peers: what every tenant adopted and whether it succeeded, and cohorts' integration adoption.

Read in one query for all tenants each, in the background (never on the request path).

- `load_adoption`, the recommender's view of peers. Adoption is a catalog item's first use
  anywhere in the tenant: templates, features and help from user facets, integrations that are
  connected now (from the time they were connected).
- `load_peer_stats`, the share of each industry's tenants that connected each integration, for
  rules (`integrations.suggested[].peer_adoption`): k-anonymous, a share is kept only for a
  cohort of at least k tenants of which at least k connected the integration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.engine.profile import CohortAdoption, PeerStats
from app.storage.db import Pool

MIN_COHORT = 5  # k: peer proof only from at least this many tenants (CAIRN_PEER_MIN_TENANTS)

_ADOPTION_SQL = """
WITH starts AS (
  SELECT tenant_id, min(first_seen) AS started FROM users GROUP BY tenant_id
), adoption AS (
  SELECT tenant_id, value AS item, min(first_at) AS first_at, max(last_at) AS last_at,
         sum(n)::bigint AS n
    FROM user_facets GROUP BY tenant_id, value
  UNION ALL
  SELECT tenant_id, integration, changed_at, changed_at, 1
    FROM tenant_integrations WHERE connected
), steps AS (
  SELECT tenant_id, count(DISTINCT event) AS steps FROM user_event_days
   WHERE event = ANY($1::text[]) GROUP BY tenant_id
), recent AS (
  SELECT tenant_id, max(day) AS last_value_day FROM user_event_days
   WHERE event = ANY($2::text[]) GROUP BY tenant_id
)
SELECT t.tenant_id, t.traits, s.started, coalesce(st.steps, 0) AS steps, r.last_value_day,
       NOT EXISTS (SELECT 1 FROM preferences p WHERE p.tenant_id = t.tenant_id
                      AND p.user_id = '' AND p.body->'purposes'->>'cross_tenant' = 'false')
         AS shares_evidence,
       coalesce(json_agg(json_build_array(a.item, a.first_at, a.last_at, a.n))
                FILTER (WHERE a.item IS NOT NULL), '[]') AS adopted
  FROM tenants t
  JOIN starts s USING (tenant_id)
  LEFT JOIN steps st USING (tenant_id)
  LEFT JOIN recent r USING (tenant_id)
  LEFT JOIN adoption a USING (tenant_id)
 GROUP BY t.tenant_id, t.traits, s.started, st.steps, r.last_value_day
"""
# A tenant whose admin withholds cross-tenant learning is never counted as evidence for others.
_SHARES = """NOT EXISTS (SELECT 1 FROM preferences p WHERE p.tenant_id = {t} AND p.user_id = ''
                        AND p.body->'purposes'->>'cross_tenant' = 'false')"""


_COHORTS_SQL = f"""
WITH cohorts AS (
  SELECT coalesce(traits->>'industry', 'default') AS cohort, tenant_id FROM tenants
   WHERE {_SHARES.format(t="tenants.tenant_id")}
), sizes AS (
  SELECT cohort, count(*) AS tenants FROM cohorts GROUP BY cohort
)
SELECT c.cohort, i.integration, count(*) AS adopters, s.tenants
  FROM tenant_integrations i
  JOIN cohorts c USING (tenant_id)
  JOIN sizes s USING (cohort)
 WHERE i.connected AND s.tenants >= $1
 GROUP BY c.cohort, i.integration, s.tenants
HAVING count(*) >= $1
"""


@dataclass(frozen=True, slots=True)
class TenantAdoption:
    tenant_id: str
    traits: dict[str, Any]
    started: datetime
    activation_steps: int  # distinct activation events anyone in the tenant has sent
    last_value_day: Any  # date of the latest value event, or None
    shares_evidence: bool  # its admin allows learning from it for other tenants (cross_tenant)
    # item id → (first use, last use, uses)
    adopted: dict[str, tuple[datetime, datetime, int]] = field(default_factory=dict)


async def load_adoption(
    pool: Pool, activation_events: list[str], value_events: list[str]
) -> list[TenantAdoption]:
    """Every tenant with at least one user: its traits, progress and what it adopted, when."""
    rows = await pool.fetch(_ADOPTION_SQL, activation_events, value_events)
    out = []
    for r in rows:
        adopted: dict[str, tuple[datetime, datetime, int]] = {}
        for item, first_at, last_at, uses in r["adopted"]:  # json columns arrive decoded
            first = datetime.fromisoformat(first_at)
            last = datetime.fromisoformat(last_at)
            n = int(uses)
            if item in adopted:  # the same id as a facet and an integration: keep the earliest
                prev = adopted[item]
                first, last, n = min(first, prev[0]), max(last, prev[1]), n + prev[2]
            adopted[item] = (first, last, n)
        out.append(
            TenantAdoption(
                tenant_id=r["tenant_id"],
                traits=r["traits"],
                started=r["started"],
                activation_steps=r["steps"],
                last_value_day=r["last_value_day"],
                shares_evidence=r["shares_evidence"],
                adopted=adopted,
            )
        )
    return out


async def load_peer_stats(pool: Pool, min_tenants: int = MIN_COHORT) -> PeerStats:
    rows = await pool.fetch(_COHORTS_SQL, min_tenants)
    out: dict[str, dict[str, CohortAdoption]] = {}
    for r in rows:
        label = "teams like yours" if r["cohort"] == "default" else f"{r['cohort']} teams"
        out.setdefault(r["cohort"], {})[r["integration"]] = CohortAdoption(
            cohort=label, tenants=r["tenants"], share=r["adopters"] / r["tenants"]
        )
    return PeerStats(integrations=out)
