"""Propensity training on a real PostgreSQL: profiles as of a time agree with the profile store,
`cairn models train` trains on the demo population, saves the models, and servers are told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.cli import main
from app.config.layouts import load_layouts
from app.demo.population import Population, PopulationSpec, generate
from app.engine.profile import ProfileData
from app.engine.propensity import ACTIVATION, TARGETS, UPGRADE
from app.engine.signals import build_context
from app.engine.vocabulary import Vocabulary
from app.ingest.segment import parse_batch, pii_key
from app.storage.db import Pool
from app.storage.events import EventRow, store_events, tenant_histories
from app.storage.models import MODELS_CHANNEL, load_models
from app.storage.profiles import ProfileStore
from tests.profiles import profile_at

pytestmark = pytest.mark.integration

LAYOUTS = Path(__file__).resolve().parents[2] / "layouts"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = pii_key("whsec_test")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_layouts(LAYOUTS).vocabulary


async def ingest(pool: Pool, bodies: Sequence[dict[str, Any]], vocab: Vocabulary) -> list[EventRow]:
    """Store request bodies through the real ingestion path; the rows as stored."""
    stored = []
    for body in bodies:
        rows = parse_batch(
            msgspec.json.encode(body), received_at=NOW, pii_mode="hash", pii_key=KEY
        ).rows
        await store_events(pool, rows, facets=vocab.facets)
        stored.extend(rows)
    return stored


def population(tenants: int, users: int, events: int) -> Population:
    return generate(PopulationSpec(tenants=tenants, users=users, events=events, now=NOW))


def call(message_id: str, minutes_ago: float, kind: str = "track", **fields: Any) -> dict[str, Any]:
    ts = NOW - timedelta(minutes=minutes_ago)
    out = {"type": kind, "messageId": message_id, "tenantId": "edge", "userId": "e1"}
    out.update(fields, timestamp=ts.isoformat())
    return out


# Everything the aggregates treat specially: trait merges, an upgrade, disconnects, widgets, the
# screen of a trigger from the Segment context, property values that are no keys.
EDGE_CASES = {
    "sentAt": NOW.isoformat(),
    "batch": [
        call("x1", 3000, "identify", traits={"role": "admin", "email": "ada@edge.example"}),
        call("x2", 2990, "group", groupId="edge", traits={"plan": "trial", "seats": 10}),
        call("x3", 2900, event="integration_connected", properties={"integration": "slack"}),
        call("x4", 2000, event="integration_disconnected", properties={"integration": "slack"}),
        call("x5", 1900, event="integration_connected", properties={"integration": "jira"}),
        call("x6", 1800, event="widget_viewed", properties={"widget_id": "w1"}),
        call("x7", 1700, event="widget_viewed", properties={"widget_id": "w1"}),
        call("x8", 1600, event="widget_dismissed", properties={"widget_id": "w1"}),
        call("x9", 1500, event="widget_completed", properties={"widget_id": "w2"}),
        call("x10", 1400, event="widget_completed", properties={"widget_id": "w2"}),
        call("x11", 1300, event="feature_used", properties={"feature": "x" * 300}),
        call("x12", 1200, event="feature_used", properties={"feature": 42}),
        call("x13", 1100, event="template_used", properties={}),
        call(
            "x14",
            600,
            event="error_shown",
            properties={"feature": "api"},
            context={"screen": {"name": "Editor"}},
        ),
        call("x15", 500, event="limit_reached", properties={"limit": "seats", "screen": 5}),
        call(
            "x16",
            400,
            event="feature_attempted",
            properties={"feature": "sso"},
            context={"page": {"name": "Settings", "path": "/settings"}},
        ),
        call("x17", 300, event="plan_upgraded", properties={"plan": "pro"}),
        call("x18", 200, "identify", traits={"role": "maker", "team": "ops"}),
        call("x19", 100, "page", name="Home", properties={"path": "/"}),
        call("x20", 90, "alias", previousId="anon-1"),
        call("x21", 80, event="report_created", userId="e2"),
        call("x22", 70, event="billing_connected", userId="e2"),
    ],
}


def canonical(profile: ProfileData) -> ProfileData:
    """The same profile with its lists in one order (the store's SQL aggregates have none)."""
    return msgspec.structs.replace(
        profile,
        event_days=sorted(profile.event_days, key=lambda d: (d.day, d.event)),
        tenant_events=sorted(profile.tenant_events),
        milestones=sorted(profile.milestones),
        facets=sorted(profile.facets, key=lambda f: (f.kind, f.value)),
        recent=sorted(profile.recent, key=lambda e: (e.ts, e.event)),
    )


async def test_profiles_as_of_a_time_match_the_profile_store(pool: Pool, vocab: Vocabulary) -> None:
    demo = population(tenants=10, users=80, events=8000)
    rows = await ingest(pool, [*demo.batches(500), EDGE_CASES], vocab)
    from_database = [row async for _, events in tenant_histories(pool) for row in events]
    assert len(from_database) == len(rows)
    at = NOW + timedelta(minutes=1)
    store = ProfileStore(pool, vocab)
    users = [(r["tenant_id"], r["user_id"]) for r in await pool.fetch("SELECT * FROM users")]
    assert len(users) == 80 + 2
    users.append(("edge", "nobody"))  # unknown, in a known tenant
    compared = 0
    for tenant_id, user_id in users:
        stored = canonical(await store.fetch(tenant_id, user_id, at))
        assert canonical(profile_at(rows, tenant_id, user_id, at, vocab)) == stored, user_id
        assert canonical(profile_at(from_database, tenant_id, user_id, at, vocab)) == stored
        compared += 1
    assert compared == len(users)
    # The edge cases did reach the parts of the profile they aim at.
    edge = await store.fetch("edge", "e1", at)
    assert edge.integrations == {"slack": False, "jira": True}
    assert edge.widgets["w1"].views == 2 and edge.widgets["w2"].completed_at is not None
    assert {e.properties["screen"] for e in edge.recent} == {"Editor", "5", "Settings", ""}
    assert edge.tenant_traits["plan"] == "pro"
    assert edge.user_traits["role"] == "maker"


async def test_training_on_the_demo_population_saves_models_that_score(
    pool: Pool,
    database_dsn: str,
    vocab: Vocabulary,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    demo = population(tenants=60, users=500, events=50_000)
    await ingest(pool, list(demo.batches(500)), vocab)
    assert await load_models(pool) is None
    notified = asyncio.Event()

    def on_notice(*_: object) -> None:
        notified.set()

    listener = await pool.acquire()
    await listener.add_listener(MODELS_CHANNEL, on_notice)
    monkeypatch.setenv("CAIRN_LAYOUTS_DIR", str(LAYOUTS))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    try:
        code = await asyncio.to_thread(
            main, ["models", "train", "--json", "--database-url", database_dsn]
        )
        await asyncio.wait_for(notified.wait(), 10)  # a bound on failure, not a speed check
    finally:
        await listener.remove_listener(MODELS_CHANNEL, on_notice)
        await pool.release(listener)
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["saved"] is True
    assert report["events"] == demo.count
    targets = {t["target"]: t for t in report["targets"]}
    assert set(targets) == set(TARGETS)

    # Activation: the held-out AUC is reported, and the scores rank users well above chance.
    activation = targets[ACTIVATION]
    assert not activation["error"]
    assert activation["rows"] > 0 and 0 < activation["positives"] < activation["rows"]
    assert activation["test_auc"] is not None and activation["test_auc"] >= 0.7
    for segment in activation["segments"]:
        assert segment["rows_train"] + segment["rows_test"] <= activation["rows"]
        assert segment["own_model"] or segment["fallback"]

    models = await load_models(pool)
    assert models is not None
    assert set(models.models) <= set(TARGETS) and ACTIVATION in models.models
    assert models.models[ACTIVATION].auc == activation["test_auc"]
    assert models.trained_at == report["trained_at"]
    if UPGRADE in models.models:
        assert models.models[UPGRADE].auc == targets[UPGRADE]["test_auc"]

    # Every user at the end of the history gets a probability, with drivers that raise it.
    store = ProfileStore(pool, vocab)
    at = NOW + timedelta(minutes=1)
    scored = 0
    for user in demo.users:
        context = build_context(
            await store.fetch(user.tenant_id, user.user_id, at), vocab, now=at, mode="full"
        )
        for target in models.models:
            score = models.score_context(target, context)
            if score is None:
                continue
            scored += 1
            assert 0.0 <= score.probability <= 1.0
            assert len(score.drivers) <= 3
            assert all(contribution > 0 for _, _, contribution in score.drivers)
    assert scored > len(demo.users) // 4


async def test_saved_models_of_another_shape_are_ignored(pool: Pool) -> None:
    await pool.execute(
        "INSERT INTO models (name, body, trained_at) VALUES ('propensity', $1, now())",
        {"models": {"activation": {"target": 5}}},
    )
    assert await load_models(pool) is None
