"""Run every benchmark in sequence and print one summary table at the end.

    python -m tests.bench.run [--quick] [--only rules,decide,ingest,...,metrics]

`--quick` shortens every benchmark (a smoke test of the benchmarks, not a measurement). Each one
also runs alone: `python -m tests.bench.bench_rules`, `bench_decide`, `bench_ingest`,
`bench_layout_http`, `bench_load`, `bench_sdk`, `bench_knn`, `bench_recs`, `bench_metrics`,
`bench_flags`. The ingestion benchmark runs in its own process when it is present. The load
benchmark's soak (`python -m tests.bench.bench_load --soak [SECONDS]`) never runs from here.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from tests.bench import (
    bench_decide,
    bench_flags,
    bench_knn,
    bench_layout_http,
    bench_load,
    bench_metrics,
    bench_recs,
    bench_rules,
    bench_sdk,
)
from tests.bench._common import ROOT, SummaryRow, print_table

ORDER = (
    "rules",
    "flags",
    "decide",
    "ingest",
    "layout_http",
    "load",
    "sdk",
    "knn",
    "recs",
    "metrics",
)
_IN_PROCESS: dict[str, Callable[[list[str] | None], list[SummaryRow]]] = {
    "rules": bench_rules.run_cli,
    "flags": bench_flags.run_cli,
    "decide": bench_decide.run_cli,
    "layout_http": bench_layout_http.run_cli,
    "load": bench_load.run_cli,
    "sdk": bench_sdk.run_cli,
    "knn": bench_knn.run_cli,
    "recs": bench_recs.run_cli,
    "metrics": bench_metrics.run_cli,
}
_INGEST_TIMEOUT_S = {True: 300, False: 1200}
_RATE = re.compile(r"^(cairn|baseline)\b.*?([\d,]+) events/s")
_RATIO = re.compile(r"ratio cairn / baseline: ([\d.]+x)(.*)$")


def run_ingest(quick: bool) -> list[SummaryRow]:
    """`python -m tests.bench.bench_ingest` in a child process, its output passed through."""
    if not (ROOT / "tests" / "bench" / "bench_ingest.py").exists():
        print("tests/bench/bench_ingest.py is not there: skipped")
        return [SummaryRow("ingest", "not present", "", "", "", "")]
    args = [sys.executable, "-m", "tests.bench.bench_ingest"]
    if quick:
        usage = subprocess.run(
            [*args, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        ).stdout
        if "--events" in usage:
            args += ["--events", "10000"]
    lines: list[str] = []
    with subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        watchdog = threading.Timer(_INGEST_TIMEOUT_S[quick], proc.terminate)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip())
            code = proc.wait(timeout=60)
        finally:
            watchdog.cancel()
    if code != 0:
        return [SummaryRow("ingest", f"FAILED (exit {code})", "", "", "", "")]
    rates = {m.group(1): m.group(2) for line in lines if (m := _RATE.match(line))}
    ratio = next((m for line in reversed(lines) if (m := _RATIO.search(line))), None)
    if "cairn" in rates and "baseline" in rates and ratio is not None:
        return [
            SummaryRow(
                "ingest",
                "events/s durable vs bare executemany",
                f"{rates['cairn']} ev/s",
                f"{rates['baseline']} ev/s",
                ratio.group(1),
                ratio.group(2).strip(),
            )
        ]
    last = next((line for line in reversed(lines) if line.strip()), "")
    return [SummaryRow("ingest", last[:90], "", "", "", "")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="every Cairn benchmark, then a summary")
    parser.add_argument("--quick", action="store_true", help="shorten everything (smoke test)")
    parser.add_argument(
        "--only", default=",".join(ORDER), help=f"comma-separated subset of {', '.join(ORDER)}"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ORDER))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    rows: list[SummaryRow] = []
    timings: list[str] = []
    failed = False
    for name in (n for n in ORDER if n in chosen):
        print(f"\n{'=' * 30} {name} {'=' * (68 - len(name))}", flush=True)
        t0 = time.perf_counter()
        try:
            if name == "ingest":
                rows += run_ingest(args.quick)
            else:
                rows += _IN_PROCESS[name](["--quick"] if args.quick else [])
        except SystemExit as exc:
            failed = True
            rows.append(SummaryRow(name, f"FAILED (exit {exc.code})", "", "", "", ""))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed = True
            rows.append(
                SummaryRow(name, f"FAILED: {type(exc).__name__}: {exc}"[:100], "", "", "", "")
            )
        timings.append(f"{name} {time.perf_counter() - t0:.0f} s")
        failed |= any(r.what.startswith("FAILED") for r in rows if r.bench == name)

    print(f"\n{'=' * 30} summary {'=' * 61}")
    print(
        f"{'quick run: smoke test, not a measurement; ' if args.quick else ''}"
        f"ratios are to the baseline measured in the same run; wall time: {', '.join(timings)}"
    )
    print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
