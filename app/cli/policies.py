"""`cairn policy test [LAYOUTS]`: run the policy cases of policies.yaml.

Each case says allow or deny for a widget decided with some signals (or for an attribute a rule
reads); every policy needs at least one case of each. Exit 1 on a case that fails or a policy
without both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    policy = sub.add_parser("policy", help="test the policies of policies.yaml")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    p = actions.add_parser("test", help="run policies.yaml's cases; 1 when one fails")
    p.add_argument("layouts", nargs="?", default="layouts", help="the layouts folder")
    p.set_defaults(func=cmd_test)


def cmd_test(args: argparse.Namespace) -> int:
    from app.config.layouts import LayoutConfigError, load_layouts
    from app.engine.paths import LazyContext
    from app.engine.policies import merged, run_case
    from app.engine.signals import signal_schema

    try:
        layouts = load_layouts(Path(args.layouts))
    except LayoutConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    by_name = {p.name: p for p in layouts.policies}
    typical = signal_schema(layouts.vocabulary)
    failed = 0
    seen: dict[str, set[str]] = {name: set() for name in by_name}
    for case in layouts.policy_cases:
        policy = by_name[case.policy]
        variables = merged(typical, case.signals)
        got = run_case(policy, case, LazyContext(variables, layouts.context_trie), variables)
        seen[case.policy].add(case.expect)
        if case.reads:
            what = f"reads {case.reads}"
        elif case.owner:
            what = f"owner {case.owner} targets"
        else:
            what = ", ".join(f"{k} {v}" for k, v in case.widget.items())
        mark = "ok  " if got == case.expect else "FAIL"
        failed += got != case.expect
        given = f" with {case.signals}" if case.signals else ""
        wrong = "" if got == case.expect else f" (expected {case.expect})"
        print(f"{mark} {case.policy}: {what}{given} -> {got}{wrong}")
    for name, expects in seen.items():
        for missing in sorted({"allow", "deny"} - expects):
            print(f"FAIL {name}: no {missing} case", file=sys.stderr)
            failed += 1
    print(f"{len(layouts.policy_cases)} cases, {len(by_name)} policies: "
          f"{'all hold' if not failed else f'{failed} failed'}")  # fmt: skip
    return 1 if failed else 0
