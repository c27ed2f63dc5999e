"""What flags served: counted for the stale-flag report, and told to OpenTelemetry.

Evaluations are counted in memory (flag, variant, reader) and added to `flag_evaluations` every
minute by every process (`Runtime`), so counting costs a decision next to nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Any

from opentelemetry import trace

from app.engine.flags import FlagReason, FlagResult
from app.storage.db import DATABASE_ERRORS, Pool
from app.storage.flags import Count, add_evaluations

log = logging.getLogger("cairn.flags")

PROVIDER_NAME = "cairn"


class FlagTally:
    """Evaluations counted in memory (flag, variant, reader) until they are flushed."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, results: Iterable[FlagResult], source: str) -> None:
        for r in results:
            self._counts[(r.key, r.variant, source)] += 1

    def take(self, day: date) -> list[Count]:
        counts, self._counts = self._counts, Counter()
        return [(flag, day, variant, source, n) for (flag, variant, source), n in counts.items()]

    async def flush(self, pool: Pool, day: date) -> None:
        taken = self.take(day)
        try:
            await add_evaluations(pool, taken)
        except DATABASE_ERRORS as exc:
            for flag, _, variant, source, n in taken:  # kept for the next flush
                self._counts[(flag, variant, source)] += n
            log.warning("flag evaluation counts not saved: %r", exc)


def record_evaluations(results: Iterable[FlagResult], context_id: str) -> None:
    """OpenTelemetry's `feature_flag.evaluation` events on the current span, with the semantic
    conventions' attributes (when tracing is on and the span records)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for r in results:
        attributes: dict[str, Any] = {
            "feature_flag.key": r.key,
            "feature_flag.provider.name": PROVIDER_NAME,
            "feature_flag.result.variant": r.variant,
            "feature_flag.result.reason": r.reason.value.lower(),
            "feature_flag.context.id": context_id,
        }
        if isinstance(r.value, bool | int | float | str):
            attributes["feature_flag.result.value"] = r.value
        if r.reason is FlagReason.ERROR:
            attributes["error.type"] = "general"
            attributes["error.message"] = r.detail
        span.add_event("feature_flag.evaluation", attributes)
