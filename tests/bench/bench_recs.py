"""Recommendation quality: popularity vs item-kNN vs Cairn's recommender on held-out interactions.

    python -m tests.bench.bench_recs [--rows 100000] [--quick]

Two data sets, each through `cairn recs eval`'s own code path:
1. the demo population (200 tenants, 2,000 users, 200,000 events): templates used, integrations
   connected, features used and help articles read, with the demo catalog's texts embedded and
   each user in the group of their tenant;
2. a generated interactions file of about 100k rows (clustered users, long-tail items) with an
   item texts file, written to a temporary directory and read back as a user's file would be.

Baseline in the same run: popularity (ratios are to it); item-kNN is the second bar. Budget
(Cairn's own): nDCG@10 >= 1.5x popularity and not below item-kNN. For the demo data the
benchmark also prints what an oracle that knows each user's role, plan and industry reaches with
popularity inside that segment: the demo's events are drawn almost independently given those
traits, which bounds what any model can learn from them. Popularity's recall@10 there is already
0.85 and the segment reference sits near 1.35x popularity: 1.5x is out of reach on this data, and
the benchmark reports the miss rather than bend the data.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from app.cli.recs import run_eval
from recommender.evaluate import (
    EvalReport,
    Interactions,
    format_report,
    score_model,
    temporal_split,
)
from recommender.synthetic import generate_interactions, write_csv
from tests.bench._common import SummaryRow, print_table

_DEMO = (200, 2000, 200_000, 7)
_DEMO_QUICK = (40, 400, 40_000, 7)


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


def _row(label: str, report: EvalReport) -> SummaryRow:
    cairn, pop, knn = (report.models[m] for m in ("cairn", "popularity", "item_knn"))
    vs_pop = report.ratio("cairn", "popularity")
    vs_knn = report.ratio("cairn", "item_knn")
    met = vs_pop >= 1.5 and cairn.ndcg >= knn.ndcg
    return SummaryRow(
        "recs",
        f"{label}: nDCG@10 cairn vs popularity (item-kNN {knn.ndcg:.4f}, {vs_knn:.2f}x)",
        f"{cairn.ndcg:.4f}",
        f"{pop.ndcg:.4f}",
        f"{vs_pop:.2f}x",
        f">=1.5x pop, >=kNN: {'met' if met else 'MISSED'}",
    )


def segment_oracle(data: Interactions, segments: Mapping[str, tuple[str, ...]]) -> float:
    """nDCG@10 of popularity within each user's (role, plan, industry) segment."""
    split = temporal_split(data)
    train = split.train
    labels = {s: n for n, s in enumerate(sorted(set(segments.values()), key=str))}
    user_segment = np.array([labels[segments[u]] for u in data.user_ids])
    table = np.zeros((len(labels), data.n_items), dtype=np.float32)
    pairs = {(int(u), int(i)) for u, i in zip(train.users, train.items, strict=True)}
    for u, i in pairs:
        table[user_segment[u], i] += 1.0
    overall = table.sum(axis=0) * 1e-3  # ties broken by overall popularity

    def scores(users: np.ndarray) -> np.ndarray:
        out: np.ndarray = table[user_segment[users]] + overall
        return out

    return score_model(scores, split, data.n_items).ndcg


def run_demo(demo: tuple[int, int, int, int]) -> tuple[EvalReport, float]:
    from app.demo.interactions import demo_interactions
    from app.demo.population import PopulationSpec, generate

    tenants, users, events, seed = demo
    print(f"\n== demo population: {tenants} tenants, {users:,} users, {events:,} events")
    t0 = time.perf_counter()
    report, title = run_eval(None, None, demo=demo, say=_say)
    print(format_report(report, title))
    print(f"wall time with population and embedding: {time.perf_counter() - t0:.1f} s")
    population = generate(PopulationSpec(tenants=tenants, users=users, events=events, seed=seed))
    tenant_of = {t.tenant_id: t for t in population.tenants}
    segments = {
        u.user_id: (u.role, tenant_of[u.tenant_id].plan, tenant_of[u.tenant_id].industry or "")
        for u in population.users
    }
    oracle = segment_oracle(demo_interactions(*demo), segments)
    pop = report.models["popularity"].ndcg
    cairn = report.models["cairn"].ndcg
    print(
        f"reference: an oracle that knows each user's role, plan and industry (popularity within "
        f"that segment) reaches nDCG@10 {oracle:.4f} = {oracle / pop:.2f}x popularity; Cairn "
        f"reaches {cairn / oracle:.2f}x the oracle"
    )
    return report, oracle


def run_file(rows: int, folder: Path) -> EvalReport:
    interactions, items = folder / "interactions.csv", folder / "items.csv"
    print(f"\n== generated interactions file: about {rows:,} rows", flush=True)
    data = generate_interactions(rows, users=max(200, rows // 20), items=max(100, rows // 33))
    write_csv(data, interactions, items)
    print(f"  wrote {len(data.rows):,} rows to {interactions} and item texts to {items}")
    t0 = time.perf_counter()
    report, title = run_eval(str(interactions), str(items), say=_say)
    print(format_report(report, title))
    print(f"wall time with reading and embedding: {time.perf_counter() - t0:.1f} s")
    return report


def run(rows: int, demo: tuple[int, int, int, int]) -> list[SummaryRow]:
    demo_report, oracle = run_demo(demo)
    with tempfile.TemporaryDirectory(prefix="cairn-recs-") as tmp:
        file_report = run_file(rows, Path(tmp))
    print("\n== side by side (ratios to popularity, nDCG@10)")
    header = f"{'data':<10} {'model':<12} {'recall@10':>10} {'nDCG@10':>9} {'coverage':>9} ratio"
    print(header)
    print("-" * len(header))
    for label, report in (("demo", demo_report), (f"{rows // 1000}k file", file_report)):
        for name, s in report.models.items():
            print(
                f"{label:<10} {name:<12} {s.recall:>10.4f} {s.ndcg:>9.4f} {s.coverage:>9.3f} "
                f"{report.ratio(name, 'popularity'):>6.2f}x"
            )
    print(
        f"demo reference, popularity within each role/plan/industry segment: {oracle:.4f} = "
        f"{oracle / demo_report.models['popularity'].ndcg:.2f}x popularity"
    )
    return [_row("demo", demo_report), _row(f"{rows // 1000}k file", file_report)]


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="popularity vs item-kNN vs Cairn, held out")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the generated file")
    parser.add_argument("--quick", action="store_true", help="a smaller demo and a 20k-row file")
    args = parser.parse_args(argv)
    rows = 20_000 if args.quick else args.rows
    result = run(rows, _DEMO_QUICK if args.quick else _DEMO)
    print()
    print_table(result)
    return result


def main(argv: list[str] | None = None) -> int:
    run_cli(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
