"""Decision latency per experiment arm: the server measures every decision that served an arm,
keeps count, sum and sum of squares in memory, and adds them to `experiment_latency` every
minute (with the flag counts), so that the latency guardrail compares arms across processes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date

from app.engine.experiments import Enrolment
from app.storage.db import DATABASE_ERRORS, Pool
from app.storage.experiments import add_latency

log = logging.getLogger("cairn.experiments")


class LatencyTally:
    __slots__ = ("_sums",)

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], list[float]] = {}

    def add(self, enrolments: Iterable[Enrolment], ms: float) -> None:
        for e in enrolments:
            sums = self._sums.setdefault((e.experiment, e.arm), [0.0, 0.0, 0.0])
            sums[0] += 1
            sums[1] += ms
            sums[2] += ms * ms

    async def flush(self, pool: Pool, day: date) -> None:
        taken, self._sums = self._sums, {}
        rows = [(e, a, int(s[0]), s[1], s[2]) for (e, a), s in taken.items()]
        try:
            await add_latency(pool, day, rows)
        except DATABASE_ERRORS as exc:
            for key, sums in taken.items():  # kept for the next flush
                mine = self._sums.setdefault(key, [0.0, 0.0, 0.0])
                for i in range(3):
                    mine[i] += sums[i]
            log.warning("decision latencies not saved: %r", exc)
