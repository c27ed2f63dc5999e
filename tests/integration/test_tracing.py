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


async def test_layout_request_spans(settings: Settings, pool: Pool) -> None:
    del pool
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
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
