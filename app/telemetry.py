"""Tracing with OpenTelemetry: spans around the profile read, the decision and ingestion.

`CAIRN_TRACING=console` prints spans; `CAIRN_TRACING=on` leaves exporting to whatever
TracerProvider the host process installs (for example one configured by the OpenTelemetry
distribution's environment variables). Off by default: spans then cost next to nothing.
"""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("cairn")


def install_console_exporter() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
