"""`cairn retention list | apply`: the events' partitions and their windows (retention.yaml).

cairn retention list                    each partition: window, month, rows, when it goes
cairn retention apply [--dry-run]       drop every partition past its window now
                      [--at ISO-TIME]   as if it were then (a later time drops more)
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from app.cli.common import cli_actor, settings_and_layouts, with_pool


def add_commands(sub: Any) -> None:
    group = sub.add_parser("retention", help="the events' retention windows (retention.yaml)")
    actions = group.add_subparsers(dest="retention_command", required=True)
    p = actions.add_parser("list", help="the events' partitions and when each is dropped")
    p.set_defaults(func=cmd_list)
    p = actions.add_parser("apply", help="drop every partition past its window")
    p.add_argument("--dry-run", action="store_true", help="only say what would be dropped")
    p.add_argument("--at", type=_when, help="the time to apply the windows at (ISO 8601)")
    p.set_defaults(func=cmd_apply)


def _when(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def cmd_apply(args: argparse.Namespace) -> int:
    from app.serving.retention import apply_retention, retention_entry

    loaded = settings_and_layouts("retention apply")
    if loaded is None:
        return 1
    _, layouts = loaded
    at = args.at or datetime.now(UTC)
    dropped = with_pool(
        "retention apply",
        lambda pool: apply_retention(
            pool, layouts.retention, at, dry_run=args.dry_run, prepare=args.at is None
        ),
        None if args.dry_run else (lambda done: retention_entry(done, cli_actor())),
    )
    if dropped is None:
        return 2
    verb = "would drop" if args.dry_run else "dropped"
    for table in dropped:
        print(f"{verb} {table}")
    if not dropped:
        print("nothing past its window", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from app.storage.partitions import list_partitions

    found = with_pool("retention list", list_partitions)
    if found is None:
        return 2
    for p in found:
        window = "kept" if p.keep_days == 0 else f"{p.keep_days}d"
        month = p.month.strftime("%Y-%m") if p.month else "-"
        goes = f"dropped from {p.drops_after:%Y-%m-%d}" if p.drops_after else "kept"
        print(f"{p.table:<28} {window:>6}  {month:>7}  {p.rows:>12,} rows  {goes}")
    return 0
