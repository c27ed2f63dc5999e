"""`cairn models train`: train the propensity models from the event history, report, save them.

    cairn models train [--json] [--database-url URL] [--every-days N] [--no-save]

Reads the events from PostgreSQL (`--database-url`, else `DATABASE_URL`, else the embedded database
that `cairn demo` keeps in the data directory), trains the activation and upgrade models (see
app.training.propensity), prints per target and segment the rows, positives, held-out AUC and top
features, and saves the models in the database, where running servers pick them up.
(`cairn recs train` is the same command under its former name, kept for one release.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from app.training.propensity import TargetReport, TrainingReport

__all__ = ["add_commands", "add_train_arguments", "cmd_models_train", "format_training"]

TRAIN_HELP = "train the activation and upgrade propensity models from the event history"
TRAIN_DESCRIPTION = (
    "Rebuild every user's signals at snapshots of the stored history, fit a logistic regression "
    "per segment (SMB under 50 seats, mid-market and enterprise) for activation within 14 days "
    "and upgrade within 30 days, report the AUC on a held-out time split, and save the models "
    "for the servers."
)


def add_commands(sub: Any) -> None:
    models = sub.add_parser("models", help="train the models Cairn serves from the stored history")
    actions = models.add_subparsers(dest="models_command", required=True)
    p = actions.add_parser("train", help=TRAIN_HELP, description=TRAIN_DESCRIPTION)
    add_train_arguments(p)
    p.set_defaults(func=cmd_models_train)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from app.training.propensity import SNAPSHOT_EVERY

    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL to train from and save to (default: DATABASE_URL, else the embedded "
        "database in the data directory)",
    )
    p.add_argument(
        "--every-days",
        type=int,
        default=SNAPSHOT_EVERY.days,
        metavar="N",
        help=f"days between snapshots ({SNAPSHOT_EVERY.days})",
    )
    p.add_argument("--no-save", action="store_true", help="train and report, save nothing")


def cmd_models_train(args: argparse.Namespace) -> int:
    from app.cli.common import NoDatabaseError, database
    from app.config.layouts import LayoutConfigError, load_layouts
    from app.settings import ConfigError, Settings
    from app.storage.db import is_unavailable
    from app.training.propensity import train_models

    name = "cairn models train"
    if args.every_days < 1:
        print(f"{name}: --every-days must be at least 1", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env(generate_keys=True)
        vocab = load_layouts(settings.layouts_dir).vocabulary
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except LayoutConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        with database(settings, args.database_url) as dsn:
            report = asyncio.run(
                train_models(
                    dsn, vocab, every=timedelta(days=args.every_days), save=not args.no_save
                )
            )
    except NoDatabaseError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        print(f"{name}: the database is unavailable ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(msgspec.to_builtins(report), indent=2, ensure_ascii=False))
    else:
        print(format_training(report))
    return 0 if any(not t.error for t in report.targets) else 1


# --------------------------------------------------------------------------------------------------
# The table.


def format_training(report: TrainingReport) -> str:
    lines = []
    if report.events:
        lines.append(
            f"Propensity models from {report.events:,} events of {report.tenants:,} tenants, "
            f"{report.history_from[:10]} to {report.history_to[:10]}, with a snapshot of every "
            f"user every {report.snapshot_every_days} days ({report.snapshots} snapshots)."
        )
    if report.users_held_back:
        lines.append(
            f"{report.users_held_back:,} users with personalization 'basic' or 'off' were left out."
        )
    for target in report.targets:
        lines.append("")
        lines.extend(_format_target(target))
    lines.append("")
    if report.saved:
        lines.append("Saved in the database; running servers load the new models.")
    else:
        lines.append("Nothing was saved.")
    return "\n".join(lines)


def _format_target(t: TargetReport) -> list[str]:
    lines = [f"{t.target}: {t.definition}."]
    if t.error:
        lines.append(f"  No model: {t.error}.")
        return lines
    lines.append(
        f"  {t.rows:,} snapshots of {t.users:,} users, {t.positives:,} positive. Split at "
        f"{t.cutoff[:16].replace('T', ' ')}: trained on snapshots whose {t.horizon_days}-day "
        "window had ended by then, tested on the snapshots from then on."
    )
    header = ("segment", "train", "test", "positives", "test AUC", "top features")
    rows = [
        (
            s.label,
            f"{s.rows_train:,}",
            f"{s.rows_test:,}",
            f"{s.positives_train:,} / {s.positives_test:,}",
            "-" if s.test_auc is None else f"{s.test_auc:.2f}",
            ", ".join(f"{name} {'↑' if coef > 0 else '↓'}" for name, coef in s.top_features)
            if s.own_model
            else "(scored by the pooled model)",
        )
        for s in t.segments
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)),
            row[-1],
        ]
        lines.append("  " + "  ".join(cells))
    auc = "-" if t.test_auc is None else f"{t.test_auc:.2f}"
    lines.append(f"  Held-out AUC, each snapshot scored by the model that serves it: {auc}")
    lines.append(
        "  (↑: a higher value raises the score; ↓: lowers it. Served models are fitted again on "
        "every snapshot.)"
    )
    lines.extend(f"  Note: {note}" for note in t.notes)
    return lines
