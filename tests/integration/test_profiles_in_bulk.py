"""Many profiles read at once (metrics, background work) equal the ones read one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from app.config.layouts import load_layouts
from app.demo.population import PopulationSpec, generate
from app.engine.paths import build_trie
from app.engine.profile import ProfileData
from app.engine.signals import build_context
from app.engine.vocabulary import Vocabulary
from app.ingest.segment import parse_batch, pii_key
from app.storage.db import Pool
from app.storage.events import store_events
from app.storage.profiles import ProfileStore, fetch_tenant_profiles
from tests.paths import LAYOUTS_DIR

pytestmark = pytest.mark.integration


def _comparable(p: ProfileData) -> ProfileData:
    """The lists one query returns in no particular order, sorted."""
    return msgspec.structs.replace(
        p,
        event_days=sorted(p.event_days, key=lambda d: (d.day, d.event)),
        facets=sorted(p.facets, key=lambda f: (f.kind, f.value)),
    )


async def test_bulk_profiles_equal_one_at_a_time(pool: Pool) -> None:
    vocab = load_layouts(LAYOUTS_DIR).vocabulary
    now = datetime.now(UTC)
    population = generate(PopulationSpec(tenants=10, users=60, events=4000, now=now))
    for batch in population.batches(500):
        rows = parse_batch(
            msgspec.json.encode(batch), received_at=now, pii_mode="hash", pii_key=pii_key("x")
        ).rows
        await store_events(pool, rows, facets=vocab.facets)
    await pool.execute(
        "INSERT INTO preferences (tenant_id, user_id, body) SELECT tenant_id, user_id,"
        ' \'{"personalization": "basic"}\'::jsonb FROM users LIMIT 3'
    )
    tenants = [t.tenant_id for t in population.tenants]
    at = now + timedelta(minutes=1)
    bulk = await fetch_tenant_profiles(pool, vocab, tenants, at)
    store = ProfileStore(pool, vocab)
    assert len(bulk) == len(population.users)
    basic = 0
    for profile in bulk:
        single = await store.fetch(profile.tenant_id, profile.user_id, at)
        assert _comparable(profile) == _comparable(single), profile.user_id
        basic += profile.preferences.personalization == "basic"
    assert basic == 3
    assert any(p.recent for p in bulk) and any(p.widgets for p in bulk)  # the lists were compared
    some = bulk[::7]
    narrowed = await fetch_tenant_profiles(
        pool, vocab, tenants, at, users=[(p.tenant_id, p.user_id) for p in some]
    )
    by_key = {(p.tenant_id, p.user_id): p for p in narrowed}
    assert len(narrowed) == len(some)
    assert all(_comparable(by_key[(p.tenant_id, p.user_id)]) == _comparable(p) for p in some)
    assert await fetch_tenant_profiles(pool, vocab, tenants, at, users=[]) == []
    # What a lifecycle stage reads alone: the same stage for everyone, less read.
    staged = await fetch_tenant_profiles(pool, vocab, tenants, at, signals_only=vocab.stage_trie)
    stages = [_stage(p, vocab, at) for p in bulk]
    assert [_stage(p, vocab, at) for p in staged] == stages and len(set(stages)) > 2, stages
    assert not any(p.widgets or p.recent or p.assignments for p in staged)
    friction = await fetch_tenant_profiles(
        pool, vocab, tenants, at, signals_only=build_trie({"friction.repeated"})
    )
    assert [p.recent for p in friction] == [p.recent for p in bulk]


def _stage(profile: ProfileData, vocab: Vocabulary, at: datetime) -> str:
    stage: str = build_context(profile, vocab, now=at, mode="full")["user"]["stage"]
    return stage
