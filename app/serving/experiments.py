"""Experiment results, stops and resumes, and the guardrails that stop an arm that hurts.

Results read each enrolled unit's metric values from its exposure (SQL in app.storage.metrics,
the metric layer's own definitions) and compare each arm with control (app.serving.
experiment_stats). Only units whose metric window has ended are counted. Guardrails are read with
always-valid (sequential) p-values, since they are looked at every minute: an arm significantly
worse than control by more than a guardrail's threshold stops the experiment, every process
serves control from its next decision (NOTIFY), and only a person resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from app.engine.experiments import CompiledExperiment, GuardrailSpec, in_holdout
from app.engine.metrics import CountMetric, DistinctMetric, MetricSpec, RatioMetric, TimeToMetric
from app.engine.model import Layouts
from app.errors import InvalidInputError, NotFoundError
from app.serving.experiment_stats import (
    SRM_ALPHA,
    ArmSample,
    ArmSummary,
    Comparison,
    adjust,
    compare,
    cuped,
    sample_ratio,
    summarize,
    units_needed,
)
from app.storage import metrics as metric_store
from app.storage.db import Pool
from app.storage.experiments import ExperimentState, latency_by_arm, load_states, set_state

log = logging.getLogger("cairn.experiments")

GUARDRAIL_LOCK = 7_242_017  # advisory lock: one process checks guardrails at a time (not the
# metrics refresh's 7_242_016, nor migrations' 7_242_015)
RESULTS_TTL_S = 30.0
# The server's own guardrail on every experiment: an arm whose decisions are significantly slower
# than control's by more than this (relative) stops it.
LATENCY_GUARDRAIL = "decision_latency"
LATENCY_THRESHOLD = 0.25


class ArmUnits(msgspec.Struct):
    id: str
    weight: float
    units: int  # assigned
    exposed: int


class ArmValue(msgspec.Struct, omit_defaults=True):
    id: str
    n: int
    value: float | None
    ci: tuple[float, float] | None = None


class Lift(msgspec.Struct, omit_defaults=True):
    arm: str
    against: str
    lift: float
    ci: tuple[float, float]
    p_value: float
    relative: float | None = None
    relative_ci: tuple[float, float] | None = None
    absolute_p_value: float | None = None
    adjusted_p_value: float | None = None


class MetricResult(msgspec.Struct, omit_defaults=True):
    metric: str
    label: str
    role: str  # primary | secondary | guardrail
    higher_is_better: bool
    arms: list[ArmValue]
    comparisons: list[Lift]
    cuped: bool = False
    note: str | None = None
    format: str | None = None  # how values read: percent, duration (seconds), number


class GuardrailResult(msgspec.Struct, omit_defaults=True):
    metric: str
    arm: str
    threshold: float
    breached: bool
    relative: float | None = None
    p_value: float | None = None
    beyond_threshold: bool = False  # worse than control by more than the threshold
    alpha: float | None = None  # the level it is read at (alpha over the guardrails read)


class ArmLatency(msgspec.Struct, omit_defaults=True):
    id: str
    decisions: int
    mean_ms: float | None = None
    ci: tuple[float, float] | None = None


class Srm(msgspec.Struct):
    p_value: float
    flagged: bool


class Design(msgspec.Struct, omit_defaults=True):
    alpha: float
    power: float
    mde: float
    sequential: bool
    correction: str
    units_needed_per_arm: int | None = None
    horizon_reached: bool | None = None  # fixed horizon: every arm has its units


class Results(msgspec.Struct, omit_defaults=True):
    key: str
    status: str  # running | stopped | draft | concluded
    control: str
    srm: Srm
    arms: list[ArmUnits]
    metrics: list[MetricResult]
    guardrails: list[GuardrailResult]
    design: Design
    computed_at: str
    latency: list[ArmLatency] = []  # decision time per arm, as the server measured it
    stopped_reason: str | None = None
    stopped_at: str | None = None
    stopped_by: str | None = None
    evidence: dict[str, Any] | None = None
    notes: list[str] = []


def status_of(exp: CompiledExperiment, state: ExperimentState | None) -> str:
    if state is not None and state.status == "stopped":
        return "stopped"
    return exp.spec.status


def experiment(layouts: Layouts, key: str) -> CompiledExperiment:
    found = layouts.experiments.experiments.get(key)
    if found is None:
        raise NotFoundError("unknown_experiment", f"There is no experiment '{key}'.", "key")
    return found


def describe(layouts: Layouts, states: dict[str, ExperimentState]) -> list[dict[str, Any]]:
    """Every experiment as `GET /v1/experiments` lists it."""
    out = []
    for key, exp in layouts.experiments.experiments.items():
        state = states.get(key)
        spec = msgspec.to_builtins(exp.spec)
        out.append({
            "key": key, **spec, "configured_status": exp.spec.status,
            "status": status_of(exp, state),
            "stopped_reason": state.reason if state and state.status == "stopped" else None,
        })  # fmt: skip
    return out


# --- Results ------------------------------------------------------------------------------------


# What results are kept under: the experiment, the layouts version and the experiment's run-time
# state (a stop or resume), so that results computed before a state change, and stored after it,
# are never read as current.
ResultsKey = tuple[str, str, tuple[str, datetime] | None]


class ResultsCache:
    """Results kept for a short while per experiment, layouts version and run-time state (they
    are SQL over every enrolled unit's events)."""

    def __init__(self) -> None:
        self._kept: dict[ResultsKey, tuple[float, Results]] = {}

    def get(self, key: ResultsKey) -> Results | None:
        found = self._kept.get(key)
        if found is None or time.monotonic() - found[0] > RESULTS_TTL_S:
            return None
        return found[1]

    def put(self, key: ResultsKey, results: Results) -> None:
        self._kept[key] = (time.monotonic(), results)

    def forget(self) -> None:
        self._kept.clear()


async def cached_results(
    pool: Pool,
    layouts: Layouts,
    key: str,
    state: ExperimentState | None,
    now: datetime,
    cache: ResultsCache,
) -> Results:
    """An experiment's results as kept by `cache`, computed when missing or too old."""
    kept = (key, layouts.version, (state.status, state.changed_at) if state else None)
    found = cache.get(kept)
    if found is None:
        found = await results(pool, layouts, key, state, now)
        cache.put(kept, found)
    return found


def _guardrails(exp: CompiledExperiment) -> list[GuardrailSpec]:
    return [
        g if isinstance(g, GuardrailSpec) else GuardrailSpec(metric=g)
        for g in exp.spec.metrics.guardrails
    ]


async def results(
    pool: Pool,
    layouts: Layouts,
    key: str,
    state: ExperimentState | None,
    now: datetime,
    *,
    only_guardrails: bool = False,
) -> Results:
    exp = experiment(layouts, key)
    spec = exp.spec
    # the widgets whose widget_viewed is exposure; none when the server records it (arms not
    # seen alike: a view by the client would count one arm's units and not the other's)
    widgets = [] if exp.server_exposure else sorted(exp.widgets)
    tenant_unit = spec.unit == "tenant"
    async with pool.acquire() as conn:
        exposure = await metric_store.experiment_exposure(
            conn, key, widgets, tenant_unit=tenant_unit, design=exp.design
        )
        counted = [exposure.get(a.id, (0, 0, 0)) for a in spec.arms]
        arms = [
            ArmUnits(a.id, a.weight, c[0], c[1]) for a, c in zip(spec.arms, counted, strict=True)
        ]
        current = [c[2] for c in counted]
        roles: list[tuple[str, str]] = []
        if not only_guardrails:
            roles.append((spec.metrics.primary, "primary"))
            roles += [(m, "secondary") for m in spec.metrics.secondary]
        roles += [(g.metric, "guardrail") for g in _guardrails(exp)]
        since = guarded_since(state)
        measured = []
        for name, role in roles:
            metric = layouts.metrics.get(name)
            if metric is None:
                continue
            samples = await _samples(
                conn, layouts, exp, metric, widgets, now, since if role == "guardrail" else None
            )
            measured.append((name, role, metric, samples))
    # Units assigned under other weights keep their arms: the ratio is read among the others.
    srm_p = sample_ratio(current, [a.weight for a in arms])
    metrics_out, guardrails_out, notes = _analyse(exp, measured)
    latency, latency_guard = latency_of(exp, await latency_by_arm(pool, key, since))
    guardrails_out = read_guardrails([*guardrails_out, *latency_guard], exp.spec.analysis.alpha)
    if since is not None:
        notes.append(
            f"Guardrails are read on what happened since the experiment was resumed "
            f"({since.strftime('%Y-%m-%d %H:%M')} UTC)."
        )
    design = _design(exp, metrics_out, arms)
    if design.horizon_reached is False:
        notes.append(
            "Early: the fixed horizon is not reached yet, so these p-values are not conclusive "
            "(set analysis.sequential for results that may be read at any time)."
        )
    earlier = sum(a.exposed for a in arms) - sum(current)
    if earlier > 0:
        notes.append(
            f"{earlier} exposed units were assigned under earlier weights: they keep their arms "
            "and count in these lifts, so units that came early weigh more in the arm whose "
            "weight went up; the sample ratio is read without them."
        )
    if srm_p < SRM_ALPHA:
        notes.append(
            "Sample ratio mismatch: exposed units per arm differ from the weights more than "
            "chance allows; look for an assignment or exposure problem before reading results."
        )
    stopped = state if state is not None and state.status == "stopped" else None
    return Results(
        key=key,
        status=status_of(exp, state),
        control=exp.control,
        srm=Srm(srm_p, srm_p < SRM_ALPHA),
        arms=arms,
        metrics=metrics_out,
        guardrails=guardrails_out,
        design=design,
        computed_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        stopped_reason=stopped.reason if stopped else None,
        stopped_at=stopped.changed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if stopped else None,
        stopped_by=stopped.changed_by if stopped else None,
        evidence=stopped.evidence if stopped else None,
        notes=notes,
        latency=latency,
    )


def latency_of(
    exp: CompiledExperiment, sums: dict[str, tuple[int, float, float]]
) -> tuple[list[ArmLatency], list[GuardrailResult]]:
    """Each arm's mean decision time, and the latency guardrail (always-valid, as guardrails
    are read every minute)."""
    summaries: dict[str, ArmSummary] = {}
    out = []
    for arm in exp.spec.arms:
        n, total, squares = sums.get(arm.id, (0, 0.0, 0.0))
        if n < 2:
            out.append(ArmLatency(arm.id, n))
            continue
        mean = total / n
        variance = max((squares - total * total / n) / (n - 1), 0.0)
        summaries[arm.id] = ArmSummary(n, mean, variance, None)
        half = 1.96 * math.sqrt(variance / n)
        out.append(ArmLatency(arm.id, n, mean, (mean - half, mean + half)))
    rows = []
    control = summaries.get(exp.control)
    for arm_id, summary in summaries.items():
        if arm_id == exp.control or control is None:
            continue
        c = compare(control, summary, sequential=True)
        if c is None:
            continue
        beyond = c.lift > 0 and (c.relative or 0) > LATENCY_THRESHOLD
        rows.append(
            GuardrailResult(LATENCY_GUARDRAIL, arm_id, LATENCY_THRESHOLD, False, c.relative,
                            c.absolute_p_value, beyond_threshold=beyond)
        )  # fmt: skip
    return out, rows


def guarded_since(state: ExperimentState | None) -> datetime | None:
    """When guardrails start reading: a person's resume starts them afresh (what stopped the
    experiment before would stop it again at once)."""
    if state is not None and state.status == "running":
        return state.changed_at
    return None


def read_guardrails(rows: list[GuardrailResult], alpha: float) -> list[GuardrailResult]:
    """Breached: beyond its threshold and significant at alpha over the number of guardrails
    read (Bonferroni), so that checking several every minute does not stop good arms."""
    level = alpha / max(len(rows), 1)
    for row in rows:
        row.alpha = level
        row.breached = row.beyond_threshold and row.p_value is not None and row.p_value < level
    return rows


async def _samples(
    conn: Any,
    layouts: Layouts,
    exp: CompiledExperiment,
    metric: MetricSpec,
    widgets: list[str],
    now: datetime,
    since: datetime | None,
) -> dict[str, ArmSample] | None:
    """Each arm's per-unit values (windows ended by now), with pre-exposure values for CUPED."""
    tenant_unit = exp.spec.unit == "tenant"
    statement = metric_store.experiment_sql(metric, layouts.vocabulary, tenant_unit=tenant_unit)
    if statement is None:
        return None
    rows = await metric_store.experiment_values(conn, statement, exp.key, widgets, since)
    cap = metric.within_days * 86400.0
    values: dict[str, dict[tuple[str, str], float]] = {a.id: {} for a in exp.spec.arms}
    for r in rows:
        if r["window_end"] > now or r["arm"] not in values:
            continue
        value = r["value"]
        if value is None:
            if not isinstance(metric, TimeToMetric):
                continue
            value = cap  # never reached within the window: censored at its end
        values[r["arm"]][(r["tenant_id"], r["unit_id"])] = float(value)
    before: dict[tuple[str, str], float] = {}
    if exp.spec.analysis.cuped and isinstance(metric, CountMetric | DistinctMetric):
        pre = metric_store.experiment_sql(
            metric, layouts.vocabulary, tenant_unit=tenant_unit, before=True
        )
        assert pre is not None
        for r in await metric_store.experiment_values(conn, pre, exp.key, widgets, since):
            if r["value"] is not None:
                before[(r["tenant_id"], r["unit_id"])] = float(r["value"])
    return {
        arm: ArmSample(
            list(by_unit.values()),
            [before.get(u, 0.0) for u in by_unit] if before else None,
        )
        for arm, by_unit in values.items()
    }


def _analyse(
    exp: CompiledExperiment,
    measured: Sequence[tuple[str, str, MetricSpec, dict[str, ArmSample] | None]],
) -> tuple[list[MetricResult], list[GuardrailResult], list[str]]:
    spec = exp.spec
    alpha = spec.analysis.alpha
    thresholds = {g.metric: g.threshold for g in _guardrails(exp)}
    out: list[MetricResult] = []
    guardrails: list[GuardrailResult] = []
    notes: list[str] = []
    for name, role, metric, samples in measured:
        if samples is None or isinstance(metric, RatioMetric):
            out.append(MetricResult(name, metric.label, role, metric.higher_is_better, [], [],
                                    note="ratio metrics are not analysed per unit"))  # fmt: skip
            continue
        fitted = (
            cuped(list(samples.values()))
            if samples and all(s.before is not None for s in samples.values())
            else None
        )
        adjusted = (
            dict(zip(samples, fitted, strict=True))
            if fitted is not None
            else {arm: list(s.values) for arm, s in samples.items()}
        )
        summaries = {arm: summarize(v, alpha) for arm, v in adjusted.items()}
        raw = {arm: summarize(s.values, alpha) for arm, s in samples.items()}
        sequential = spec.analysis.sequential or role == "guardrail"
        comparisons = _comparisons(exp, summaries, alpha=alpha, sequential=sequential)
        out.append(
            MetricResult(
                metric=name, label=metric.label, role=role,
                higher_is_better=metric.higher_is_better, format=metric.format,
                arms=[ArmValue(arm, s.n, _num(s.mean), s.ci) for arm, s in raw.items()],
                comparisons=comparisons,
                cuped=fitted is not None,
            )
        )  # fmt: skip
        if role == "guardrail":
            guardrails += _guardrail_rows(name, metric, comparisons, thresholds[name], alpha)
    _correct(spec.analysis.correction, out, notes)
    return out, guardrails, notes


def _comparisons(
    exp: CompiledExperiment, summaries: dict[str, ArmSummary], *, alpha: float, sequential: bool
) -> list[Lift]:
    control = summaries.get(exp.control)
    out = []
    for arm, summary in summaries.items():
        if arm == exp.control or control is None:
            continue
        c: Comparison | None = compare(control, summary, alpha=alpha, sequential=sequential)
        if c is None:
            continue
        out.append(
            Lift(arm=arm, against=exp.control, lift=c.lift, ci=c.ci, p_value=c.p_value,
                 relative=c.relative, relative_ci=c.relative_ci,
                 absolute_p_value=c.absolute_p_value)
        )  # fmt: skip
    return out


def _guardrail_rows(
    name: str, metric: MetricSpec, comparisons: list[Lift], threshold: float, alpha: float
) -> list[GuardrailResult]:
    """Worse than control (significantly, on the absolute difference, which stays sound when
    control's mean is near zero) by more than the threshold (relative)."""
    rows = []
    for c in comparisons:
        worse = c.lift < 0 if metric.higher_is_better else c.lift > 0
        big = c.relative is None or abs(c.relative) > threshold
        p = c.absolute_p_value if c.absolute_p_value is not None else c.p_value
        rows.append(
            GuardrailResult(
                metric=name, arm=c.arm, threshold=threshold, breached=False,
                relative=c.relative, p_value=p, beyond_threshold=worse and big,
            )
        )  # fmt: skip
    del alpha  # read with every other guardrail (read_guardrails)
    return rows


def _correct(method: str, metrics: list[MetricResult], notes: list[str]) -> None:
    """Adjust the p-values of every arm on the primary and secondary metrics together."""
    lifts = [lift for m in metrics if m.role != "guardrail" for lift in m.comparisons]
    if len(lifts) < 2:
        return
    if method == "none":
        notes.append(
            f"{len(lifts)} comparisons and no correction: at alpha 0.05 about one in twenty "
            "differences is significant by chance; read secondary metrics as hints."
        )
        return
    for lift, p in zip(lifts, adjust([x.p_value for x in lifts], method), strict=True):
        lift.adjusted_p_value = p


def _design(exp: CompiledExperiment, metrics: list[MetricResult], arms: list[ArmUnits]) -> Design:
    analysis = exp.spec.analysis
    needed = analysis.horizon_units
    primary = next((m for m in metrics if m.role == "primary"), None)
    if needed is None and primary is not None:
        control = next((a for a in primary.arms if a.id == exp.control), None)
        if control is not None and control.value is not None and control.n > 1 and control.ci:
            half = (control.ci[1] - control.ci[0]) / 2
            # back from the mean's interval to the variance of one unit
            from scipy import stats

            se = half / float(stats.t.ppf(1 - analysis.alpha / 2, control.n - 1))
            needed = units_needed(control.value, se * se * control.n, mde=analysis.mde,
                                  alpha=analysis.alpha, power=analysis.power)  # fmt: skip
    reached = None
    if not analysis.sequential and needed is not None:
        reached = all(a.exposed >= needed for a in arms)
    return Design(
        alpha=analysis.alpha, power=analysis.power, mde=analysis.mde,
        sequential=analysis.sequential, correction=analysis.correction,
        units_needed_per_arm=needed, horizon_reached=reached,
    )  # fmt: skip


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value  # no units → null


# --- Stops, resumes and guardrails --------------------------------------------------------------


async def stop(pool: Pool, layouts: Layouts, key: str, who: str, reason: str) -> None:
    experiment(layouts, key)
    await set_state(pool, key, "stopped", reason or "stopped by a person", who)


async def resume(pool: Pool, layouts: Layouts, key: str, who: str) -> None:
    exp = experiment(layouts, key)
    if not exp.running:
        raise InvalidInputError(
            "not_running",
            f"Experiment '{key}' is {exp.spec.status} in experiments.yaml; set it running there.",
            "key",
        )
    await set_state(pool, key, "running", "resumed by a person", who)


async def check_guardrails(pool: Pool, layouts: Layouts, now: datetime) -> list[str]:
    """Stop every running experiment an arm of which breaches a guardrail; the keys stopped.
    One process at a time does this (an advisory lock); the others skip their turn."""
    stopped: list[str] = []
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GUARDRAIL_LOCK):
            return stopped
        try:
            states = await load_states(pool)
            for key, exp in layouts.experiments.experiments.items():
                state = states.get(key)
                if not exp.running or (state is not None and state.status == "stopped"):
                    continue
                try:
                    if await _check_one(pool, layouts, key, exp, state, now):
                        stopped.append(key)
                except Exception as exc:  # noqa: BLE001 - one experiment never stops the others
                    log.warning("guardrails of %s not read: %r", key, exc)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", GUARDRAIL_LOCK)
    return stopped


async def _check_one(
    pool: Pool,
    layouts: Layouts,
    key: str,
    exp: CompiledExperiment,
    state: ExperimentState | None,
    now: datetime,
) -> bool:
    """Stop one experiment if a guardrail is breached; whether it was stopped."""
    found = await results(pool, layouts, key, state, now, only_guardrails=True)
    breached = [g for g in found.guardrails if g.breached]
    if not breached:
        return False
    worst = breached[0]
    reason = (
        f"guardrail {worst.metric}: arm {worst.arm} is {abs(worst.relative or 0):.0%} worse "
        f"than {exp.control} (p = {worst.p_value or 0:.2g}, read at {worst.alpha or 0:.2g}; "
        f"threshold {worst.threshold:.0%})"
    )
    evidence = {"guardrails": msgspec.to_builtins(breached),
                "metrics": msgspec.to_builtins(found.metrics),
                "latency": msgspec.to_builtins(found.latency)}  # fmt: skip
    await set_state(pool, key, "stopped", reason, "guardrail", evidence)
    log.warning("experiment %s stopped: %s", key, reason)
    return True


# --- The global holdout -------------------------------------------------------------------------


async def holdout_results(pool: Pool, layouts: Layouts, now: datetime) -> dict[str, Any]:
    """Personalization's total lift: users in the holdout against everyone else, on the shipped
    outcome metrics (their stored per-unit values, from sign-up)."""
    holdout = layouts.experiments.holdout
    names = [
        n for n in ("activation_14d", "time_to_first_value", "feature_adoption_30d",
                    "retention_weekly") if n in layouts.metrics
    ]  # fmt: skip
    out = []
    async with pool.acquire() as conn:
        for name in names:
            rows = await metric_store.unit_values(conn, name, now)
            held: list[float] = []
            rest: list[float] = []
            for r in rows:
                target = held if in_holdout(holdout, r["tenant_id"], r["unit_id"]) else rest
                target.append(float(r["value"]))
            a, b = summarize(held), summarize(rest)
            c = compare(a, b)
            out.append({
                "metric": name, "label": layouts.metrics[name].label,
                "format": layouts.metrics[name].format,
                "holdout": {"n": a.n, "value": _num(a.mean), "ci": a.ci},
                "personalized": {"n": b.n, "value": _num(b.mean), "ci": b.ci},
                "lift": None if c is None else msgspec.to_builtins(c),
            })  # fmt: skip
    await asyncio.sleep(0)
    return {"holdout_percent": holdout.percent, "metrics": out}
