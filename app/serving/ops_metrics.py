"""Operational metrics of one process, as OpenTelemetry instruments exported for Prometheus
(`GET /metrics`, the OpenTelemetry Prometheus exporter on a registry of this process's own).

Decisions: their latency (a histogram, ms), how many, how many degraded (served without the
profile), how many the recommender's time budget missed. Ingestion: each batch's latency and the
events by outcome (stored, duplicate, suppressed, expired). The profile cache's lookups by result
(hit, miss), whose ratio is the hit rate. Whether LISTEN is connected (1 or 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_MS = [0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500]


class OpsMetrics:
    """The instruments, and their exposition in Prometheus's text format."""

    def __init__(self, listening: Callable[[], bool]) -> None:
        self._registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=self._registry)
        self._provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "cairn"})
        )
        meter = self._provider.get_meter("cairn")
        self.decision_ms = meter.create_histogram(
            "cairn.decision.duration", unit="ms", explicit_bucket_boundaries_advisory=_MS,
            description="Time to answer a layout: profile read, recommender and decision",
        )  # fmt: skip
        self.decisions = meter.create_counter(
            "cairn.decisions", description="Layouts decided, by screen and whether degraded"
        )
        self.budget_misses = meter.create_counter(
            "cairn.recommender.budget_misses",
            description="Decisions made without the recommender's answer: its budget ran out",
        )
        self.ingest_ms = meter.create_histogram(
            "cairn.ingest.batch.duration", unit="ms", explicit_bucket_boundaries_advisory=_MS,
            description="Time to store an event batch durably, answered or refused",
        )  # fmt: skip
        self.events = meter.create_counter(
            "cairn.ingest.events",
            description="Events received, by outcome: stored, duplicate, suppressed, expired",
        )
        self.profile_cache = meter.create_counter(
            "cairn.profile_cache.lookups",
            description="Profile reads for decisions, by result: hit (in memory) or miss",
        )

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(1 if listening() else 0)]

        meter.create_observable_gauge(
            "cairn.notifications.listening", callbacks=[observe],
            description="1 while LISTEN (other processes' changes) is connected, else 0",
        )  # fmt: skip

    def ingested(self, ms: float, *, stored: int = 0, duplicates: int = 0, suppressed: int = 0,
                 expired: int = 0) -> None:  # fmt: skip
        """A batch answered after `ms`, with its events' outcomes (none when it was refused)."""
        self.ingest_ms.record(ms)
        for outcome, n in (("stored", stored), ("duplicate", duplicates),
                           ("suppressed", suppressed), ("expired", expired)):  # fmt: skip
            if n:
                self.events.add(n, {"outcome": outcome})

    def decided(self, ms: float, screen: str, *, degraded: bool, over_budget: bool) -> None:
        """A layout answered after `ms`."""
        self.decision_ms.record(ms, {"screen": screen})
        self.decisions.add(1, {"screen": screen, "degraded": degraded})
        if over_budget:
            self.budget_misses.add(1)

    def profile_read(self, *, hit: bool) -> None:
        self.profile_cache.add(1, {"result": "hit" if hit else "miss"})

    def exposition(self) -> bytes:
        """Every instrument now, in Prometheus's text format."""
        return bytes(generate_latest(self._registry))

    def shutdown(self) -> None:
        self._provider.shutdown()
