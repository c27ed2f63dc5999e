"""`cairn experiments ...`: experiments from the command line.

    cairn experiments list                        every experiment, its status and arms
    cairn experiments results KEY [--json]        units, exposure, SRM, lifts with intervals
    cairn experiments stop KEY [--reason R]       control for everyone, from the next decision
    cairn experiments resume KEY                  only a person resumes a stopped experiment

They work on `--database-url`, else DATABASE_URL, else the embedded database of `cairn demo`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.cli.common import with_layouts_on_database


def add_commands(sub: Any) -> None:
    group = sub.add_parser("experiments", help="experiments: list, results, stop, resume")
    actions = group.add_subparsers(dest="experiments_command", required=True)
    p = actions.add_parser("list", help="the experiments of layouts/experiments.yaml")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_list)
    p = actions.add_parser("results", help="an experiment's results")
    p.add_argument("key")
    p.add_argument("--json", action="store_true", help="the API's JSON")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_results)
    p = actions.add_parser("stop", help="serve control to everyone (every process, at once)")
    p.add_argument("key")
    p.add_argument("--reason", default="")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_stop)
    p = actions.add_parser("resume", help="start a stopped experiment again")
    p.add_argument("key")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_resume)


def _run(command: str, args: argparse.Namespace, work: Any) -> Any:
    return with_layouts_on_database(f"experiments {command}", args.database_url, work)


def cmd_list(args: argparse.Namespace) -> int:
    from app.serving.experiments import describe
    from app.storage.experiments import load_states

    async def work(pool: Any, layouts: Any) -> Any:
        return layouts, describe(layouts, await load_states(pool))

    found = _run("list", args, work)
    if found is None:
        return 2
    layouts, listed = found
    print(f"holdout: {layouts.experiments.holdout.percent:g}% of users")
    for e in listed:
        arms = ", ".join(f"{a['id']} {a['weight']:g}%" for a in e["arms"])
        layer = f", layer {e['layer']}" if e.get("layer") else ""
        print(f"{e['key']}  {e['status']}; per {e['unit']}, {e['traffic']:g}% of eligible"
              f"{layer}; arms {arms}; primary {e['metrics']['primary']}")  # fmt: skip
        if e.get("stopped_reason"):
            print(f"  stopped: {e['stopped_reason']}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from app.errors import CairnError
    from app.serving.experiments import results
    from app.storage.experiments import load_states

    async def work(pool: Any, layouts: Any) -> Any:
        states = await load_states(pool)
        return await results(pool, layouts, args.key, states.get(args.key), datetime.now(UTC))

    try:
        found = _run("results", args, work)
    except CairnError as exc:
        print(f"cairn experiments results: {exc.message}", file=sys.stderr)
        return 2
    if found is None:
        return 2
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(found)).decode())
        return 0
    print(format_results(found))
    return 0


def format_results(r: Any) -> str:
    lines = [f"{r.key}: {r.status}" + (f" ({r.stopped_reason})" if r.stopped_reason else "")]
    lines.append(
        "arms: " + ", ".join(f"{a.id} {a.exposed:,} exposed of {a.units:,}" for a in r.arms)
        + f"; sample ratio p = {r.srm.p_value:.3g}" + (" MISMATCH" if r.srm.flagged else "")
    )  # fmt: skip
    for m in r.metrics:
        lines.append(f"{m.role} {m.metric}" + (" (CUPED)" if m.cuped else ""))
        for a in m.arms:
            value = "-" if a.value is None else f"{a.value:.4g}"
            lines.append(f"  {a.id:<14} n {a.n:>7,}  {value}")
        for c in m.comparisons:
            rel = "" if c.relative is None else f" ({c.relative:+.1%})"
            p = c.adjusted_p_value if c.adjusted_p_value is not None else c.p_value
            lines.append(
                f"  {c.arm} vs {c.against}: {c.lift:+.4g}{rel}, 95% CI "
                f"[{c.ci[0]:+.4g}, {c.ci[1]:+.4g}], p = {p:.3g}"
            )
    for g in r.guardrails:
        flag = "BREACHED" if g.breached else "ok"
        lines.append(f"guardrail {g.metric} {g.arm}: {flag}")
    lines.extend(r.notes)
    return "\n".join(lines)


def cmd_stop(args: argparse.Namespace) -> int:
    from app.serving.experiments import stop

    async def work(pool: Any, layouts: Any) -> bool:
        await stop(pool, layouts, args.key, getpass.getuser(), args.reason)
        return True

    return _change("stop", args, work, "stopped: every process serves control")


def cmd_resume(args: argparse.Namespace) -> int:
    from app.serving.experiments import resume

    async def work(pool: Any, layouts: Any) -> bool:
        await resume(pool, layouts, args.key, getpass.getuser())
        return True

    return _change("resume", args, work, "running again")


def _change(command: str, args: argparse.Namespace, work: Any, said: str) -> int:
    from app.errors import CairnError

    try:
        done = _run(command, args, work)
    except CairnError as exc:
        print(f"cairn experiments {command}: {exc.message}", file=sys.stderr)
        return 2
    if done is None:
        return 2
    print(f"{args.key}: {said}")
    return 0
