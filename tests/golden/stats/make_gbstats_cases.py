"""Writes gbstats_cases.json: GrowthBook's stats engine (gbstats) on arm summaries, the reference
the tests hold `app.serving.experiment_stats` to.

gbstats needs numpy < 2, which Cairn's own dependencies exclude, so this runs in a venv of its
own (the cases it writes are committed):

    python3.11 -m venv /tmp/gbstats && /tmp/gbstats/bin/pip install gbstats==0.8.0
    /tmp/gbstats/bin/python tests/golden/stats/make_gbstats_cases.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic

OUT = Path(__file__).with_name("gbstats_cases.json")


def arm(rng: random.Random, kind: str) -> dict[str, float]:
    n = rng.choice([40, 150, 800, 3000, 20000])
    if kind == "proportion":
        rate = rng.uniform(0.05, 0.6)
        return {"n": n, "sum": round(rate * n), "sum_squares": round(rate * n)}
    mean = rng.uniform(0.5, 20)
    sd = rng.uniform(0.2, 2) * mean
    total = mean * n
    return {"n": n, "sum": total, "sum_squares": (sd * sd) * (n - 1) + total * total / n}


def statistic(a: dict[str, float], kind: str) -> object:
    if kind == "proportion":
        return ProportionStatistic(n=int(a["n"]), sum=a["sum"])
    return SampleMeanStatistic(n=int(a["n"]), sum=a["sum"], sum_squares=a["sum_squares"])


def main() -> None:
    rng = random.Random(2026)
    cases = []
    for i in range(40):
        kind = "proportion" if i % 2 == 0 else "mean"
        a, b = arm(rng, kind), arm(rng, kind)
        sa, sb = statistic(a, kind), statistic(b, kind)
        case = {"kind": kind, "control": a, "treatment": b}
        for name, test in (
            ("absolute", TwoSidedTTest(sa, sb, FrequentistConfig(difference_type="absolute"))),
            ("relative", TwoSidedTTest(sa, sb, FrequentistConfig(difference_type="relative"))),
            ("sequential_absolute", SequentialTwoSidedTTest(
                sa, sb, SequentialConfig(difference_type="absolute"))),
            ("sequential_relative", SequentialTwoSidedTTest(
                sa, sb, SequentialConfig(difference_type="relative"))),
        ):  # fmt: skip
            result = test.compute_result()
            case[name] = {"estimate": result.expected, "ci": list(result.ci),
                          "p_value": result.p_value}  # fmt: skip
        cases.append(case)
    body = {"source": "gbstats 0.8.0 (GrowthBook's stats engine), TwoSidedTTest and "
            "SequentialTwoSidedTTest with alpha 0.05 and its default tuning (5000)",
            "cases": cases}  # fmt: skip
    OUT.write_text(json.dumps(body, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
