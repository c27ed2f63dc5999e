"""The pure decision: `decide()` for the shipped layouts, against encoding its result.

    python -m tests.bench.bench_decide [--profiles 400] [--passes 10] [--quick]

Loads layouts/ as the server does, builds a few hundred varied profiles (every role, plan and
industry, from brand new to a year in, quiet to power users, dismissed widgets, error bursts,
limits hit; personalization full, basic or off) and times each `decide()` call for the screens
home, editor, settings and billing. Baseline in the same run: `msgspec.json.encode` of the
descriptor each call produced, the floor of any response. Also shown, to see where a decision's
time goes: `build_context` alone (it includes the lifecycle stage) and `cel.Context` on its result.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import cel
import msgspec

from app.config.layouts import load_layouts, sample_items
from app.engine.decide import DecisionInput, decide
from app.engine.model import Layouts
from app.engine.profile import PeerStats, ProfileData
from app.engine.propensity import (
    FEATURES,
    POOLED,
    TARGETS,
    PropensityModel,
    PropensityModels,
    SegmentModel,
)
from app.engine.reasons import Reason
from app.engine.recs import RecDriver, RecItem, Recs
from app.engine.signals import build_context
from tests.bench._common import (
    CORES,
    LAYOUTS_DIR,
    NOW,
    SummaryRow,
    mode_of,
    percentile,
    report,
    synthetic_peers,
    synthetic_profiles,
)

SCREENS = ("home", "editor", "settings", "billing")
_NS_PER_US = 1000.0


def _recs(layouts: Layouts) -> Recs:
    """Candidates as the recommender hands them to a decision: three integrations, three
    templates and one help article, each with its reason and evidence."""

    def items(source: str, kind: str) -> tuple[RecItem, ...]:
        return tuple(
            RecItem(
                id=str(p["id"]),
                kind=str(p.get("kind", kind)),
                score=0.8 - 0.1 * n,
                confidence=0.6 - 0.1 * n,
                reason="Teams like yours (fintech, 10\u201350 seats): 7 in 10 use this.",
                drivers=(RecDriver("peers.cohort", "fintech, 10\u201350 seats"),),
                props=p,
            )
            for n, p in enumerate(sample_items(layouts.vocabulary, source))
        )

    return Recs(
        status="ok",
        integrations=items("recs.integrations", "integration"),
        templates=items("recs.templates", "template"),
        help=items("recs.help", "article"),
    )


def _propensity() -> PropensityModels:
    """Both targets' models over every feature the trained ones read."""

    def model(target: str) -> PropensityModel:
        names = list(FEATURES[target])
        pooled = SegmentModel(
            segment=POOLED,
            features=names,
            mean=[1.0] * len(names),
            scale=[2.0] * len(names),
            coef=[0.3 if n % 2 else -0.2 for n in range(len(names))],
            intercept=-0.5,
            n_train=1000,
            positives=200,
        )
        return PropensityModel(
            target=target, horizon_days=30, segments={POOLED: pooled}, trained_at="", auc=None
        )

    return PropensityModels(models={t: model(t) for t in TARGETS})


def _inputs(
    screen: str,
    profiles: Sequence[ProfileData],
    peers: PeerStats,
    seed: int,
    recs: Recs | None = None,
    propensity: PropensityModels | None = None,
) -> list[DecisionInput]:
    rng = random.Random(seed)
    return [
        DecisionInput(
            screen=screen,
            profile=p,
            mode=mode_of(p),
            now=NOW,
            seed=rng.getrandbits(64),
            peers=peers,
            recs=recs if mode_of(p) == "full" else None,
            propensity=propensity,
        )
        for p in profiles
    ]


def _sample(
    layouts: Layouts, inputs: Sequence[DecisionInput], passes: int
) -> tuple[list[float], list[float], list[Any]]:
    """µs per decide() and per encode of its descriptor, one sample per call."""
    decide_us: list[float] = []
    encode_us: list[float] = []
    decisions: list[Any] = []
    encode = msgspec.json.encode
    clock = time.perf_counter_ns
    for n in range(passes):
        gc.collect()
        for inp in inputs:
            t0 = clock()
            decision = decide(layouts, inp)
            t1 = clock()
            encode(decision.descriptor)
            t2 = clock()
            decide_us.append((t1 - t0) / _NS_PER_US)
            encode_us.append((t2 - t1) / _NS_PER_US)
            if n == 0:
                decisions.append(decision)
    return decide_us, encode_us, decisions


def _parts(layouts: Layouts, inputs: Sequence[DecisionInput]) -> tuple[list[float], list[float]]:
    """µs of build_context, and of cel.Context over its result, per call."""
    vocab = layouts.vocabulary
    build_us: list[float] = []
    env_us: list[float] = []
    clock = time.perf_counter_ns
    for inp in inputs:
        t0 = clock()
        ctx = build_context(
            inp.profile,
            vocab,
            now=inp.now,
            mode=inp.mode,
            peers=inp.peers,
            screen=inp.screen,
            recs=inp.recs,
            propensity=inp.propensity,
        )
        t1 = clock()
        cel.Context(ctx)
        t2 = clock()
        build_us.append((t1 - t0) / _NS_PER_US)
        env_us.append((t2 - t1) / _NS_PER_US)
    return build_us, env_us


def run(*, profiles: int = 400, passes: int = 10) -> list[SummaryRow]:
    layouts = load_layouts(LAYOUTS_DIR)
    people = synthetic_profiles(profiles, seed=41)
    peers = synthetic_peers()
    recs, propensity = _recs(layouts), _propensity()
    modes = Counter(mode_of(p) for p in people)
    mix = ", ".join(f"{m} {n}" for m, n in sorted(modes.items()))
    print(
        f"decide(): {profiles} profiles ({mix}) x {passes} passes per screen, one timing per "
        f"call; layouts {layouts.version}; with the recommender's candidates (3 integrations, "
        f"3 templates, 1 help item) and propensity models for both targets."
    )
    print(
        f"CPU: {CORES} cores, shared with whatever else runs. Baseline: msgspec.json.encode of "
        f"the descriptor decide() returned."
    )
    print(
        f"{'screen':<9} {'decide p50':>11} {'p99':>9} {'encode p50':>11} {'p99':>7} "
        f"{'ratio p50':>10} {'ratio p99':>10}  widgets/decision  layouts  rule errors"
    )

    rows: list[SummaryRow] = []
    all_decide: list[float] = []
    all_encode: list[float] = []
    errors: Counter[str] = Counter()
    by_mode: dict[str, list[float]] = {}
    for i, screen in enumerate(SCREENS):
        inputs = _inputs(screen, people, peers, seed=i, recs=recs, propensity=propensity)
        for inp in inputs[: min(50, len(inputs))]:  # warm-up
            decide(layouts, inp)
        decide_us, encode_us, decisions = _sample(layouts, inputs, passes)
        all_decide += decide_us
        for k, us in enumerate(decide_us):
            by_mode.setdefault(inputs[k % len(inputs)].mode, []).append(us)
        all_encode += encode_us
        shown = [sum(len(s.widgets) for s in d.descriptor.slots) for d in decisions]
        distinct = len(
            {
                msgspec.json.encode(
                    [s.id for s in d.descriptor.slots]
                    + [w.id for s in d.descriptor.slots for w in s.widgets]
                )
                for d in decisions
            }
        )
        failed = 0
        for d in decisions:
            for left_out in d.trace:
                if left_out.reason in (Reason.RULE_ERROR, Reason.PROPS_ERROR):
                    failed += 1
                    errors[
                        f"{screen}/{left_out.widget_id}: {left_out.reason}: "
                        f"{left_out.detail.split(':', 1)[-1].strip()[:60]}"
                    ] += 1
        d50, d99 = percentile(decide_us, 50), percentile(decide_us, 99)
        e50, e99 = percentile(encode_us, 50), percentile(encode_us, 99)
        print(
            f"{screen:<9} {d50:9.1f}µs {d99:7.1f}µs {e50:9.1f}µs {e99:5.1f}µs "
            f"{d50 / e50:9.1f}x {d99 / e99:9.1f}x  {sum(shown) / len(shown):16.2f}  "
            f"{distinct:7d}  {failed:11d}"
        )
        rows.append(
            SummaryRow(
                "decide",
                f"decide() {screen} p50 / p99",
                f"{d50:.0f} / {d99:.0f} µs",
                f"{e50:.1f} / {e99:.1f} µs",
                f"{d50 / e50:.0f}x / {d99 / e99:.0f}x",
            )
        )
    d50, d99 = percentile(all_decide, 50), percentile(all_decide, 99)
    e50, e99 = percentile(all_encode, 50), percentile(all_encode, 99)
    print(
        f"{'all':<9} {d50:9.1f}µs {d99:7.1f}µs {e50:9.1f}µs {e99:5.1f}µs "
        f"{d50 / e50:9.1f}x {d99 / e99:9.1f}x"
    )
    if errors:
        print("rules or props that failed to evaluate (the widget was left out with this reason):")
        for what, n in errors.most_common(8):
            print(f"  {n:6d} x {what}")

    inputs = _inputs("home", people, peers, seed=99, recs=recs, propensity=propensity)
    build_us, env_us = _parts(layouts, inputs)
    b50, c50 = percentile(build_us, 50), percentile(env_us, 50)
    print(
        "decide() p50 by personalization, all screens: "
        + ", ".join(
            f"{mode} {percentile(samples, 50):.1f} µs" for mode, samples in sorted(by_mode.items())
        )
    )
    print(
        f"where home's time goes (p50): build_context {b50:.1f} µs (includes the lifecycle "
        f"stage, which builds its own cel.Context), cel.Context(context) {c50:.1f} µs"
    )
    rows.append(
        SummaryRow(
            "decide",
            "decide() all screens p50 / p99",
            f"{d50:.0f} / {d99:.0f} µs",
            f"{e50:.1f} / {e99:.1f} µs",
            f"{d50 / e50:.0f}x / {d99 / e99:.0f}x",
        )
    )
    rows.append(
        SummaryRow(
            "decide", "home: build_context / cel.Context p50", f"{b50:.0f} / {c50:.0f} µs", "", ""
        )
    )
    return rows


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="decide() for the shipped layouts")
    parser.add_argument("--profiles", type=int, default=400)
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="60 profiles, 2 passes")
    args = parser.parse_args(argv)
    profiles, passes = (60, 2) if args.quick else (args.profiles, args.passes)
    rows = run(profiles=profiles, passes=passes)
    return report(rows)


if __name__ == "__main__":
    run_cli()
