"""`cairn flags ...`: the flags of layouts/flags.yaml from the command line.

    cairn flags list                                  every flag: unit, variants, rules, owner
    cairn flags eval KEY --tenant T --user U [--json] what this user gets, and why
    cairn flags stale [--json]                        flags past expiry, serving one variant to
                                                      everyone for 30 days, or read by nobody

`eval` and `stale` work on `--database-url`, else DATABASE_URL, else the embedded database of
`cairn demo`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from app.cli.common import (
    NoDatabaseError,
    on_database,
    settings_and_layouts,
    with_layouts_on_database,
)


def add_commands(sub: Any) -> None:
    flags = sub.add_parser("flags", help="feature flags: list, evaluate, stale")
    actions = flags.add_subparsers(dest="flags_command", required=True)

    p = actions.add_parser("list", help="the flags of layouts/flags.yaml")
    p.set_defaults(func=cmd_flags_list)

    p = actions.add_parser("eval", help="a flag's value for one user, with its reason")
    p.add_argument("key")
    p.add_argument("--tenant", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--json", action="store_true", help="as OFREP answers it")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_flags_eval)

    p = actions.add_parser("stale", help="flags to remove or to finish rolling out")
    p.add_argument("--json", action="store_true")
    p.add_argument("--database-url", metavar="URL")
    p.set_defaults(func=cmd_flags_stale)


def _layouts(command: str) -> Any:
    return settings_and_layouts(f"flags {command}")


def _value(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def cmd_flags_list(args: argparse.Namespace) -> int:
    from app.serving.flags import rule_text

    del args
    loaded = _layouts("list")
    if loaded is None:
        return 2
    _, layouts = loaded
    if not layouts.flags:
        print("no flags (layouts/flags.yaml)")
    reads = layouts.flags_read_by_layouts
    for key, flag in layouts.flags.items():
        spec = flag.spec
        marks = [
            "client" if spec.client else "server",
            "OFF (kill switch)" if not spec.enabled else "",
            "read by layouts" if key in reads else "",
            f"expires {spec.expires.isoformat()}" if spec.expires else "",
            f"owner {spec.owner}" if spec.owner else "",
        ]
        print(f"{key}  per {spec.unit}; " + "; ".join(m for m in marks if m))
        variants = ", ".join(f"{name}={_value(v)}" for name, v in spec.variants.items())
        print(f"  variants: {variants}; default {spec.default}")
        for i, rule in enumerate(spec.rules, 1):
            print(f"  {i}. {rule_text(rule)}")
    return 0


def cmd_flags_eval(args: argparse.Namespace) -> int:
    from app.engine.decide import flags_for
    from app.serving.decisions import mode_for
    from app.storage.profiles import ProfileStore

    loaded = _layouts("eval")
    if loaded is None:
        return 2
    settings, layouts = loaded
    if args.key not in layouts.flags:
        print(f"cairn flags eval: there is no flag '{args.key}'", file=sys.stderr)
        return 2
    now = datetime.now(UTC)

    async def work(pool: Any) -> Any:
        profile = await ProfileStore(pool, layouts.vocabulary).fetch(args.tenant, args.user, now)
        mode = mode_for(profile, degraded=False)
        answer = flags_for(layouts, [args.key], profile, mode, now)
        return answer.results[args.key], mode, profile.known

    try:
        result, mode, known = on_database(settings, args.database_url, work)
    except NoDatabaseError as exc:
        print(f"cairn flags eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(_value({"key": result.key, "value": result.value, "variant": result.variant,
                      "reason": result.reason.value}))  # fmt: skip
        return 0
    who = "a known user" if known else "an unknown user (nothing stored)"
    print(f"{result.key} = {_value(result.value)} (variant {result.variant})")
    print(f"  {result.reason.value}: {result.detail}; {who}, personalization {mode}")
    return 0


def cmd_flags_stale(args: argparse.Namespace) -> int:
    from app.serving.flags import STALE_AFTER_DAYS, stale_report

    today = datetime.now(UTC).date()
    report = with_layouts_on_database(
        "flags stale", args.database_url, lambda pool, layouts: stale_report(pool, layouts, today)
    )
    if report is None:
        return 2
    if args.json:
        print(_value({"flags": report, "after_days": STALE_AFTER_DAYS}))
        return 0
    if not report:
        print("no stale flags")
    for stale in report:
        owner = f" (owner {stale.owner})" if stale.owner else ""
        print(f"{stale.key}{owner}: " + "; ".join(stale.reasons))
    return 0
