"""Identity stitching on a real PostgreSQL, Segment's semantics: an `alias` call, or an `identify`
call with both an anonymousId and a userId, makes the anonymous history the user's (events,
signals, metrics), exactly once, whichever order the link and the events arrive in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.config.layouts import load_layouts
from app.serving.identity import user_hash
from app.serving.metrics_refresh import refresh_metrics
from app.storage import metrics as metric_store
from app.storage.db import Pool, create_pool, truncate_all
from app.storage.events import EventRow, StoreResult, store_events
from app.storage.identity import MERGED_TABLES
from app.storage.privacy import USER_TABLES, erase_user
from app.storage.profiles import fetch_tenant_profiles
from tests.conftest import run_sync
from tests.integration.test_event_store import FACETS, api
from tests.integration.test_metrics_computation import _check, metric_layouts
from tests.paths import LAYOUTS_DIR

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANON = "anon-7f3a"


def stored_call(
    message_id: str, hours: float, user: str, kind: str = "track", **fields: Any
) -> EventRow:
    """A call of tenant acme at T0 + hours; a track call is feature_used."""
    return EventRow(
        tenant_id="acme",
        message_id=message_id,
        user_id=user,
        type=kind,  # type: ignore[arg-type]
        event="feature_used" if kind == "track" else None,
        context={},
        ts=T0 + timedelta(hours=hours),
        **{"properties": {}, "traits": {}, **fields},
    )


def visit(message_id: str, hours: float, *, anon: str = ANON, feature: str = "reports") -> EventRow:
    """A track call sent before sign-up: an anonymousId and no userId."""
    return stored_call(message_id, hours, anon, properties={"feature": feature}, anonymous=True)


def identify(message_id: str, hours: float, user: str = "u1", anon: str = ANON) -> EventRow:
    return stored_call(
        message_id, hours, user, "identify", traits={"role": "admin"}, anonymous_id=anon
    )


def alias(message_id: str, hours: float, previous: str, user: str) -> EventRow:
    return stored_call(
        message_id, hours, user, "alias", properties={"previousId": previous}, previous_id=previous
    )


def used(message_id: str, hours: float, user: str = "u1", feature: str = "export") -> EventRow:
    return stored_call(message_id, hours, user, properties={"feature": feature})


async def store(pool: Pool, *rows: EventRow, trusted: bool = True) -> StoreResult:
    return await store_events(pool, list(rows), facets=FACETS, trusted=trusted)


async def events_by_user(pool: Pool) -> dict[str, list[str]]:
    rows = await pool.fetch("SELECT user_id, message_id FROM events ORDER BY user_id, message_id")
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["user_id"], []).append(r["message_id"])
    return out


async def state(pool: Pool) -> dict[str, Any]:
    """What the profile reads, per user: counts, facets, first seen."""
    days = await pool.fetch(
        "SELECT user_id, sum(n)::int AS n FROM user_event_days GROUP BY 1 ORDER BY 1"
    )
    facets = await pool.fetch(
        "SELECT user_id, value, n, first_at FROM user_facets ORDER BY user_id, value"
    )
    users = await pool.fetch("SELECT user_id, first_seen, identified FROM users ORDER BY 1")
    return {
        "days": {r["user_id"]: r["n"] for r in days},
        "facets": [(r["user_id"], r["value"], r["n"], r["first_at"]) for r in facets],
        "users": {r["user_id"]: (r["first_seen"], r["identified"]) for r in users},
    }


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


STITCHED = {
    "days": {"u1": 4},
    "facets": [("u1", "export", 1, at(6)), ("u1", "reports", 3, at(1))],
    # the user's own first event: the anonymous visits before sign-up do not make them older
    "users": {"u1": (at(5), True)},
}


async def test_an_identify_after_anonymous_events_makes_their_history_the_users(
    pool: Pool,
) -> None:
    await store(pool, visit("v1", 1), visit("v2", 2))
    await store(pool, visit("v3", 3))
    assert (await state(pool))["users"] == {ANON: (at(1), False)}
    result = await store(pool, identify("i1", 5), used("e1", 6))
    assert result.touched == {("acme", ANON), ("acme", "u1")}
    assert await events_by_user(pool) == {"u1": ["e1", "i1", "v1", "v2", "v3"]}
    assert await state(pool) == STITCHED
    assert [tuple(r) for r in await pool.fetch("SELECT previous_id, user_id FROM aliases")] == [
        (ANON, "u1")
    ]

    # later anonymous events (another tab, an offline queue) are stored as the user's
    later = await store(pool, visit("v4", 7))
    assert later.resolved == {("acme", ANON): "u1"} and later.touched == {("acme", "u1")}
    assert (await events_by_user(pool))["u1"][-1] == "v4"
    assert (await state(pool))["days"] == {"u1": 5}


async def test_anonymous_events_arriving_after_the_identify_join_the_user(pool: Pool) -> None:
    await store(pool, identify("i1", 5), used("e1", 6))
    # an offline queue delivers the visits before sign-up afterwards
    await store(pool, visit("v1", 1), visit("v2", 2), visit("v3", 3))
    assert await events_by_user(pool) == {"u1": ["e1", "i1", "v1", "v2", "v3"]}
    assert await state(pool) == STITCHED


async def test_the_link_and_the_events_in_one_batch_in_any_order(pool: Pool) -> None:
    await store(pool, visit("v3", 3), identify("i1", 5), visit("v1", 1), used("e1", 6))
    await store(pool, visit("v2", 2))
    assert await events_by_user(pool) == {"u1": ["e1", "i1", "v1", "v2", "v3"]}
    assert await state(pool) == STITCHED


async def test_alias_calls_merge_in_both_orders_and_follow_chains(pool: Pool) -> None:
    await store(pool, visit("v1", 1))
    await store(pool, alias("a1", 2, previous=ANON, user="u1"))
    await store(pool, alias("a2", 3, previous="guest-9", user="u1"))  # before its events
    await store(pool, visit("g1", 1.5, anon="guest-9"))
    assert await events_by_user(pool) == {"u1": ["a1", "a2", "g1", "v1"]}
    # u1 is then merged into another user (two accounts of one person): everything follows
    await store(pool, used("w1", 4, user="u2"))
    await store(pool, alias("a3", 5, previous="u1", user="u2"))
    await store(pool, visit("v2", 6))
    assert await events_by_user(pool) == {"u2": ["a1", "a2", "a3", "g1", "v1", "v2", "w1"]}
    assert [
        tuple(r) for r in await pool.fetch("SELECT previous_id, user_id FROM aliases ORDER BY 1")
    ] == [
        (ANON, "u2"),
        ("guest-9", "u2"),
        ("u1", "u2"),
    ]
    # a link back the other way cannot make a loop
    await store(pool, alias("a4", 7, previous="u2", user="u1"))
    assert set(await events_by_user(pool)) == {"u2"}


async def test_retries_and_repeated_identifies_count_every_event_once(pool: Pool) -> None:
    first = [visit("v1", 1), visit("v2", 2)]
    await store(pool, *first)
    await store(pool, identify("i1", 5), used("e1", 6))
    again = await store(pool, identify("i1", 5), used("e1", 6))  # the same batch, retried
    assert (again.accepted, again.duplicates) == (0, 2)
    assert (await store(pool, *first)).duplicates == 2  # and the anonymous one
    # every page load identifies again: nothing more moves, nothing is counted twice
    for n in range(3):
        await store(pool, identify(f"i{n + 2}", 7 + n))
    assert (await state(pool))["days"] == {"u1": 3}
    assert [r["n"] for r in await pool.fetch("SELECT n FROM user_facets ORDER BY value")] == [1, 2]


async def test_concurrent_batches_never_leave_events_behind_the_link(pool: Pool) -> None:
    """Anonymous batches racing an identify: each event ends up the user's, once (five rounds:
    without the link's exclusive lock, some event is left behind in most runs)."""
    for round_ in range(5):
        anon, user = f"anon-{round_}", f"u{round_}"
        visits = [
            [visit(f"v{round_}-{b}-{i}", b + i / 100, anon=anon) for i in range(20)]
            for b in range(12)
        ]
        link = store(pool, identify(f"i{round_}", 30, user=user, anon=anon))
        await asyncio.gather(*(store(pool, *batch) for batch in visits[:6]), link,
                             *(store(pool, *batch) for batch in visits[6:]))  # fmt: skip
        by_user = await events_by_user(pool)
        assert anon not in by_user and len(by_user[user]) == 12 * 20 + 1
        days = await pool.fetchval("SELECT sum(n) FROM user_event_days WHERE user_id = $1", user)
        assert days == 240


async def test_every_user_table_is_merged() -> None:
    assert set(USER_TABLES) - {"aliases"} == set(MERGED_TABLES)


async def test_preferences_and_experiment_arms_carry_over_unless_the_user_has_their_own(
    pool: Pool,
) -> None:
    await store(pool, visit("v1", 1), visit("v1b", 1, anon="anon-2"))
    for who, body in ((ANON, {"purposes": {"analytics": False}}), ("anon-2", {"x": 1})):
        await pool.execute(
            "INSERT INTO preferences (tenant_id, user_id, body) VALUES ('acme', $1, $2)", who, body
        )
    await pool.execute(
        "INSERT INTO experiment_assignments (tenant_id, experiment, unit_id, arm, assigned_at)"
        " VALUES ('acme', 'copy', $1, 'treatment', $2)",
        ANON,
        at(1),
    )
    await store(pool, used("e0", 0.5, user="u2"))
    await pool.execute(
        "INSERT INTO preferences (tenant_id, user_id, body) VALUES ('acme', 'u2', '{\"own\": 1}')"
    )
    await store(pool, identify("i1", 5), identify("i2", 5, user="u2", anon="anon-2"))
    prefs = await pool.fetch("SELECT user_id, body FROM preferences ORDER BY 1")
    assert [(r["user_id"], r["body"]) for r in prefs] == [
        ("u1", {"purposes": {"analytics": False}}),  # the visitor's choice stands
        ("u2", {"own": 1}),  # the user's own wins
    ]
    arms = await pool.fetch("SELECT unit_id, arm FROM experiment_assignments")
    assert [tuple(r) for r in arms] == [("u1", "treatment")]


async def test_the_profile_reads_the_merged_history(pool: Pool) -> None:
    vocab = load_layouts(LAYOUTS_DIR).vocabulary
    await store(pool, visit("v1", 1), visit("v2", 2, feature="dashboards"))
    await store(pool, identify("i1", 5))
    now = at(24)
    [profile] = await fetch_tenant_profiles(pool, vocab, ["acme"], now, users=[("acme", "u1")])
    assert profile.known and profile.first_seen == at(5)
    assert sorted(f.value for f in profile.facets) == ["dashboards", "reports"]
    assert sum(d.n for d in profile.event_days) == 2
    assert await fetch_tenant_profiles(pool, vocab, ["acme"], now, users=[("acme", ANON)]) == []


async def test_erasing_the_user_erases_and_suppresses_their_anonymous_ids(pool: Pool) -> None:
    await store(pool, visit("v1", 1))
    await store(pool, identify("i1", 5))
    counts = await erase_user(pool, "acme", "u1")
    assert counts["events"] == 2 and counts["aliases"] == 1
    dropped = await store(pool, visit("v2", 6))  # the device that was theirs
    assert (dropped.accepted, dropped.suppressed) == (0, 1)
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    # and an identify naming an erased anonymous id links nothing
    await store(pool, identify("i2", 7, user="u9"))
    assert await pool.fetchval("SELECT count(*) FROM aliases") == 0


def test_metrics_count_the_anonymous_history_once(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh after a link recomputes the user from the moved events and drops the
    anonymous id's rows: the rows equal the Python oracle over the stitched events."""
    monkeypatch.setattr(metric_store, "OVERLAP_S", 0)  # only what arrived since: incremental
    layouts = metric_layouts()
    start = datetime(2026, 9, 1, tzinfo=UTC)

    def track(message_id: str, user: str, event: str, days: float, anonymous: bool) -> EventRow:
        return EventRow(
            tenant_id="a",
            message_id=message_id,
            user_id=user,
            type="track",
            event=event,
            properties={"feature": "reports"} if event == "feature_used" else {},
            traits={},
            context={},
            ts=start + timedelta(days=days),
            anonymous=anonymous,
        )

    anonymous = [
        track("v1", ANON, "feature_used", 0, True),
        track("v2", ANON, "report_created", 1, True),
    ]
    link = EventRow(
        tenant_id="a", message_id="i1", user_id="u1", type="identify", event=None,
        properties={}, traits={"role": "admin"}, context={}, ts=start + timedelta(days=2),
        anonymous_id=ANON,
    )  # fmt: skip
    own = [track("s1", "u1", "signed_up", 2, False), track("r1", "u1", "report_created", 3, False)]

    async def run() -> None:
        pool = await create_pool(database_dsn, min_size=1, max_size=3)
        try:
            async with pool.acquire() as conn:
                await truncate_all(conn)
            facets = layouts.vocabulary.facets
            await store_events(pool, anonymous, facets=facets)
            await refresh_metrics(pool, layouts)
            await _check(pool, layouts, anonymous)  # the visitor is a unit of their own
            await store_events(pool, [link, *own], facets=facets)
            await refresh_metrics(pool, layouts)
            stitched = [
                EventRow(**{**oracle_fields(e), "user_id": "u1"}) for e in [*anonymous, link, *own]
            ]
            await _check(pool, layouts, stitched)
            assert (
                await pool.fetchval("SELECT count(*) FROM metric_units WHERE unit_id = $1", ANON)
                == 0
            )
        finally:
            await pool.close()

    run_sync(run())


def oracle_fields(e: EventRow) -> dict[str, Any]:
    return {f: getattr(e, f) for f in EventRow.__struct_fields__}


# --- over HTTP: Segment's calls, and what a browser may link ------------------------------------


@pytest_asyncio.fixture
async def client(pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with api(pool) as test_client:
        yield test_client


def call(kind: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": message_id, "tenantId": "acme", **fields}


async def test_segment_identify_with_both_ids_links_them(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    secret = {"Authorization": "Bearer sk_test"}
    page = call("page", "p1", anonymousId=ANON, name="Pricing")
    track = call("track", "t1", anonymousId=ANON, event="feature_used")
    assert (await client.post("/v1/batch", json={"batch": [page, track]}, headers=secret)).json()[
        "accepted"
    ] == 2
    body = {"batch": [call("identify", "i1", userId="u1", anonymousId=ANON, traits={"a": 1})]}
    assert (await client.post("/v1/batch", json=body, headers=secret)).status_code == 200
    assert await events_by_user(pool) == {"u1": ["i1", "p1", "t1"]}
    # a Segment alias call, previousId → userId
    body = {"batch": [call("alias", "a1", userId="u1", previousId="legacy-42")]}
    assert (await client.post("/v1/batch", json=body, headers=secret)).status_code == 200
    assert await pool.fetchval("SELECT user_id FROM aliases WHERE previous_id = 'legacy-42'") == (
        "u1"
    )


async def test_a_browser_links_its_anonymous_id_but_never_another_user(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    await store(pool, visit("v1", 1), used("e1", 1, user="victim"))

    def browser(user: str) -> dict[str, str]:
        return {
            "Authorization": "Bearer pk_test",
            "X-Cairn-User-Hash": user_hash("whsec_test", "acme", user),
        }

    steal = {"batch": [call("identify", "i1", userId="mallory", anonymousId="victim")]}
    refused = await client.post("/v1/events", json=steal, headers=browser("mallory"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "link_not_allowed"
    assert refused.json()["error"]["field"] == "batch[0].anonymousId"
    steal = {"batch": [call("alias", "a1", userId="mallory", previousId="victim")]}
    refused = await client.post("/v1/events", json=steal, headers=browser("mallory"))
    assert (refused.status_code, refused.json()["error"]["field"]) == (403, "batch[0].previousId")
    assert await events_by_user(pool) == {ANON: ["v1"], "victim": ["e1"]}  # nothing stored

    own = {"batch": [call("identify", "i2", userId="u1", anonymousId=ANON)]}
    accepted = await client.post("/v1/events", json=own, headers=browser("u1"))
    assert (accepted.status_code, accepted.json()) == (200, {"accepted": 1, "duplicates": 0})
    assert await events_by_user(pool) == {"u1": ["i2", "v1"], "victim": ["e1"]}
