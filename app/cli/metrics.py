"""`cairn metrics ...`: the metric layer from the command line.

    cairn metrics list                                   the metrics of layouts/metrics.yaml
    cairn metrics show NAME [--by plan,role] [--from D] [--to D] [--interval week] [--json|--csv]
    cairn metrics refresh [--full]                       bring the per-unit rows up to date

They work on `--database-url`, else DATABASE_URL, else the embedded database of `cairn demo`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.cli.common import NoDatabaseError, on_database, settings_and_layouts


def add_commands(sub: Any) -> None:
    metrics = sub.add_parser("metrics", help="activation, adoption, conversion, retention...")
    actions = metrics.add_subparsers(dest="metrics_command", required=True)

    p = actions.add_parser("list", help="the metrics defined in layouts/metrics.yaml")
    p.set_defaults(func=cmd_metrics_list)

    p = actions.add_parser("show", help="a metric's value by segment, with 95% intervals")
    p.add_argument("name")
    p.add_argument("--by", default="", help="plan, role, industry, stage, seat_band, cohort, "
                   "exposure:<widget> (comma-separated)")  # fmt: skip
    p.add_argument("--from", dest="start", metavar="DATE", help="first sign-up day (90 days ago)")
    p.add_argument("--to", dest="end", metavar="DATE", help="last sign-up day (today)")
    p.add_argument("--interval", choices=["week"], help="also a series per week")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the API's JSON")
    form.add_argument("--csv", action="store_true", help="the API's CSV")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_metrics_show)

    p = actions.add_parser("refresh", help="recompute the rows of units with new events")
    p.add_argument("--full", action="store_true", help="every tenant, every metric")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_metrics_refresh)


def _layouts(command: str) -> Any:
    return settings_and_layouts(f"metrics {command}")


def cmd_metrics_list(args: argparse.Namespace) -> int:
    loaded = _layouts("list")
    if loaded is None:
        return 2
    _, layouts = loaded
    for name, m in layouts.metrics.items():
        kind = m.__struct_config__.tag
        print(f"{name:<28} {kind:<11} per {m.unit:<7} {m.label}")
    return 0


def show_progress(done: int, total: int) -> None:
    share = done / total if total else 1.0
    bar = "#" * int(share * 40)
    end = "\n" if done >= total else ""
    print(f"\rrefreshing [{bar:<40}] {done:,}/{total:,} tenants", end=end, file=sys.stderr,
          flush=True)  # fmt: skip


def cmd_metrics_refresh(args: argparse.Namespace) -> int:
    from app.serving.metrics_refresh import refresh_metrics

    loaded = _layouts("refresh")
    if loaded is None:
        return 2
    settings, layouts = loaded
    try:
        report = on_database(
            settings,
            args.database_url,
            lambda pool: refresh_metrics(pool, layouts, full=args.full, progress=show_progress),
        )
    except NoDatabaseError as exc:
        print(f"cairn metrics refresh: {exc}", file=sys.stderr)
        return 2
    if report.skipped:
        print("another process is refreshing the metrics now; nothing done", file=sys.stderr)
        return 1
    redefined = ", ".join(report.redefined)
    print(
        f"refreshed {report.metrics} metrics for {report.tenants:,} tenants in "
        f"{report.seconds:.1f} s" + (f" (recomputed everywhere: {redefined})" if redefined else "")
    )
    return 0


def cmd_metrics_show(args: argparse.Namespace) -> int:
    from app.errors import CairnError
    from app.http.metrics import to_csv
    from app.serving.metrics import answer, question

    loaded = _layouts("show")
    if loaded is None:
        return 2
    settings, layouts = loaded
    now = datetime.now(UTC)
    try:
        q = question(
            layouts,
            args.name,
            start=args.start,
            end=args.end,
            by=[b.strip() for b in args.by.split(",") if b.strip()],
            interval=args.interval,
            tenant_id=None,
            where={},
            today=now.date(),
        )
    except CairnError as exc:
        print(f"cairn metrics show: {exc.message}", file=sys.stderr)
        return 2

    try:
        found = on_database(settings, args.database_url, lambda pool: answer(pool, layouts, q, now))
    except NoDatabaseError as exc:
        print(f"cairn metrics show: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(found)).decode())
    elif args.csv:
        print(to_csv(found), end="")
    else:
        print(format_answer(found))
    return 0


def format_answer(a: Any) -> str:
    """The answer as a table a person reads."""
    from app.serving.metrics import format_value

    lines = [f"{a.label} ({a.metric}, {a.kind} per {a.unit}), units anchored {a.start} to {a.end}"]
    if a.refreshed_at is None:
        lines.append("Not refreshed yet: run `cairn metrics refresh`.")
    keys = [k for g in a.groups for k in g.key]
    names = list(dict.fromkeys(keys))
    header = [*names, "n", "value", "95% interval", ""]
    rows = []
    for g in a.groups:
        value = "-" if g.value is None else format_value(g.value, a.format)
        ci = (
            "-"
            if g.ci is None
            else f"{format_value(g.ci[0], a.format)} to {format_value(g.ci[1], a.format)}"
        )
        rows.append([*[g.key.get(k, "") for k in names], f"{g.n:,}", value, ci,
                     "small group" if g.small else ""])  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines.extend(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
    if a.note:
        lines.append(a.note)
    return "\n".join(lines)
