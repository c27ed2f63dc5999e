"""`cairn recs ...`: offline evaluation of the recommender, and the data it runs on.

    cairn recs eval [--interactions FILE] [--items FILE] [--json]
    cairn recs synth --out FILE [--items-out FILE] [--rows N]
    cairn recs catalog [--csv]

`recs eval` compares popularity, item-kNN and Cairn's recommender on held-out interactions (see
`recommender.evaluate`). Without `--interactions` it evaluates the demo population (the one
`cairn demo` seeds): templates used, integrations connected, features used and help articles read,
with the demo catalog's texts embedded and each user in the group of their tenant (an optional
`group_id` column does the same for a file). `cairn recs train`, the former name of
`cairn models train`, still works for one release.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.cli.models import TRAIN_DESCRIPTION, add_train_arguments, cmd_models_train
from recommender.catalog import embedding_text
from recommender.evaluate import (
    EvalReport,
    Interactions,
    evaluate,
    format_report,
    read_interactions,
    read_item_texts,
)

__all__ = ["add_commands", "embed_item_texts", "run_eval"]


def add_commands(subparsers: Any) -> None:
    """Register `recs eval`, `recs synth` and `recs catalog` on the `cairn` subparsers."""
    recs = subparsers.add_parser("recs", help="evaluate the recommender and export its data")
    sub = recs.add_subparsers(dest="recs_command", required=True)

    p = sub.add_parser(
        "eval",
        help="popularity vs item-kNN vs Cairn on held-out interactions",
        description="Recall@10, nDCG@10 and catalog coverage of popularity, item-kNN and "
        "Cairn's recommender, on each user's last 20% of distinct items. Without "
        "--interactions: the demo population.",
    )
    p.add_argument(
        "--interactions",
        metavar="FILE",
        help="CSV with the header user_id,item_id,timestamp and optionally group_id: the "
        "account (tenant) a user works in, one per user; with it Cairn also learns from each "
        "user's teammates (the baselines never look at groups)",
    )
    p.add_argument("--items", metavar="FILE", help="CSV with the header item_id,text (embedded)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--model",
        default=None,
        help="sentence-transformers model name or path (default: the packaged all-MiniLM-L6-v2)",
    )
    p.add_argument("--tenants", type=int, default=200, help="demo population size (no file)")
    p.add_argument("--users", type=int, default=2000, help="demo population size (no file)")
    p.add_argument("--events", type=int, default=200_000, help="demo population size (no file)")
    p.add_argument("--seed", type=int, default=7, help="demo population seed (no file)")
    p.set_defaults(func=cmd_recs_eval)

    p = sub.add_parser("synth", help="write a synthetic interactions CSV (clustered, long-tail)")
    p.add_argument("--out", required=True, metavar="FILE", help="interactions CSV to write")
    p.add_argument("--items-out", metavar="FILE", help="item texts CSV to write")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--seed", type=int, default=3)
    p.set_defaults(func=cmd_recs_synth)

    p = sub.add_parser("catalog", help="print the demo catalog (JSON, or CSV for --items)")
    p.add_argument("--csv", action="store_true", help="item_id,text rows, as `recs eval` reads")
    p.set_defaults(func=cmd_recs_catalog)

    p = sub.add_parser(
        "train", help="former name of `cairn models train`", description=TRAIN_DESCRIPTION
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_recs_train)


def cmd_recs_train(args: argparse.Namespace) -> int:
    print(
        "cairn recs train: this is now `cairn models train` (it trains the propensity models); "
        "the old name goes away in the next release",
        file=sys.stderr,
    )
    return cmd_models_train(args)


def embed_item_texts(
    data: Interactions, texts: dict[str, str], model: str | None, say: Callable[[str], None]
) -> NDArray[np.float32] | None:
    """Item vectors aligned with `data.item_ids`; zero rows for items without text."""
    from recommender.embedder import SentenceTransformerEmbedder

    rows = [n for n, item in enumerate(data.item_ids) if texts.get(item)]
    if not rows:
        return None
    t0 = time.perf_counter()
    embedder = SentenceTransformerEmbedder(model)
    vectors = np.zeros((data.n_items, embedder.dim), dtype=np.float32)
    vectors[rows] = embedder.embed([texts[data.item_ids[n]] for n in rows])
    say(
        f"embedded {len(rows):,} item texts with {embedder.model_id} in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return vectors


def run_eval(
    interactions: str | None,
    items: str | None,
    *,
    model: str | None = None,
    demo: tuple[int, int, int, int] = (200, 2000, 200_000, 7),
    say: Callable[[str], None] | None = None,
) -> tuple[EvalReport, str]:
    """Evaluate a file (or the demo population); returns the report and its title."""
    if say is None:
        say = _to_stderr
    if interactions:
        texts = read_item_texts(items) if items else {}
        data = read_interactions(interactions, list(texts))
        title = f"Recommendations on {interactions}" + (
            f" with texts from {items}" if items else ""
        )
    else:
        from app.demo.catalog import demo_items
        from app.demo.interactions import demo_interactions

        tenants, users, events, seed = demo
        say(f"generating the demo population ({tenants} tenants, {users} users, {events:,} events)")
        data = demo_interactions(tenants, users, events, seed)
        texts = {i.id: embedding_text(i) for i in demo_items()}
        if items:
            texts.update(read_item_texts(items))
        title = "Recommendations on the demo population (templates, integrations, features, help)"
    vectors = embed_item_texts(data, texts, model, say) if texts else None
    report = evaluate(data, vectors, progress=say)
    return report, title


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_recs_eval(args: argparse.Namespace) -> int:
    try:
        report, title = run_eval(
            args.interactions,
            args.items,
            model=args.model,
            demo=(args.tenants, args.users, args.events, args.seed),
        )
    except (OSError, ValueError) as exc:
        print(f"cairn recs eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(format_report(report, title))
    return 0


def cmd_recs_synth(args: argparse.Namespace) -> int:
    from recommender.synthetic import generate_interactions, write_csv

    data = generate_interactions(args.rows, users=args.users, items=args.items, seed=args.seed)
    write_csv(data, args.out, args.items_out)
    print(
        f"wrote {len(data.rows):,} interactions to {args.out}"
        + (
            f" and {len(data.item_texts):,} item texts to {args.items_out}"
            if args.items_out
            else ""
        )
    )
    return 0


def cmd_recs_catalog(args: argparse.Namespace) -> int:
    import csv

    import msgspec

    from app.demo.catalog import demo_items

    items = demo_items()
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["item_id", "text"])
        writer.writerows((i.id, embedding_text(i)) for i in items)
    else:
        print(msgspec.json.format(msgspec.json.encode(items), indent=2).decode())
    return 0
