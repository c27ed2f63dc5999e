"""Experiment assignments and run-time state (stopped by a guardrail or a person, resumed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.storage.db import Pool

EXPERIMENTS_CHANNEL = "cairn_experiments"  # NOTIFY: an experiment was stopped or resumed


@dataclass(frozen=True, slots=True)
class NewAssignment:
    tenant_id: str
    experiment: str
    unit_id: str
    arm: str
    assigned_at: datetime
    exposed: bool  # served by the server (a flag): exposed as it is assigned
    design: str = ""  # the arms' weights it was assigned under


async def store_assignments(pool: Pool, rows: Sequence[NewAssignment]) -> int:
    """Store first assignments; a unit already assigned keeps its arm. How many were new."""
    if not rows:
        return 0
    stored = await pool.fetch(
        "INSERT INTO experiment_assignments"
        " (tenant_id, experiment, unit_id, arm, assigned_at, exposed_at, design)"
        " SELECT t, e, u, a, at, CASE WHEN x THEN at END, d"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],"
        " $6::bool[], $7::text[]) AS r(t, e, u, a, at, x, d)"
        # stored already (another decision came first): keep its arm, add an exposure it lacked
        " ON CONFLICT (tenant_id, experiment, unit_id) DO UPDATE"
        " SET exposed_at = EXCLUDED.exposed_at"
        " WHERE experiment_assignments.exposed_at IS NULL AND EXCLUDED.exposed_at IS NOT NULL"
        " RETURNING (xmax = 0) AS inserted",
        [r.tenant_id for r in rows],
        [r.experiment for r in rows],
        [r.unit_id for r in rows],
        [r.arm for r in rows],
        [r.assigned_at for r in rows],
        [r.exposed for r in rows],
        [r.design for r in rows],
    )
    return sum(1 for r in stored if r["inserted"])


async def store_exposures(
    pool: Pool, tenant_id: str, units: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Record the first exposure the server saw of (experiment, unit id) pairs."""
    await pool.execute(
        "UPDATE experiment_assignments a SET exposed_at = $4 FROM unnest($2::text[], $3::text[])"
        " AS r(e, u) WHERE a.tenant_id = $1 AND a.experiment = r.e AND a.unit_id = r.u"
        " AND a.exposed_at IS NULL",
        tenant_id,
        [e for e, _ in units],
        [u for _, u in units],
        at,
    )


@dataclass(frozen=True, slots=True)
class ExperimentState:
    experiment: str
    status: str  # stopped | running
    reason: str
    evidence: dict[str, Any]
    changed_at: datetime
    changed_by: str


async def load_states(pool: Pool) -> dict[str, ExperimentState]:
    rows = await pool.fetch(
        "SELECT experiment, status, reason, evidence, changed_at, changed_by FROM experiment_state"
    )
    return {r["experiment"]: ExperimentState(**dict(r)) for r in rows}


async def set_state(
    pool: Pool,
    experiment: str,
    status: str,
    reason: str,
    changed_by: str,
    evidence: dict[str, Any] | None = None,
) -> None:
    """Record a stop or a resume, and tell every process (NOTIFY) in the same transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO experiment_state (experiment, status, reason, evidence, changed_by)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (experiment) DO UPDATE SET"
            " status = EXCLUDED.status, reason = EXCLUDED.reason,"
            " evidence = EXCLUDED.evidence, changed_at = now(), changed_by = EXCLUDED.changed_by",
            experiment,
            status,
            reason,
            evidence or {},
            changed_by,
        )
        await conn.execute("SELECT pg_notify($1, $2)", EXPERIMENTS_CHANNEL, experiment)


async def add_latency(
    pool: Pool, day: Any, rows: Sequence[tuple[str, str, int, float, float]]
) -> None:
    """Add (experiment, arm, n, sum_ms, sum_sq_ms) to the day's decision latencies."""
    if not rows:
        return
    await pool.execute(
        "INSERT INTO experiment_latency (experiment, arm, day, n, sum_ms, sum_sq_ms)"
        " SELECT e, a, $6::date, n, s, q FROM unnest($1::text[], $2::text[], $3::bigint[],"
        " $4::float8[], $5::float8[]) AS r(e, a, n, s, q)"
        " ON CONFLICT (experiment, arm, day) DO UPDATE SET n = experiment_latency.n + EXCLUDED.n,"
        " sum_ms = experiment_latency.sum_ms + EXCLUDED.sum_ms,"
        " sum_sq_ms = experiment_latency.sum_sq_ms + EXCLUDED.sum_sq_ms",
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
        day,
    )


async def latency_by_arm(
    pool: Pool, experiment: str, since: datetime | None = None
) -> dict[str, tuple[int, float, float]]:
    """arm → (decisions, sum of ms, sum of squared ms), over the experiment's run (from the day
    of `since`, when given)."""
    rows = await pool.fetch(
        "SELECT arm, sum(n)::bigint AS n, sum(sum_ms) AS s, sum(sum_sq_ms) AS q"
        " FROM experiment_latency WHERE experiment = $1"
        " AND ($2::date IS NULL OR day >= $2::date) GROUP BY arm",
        experiment,
        since.date() if since is not None else None,
    )
    return {r["arm"]: (r["n"], r["s"], r["q"]) for r in rows}
