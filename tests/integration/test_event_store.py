"""The event store and `POST /v1/events` on a real PostgreSQL: idempotency, atomicity,
aggregates, notifications, authorization."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.datastructures import State

from app.config.layouts import load_layouts
from app.engine.retention import Retention
from app.http.dependencies import dependencies
from app.http.errors import EXCEPTION_HANDLERS
from app.http.events import ROUTES
from app.serving.identity import user_hash
from app.serving.ops_metrics import OpsMetrics
from app.settings import Settings
from app.storage.db import Pool
from app.storage.events import PROFILE_CHANNEL, EventRow, StoreResult, store_events
from app.storage.keys import KeyRing, key_fingerprint

pytestmark = pytest.mark.integration

FACETS = {"feature_used": "feature", "template_used": "template", "help_article_viewed": "article"}
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SETTINGS = Settings(secret_key="sk_test", publishable_key="pk_test", identity_secret="whsec_test")


def row(
    message_id: str,
    *,
    type: str = "track",
    event: str | None = "feature_used",
    tenant: str = "acme",
    user: str = "u1",
    at: timedelta = timedelta(0),
    properties: Mapping[str, Any] | None = None,
    traits: Mapping[str, Any] | None = None,
    previous_id: str | None = None,
) -> EventRow:
    return EventRow(
        tenant_id=tenant,
        message_id=message_id,
        user_id=user,
        type=type,  # type: ignore[arg-type]
        event=event if type == "track" else None,
        properties=dict(properties or {}),
        traits=dict(traits or {}),
        context={"library": {"name": "test"}},
        ts=T0 + at,
        previous_id=previous_id,
        group_id=tenant if type == "group" else None,
    )


async def store(pool: Pool, *rows: EventRow) -> StoreResult:
    return await store_events(pool, list(rows), facets=FACETS)


async def table(pool: Pool, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await pool.fetch(sql)]


# --- the event store --------------------------------------------------------------------------


async def test_events_are_stored_with_their_json_and_time(pool: Pool) -> None:
    result = await store(
        pool,
        row("m1", properties={"feature": "reports", "n": 3, "nested": {"a": [1, None]}}),
        row("m2", type="identify", traits={"role": "admin"}, at=timedelta(seconds=5)),
    )
    assert result == StoreResult(accepted=2, duplicates=0, touched={("acme", "u1")})
    stored = await pool.fetch("SELECT * FROM events ORDER BY message_id")
    assert [(r["message_id"], r["type"], r["event"], r["ts"]) for r in stored] == [
        ("m1", "track", "feature_used", T0),
        ("m2", "identify", None, T0 + timedelta(seconds=5)),
    ]
    assert stored[0]["properties"] == {"feature": "reports", "n": 3, "nested": {"a": [1, None]}}
    assert stored[1]["traits"] == {"role": "admin"}
    assert stored[0]["context"] == {"library": {"name": "test"}}


async def test_a_retried_batch_is_stored_once_and_counted_as_duplicates(pool: Pool) -> None:
    reports = {"feature": "reports"}
    batch = [
        row("m1", properties=reports),
        row("m2", properties=reports, at=timedelta(hours=1)),
        row("m3", event="report_created"),
    ]
    assert await store(pool, *batch) == StoreResult(3, 0, {("acme", "u1")})
    assert await store(pool, *batch) == StoreResult(0, 3, set())
    # A partial retry: two old, one new. Only the new one counts anywhere.
    again = await store(pool, batch[0], batch[2], row("m4", properties=reports))
    assert again == StoreResult(1, 2, {("acme", "u1")})
    assert await pool.fetchval("SELECT count(*) FROM events") == 4
    assert await table(pool, "SELECT event, n FROM user_event_days ORDER BY event") == [
        ("feature_used", 3),
        ("report_created", 1),
    ]
    assert await table(pool, "SELECT value, n FROM user_facets") == [("reports", 3)]


async def test_repeats_within_one_call_keep_the_first(pool: Pool) -> None:
    result = await store(
        pool,
        row("m1", properties={"feature": "first"}),
        row("m1", properties={"feature": "second"}),
        row("m1", tenant="globex", properties={"feature": "other tenant"}),
    )
    assert (result.accepted, result.duplicates) == (2, 1)
    assert await table(pool, "SELECT tenant_id, properties->>'feature' FROM events ORDER BY 1") == [
        ("acme", "first"),
        ("globex", "other tenant"),
    ]
    assert await table(pool, "SELECT tenant_id, value, n FROM user_facets ORDER BY 1") == [
        ("acme", "first", 1),
        ("globex", "other tenant", 1),
    ]


async def test_a_failing_batch_leaves_nothing_behind_and_notifies_no_one(pool: Pool) -> None:
    received: list[str] = []

    def on_notice(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        received.append(str(payload))

    listener = await pool.acquire()
    await listener.add_listener(PROFILE_CHANNEL, on_notice)
    await pool.execute(
        "ALTER TABLE user_event_days ADD CONSTRAINT no_boom CHECK (event <> 'boom') NOT VALID"
    )
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            # The events insert and several upserts succeed before user_event_days fails.
            await store(
                pool,
                row("m1", type="identify", traits={"role": "admin"}),
                row("m2", type="group", traits={"plan": "team"}),
                row("m3", event="integration_connected", properties={"integration": "slack"}),
                row("m4", event="boom"),
            )
        await asyncio.sleep(0.05)
        for name in ("events", "users", "tenants", "tenant_integrations", "user_event_days"):
            assert await pool.fetchval(f"SELECT count(*) FROM {name}") == 0, name
        assert received == []
        await pool.execute("ALTER TABLE user_event_days DROP CONSTRAINT no_boom")
        # The same events go through once the problem is gone: nothing was half-stored.
        assert (await store(pool, row("m1"), row("m4", event="boom"))).accepted == 2
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.01)
        assert received == ['{"t":"acme","u":"u1"}']
    finally:
        await pool.execute("ALTER TABLE user_event_days DROP CONSTRAINT IF EXISTS no_boom")
        await listener.remove_listener(PROFILE_CHANNEL, on_notice)
        await pool.release(listener)


async def test_notifications_name_each_touched_user_and_changed_tenant(pool: Pool) -> None:
    received: list[str] = []

    def on_notice(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        received.append(str(payload))

    listener = await pool.acquire()
    await listener.add_listener(PROFILE_CHANNEL, on_notice)
    try:
        result = await store(
            pool,
            row("m1", user="u2"),
            row("m2", user="u1"),
            row("m3", user="u1", tenant="globex", type="group", traits={"plan": "team"}),
            row(
                "m4",
                tenant="initech",
                event="integration_connected",
                properties={"integration": "jira"},
            ),
        )
        for _ in range(50):
            if len(received) >= 6:
                break
            await asyncio.sleep(0.01)
    finally:
        await listener.remove_listener(PROFILE_CHANNEL, on_notice)
        await pool.release(listener)
    assert result.touched == {("acme", "u1"), ("acme", "u2"), ("globex", "u1"), ("initech", "u1")}
    notices = sorted((n["t"], n.get("u", "*")) for n in map(json.loads, received))
    assert notices == [
        ("acme", "u1"),
        ("acme", "u2"),
        ("globex", "*"),  # the whole tenant: the group call changed its traits
        ("globex", "u1"),
        ("initech", "*"),  # the whole tenant: an integration changed
        ("initech", "u1"),
    ]


async def test_users_first_and_last_seen_and_identify_traits(pool: Pool) -> None:
    await store(
        pool,
        row("m1", at=timedelta(hours=5)),
        row(
            "m2",
            type="identify",
            traits={"role": "maker", "plan_seen": "trial"},
            at=timedelta(hours=1),
        ),
        row("m3", type="identify", traits={"role": "admin"}, at=timedelta(hours=2)),
        row("m4", user="u2", at=timedelta(hours=3)),
    )
    # A later batch with older and newer events: first_seen = least, last_seen = greatest.
    await store(
        pool,
        row("m5", at=timedelta(hours=-1)),
        row("m6", user="u2", at=timedelta(hours=9)),
        row("m7", type="identify", traits={"lifecycle": "active"}, at=timedelta(hours=6)),
    )
    users = await pool.fetch("SELECT * FROM users ORDER BY user_id")
    assert [(u["user_id"], u["first_seen"], u["last_seen"]) for u in users] == [
        ("u1", T0 - timedelta(hours=1), T0 + timedelta(hours=6)),
        ("u2", T0 + timedelta(hours=3), T0 + timedelta(hours=9)),
    ]
    # Merged in event time: the 02:00 role wins over the 01:00 one; keys never sent survive.
    assert users[0]["traits"] == {"role": "admin", "plan_seen": "trial", "lifecycle": "active"}
    assert users[1]["traits"] == {}


async def test_tenants_exist_for_every_event_and_group_calls_merge_traits(pool: Pool) -> None:
    await store(
        pool,
        row("m1", tenant="globex"),
        row("m2", type="group", traits={"plan": "trial", "seats": 12}),
        row("m3", type="group", traits={"plan": "team"}, at=timedelta(minutes=1)),
    )
    await store(pool, row("m4", type="group", traits={"industry": "fintech"}))
    tenants = {r["tenant_id"]: r["traits"] for r in await pool.fetch("SELECT * FROM tenants")}
    assert tenants == {
        "globex": {},
        "acme": {"plan": "team", "seats": 12, "industry": "fintech"},
    }


async def test_alias_calls_link_the_previous_id(pool: Pool) -> None:
    await store(
        pool,
        row("m1", type="alias", user="u1", previous_id="anon-1"),
        row("m2", type="alias", user="u1", previous_id="u1"),  # aliasing to itself: nothing
    )
    await store(pool, row("m3", type="alias", user="u2", previous_id="anon-2"))
    assert await table(pool, "SELECT previous_id, user_id FROM aliases ORDER BY 1") == [
        ("anon-1", "u1"),
        ("anon-2", "u2"),
    ]


async def test_user_event_days_count_track_events_per_utc_day(pool: Pool) -> None:
    late = timedelta(hours=14, minutes=59)  # 23:59 UTC on the 27th
    await store(
        pool,
        row("m1"),
        row("m2", at=late),
        row("m3", at=late + timedelta(minutes=2)),  # the 28th
        row("m4", event="report_created"),
        row("m5", type="page"),  # not a track event
        row("m6", user="u2"),
    )
    await store(pool, row("m7"), row("m7"), row("m8", at=late + timedelta(hours=1)))
    assert await table(
        pool, "SELECT user_id, day, event, n FROM user_event_days ORDER BY 1, 2, 3"
    ) == [
        ("u1", date(2026, 11, 27), "feature_used", 3),
        ("u1", date(2026, 11, 27), "report_created", 1),
        ("u1", date(2026, 11, 28), "feature_used", 2),
        ("u2", date(2026, 11, 27), "feature_used", 1),
    ]


async def test_user_facets_follow_the_configured_events(pool: Pool) -> None:
    await store(
        pool,
        row("m1", properties={"feature": "reports"}, at=timedelta(minutes=10)),
        row("m2", properties={"feature": "reports"}, at=timedelta(minutes=5)),
        row("m3", properties={"feature": "exports"}),
        row("m4", event="template_used", properties={"template": "invoice"}),
        row("m5", event="help_article_viewed", properties={"article": 42}),
        row("m6", event="report_created", properties={"feature": "reports"}),  # not a facet
        row("m7", properties={"feature": {"id": "x"}}),  # not an id: skipped
        row("m8", properties={"feature": "x" * 300}),  # too long to be an id: skipped
        row("m9", event="template_used", properties={}),
    )
    await store(pool, row("m10", properties={"feature": "reports"}, at=timedelta(minutes=-5)))
    facets = await table(
        pool, "SELECT kind, value, n, first_at, last_at FROM user_facets ORDER BY 1, 2"
    )
    assert facets == [
        ("article", "42", 1, T0, T0),
        ("feature", "exports", 1, T0, T0),
        ("feature", "reports", 3, T0 - timedelta(minutes=5), T0 + timedelta(minutes=10)),
        ("template", "invoice", 1, T0, T0),
    ]


async def test_integrations_follow_the_latest_event(pool: Pool) -> None:
    def integration(
        mid: str, event: str, name: str, minutes: int, tenant: str = "acme"
    ) -> EventRow:
        return row(
            mid,
            event=event,
            tenant=tenant,
            properties={"integration": name},
            at=timedelta(minutes=minutes),
        )

    await store(
        pool,
        integration("m1", "integration_connected", "slack", 0),
        integration("m2", "integration_disconnected", "slack", 5),
        integration("m3", "integration_connected", "slack", 10),
        integration("m4", "integration_disconnected", "jira", 1),
        integration("m5", "integration_connected", "jira", 1, tenant="globex"),
        row("m6", event="integration_connected", properties={}),
    )
    # Arriving late: an older disconnect changes nothing; a newer one does.
    await store(
        pool,
        integration("m7", "integration_disconnected", "slack", 7),
        integration("m8", "integration_connected", "jira", 2),
    )
    assert await table(
        pool,
        "SELECT tenant_id, integration, connected, changed_at FROM tenant_integrations"
        " ORDER BY 1, 2",
    ) == [
        ("acme", "jira", True, T0 + timedelta(minutes=2)),
        ("acme", "slack", True, T0 + timedelta(minutes=10)),
        ("globex", "jira", True, T0 + timedelta(minutes=1)),
    ]


async def test_widget_views_dismissals_and_completions(pool: Pool) -> None:
    def widget(mid: str, event: str, minutes: int, widget_id: str = "connect_billing") -> EventRow:
        return row(
            mid,
            event=event,
            properties={"widget_id": widget_id, "decision_id": "dcs_1"},
            at=timedelta(minutes=minutes),
        )

    await store(
        pool,
        widget("m1", "widget_viewed", 0),
        widget("m2", "widget_viewed", 3),
        widget("m3", "widget_dismissed", 4),
        widget("m4", "widget_viewed", 1, widget_id="invite_team"),
        widget("m5", "widget_completed", 2, widget_id="invite_team"),
        widget("m6", "widget_clicked", 2, widget_id="try_templates"),  # not tracked per widget
    )
    await store(
        pool,
        widget("m7", "widget_viewed", 30),
        widget("m8", "widget_dismissed", 31),
        widget("m9", "widget_completed", 40, widget_id="invite_team"),  # the first one stays
    )
    assert await table(
        pool,
        "SELECT widget_id, views, last_viewed, dismissed_at, completed_at FROM user_widgets"
        " ORDER BY 1",
    ) == [
        ("connect_billing", 3, T0 + timedelta(minutes=30), T0 + timedelta(minutes=31), None),
        ("invite_team", 1, T0 + timedelta(minutes=1), None, T0 + timedelta(minutes=2)),
    ]


async def test_overlapping_concurrent_batches_count_every_event_once(pool: Pool) -> None:
    # Six batches over the same users, each sharing half its events with the next one, sent at
    # once and in both key orders: no deadlock, no event counted twice, none lost.
    events = [
        row(
            f"m{i:03d}",
            user=f"u{i % 7}",
            tenant=f"t{i % 3}",
            at=timedelta(minutes=i),
            properties={"feature": f"f{i % 4}"},
        )
        for i in range(420)
    ]
    batches = [events[i * 60 : i * 60 + 120] for i in range(6)]
    batches = [b if n % 2 else list(reversed(b)) for n, b in enumerate(batches)]
    results = await asyncio.gather(*(store(pool, *b) for b in batches))
    assert sum(r.accepted for r in results) == 420
    assert sum(r.duplicates for r in results) == sum(len(b) for b in batches) - 420
    assert await pool.fetchval("SELECT count(*) FROM events") == 420
    assert await pool.fetchval("SELECT sum(n) FROM user_event_days") == 420
    assert await pool.fetchval("SELECT sum(n) FROM user_facets") == 420
    assert await pool.fetchval("SELECT count(*) FROM users") == 21


async def test_concurrent_batches_creating_and_updating_tenants(pool: Pool) -> None:
    # New tenants met at once by group calls in one batch and plain events in others: each
    # tenant is created once, traits merge, and no batch fails.
    for round_ in range(5):
        x, y = f"x{round_}", f"y{round_}"
        batches = [
            [
                row(f"a{round_}", type="group", tenant=x, traits={"plan": "team"}),
                row(f"b{round_}", tenant=y),
            ],
            [row(f"c{round_}", tenant=x), row(f"d{round_}", tenant=y)],
            [
                row(f"e{round_}", type="group", tenant=y, traits={"seats": 5}),
                row(
                    f"f{round_}",
                    tenant=x,
                    event="integration_connected",
                    properties={"integration": "slack"},
                ),
            ],
            [row(f"g{round_}", type="group", tenant=x, traits={"industry": "fintech"})],
        ]
        results = await asyncio.gather(*(store(pool, *b) for b in batches))
        assert sum(r.accepted for r in results) == 7
    tenants = {r["tenant_id"]: r["traits"] for r in await pool.fetch("SELECT * FROM tenants")}
    assert tenants == {
        **{f"x{n}": {"plan": "team", "industry": "fintech"} for n in range(5)},
        **{f"y{n}": {"seats": 5} for n in range(5)},
    }
    assert await pool.fetchval("SELECT count(*) FROM tenant_integrations") == 5


# --- POST /v1/events --------------------------------------------------------------------------


VOCABULARY = load_layouts(Path(__file__).resolve().parents[2] / "layouts").vocabulary


class _Runtime:
    """What the handler needs of the runtime: its pool (None: the database is not started), the
    key ring, and being told what changed."""

    def __init__(self, pool: Pool | None, keyring: KeyRing) -> None:
        self._pool = pool
        self.keyring = keyring
        self.vocabulary = VOCABULARY
        self.forgotten: list[set[tuple[str, str]]] = []
        self.forgotten_tenants: list[set[str]] = []
        self.region: str | None = None  # no residency checks
        self.retention = Retention()  # every event kept
        self.ops = OpsMetrics(lambda: True)

    def prepare_help(self, errors: Iterable[Mapping[str, Any]]) -> None:
        list(errors)  # friction queries are not embedded ahead here

    def forget(self, users: set[tuple[str, str]], tenants: Iterable[str] = ()) -> None:
        self.forgotten.append(users)
        self.forgotten_tenants.append(set(tenants))

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the database is not started")
        return self._pool


Client = httpx.AsyncClient


def api(pool: Pool | None, keyring_pool: Pool | None = None) -> Client:
    """The events routes on this event loop (the pool's), state set as the lifespan sets it."""
    app = Litestar(
        route_handlers=ROUTES,
        dependencies=dependencies(SETTINGS),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        state=State({"runtime": _Runtime(pool, KeyRing(SETTINGS, keyring_pool or pool))}),
        request_max_body_size=2 * 1024 * 1024,
    )
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://cairn.test")


@pytest_asyncio.fixture
async def client(pool: Pool) -> AsyncIterator[Client]:
    async with api(pool) as test_client:
        yield test_client


SECRET = {"Authorization": "Bearer sk_test"}


def event(message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "tenantId": "acme",
        "userId": "u1",
        "event": "feature_used",
        "properties": {"feature": "reports"},
        **fields,
    }


async def test_post_events_answers_after_commit_and_counts_retries(
    client: Client, pool: Pool
) -> None:
    body = {"batch": [event("m1"), event("m2"), event("m1")], "sentAt": "2026-11-27T10:00:00Z"}
    first = await client.post("/v1/events", json=body, headers=SECRET)
    assert (first.status_code, first.json()) == (200, {"accepted": 2, "duplicates": 1})
    assert await pool.fetchval("SELECT count(*) FROM events") == 2
    retry = await client.post("/v1/batch", json=body, headers=SECRET)
    assert (retry.status_code, retry.json()) == (200, {"accepted": 0, "duplicates": 3})


async def test_invalid_batches_store_nothing_and_name_the_field(client: Client, pool: Pool) -> None:
    body = {"batch": [event("m1"), event("m2", userId=None)]}
    response = await client.post("/v1/events", json=body, headers=SECRET)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_event"
    assert response.json()["error"]["field"] == "batch[1].userId"
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    unauthenticated = await client.post("/v1/events", json={"batch": [event("m1")]})
    assert unauthenticated.status_code == 401


async def test_segment_library_posts_are_accepted(
    client: Client, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segment.analytics import Client as SegmentClient
    from segment.analytics import request as segment_request

    sent: list[dict[str, Any]] = []

    class Captured:
        status_code = 200

        def json(self) -> dict[str, Any]:
            return {}

    def capture(url: str, **kwargs: Any) -> Captured:
        sent.append({"url": url, **kwargs})
        return Captured()

    monkeypatch.setattr(segment_request._session, "post", capture)
    segment = SegmentClient("sk_test", host="http://cairn.test", sync_mode=True, gzip=True)
    segment.identify(
        "u7", {"role": "admin", "email": "ada@example.com"}, context={"groupId": "acme"}
    )
    segment.track("u7", "template_used", {"template": "invoice"}, context={"groupId": "acme"})
    segment.group("u7", "acme", {"plan": "team"})
    assert [s["url"] for s in sent] == ["http://cairn.test/v1/batch"] * 3
    for request in sent:
        assert request["headers"]["Content-Encoding"] == "gzip"
        response = await client.post(
            "/v1/batch", content=request["data"], headers=request["headers"]
        )
        assert (response.status_code, response.json()) == (200, {"accepted": 1, "duplicates": 0})
    user = await pool.fetchrow("SELECT * FROM users WHERE user_id = 'u7'")
    assert user is not None
    assert user["traits"]["role"] == "admin"
    assert user["traits"]["email"].startswith("hmac:")
    assert await pool.fetchval("SELECT traits FROM tenants WHERE tenant_id = 'acme'") == {
        "plan": "team"
    }
    assert await table(pool, "SELECT kind, value FROM user_facets") == [("template", "invoice")]


async def test_gzip_bodies_and_their_limits(client: Client, pool: Pool) -> None:
    zipped = {**SECRET, "Content-Encoding": "gzip"}
    body = json.dumps({"batch": [event("m1")]}).encode()
    ok = await client.post("/v1/events", content=gzip.compress(body), headers=zipped)
    assert (ok.status_code, ok.json()) == (200, {"accepted": 1, "duplicates": 0})
    # Small on the wire, over 500 KB once inflated.
    bomb = gzip.compress(b'{"batch": [' + b" " * 600_000 + b"]}")
    assert len(bomb) < 5_000
    too_big = await client.post("/v1/events", content=bomb, headers=zipped)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "batch_too_large"
    broken = await client.post("/v1/events", content=b"not gzip", headers=zipped)
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
    truncated = await client.post("/v1/events", content=gzip.compress(body)[:-12], headers=zipped)
    assert truncated.status_code == 400
    brotli = await client.post(
        "/v1/events", content=body, headers={**SECRET, "Content-Encoding": "br"}
    )
    assert (brotli.status_code, brotli.json()["error"]["code"]) == (415, "unsupported_encoding")
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_a_body_over_500_kb_is_413(client: Client) -> None:
    events = [event(f"m{i}", properties={"pad": "x" * 1000}) for i in range(520)]
    response = await client.post("/v1/events", json={"batch": events}, headers=SECRET)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "batch_too_large",
        "message": "A batch may be at most 500 KB.",
    }


async def test_publishable_keys_send_for_one_verified_user(client: Client, pool: Pool) -> None:
    proof = user_hash("whsec_test", "acme", "u1")
    browser = {"Authorization": "Bearer pk_test", "X-Cairn-User-Hash": proof}
    ok = await client.post(
        "/v1/events", json={"batch": [event("m1"), event("m2")]}, headers=browser
    )
    assert (ok.status_code, ok.json()) == (200, {"accepted": 2, "duplicates": 0})

    async def refused(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str, str]:
        response = await client.post("/v1/events", json=body, headers=headers)
        error = response.json()["error"]
        return response.status_code, error["code"], error.get("field")

    no_proof = {"Authorization": "Bearer pk_test"}
    assert (await refused({"batch": [event("m3")]}, no_proof))[:2] == (403, "user_hash_required")
    wrong = {**browser, "X-Cairn-User-Hash": user_hash("whsec_test", "acme", "u2")}
    assert (await refused({"batch": [event("m3")]}, wrong))[:2] == (403, "user_hash_invalid")
    assert await refused({"batch": [event("m3"), event("m4", userId="u2")]}, browser) == (
        403,
        "one_user_per_batch",
        "batch[1].userId",
    )
    group = {
        "type": "group",
        "messageId": "g1",
        "userId": "u1",
        "groupId": "acme",
        "traits": {"plan": "enterprise"},
    }
    assert await refused({"batch": [event("m3"), group]}, browser) == (
        403,
        "secret_key_required",
        "batch[1].type",
    )
    assert await pool.fetchval("SELECT count(*) FROM events") == 2


async def test_tenant_scoped_keys_cannot_send_other_tenants_events(
    client: Client, pool: Pool
) -> None:
    await pool.execute(
        "INSERT INTO api_keys (tenant_id, key_hash, kind) VALUES ('acme', $1, 'secret')",
        key_fingerprint("sk_acme_only"),
    )
    scoped = {"Authorization": "Bearer sk_acme_only"}
    ok = await client.post("/v1/events", json={"batch": [event("m1")]}, headers=scoped)
    assert ok.status_code == 200
    other = {"batch": [event("m2"), event("m3", tenantId="globex")]}
    response = await client.post("/v1/events", json=other, headers=scoped)
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "batch[1]"
    assert await pool.fetchval("SELECT count(*) FROM events") == 1


async def test_an_unavailable_database_is_503_and_the_retry_is_safe(pool: Pool) -> None:
    body = {"batch": [event("m1")]}
    async with api(None, keyring_pool=pool) as not_started:
        response = await not_started.post("/v1/events", json=body, headers=SECRET)
        assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")
    # Nothing listens on port 1: every connection attempt is refused.
    down_pool = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/cairn", min_size=0)
    try:
        async with api(down_pool, keyring_pool=pool) as down:
            response = await down.post("/v1/events", json=body, headers=SECRET)
            assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")
    finally:
        await down_pool.close()
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    async with api(pool) as back:
        response = await back.post("/v1/events", json=body, headers=SECRET)
        assert response.json() == {"accepted": 1, "duplicates": 0}
