"""`cairn audit ...`: the tamper-evident audit log.

cairn audit verify                              walk the chain; name the first bad entry
cairn audit export [--from DATE] [--to DATE]    the entries as JSON lines, oldest first
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any


def add_commands(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify and export the tamper-evident audit log")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    p = actions.add_parser("verify", help="check the hash chain; 1 when an entry does not hold")
    p.add_argument("--database-url", help="default: DATABASE_URL, else the demo's database")
    p.set_defaults(func=cmd_verify)
    p = actions.add_parser("export", help="write the entries as JSON lines (oldest first)")
    p.add_argument("--from", dest="start", type=_day, help="from this day (UTC), inclusive")
    p.add_argument("--to", dest="end", type=_day, help="to this day (UTC), inclusive")
    p.add_argument("--database-url", help="default: DATABASE_URL, else the demo's database")
    p.set_defaults(func=cmd_export)


def _day(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _run(command: str, url: str | None, work: Any) -> Any:
    from app.cli.common import NoDatabaseError, command_settings, on_database

    settings, stable = command_settings()
    if not stable:
        print(f"cairn audit {command}: set CAIRN_IDENTITY_SECRET (the chain's key comes from it)",
              file=sys.stderr)  # fmt: skip
        return None
    try:
        return on_database(settings, url, lambda pool: work(pool, settings), connections=1)
    except NoDatabaseError as exc:
        print(f"cairn audit {command}: {exc}", file=sys.stderr)
        return None


def cmd_verify(args: argparse.Namespace) -> int:
    from app.storage.audit import audit_key, verify

    async def work(pool: Any, settings: Any) -> Any:
        async with pool.acquire() as conn:
            return await verify(conn, audit_key(settings.identity_secret))

    verdict = _run("verify", args.database_url, work)
    if verdict is None:
        return 2
    if not verdict.ok:
        print(f"audit log BROKEN at entry {verdict.first_bad}: {verdict.problem}")
        print(f"{verdict.entries} entries before it hold")
        return 1
    print(f"audit log intact: {verdict.entries} entries")
    print(f"head: entry {verdict.head_seq}, hash {verdict.head_hash}")
    print("(keep the head elsewhere: a log cut short after it shows against it)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import msgspec

    from app.storage.audit import stream

    end = args.end + timedelta(days=1) if args.end else None  # the whole last day

    async def work(pool: Any, _settings: Any) -> int:
        out = sys.stdout.buffer
        n = 0
        async with pool.acquire() as conn, conn.transaction():
            async for entry in stream(conn, start=args.start, end=end):
                out.write(msgspec.json.encode(entry) + b"\n")
                n += 1
        out.flush()
        return n

    written = _run("export", args.database_url, work)
    if written is None:
        return 2
    print(f"{written} entries", file=sys.stderr)
    return 0
