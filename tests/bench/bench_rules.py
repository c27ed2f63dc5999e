"""Rule evaluation: Cairn's CEL rules against growthbook-python on the same targeting.

    python -m tests.bench.bench_rules [--users 3000] [--repeats 5] [--quick]

The targeting conditions are taken from the shipped layouts (layouts/screens/*.yaml and the
lifecycle stages of layouts/signals.yaml). Each is written twice:

- Cairn: a CEL expression, compiled once, evaluated against a `cel.Context` built once per user,
  as `decide()` does (one Context per decision, every widget rule of the screen against it).
- GrowthBook: a feature whose one rule has the same targeting as a MongoDB-style `condition`.
  Measured two ways: the full path, `GrowthBook.eval_feature(key)` (what `is_on` calls), and the
  bare condition evaluator `growthbook.core.evalCondition(attributes, condition)`.

The user attribute sets are the engine's own decision contexts (`build_context`) for a few
thousand synthetic profiles, so both evaluate exactly what Cairn's rules read. Every (user, rule)
result of the three evaluators is compared first; any disagreement aborts the run.

The budget: rule evaluation >= 10x faster than growthbook-python.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import cel
from growthbook import GrowthBook
from growthbook.core import evalCondition

from app.config.layouts import load_layouts
from app.engine.fastcel import compile_fast
from app.engine.paths import FastExpr, LazyContext, build_trie, evaluate
from app.engine.signals import build_context
from tests.bench._common import (
    CORES,
    LAYOUTS_DIR,
    NOW,
    SummaryRow,
    median,
    report,
    synthetic_profiles,
)

# What a failing CEL rule raises; the engine treats it as "rule does not hold" (and says why).
_EVAL_ERRORS = (RuntimeError, ValueError, TypeError, KeyError)
_RUNS = 8  # evaluations of one rule in a row, in the per-rule breakdown


@dataclass(frozen=True, slots=True)
class Rule:
    key: str
    origin: str
    cel: str
    condition: dict[str, Any]
    note: str = ""


RULES: tuple[Rule, ...] = (
    Rule(
        "connect_integrations",
        "screens/home.yaml",
        "user.role == 'admin' && integrations.count < 2 && integrations.has_suggestions",
        {
            "user.role": "admin",
            "integrations.count": {"$lt": 2},
            "integrations.has_suggestions": True,
        },
    ),
    Rule(
        "seat_limit_upgrade",
        "screens/billing.yaml (seats)",
        "tenant.plan in ['free', 'trial', 'pro'] && tenant.seats_used >= tenant.seats",
        {"tenant.plan": {"$in": ["free", "trial", "pro"]}, "tenant.at_seat_limit": True},
        note="a GrowthBook condition compares an attribute with constants only, so "
        "seats_used >= seats is read from the derived attribute tenant.at_seat_limit",
    ),
    Rule(
        "stage_engaged",
        "signals.yaml lifecycle",
        "value.d7 >= 5 && features.diversity >= 3",
        {"value.d7": {"$gte": 5}, "features.diversity": {"$gte": 3}},
    ),
    Rule(
        "stage_at_risk",
        "signals.yaml lifecycle",
        "user.days_since_signup >= 14 && value.d7 == 0 && value.d30 > 0",
        {"user.days_since_signup": {"$gte": 14}, "value.d7": 0, "value.d30": {"$gt": 0}},
    ),
    Rule(
        "activation_checklist",
        "screens/home.yaml",
        "value.d90 == 0 || (!activation.complete && user.days_since_signup < 30)",
        {
            "$or": [
                {"value.d90": 0},
                {"activation.complete": False, "user.days_since_signup": {"$lt": 30}},
            ]
        },
    ),
    Rule(
        "automation_step",
        "screens/editor.yaml",
        "!activation.steps.create_automation && 'automations' in plan.features",
        {
            "activation.steps.create_automation": False,
            "plan.features": {"$elemMatch": {"$eq": "automations"}},
        },
    ),
    Rule(
        "industry_templates",
        "screens/home.yaml",
        "user.role != 'end_user' && size(templates.suggested) > 0 && templates.count < 3",
        {
            "user.role": {"$ne": "end_user"},
            "templates.suggested": {"$size": {"$gt": 0}},
            "templates.count": {"$lt": 3},
        },
    ),
    Rule(
        "industry_without_slack",
        "string membership",
        "tenant.industry in ['healthcare', 'fintech', 'education'] "
        "&& !('slack' in integrations.connected)",
        {
            "tenant.industry": {"$in": ["healthcare", "fintech", "education"]},
            "integrations.connected": {"$nin": ["slack"]},
        },
    ),
)


def features_of(rules: Sequence[Rule]) -> dict[str, Any]:
    """The GrowthBook feature definitions: off by default, forced on where the targeting holds."""
    return {
        r.key: {"defaultValue": False, "rules": [{"condition": r.condition, "force": True}]}
        for r in rules
    }


def _cel_holds(program: Any, env: Any) -> bool:
    try:
        return program.execute(env) is True
    except _EVAL_ERRORS:
        return False


# --- The timed loops: each returns seconds -------------------------------------------------------


def _time_cel(programs: Sequence[Any], envs: Sequence[Any]) -> float:
    t0 = time.perf_counter()
    for env in envs:
        for program in programs:
            try:  # noqa: SIM105 - contextlib.suppress would cost more than the evaluation
                program.execute(env)
            except _EVAL_ERRORS:
                pass
    return time.perf_counter() - t0


def _time_cel_rule(program: Any, envs: Sequence[Any]) -> float:
    t0 = time.perf_counter()
    for env in envs:
        for _ in range(_RUNS):
            try:  # noqa: SIM105 - contextlib.suppress would cost more than the evaluation
                program.execute(env)
            except _EVAL_ERRORS:
                pass
    return time.perf_counter() - t0


def _time_gb_condition_rule(condition: dict[str, Any], users: Sequence[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for attributes in users:
        for _ in range(_RUNS):
            evalCondition(attributes, condition)
    return time.perf_counter() - t0


def _time_gb_feature_rule(key: str, instances: Sequence[GrowthBook]) -> float:
    t0 = time.perf_counter()
    for gb in instances:
        for _ in range(_RUNS):
            gb.eval_feature(key)
    return time.perf_counter() - t0


def _time_gb_condition(
    conditions: Sequence[dict[str, Any]], users: Sequence[dict[str, Any]]
) -> float:
    t0 = time.perf_counter()
    for attributes in users:
        for condition in conditions:
            evalCondition(attributes, condition)
    return time.perf_counter() - t0


def _time_gb_feature(keys: Sequence[str], instances: Sequence[GrowthBook]) -> float:
    t0 = time.perf_counter()
    for gb in instances:
        for key in keys:
            gb.eval_feature(key)
    return time.perf_counter() - t0


def _time_context(users: Sequence[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for ctx in users:
        cel.Context(ctx)
    return time.perf_counter() - t0


def _time_first_eval(program: Any, users: Sequence[dict[str, Any]]) -> float:
    """One evaluation on a fresh Context per user; the constructor is timed apart."""
    envs = [cel.Context(ctx) for ctx in users]
    t0 = time.perf_counter()
    for env in envs:
        try:  # noqa: SIM105 - contextlib.suppress would cost more than the evaluation
            program.execute(env)
        except _EVAL_ERRORS:
            pass
    return time.perf_counter() - t0


def _time_decision_cel(programs: Sequence[Any], users: Sequence[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for ctx in users:
        env = cel.Context(ctx)
        for program in programs:
            try:  # noqa: SIM105 - contextlib.suppress would cost more than the evaluation
                program.execute(env)
            except _EVAL_ERRORS:
                pass
    return time.perf_counter() - t0


def _time_decision_gb_new(
    keys: Sequence[str], features: dict[str, Any], users: Sequence[dict[str, Any]]
) -> float:
    t0 = time.perf_counter()
    for attributes in users:
        gb = GrowthBook(attributes=attributes, features=features)
        for key in keys:
            gb.eval_feature(key)
    return time.perf_counter() - t0


def _time_decision_gb_shared(
    keys: Sequence[str], gb: GrowthBook, users: Sequence[dict[str, Any]]
) -> float:
    t0 = time.perf_counter()
    for attributes in users:
        gb.set_attributes(attributes)
        for key in keys:
            gb.eval_feature(key)
    return time.perf_counter() - t0


def _line(label: str, us: float, note: str = "") -> None:
    print(f"  {label:<66} {us:8.2f} µs" + (f"   {note}" if note else ""))


def _median_of(repeats: int, run: Callable[[], float]) -> float:
    """The median of `repeats` runs (seconds): robust to a neighbour's burst of CPU."""
    times = []
    for _ in range(repeats):
        gc.collect()
        times.append(run())
    return median(times)


def run(*, users: int = 3000, repeats: int = 5) -> list[SummaryRow]:
    layouts = load_layouts(LAYOUTS_DIR)
    vocab = layouts.vocabulary
    profiles = synthetic_profiles(users, seed=23)
    contexts = [build_context(p, vocab, now=NOW, mode="full", screen="home") for p in profiles]
    programs = [cel.compile(r.cel) for r in RULES]
    # What the engine runs: each rule compiled to Python, with its CEL program as the fallback.
    engine_rules = [FastExpr(compile_fast(r.cel), p) for r, p in zip(RULES, programs, strict=True)]
    assert all(rule.fast is not None for rule in engine_rules)
    referenced = sorted({name for p in programs for name in p.variables()})
    slim = [{name: ctx[name] for name in referenced} for ctx in contexts]
    features = features_of(RULES)
    keys = [r.key for r in RULES]
    conditions = [r.condition for r in RULES]
    n_rules = len(RULES)

    print(
        f"Rule evaluation: {n_rules} targeting rules of the shipped layouts x {users} users "
        f"(the engine's decision contexts for synthetic profiles); {repeats} runs, median."
    )
    print(f"CPU: {CORES} cores, shared with whatever else runs; numbers are wall clock per call.")
    for r in RULES:
        print(f"  {r.key:<24} {r.origin:<30} {r.cel}")
        if r.note:
            print(f"  {'':<24} note: {r.note}")

    # Agreement first: every evaluator must say the same for every (user, rule).
    envs = [cel.Context(ctx) for ctx in contexts]
    instances = [GrowthBook(attributes=ctx, features=features) for ctx in contexts]
    agree = raised = 0
    holds = [0] * n_rules
    disagreements: list[str] = []
    for u, (env, ctx, gb) in enumerate(zip(envs, contexts, instances, strict=True)):
        for i, (program, rule) in enumerate(zip(programs, RULES, strict=True)):
            try:
                by_cel = program.execute(env) is True
            except _EVAL_ERRORS:
                by_cel = False
                raised += 1
            by_condition = evalCondition(ctx, rule.condition)
            by_feature = gb.eval_feature(rule.key).on
            if by_cel == by_condition == by_feature:
                agree += 1
                holds[i] += by_cel
            elif len(disagreements) < 10:
                disagreements.append(
                    f"user {u} rule {rule.key}: cel={by_cel} "
                    f"evalCondition={by_condition} eval_feature={by_feature}"
                )
    total = users * n_rules
    print(
        f"agreement: {agree}/{total} (user, rule) results identical in CEL, evalCondition and "
        f"eval_feature; {raised} CEL evaluations raised (counted as false, as the engine does)"
    )
    print("  holds for: " + ", ".join(f"{r.key} {h}" for r, h in zip(RULES, holds, strict=True)))
    if agree != total:
        print("DISAGREEMENT, aborting:", *disagreements, sep="\n  ", file=sys.stderr)
        raise SystemExit(1)

    # Warm evaluation: contexts / instances built beforehand, only the rule evaluations timed.
    slim_envs = [cel.Context(ctx) for ctx in slim]
    for env in slim_envs:
        _cel_holds(programs[0], env)
    t_cel = _median_of(repeats, lambda: _time_cel(programs, envs))
    t_cel_slim = _median_of(repeats, lambda: _time_cel(programs, slim_envs))
    t_cond = _median_of(repeats, lambda: _time_gb_condition(conditions, contexts))
    t_feat = _median_of(repeats, lambda: _time_gb_feature(keys, instances))
    us = 1e6 / total
    us_rule = 1e6 / (users * _RUNS)
    cel_us, cel_slim_us, cond_us, feat_us = t_cel * us, t_cel_slim * us, t_cond * us, t_feat * us
    print(
        "\nper evaluation (one rule, one user; Contexts and GrowthBook instances built beforehand):"
    )
    _line("cairn CEL program.execute(cel.Context)", cel_us)
    _line("cairn CEL, Context of only the rules' variables", cel_slim_us)
    _line(
        "growthbook core.evalCondition (bare condition evaluator)",
        cond_us,
        f"growthbook / cel {cond_us / cel_us:5.1f}x",
    )
    _line(
        "growthbook GrowthBook.eval_feature (full feature path)",
        feat_us,
        f"growthbook / cel {feat_us / cel_us:5.1f}x",
    )
    print(f"  by rule, each evaluated {_RUNS} times in a row per user (µs per evaluation):")
    print(f"    {'':<24} {'cel':>8} {'evalCondition':>13} {'eval_feature':>13}  growthbook / cel")
    for i, rule in enumerate(RULES):
        one_cel = _median_of(repeats, partial(_time_cel_rule, programs[i], envs)) * us_rule
        one_cond = (
            _median_of(repeats, partial(_time_gb_condition_rule, conditions[i], contexts)) * us_rule
        )
        one_feat = _median_of(repeats, partial(_time_gb_feature_rule, keys[i], instances)) * us_rule
        print(
            f"    {rule.key:<24} {one_cel:8.2f} {one_cond:13.2f} {one_feat:13.2f}  "
            f"{one_cond / one_cel:5.1f}x {one_feat / one_cel:5.1f}x"
        )
    print(
        "  (one rule repeated on one Context is cheaper than the mix above: moving to another "
        "user's Context costs the first evaluation on it more)"
    )

    # The engine's path: compiled rules on the plain variables; CEL only when one raises.
    def engine_decisions() -> float:
        start = time.perf_counter()
        for ctx in contexts:
            env = LazyContext(ctx, trie)
            for rule in engine_rules:
                evaluate(rule, env, ctx)
        return time.perf_counter() - start

    trie = build_trie(set(referenced))
    t_engine = _median_of(repeats, engine_decisions)
    engine_dec_us = t_engine * 1e6 / users
    engine_us = engine_dec_us / n_rules
    print("\nthe engine's path (rules compiled to Python, CEL on error; per user, no setup):")
    _line(
        f"cairn engine, {n_rules} rules per decision, per rule",
        engine_us,
        f"evalCondition / cairn {cond_us / engine_us:5.1f}x, "
        f"eval_feature / cairn {feat_us / engine_us:5.1f}x",
    )

    # The Context itself.
    t_ctx = _median_of(repeats, lambda: _time_context(contexts))
    t_ctx_slim = _median_of(repeats, lambda: _time_context(slim))
    t_first = _median_of(repeats, lambda: _time_first_eval(programs[0], contexts))
    ctx_us, ctx_slim_us = t_ctx * 1e6 / users, t_ctx_slim * 1e6 / users
    first_us = t_first * 1e6 / users
    print("\ncel.Context, once per user (per decision):")
    _line(f"cel.Context(full decision context: {len(contexts[0])} variables)", ctx_us)
    _line(
        "first evaluation on that fresh Context",
        first_us,
        f"vs {cel_us:.2f} µs warm: the environment is finished on first use",
    )
    _line(
        f"cel.Context(the {len(referenced)} variables the rules read)",
        ctx_slim_us,
        ", ".join(referenced),
    )

    # One decision: the Context (or GrowthBook's per-user setup) and all N rules.
    gb_shared = GrowthBook(features=features)
    t_dec = _median_of(repeats, lambda: _time_decision_cel(programs, contexts))
    t_dec_slim = _median_of(repeats, lambda: _time_decision_cel(programs, slim))
    t_gb_new = _median_of(repeats, lambda: _time_decision_gb_new(keys, features, contexts))
    t_gb_shared = _median_of(repeats, lambda: _time_decision_gb_shared(keys, gb_shared, contexts))
    dec_us, dec_slim_us = t_dec * 1e6 / users, t_dec_slim * 1e6 / users
    gb_new_us, gb_shared_us = t_gb_new * 1e6 / users, t_gb_shared * 1e6 / users
    cond_dec_us = cond_us * n_rules
    print(f"\nper decision ({n_rules} rules for one user, the per-user setup included):")
    _line(f"cairn cel.Context(full context) + {n_rules} rules", dec_us)
    _line(f"cairn cel.Context(rules' variables) + {n_rules} rules", dec_slim_us)
    for label, value in (
        (f"growthbook GrowthBook(attributes, features) + {n_rules} eval_feature", gb_new_us),
        (f"growthbook shared, set_attributes + {n_rules} eval_feature", gb_shared_us),
        (f"growthbook {n_rules} x evalCondition (nothing per user)", cond_dec_us),
    ):
        _line(
            label,
            value,
            f"growthbook / cairn: {value / dec_us:4.2f}x (full context), "
            f"{value / dec_slim_us:4.2f}x (rules' variables)",
        )
    print(
        "budget: rule evaluation >= 10x faster than growthbook-python: "
        f"{'met' if cond_us / cel_us >= 10 else 'MISSED'} per evaluation against evalCondition "
        f"({cond_us / cel_us:.1f}x), {'met' if feat_us / cel_us >= 10 else 'MISSED'} against "
        f"eval_feature ({feat_us / cel_us:.1f}x); per decision with the full context "
        f"{gb_shared_us / dec_us:.2f}x"
    )

    print(
        "budget with the engine's compiled rules: "
        f"{'met' if cond_us / engine_us >= 10 else 'MISSED'} against evalCondition "
        f"({cond_us / engine_us:.1f}x), {'met' if feat_us / engine_us >= 10 else 'MISSED'} "
        f"against eval_feature ({feat_us / engine_us:.1f}x); per decision "
        f"{gb_shared_us / engine_dec_us:.2f}x GrowthBook's shared instance"
    )
    budget = "cel >= 10x faster"
    return [
        SummaryRow(
            "rules",
            "engine rule eval vs growthbook evalCondition",
            f"{engine_us:.2f} µs",
            f"{cond_us:.2f} µs",
            f"{cond_us / engine_us:.1f}x",
            budget,
        ),
        SummaryRow(
            "rules",
            "engine rule eval vs growthbook eval_feature",
            f"{engine_us:.2f} µs",
            f"{feat_us:.2f} µs",
            f"{feat_us / engine_us:.1f}x",
            budget,
        ),
        SummaryRow(
            "rules",
            "CEL eval vs growthbook evalCondition",
            f"{cel_us:.2f} µs",
            f"{cond_us:.2f} µs",
            f"{cond_us / cel_us:.1f}x",
            budget,
        ),
        SummaryRow(
            "rules",
            "CEL eval vs growthbook eval_feature",
            f"{cel_us:.2f} µs",
            f"{feat_us:.2f} µs",
            f"{feat_us / cel_us:.1f}x",
            budget,
        ),
        SummaryRow(
            "rules",
            f"decision: Context + {n_rules} rules vs gb shared",
            f"{dec_us:.1f} µs",
            f"{gb_shared_us:.1f} µs",
            f"{gb_shared_us / dec_us:.2f}x",
        ),
        SummaryRow(
            "rules",
            f"decision: slim Context + {n_rules} rules vs gb shared",
            f"{dec_slim_us:.1f} µs",
            f"{gb_shared_us:.1f} µs",
            f"{gb_shared_us / dec_slim_us:.2f}x",
        ),
    ]


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="CEL rules vs growthbook-python")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a few hundred users, 2 runs")
    args = parser.parse_args(argv)
    users, repeats = (300, 2) if args.quick else (args.users, args.repeats)
    rows = run(users=users, repeats=repeats)
    return report(rows)


if __name__ == "__main__":
    run_cli()
