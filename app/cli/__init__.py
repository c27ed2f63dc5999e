"""The `cairn` command line, one module per group of commands.

cairn serve | demo                  app.cli.serve
cairn validate | schema             app.cli.layouts
cairn seed                          app.cli.seed
cairn keys ... | user-hash          app.cli.keys
cairn models train                  app.cli.models
cairn metrics list | show | refresh app.cli.metrics
cairn flags list | eval | stale     app.cli.flags
cairn experiments list | results | stop | resume   app.cli.experiments
cairn recs eval | synth | catalog   app.cli.recs
cairn audit verify | export         app.cli.audit
cairn policy test                   app.cli.policies
cairn retention list | apply        app.cli.retention
"""

from __future__ import annotations

import argparse

from app.cli import (
    audit,
    experiments,
    flags,
    keys,
    layouts,
    metrics,
    models,
    policies,
    recs,
    retention,
    seed,
    serve,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cairn", description="Cairn personalization engine")
    sub = top.add_subparsers(dest="command", required=True)
    groups = (
        serve,
        layouts,
        seed,
        keys,
        models,
        metrics,
        flags,
        experiments,
        recs,
        audit,
        policies,
        retention,
    )
    for group in groups:
        group.add_commands(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.func(args)
    return result
