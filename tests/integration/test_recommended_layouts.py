"""Recommendations in layouts, end to end on PostgreSQL with the packaged MiniLM model.

Peers that succeeded teach what a team like yours adopts next; friction finds help through the
catalog; a recommender that is down or over its time budget leaves the rules-only layout in place,
marked `degraded`, without making the layout wait.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.demo.catalog import demo_items
from app.engine.reasons import Reason
from app.serving.runtime import Runtime
from app.storage.db import Pool
from recommender.embedder import Vectors
from recommender.index import FaissIndex
from tests.integration.why_page import left_out

pytestmark = pytest.mark.integration

_ids = itertools.count()
T = TypeVar("T")

CATALOG_IDS = (
    "slack",
    "stripe",
    "plaid",
    "salesforce",
    "kyc_review",
    "loan_pipeline",
    "fraud_alerts",
    "kb_automation_triggers",
    "lesson_automations",
    "fix-failing-automations",
    "kb_reports_filters",
    "kb_sso_setup",
)
COHORT = "fintech, 10\u201350 seats"  # \u2013: the en dash that cohort labels print
SUCCESS = ("teammate_invited", "report_created", "template_used", "automation_created")


def _event(tenant: str, user: str, kind: str, **body: Any) -> dict[str, Any]:
    return {
        "messageId": f"rl{next(_ids)}",
        "tenantId": tenant,
        "userId": user,
        "type": kind,
        **body,
    }


async def on_app(client: AsyncTestClient[Any], fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine function on the app's own event loop (the runtime's pool lives there)."""
    return await asyncio.to_thread(client.blocking_portal.call, fn, *args)


async def _send(
    client: AsyncTestClient[Any], headers: dict[str, str], events: Sequence[dict[str, Any]]
) -> None:
    r = await client.post("/v1/events", json={"batch": list(events)}, headers=headers)
    assert r.status_code == 200, r.text


def _team(
    tenant: str, integrations: Sequence[str], templates: Sequence[str]
) -> list[dict[str, Any]]:
    """A fintech team of 20 seats on Pro whose admin walked the activation steps this week."""
    admin = f"{tenant}-admin"
    out = [
        _event(tenant, admin, "identify", traits={"role": "admin"}),
        _event(
            tenant,
            admin,
            "group",
            groupId=tenant,
            traits={"industry": "fintech", "seats": 20, "plan": "pro"},
        ),
    ]
    out += [_event(tenant, admin, "track", event=e) for e in SUCCESS]
    out += [
        _event(tenant, admin, "track", event="integration_connected", properties={"integration": i})
        for i in integrations
    ]
    out += [
        _event(tenant, admin, "track", event="template_used", properties={"template": t})
        for t in templates
    ]
    return out


async def _world(client: AsyncTestClient[Any], headers: dict[str, str], rt: Runtime) -> None:
    """Eight successful fintech peers and the catalog, embedded; then the peer model."""
    for item in demo_items():
        if item.id in CATALOG_IDS:
            body = {k: v for k, v in msgspec.to_builtins(item).items() if k != "id"}
            r = await client.put(f"/v1/catalog/items/{item.id}", json=body, headers=headers)
            assert r.status_code in (200, 201), r.text
    events: list[dict[str, Any]] = []
    for n in range(8):
        integrations = ["plaid", *(["slack"] if n < 6 else []), *(["stripe"] if n < 5 else [])]
        templates = ["kyc_review", *(["loan_pipeline"] if n < 6 else []), "fraud_alerts"][
            : 2 + n % 2
        ]
        events += _team(f"peer{n}", integrations, templates)
    # The team the tests look at: fintech, 20 seats, Plaid connected, nothing else yet.
    events += [
        _event("acme", "ada", "identify", traits={"role": "admin"}),
        _event(
            "acme",
            "ada",
            "group",
            groupId="acme",
            traits={"industry": "fintech", "seats": 20, "plan": "pro"},
        ),
        _event(
            "acme",
            "ada",
            "track",
            event="integration_connected",
            properties={"integration": "plaid"},
        ),
        _event("acme", "max", "identify", traits={"role": "maker"}),
    ]
    await _send(client, headers, events)
    assert rt.catalog is not None
    await on_app(client, rt.catalog.sync)
    await on_app(client, rt.refresh_recommender)
    assert rt.recommender is not None and rt.recommender.model is not None
    assert rt.recommender.model.size["successful_peers"] == 8


async def _layout(
    client: AsyncTestClient[Any], headers: dict[str, str], screen: str, user: str
) -> dict[str, Any]:
    r = await client.get(
        f"/v1/layouts/{screen}", params={"tenant_id": "acme", "user_id": user}, headers=headers
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _widgets(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["id"]: w for slot in layout["slots"] for w in slot["widgets"]}


async def test_peers_recommend_integrations_with_k_anonymous_proof(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    await _world(client, secret_headers, runtime)
    layout = await _layout(client, secret_headers, "home", "ada")
    widgets = _widgets(layout)
    assert layout["degraded"] is False
    prompt = widgets["peer_integrations"]
    assert "connect_integrations" not in widgets  # the rules' prompt gives way to the peers'
    assert prompt["why"]["source"] == "recommender"
    offered = [i["id"] for i in prompt["props"]["integrations"]]
    assert offered[:2] == ["slack", "stripe"]
    assert "plaid" not in offered  # already connected
    assert "salesforce" not in offered  # no peer uses it
    slack = prompt["props"]["integrations"][0]
    assert slack["peer_adoption"] == {"share": 0.75, "cohort": COHORT}
    assert prompt["why"]["summary"] == (
        f"Teams like yours ({COHORT}): 8 in 10 connected Slack in their first week."
    )
    drivers = {d["signal"]: d["value"] for d in prompt["why"]["drivers"]}
    assert drivers["peers.cohort"] == COHORT
    assert 0.5 <= prompt["why"]["confidence"] <= 1.0
    text = str(prompt)
    assert not any(f"peer{n}" in text for n in range(8))  # no other tenant is ever named


async def test_candidates_are_reused_for_the_same_profile_and_model_only(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    """A decision reuses the candidates found a moment ago from this very profile and model; a
    new event (a new profile), a rebuilt model or a minute later computes them again."""
    await _world(client, secret_headers, runtime)
    rec = runtime.recommender
    assert rec is not None and rec.model is not None
    vocab = runtime.vocabulary

    async def recommend(at: datetime) -> Any:
        profile = await runtime.profiles.load("acme", "ada", at)
        assert profile is not None
        return profile, await rec.recommend(profile, vocab, at)

    now = datetime.now(UTC)
    profile, first = await on_app(client, recommend, now)
    _, again = await on_app(client, recommend, now + timedelta(seconds=30))
    assert first.available and again is first  # reused: the very same answer
    _, later = await on_app(client, recommend, now + timedelta(seconds=61))
    assert later is not first and later == first  # computed again, the same candidates
    await _send(client, secret_headers, [
        _event("acme", "ada", "track", event="template_used", properties={"template": "kyc_review"})
    ])  # fmt: skip
    newer, fresh = await on_app(client, recommend, now + timedelta(seconds=62))
    assert newer is not profile and fresh is not later
    assert "kyc_review" not in [t.id for t in fresh.templates]  # the team uses it now
    await on_app(client, runtime.refresh_recommender)
    _, rebuilt = await on_app(client, recommend, now + timedelta(seconds=63))
    assert rebuilt is not fresh and rebuilt == fresh


async def test_templates_come_from_peers_and_skip_what_the_team_used(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    await _world(client, secret_headers, runtime)
    await _send(
        client,
        secret_headers,
        [
            _event(
                "acme", "max", "track", event="template_used", properties={"template": "kyc_review"}
            )
        ],
    )
    await on_app(client, runtime.refresh_recommender)
    layout = await _layout(client, secret_headers, "editor", "max")
    gallery = _widgets(layout)["editor_peer_templates"]
    assert gallery["why"]["source"] == "recommender"
    ids = [t["id"] for t in gallery["props"]["templates"]]
    assert "kyc_review" not in ids
    assert set(ids) == {"loan_pipeline", "fraud_alerts"}
    assert all(t["reason"] for t in gallery["props"]["templates"])


async def test_basic_personalization_never_uses_other_tenants(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    await _world(client, secret_headers, runtime)
    r = await client.put(
        "/v1/preferences",
        params={"tenant_id": "acme", "user_id": "ada"},
        json={"personalization": "basic"},
        headers=secret_headers,
    )
    assert r.status_code == 200, r.text
    layout = await _layout(client, secret_headers, "home", "ada")
    assert layout["degraded"] is False
    assert all(w["why"]["source"] != "recommender" for w in _widgets(layout).values())
    assert "peer_integrations" not in _widgets(layout)


async def _friction(client: AsyncTestClient[Any], headers: dict[str, str], user: str) -> None:
    await _send(
        client,
        headers,
        [
            _event(
                "acme",
                user,
                "track",
                event="error_shown",
                properties={"feature": "automations", "message": "Trigger did not fire"},
            )
            for _ in range(3)
        ],
    )


async def test_friction_finds_help_in_the_catalog(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    await _world(client, secret_headers, runtime)
    assert runtime.recommender is not None
    runtime.recommender.budget_s = 30.0  # this test is about the match, not the budget
    await _friction(client, secret_headers, "max")
    layout = await _layout(client, secret_headers, "editor", "max")
    widgets = _widgets(layout)
    tip = widgets["editor_help_match"]
    assert "editor_help_tip" not in widgets
    assert tip["why"]["source"] == "recommender"
    assert tip["props"]["article"]["id"] in {
        "kb_automation_triggers",
        "lesson_automations",
        "fix-failing-automations",
    }
    assert "Trigger did not fire" in tip["why"]["summary"]
    drivers = {d["signal"]: d["value"] for d in tip["why"]["drivers"]}
    assert drivers["friction.feature"] == "automations"
    assert drivers["help.match"] > 0.3


class _Gate:
    """An embedder that waits for the test to let it finish: a slow model, made deterministic."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls += 1
        self.release.wait(30)
        result: Vectors = self.inner.embed(texts)
        return result


async def test_over_budget_serves_the_rules_layout_at_once_then_updates_the_stream(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    await _world(client, secret_headers, runtime)
    rec = runtime.recommender
    assert rec is not None
    gate = _Gate(runtime.embedder)
    rec.embedder.query_cache._embedder = gate  # type: ignore[assignment]
    streams: list[asyncio.Queue[str]] = []

    async def subscribe() -> None:
        streams.append(runtime.hub.subscribe("acme", "max"))

    async def finish_embedding() -> list[str]:
        """Let the embedding finish; what the user's live stream heard meanwhile."""
        pending = list(rec._inflight.values())
        assert len(pending) == 1
        gate.release.set()
        await asyncio.gather(*pending)
        heard: list[str] = []
        for _ in range(100):  # let the completion callbacks run
            while not streams[0].empty():
                heard.append(streams[0].get_nowait())
            if "recs" in heard:
                break
            await asyncio.sleep(0)
        return heard

    await on_app(client, subscribe)
    try:
        await _friction(client, secret_headers, "max")
        layout = await _layout(client, secret_headers, "editor", "max")
        # Answered while the embedding is still running: the layout did not wait for it.
        assert gate.calls == 1 and not gate.release.is_set()
        assert layout["degraded"] is True
        widgets = _widgets(layout)
        assert "editor_help_match" not in widgets
        assert widgets["editor_help_tip"]["why"]["source"] == "rule"  # help.yaml's article
        heard = await on_app(client, finish_embedding)
        assert "recs" in heard, "the user's live stream was not told that help is ready"
        layout = await _layout(client, secret_headers, "editor", "max")
        assert layout["degraded"] is False
        assert "editor_help_match" in _widgets(layout)
    finally:
        gate.release.set()
        rec.embedder.query_cache._embedder = gate.inner


async def test_a_failing_recommender_leaves_the_rules_layout(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _world(client, secret_headers, runtime)

    def corrupt(*_: Any) -> Any:
        raise RuntimeError("index file is corrupt")

    monkeypatch.setattr(FaissIndex, "search", corrupt)
    layout = await _layout(client, secret_headers, "home", "ada")
    assert layout["degraded"] is True
    widgets = _widgets(layout)
    assert "peer_integrations" not in widgets
    assert widgets["connect_integrations"]["why"]["source"] == "rule"
    assert "next_activation_step" in widgets  # the rest of the layout is untouched
    inspected = await client.get(
        "/admin/why",
        params={"tenant_id": "acme", "user_id": "ada", "screen": "home"},
        headers=secret_headers,
    )
    assert inspected.status_code == 200
    assert "index file is corrupt" in inspected.text
    reasons = left_out(inspected.text)
    assert reasons["peer_integrations"] == Reason.RECOMMENDER_UNAVAILABLE
    assert "connect_integrations" not in reasons  # the rules' widget stands in


async def test_cohort_shares_of_integrations_are_k_anonymous(pool: Pool) -> None:
    """`integrations.suggested[].peer_adoption` quotes a share only from a cohort of at least k
    tenants of which at least k connected the integration."""
    from app.storage.peers import load_peer_stats

    for n in range(12):
        await pool.execute(
            "INSERT INTO tenants (tenant_id, traits) VALUES ($1, $2)",
            f"legal{n}",
            {"industry": "legal"},
        )
        for integration, users in (("slack", 5), ("docusign", 4)):
            if n < users:
                await pool.execute(
                    "INSERT INTO tenant_integrations VALUES ($1, $2, true, now())",
                    f"legal{n}",
                    integration,
                )
    stats = await load_peer_stats(pool)
    legal = stats.integrations["legal"]
    assert set(legal) == {"slack"}  # four of twelve connected DocuSign: below k = 5
    assert legal["slack"].share == pytest.approx(5 / 12)
    assert set((await load_peer_stats(pool, 4)).integrations["legal"]) == {"slack", "docusign"}
    assert (await load_peer_stats(pool, 6)).integrations == {}


async def test_consent_to_learn_from_other_teams_changes_the_next_decision(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    """Opting out of one purpose (cross_tenant) leaves out the widgets resting on it (reason
    `consent`), quotes no other team's share anywhere, and takes effect at the next decision;
    opting back in restores them."""
    await _world(client, secret_headers, runtime)
    who = {"tenant_id": "acme", "user_id": "ada"}

    async def consent(cross_tenant: bool) -> None:
        r = await client.put("/v1/preferences", params=who, headers=secret_headers,
                             json={"personalization": "full",
                                   "purposes": {"cross_tenant": cross_tenant}})  # fmt: skip
        assert r.status_code == 200, r.text

    assert "peer_integrations" in _widgets(await _layout(client, secret_headers, "home", "ada"))
    await consent(False)
    layout = await _layout(client, secret_headers, "home", "ada")
    widgets = _widgets(layout)
    assert "peer_integrations" not in widgets
    prompt = widgets["connect_integrations"]  # the rules' prompt stands in, without peer shares
    assert all(i["peer_adoption"] is None for i in prompt["props"]["integrations"])
    assert "teams like yours" not in str(layout).lower()
    page = await client.get("/admin/why", params={**who, "screen": "home"},
                            headers=secret_headers)  # fmt: skip
    reasons = left_out(page.text)
    assert reasons["peer_integrations"] == Reason.CONSENT
    assert "cross_tenant" in page.text
    await consent(True)
    assert "peer_integrations" in _widgets(await _layout(client, secret_headers, "home", "ada"))


@pytest.mark.parametrize(
    ("purposes", "field"),
    [({"telepathy": True}, "purposes.telepathy"), ({"necessary": False}, "purposes.necessary")],
)
async def test_unknown_or_required_purposes_are_refused(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], purposes: Any, field: str
) -> None:
    r = await client.put("/v1/preferences", params={"tenant_id": "acme", "user_id": "u"},
                         json={"purposes": purposes}, headers=secret_headers)  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["field"] == field


async def test_a_tenant_withholding_cross_tenant_learning_neither_sees_nor_lends_evidence(
    client: AsyncTestClient[Any], secret_headers: dict[str, str], runtime: Runtime
) -> None:
    """Both directions: its users see no other team's evidence whatever they chose, and from the
    next peer-model build it is not counted as evidence for others."""
    await _world(client, secret_headers, runtime)
    for tenant in ("acme", "peer0"):
        r = await client.put(f"/v1/tenants/{tenant}/consent", headers=secret_headers,
                             json={"purposes": {"cross_tenant": False}})  # fmt: skip
        assert r.status_code == 200, r.text
    r = await client.get("/v1/tenants/acme/consent", headers=secret_headers)
    assert r.json() == {"purposes": {"cross_tenant": False}}
    ada = {"tenant_id": "acme", "user_id": "ada"}
    opt_in = {"purposes": {"cross_tenant": True}}
    r = await client.put("/v1/preferences", params=ada, json=opt_in, headers=secret_headers)
    assert r.status_code == 200  # the user's own choice cannot lift the tenant's
    layout = await _layout(client, secret_headers, "home", "ada")
    assert "peer_integrations" not in _widgets(layout)
    assert "teams like yours" not in str(layout).lower()
    await on_app(client, runtime.refresh_recommender)
    assert runtime.recommender is not None and runtime.recommender.model is not None
    assert runtime.recommender.model.size["successful_peers"] == 7  # peer0 lends nothing now
    r = await client.put("/v1/tenants/acme/consent", headers=secret_headers,
                         json={"purposes": {"necessary": False}})  # fmt: skip
    assert (r.status_code, r.json()["error"]["field"]) == (400, "purposes.necessary")


async def test_segment_consent_categories_on_events_set_the_users_purposes(
    client: AsyncTestClient[Any], secret_headers: dict[str, str]
) -> None:
    """`context.consent.categoryPreferences` (Segment's consent management) is honoured: the
    categories map to purposes in signals.yaml, the latest event's choice is kept."""
    ada = {"tenant_id": "acme", "user_id": "ada"}
    consent = {"categoryPreferences": {"Personalization": False, "Analytics": True,
                                       "Advertising": False, "Unknown": True}}  # fmt: skip
    events = [
        _event("acme", "ada", "identify", traits={"role": "admin"}),
        {**_event("acme", "ada", "track", event="report_created"), "context": {"consent": consent}},
    ]
    await _send(client, secret_headers, events)
    r = await client.get("/v1/preferences", params=ada, headers=secret_headers)
    assert r.json()["purposes"] == {
        "behavioural": False, "cross_tenant": False, "modelled": False, "measurement": True,
    }  # fmt: skip
    page = await client.get("/admin/why", params={**ada, "screen": "home"}, headers=secret_headers)
    reasons = left_out(page.text)
    assert reasons["next_activation_step"] == Reason.CONSENT  # it rests on usage


async def test_the_preference_center_explains_what_each_purpose_shapes(
    client: AsyncTestClient[Any],
    secret_headers: dict[str, str],
    browser_headers: Callable[[str, str], dict[str, str]],
) -> None:
    ada = {"tenant_id": "acme", "user_id": "ada"}
    await _send(
        client, secret_headers, [_event("acme", "ada", "identify", traits={"role": "admin"})]
    )
    choice = {"personalization": "full", "purposes": {"modelled": False}}
    r = await client.put("/v1/preferences", params=ada, headers=secret_headers, json=choice)
    assert r.status_code == 200
    await client.put("/v1/tenants/acme/consent", headers=secret_headers,
                     json={"purposes": {"cross_tenant": False}})  # fmt: skip
    own_browser = browser_headers("acme", "ada")
    r = await client.get("/v1/preferences/explain", params=ada, headers=own_browser)
    assert r.status_code == 200, r.text
    body = r.json()
    by_id = {p["id"]: p for p in body["purposes"]}
    assert by_id["necessary"]["granted"] and by_id["necessary"]["set_by"] == "required"
    assert by_id["modelled"]["granted"] is False and by_id["modelled"]["set_by"] == "you"
    assert by_id["cross_tenant"]["set_by"] == "your organization"
    assert by_id["behavioural"]["granted"] and by_id["behavioural"]["set_by"] == "the level 'full'"
    assert "home: next_activation_step" in by_id["behavioural"]["shapes"]
    assert "home: peer_integrations" in by_id["cross_tenant"]["shapes"]
    assert by_id["behavioural"]["if_off"].startswith("We stop using it, and leave out the ")
    assert "does not allow: learning from teams like yours." in body["summary"]
    assert set(body["controls"]) == {"personalization", "purposes", "notifications"}
    other = await client.get("/v1/preferences/explain", params={**ada, "user_id": "bob"},
                             headers=browser_headers("acme", "ada"))  # fmt: skip
    assert other.status_code == 403
