"""Tracing: a layout request produces spans for the request, the profile read and the decision."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.main import create_app
from app.settings import Settings
from app.storage.db import Pool

pytestmark = pytest.mark.integration

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """The spans of this test. OpenTelemetry takes one tracer provider per process: the first
    test installs it, later ones read the same exporter, emptied."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


async def test_layout_request_spans(
    settings: Settings, pool: Pool, exporter: InMemorySpanExporter
) -> None:
    del pool
    traced = msgspec.structs.replace(settings, tracing="on")
    headers = {"Authorization": f"Bearer {settings.secret_key}"}
    async with AsyncTestClient(app=create_app(traced)) as client:
        r = await client.get(
            "/v1/layouts/home", params={"tenant_id": "a", "user_id": "u"}, headers=headers
        )
        assert r.status_code == 200
        known = {
            "type": "identify",
            "messageId": "m1",
            "tenantId": "a",
            "userId": "k",
            "traits": {"role": "admin"},
        }
        r = await client.post("/v1/events", json={"batch": [known]}, headers=headers)
        assert r.status_code == 200
        r = await client.get(
            "/v1/layouts/home", params={"tenant_id": "a", "user_id": "k"}, headers=headers
        )
        assert r.status_code == 200
    names = [span.name for span in exporter.get_finished_spans()]
    assert "cairn.profile.load" in names
    assert "cairn.decide" in names
    assert "cairn.recommender.peers" in names  # the peer model, built as the server starts
    # A known, fully personalized user's decision asks the recommender for candidates.
    candidates = next(
        s for s in exporter.get_finished_spans() if s.name == "cairn.recommender.candidates"
    )
    assert candidates.attributes is not None and "cairn.candidates" in candidates.attributes
    decide_span = next(s for s in exporter.get_finished_spans() if s.name == "cairn.decide")
    assert decide_span.attributes is not None
    assert decide_span.attributes["cairn.screen"] == "home"
    assert any(name.startswith("GET /v1/layouts") for name in names), names


async def test_flag_evaluations_are_opentelemetry_events(
    settings: Settings, pool: Pool, exporter: InMemorySpanExporter
) -> None:
    """`feature_flag.evaluation` events with the semantic conventions' attributes, on the
    request's span, for OFREP evaluations and for the flags a layout decision evaluates."""
    del pool
    traced = msgspec.structs.replace(settings, tracing="on", recommender=False)
    headers = {"Authorization": f"Bearer {settings.secret_key}"}
    async with AsyncTestClient(app=create_app(traced)) as client:
        r = await client.post(
            "/ofrep/v1/evaluate/flags/new_editor",
            json={"context": {"targetingKey": "u9", "tenant_id": "a"}},
            headers=headers,
        )
        assert r.status_code == 200
        r = await client.get(
            "/v1/layouts/home", params={"tenant_id": "a", "user_id": "u9"}, headers=headers
        )
        assert r.status_code == 200
    events = [
        (span.name, dict(event.attributes or {}))
        for span in exporter.get_finished_spans()
        for event in span.events
        if event.name == "feature_flag.evaluation"
    ]
    ofrep = [a for name, a in events if name.startswith("POST /ofrep")]
    assert len(ofrep) == 1
    assert ofrep[0]["feature_flag.key"] == "new_editor"
    assert ofrep[0]["feature_flag.provider.name"] == "cairn"
    assert ofrep[0]["feature_flag.result.reason"] == "split"
    assert ofrep[0]["feature_flag.result.variant"] in ("on", "off")
    assert ofrep[0]["feature_flag.context.id"] == "u9"
    decided = {a["feature_flag.key"] for name, a in events if name == "cairn.decide"}
    assert decided == {"new_editor", "checklist_style", "adaptive_help", "peer_recommendations"}
