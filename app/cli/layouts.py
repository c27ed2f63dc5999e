"""`cairn validate` and `cairn schema`: the designers' YAML and the descriptor's JSON Schema."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.cli.common import validate_or_report

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "widgets" / "layout.schema.json"


def add_commands(sub: Any) -> None:
    p = sub.add_parser("validate", help="check layout YAML; problems as file:line:col: message")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="write (or --check) widgets/layout.schema.json")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schema)


def cmd_validate(args: argparse.Namespace) -> int:
    roots = [Path(p) for p in (args.paths or [os.environ.get("CAIRN_LAYOUTS_DIR", "layouts")])]
    failed = 0
    for root in roots:
        target = (
            root
            if root.is_dir()
            else root.parent.parent
            if root.parent.name == "screens"
            else root.parent
        )
        failed |= validate_or_report(target)
        if not failed:
            print(f"{root}: ok")
    return failed


def cmd_schema(args: argparse.Namespace) -> int:
    from widgets.schema import layout_json_schema

    path = SCHEMA_FILE
    text = json.dumps(layout_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run 'cairn schema'", file=sys.stderr)
            return 1
        print(f"{path}: up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0
