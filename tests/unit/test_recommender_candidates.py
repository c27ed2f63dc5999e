"""Candidates: profile vectors, peer adoption with k-anonymous proof, friction → help."""

# Seat bands are written with an en dash, as people read them.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from numpy.typing import NDArray

from app.demo.catalog import demo_catalog
from app.demo.population import ERROR_MESSAGES
from recommender.candidates import (
    SOURCE,
    Candidate,
    Cohort,
    FrictionEvent,
    PeerTenant,
    Usage,
    cohort_candidates,
    friction_candidates,
    friction_query,
    help_candidates,
    peer_candidates,
    profile_vector,
    seats_band,
)
from recommender.catalog import Catalog, CatalogItem
from recommender.embedder import HashingEmbedder, SentenceTransformerEmbedder, normalize_rows
from recommender.index import ExactIndex, FaissIndex
from tests.embedders import shared_minilm

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FINTECH_MID = Cohort("fintech", "10–50")
CATALOG = demo_catalog()


def _unit(*values: float) -> NDArray[np.float32]:
    vector: NDArray[np.float32] = normalize_rows(np.array([values], dtype=np.float32))[0]
    return vector


# --- profile vectors ------------------------------------------------------------------------------


def test_profile_vector_weighs_recent_use_most() -> None:
    vectors = {"a": _unit(1, 0, 0), "b": _unit(0, 1, 0)}
    recent_b = profile_vector(
        [Usage("a", NOW - timedelta(days=90)), ("b", NOW - timedelta(days=1))],
        vectors.get,
        now=NOW,
    )
    assert recent_b is not None
    assert recent_b[1] > 2 * recent_b[0] > 0
    assert abs(float(np.linalg.norm(recent_b)) - 1.0) < 1e-5
    often_a = profile_vector(
        [("a", NOW.timestamp() - 86_400 * d) for d in range(10)] + [("b", NOW.timestamp())],
        vectors.get,
        now=NOW.timestamp(),
    )
    assert often_a is not None
    # Ten daily uses weigh log1p(their decayed sum) against log1p(1) for one use today: more,
    # without drowning the rest.
    summed = sum(0.5 ** (d / 30) for d in range(10))
    assert often_a[0] / often_a[1] == pytest.approx(np.log1p(summed) / np.log1p(1.0), rel=1e-4)
    assert often_a[1] > 0.25


def test_profile_vector_skips_unknown_items() -> None:
    vectors = {"a": _unit(1, 0)}
    assert profile_vector([("nope", NOW)], vectors.get, now=NOW) is None
    assert profile_vector([], vectors.get, now=NOW) is None
    only_a = profile_vector([("a", NOW), ("nope", NOW)], vectors.get, now=NOW)
    assert only_a is not None
    np.testing.assert_allclose(only_a, vectors["a"], atol=1e-6)


def test_seats_bands() -> None:
    assert [seats_band(s) for s in (None, 0, 3, 10, 49, 50, 199, 200, 5000)] == [
        None,
        None,
        "1–10",
        "10–50",
        "10–50",
        "50–200",
        "50–200",
        "200+",
        "200+",
    ]


# --- peers ----------------------------------------------------------------------------------------


def _fintech_world() -> tuple[ExactIndex, dict[str, PeerTenant]]:
    """Ten fintech 10–50 seat tenants: 7 connected Slack in their first week, one later; all use
    Plaid; 4 use Stripe. Five healthcare tenants, far away, use Epic. A failed fintech tenant
    adopted Salesforce."""
    peers: dict[str, PeerTenant] = {}
    vectors: list[NDArray[np.float32]] = []
    rng = np.random.default_rng(1)
    for n in range(10):
        adopted: dict[str, float] = {"plaid": 1.0}
        if n < 7:
            adopted["slack"] = 2.0
        elif n == 7:
            adopted["slack"] = 30.0
        if n < 4:
            adopted["stripe"] = 10.0
        peers[f"fin{n}"] = PeerTenant(f"fin{n}", FINTECH_MID, adopted)
        vectors.append(_unit(1, 0.1 * rng.random(), 0.05 * n))
    for n in range(5):
        peers[f"care{n}"] = PeerTenant(f"care{n}", Cohort("healthcare", "10–50"), {"epic": 1.0})
        vectors.append(_unit(0, 1, 0.05 * n))
    peers["failed"] = PeerTenant("failed", FINTECH_MID, {"salesforce": 1.0}, succeeded=False)
    vectors.append(_unit(1, 0, 0))
    index = ExactIndex(3)
    index.add(list(peers), np.stack(vectors))
    return index, peers


def _recommend(**overrides: object) -> list[Candidate]:
    index, peers = _fintech_world()
    args: dict[str, object] = {
        "tenant_id": "me",
        "cohort": FINTECH_MID,
        "neighbours": 10,
        "limit": 5,
        "role": "admin",
    }
    args.update(overrides)
    return peer_candidates(_unit(1, 0.05, 0.2), index, peers, CATALOG, **args)  # type: ignore[arg-type]


def test_peers_recommend_what_similar_successful_tenants_adopted() -> None:
    found = _recommend()
    ids = [c.item_id for c in found]
    assert ids == ["plaid", "slack", "stripe"]
    assert "salesforce" not in ids  # adopted only by a tenant that did not succeed
    assert "epic" not in ids  # adopted by tenants unlike this one
    assert all(c.source == SOURCE == "recommender" for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert found[0].score == pytest.approx(1.0)
    assert 0.0 < found[2].confidence < found[1].confidence < found[0].confidence <= 1.0
    assert found[1].kind == "integration"


def test_peer_proof_quotes_the_cohort_share_in_the_first_week() -> None:
    slack = next(c for c in _recommend() if c.item_id == "slack")
    assert slack.evidence.summary == (
        "Teams like yours (fintech, 10–50 seats): 7 in 10 connected Slack in their first week."
    )
    assert slack.evidence.cohort == "fintech, 10–50 seats"
    assert slack.evidence.cohort_tenants == 10
    assert slack.evidence.share == 0.7
    # Four tenants use Stripe: fewer than k = 5, so no number, from the cohort or the neighbours.
    stripe = next(c for c in _recommend() if c.item_id == "stripe")
    assert stripe.evidence.summary == "Teams whose work looks most like yours use Stripe."
    assert stripe.evidence.share is None and stripe.evidence.cohort is None
    # With k = 4 the cohort's share is quoted; with k = 3 only three used it in the first week.
    stripe = next(c for c in _recommend(min_tenants=4) if c.item_id == "stripe")
    assert stripe.evidence.summary == "Teams like yours (fintech, 10–50 seats): 4 in 10 use Stripe."


def _ids(**overrides: object) -> list[str]:
    return [c.item_id for c in _recommend(**overrides)]


def test_peers_never_recommend_adopted_dismissed_or_unavailable_items() -> None:
    assert _ids() == ["plaid", "slack", "stripe"]  # what each exclusion below takes away
    assert _ids(adopted={"plaid"}) == ["slack", "stripe"]
    assert _ids(dismissed={"slack"}) == ["plaid", "stripe"]
    assert _ids(unavailable={"stripe"}) == ["plaid", "slack"]
    assert _ids(adopted={"plaid"}, dismissed={"slack"}, unavailable={"stripe"}) == []
    # Only the kinds asked for, and only items for the user's role.
    assert _ids(kinds=("integration",)) == ["plaid", "slack", "stripe"]
    assert _ids(kinds=("template",)) == []
    assert _ids(role="maker") == []  # integrations are for admins


def test_peers_of_fewer_than_five_tenants_recommend_nothing() -> None:
    index, peers = _fintech_world()

    def among(names: list[str], me: bool = False) -> list[str]:
        """What an admin is recommended when the peers are only `names` (and the user's own
        tenant, with `me`)."""
        few = {k: v for k, v in peers.items() if k in names}
        small = ExactIndex(3)
        small.add(list(few), np.stack([index.vector(k) for k in few]))  # type: ignore[misc]
        if me:
            few["me"] = PeerTenant("me", FINTECH_MID, {"plaid": 1.0})
            small.add(["me"], _unit(1, 0, 0)[None, :])
        found = peer_candidates(
            _unit(1, 0, 0),
            small,
            few,
            CATALOG,
            tenant_id="me",
            cohort=FINTECH_MID,
            min_support=1,
            role="admin",
        )
        return [c.item_id for c in found]

    four, five = ["fin0", "fin1", "fin2", "fin3"], ["fin0", "fin1", "fin2", "fin3", "fin4"]
    assert among(five) == ["plaid", "slack", "stripe"]  # five tenants: enough
    assert among(four) == []
    # The user's own tenant is never its own peer, so it cannot make up the numbers either.
    assert among(four, me=True) == []


def test_peer_proof_widens_the_cohort_or_quotes_no_numbers() -> None:
    # No tenant of the user's seat band: the industry as a whole is quoted.
    slack = next(c for c in _recommend(cohort=Cohort("fintech", "200+")) if c.item_id == "slack")
    assert slack.evidence.summary.startswith("Teams like yours (fintech): 7 in 10 connected Slack")
    # An industry nobody else is in: no cohort; a count of the most similar teams only when it
    # rests on at least five of them, and never another tenant's name.
    slack = next(c for c in _recommend(cohort=Cohort("legal", "10–50")) if c.item_id == "slack")
    assert slack.evidence.cohort is None
    assert slack.evidence.share is None
    assert slack.evidence.summary == "8 of the 10 teams whose work looks most like yours use Slack."
    stripe = next(c for c in _recommend(cohort=Cohort(None, "1–10")) if c.item_id == "stripe")
    assert stripe.evidence.summary == "Teams whose work looks most like yours use Stripe."


def test_peer_proof_does_not_quote_fewer_than_two_in_ten() -> None:
    _, peers = _fintech_world()
    rare = {
        **{k: p for k, p in peers.items() if k != "fin0"},
        "fin0": PeerTenant("fin0", FINTECH_MID, {"plaid": 1.0, "salesforce": 3.0}),
    }
    few = {"tenant_id": "me", "cohort": FINTECH_MID, "role": "admin", "limit": 10, "min_tenants": 1}
    found = cohort_candidates(rare, CATALOG, **few)  # type: ignore[arg-type]
    assert [c.item_id for c in found] == ["plaid", "slack", "stripe"]  # 1 in 10: not worth quoting
    # Two in ten are.
    fin1 = rare["fin1"]
    two = {**rare, "fin1": PeerTenant("fin1", FINTECH_MID, {**fin1.adopted, "salesforce": 3.0})}
    found = cohort_candidates(two, CATALOG, **few)  # type: ignore[arg-type]
    salesforce = next(c for c in found if c.item_id == "salesforce")
    assert salesforce.evidence.summary == (
        "Teams like yours (fintech, 10–50 seats): 2 in 10 use Salesforce."
    )


def test_peer_proof_is_k_anonymous_in_both_the_cohort_and_the_adopters() -> None:
    """A share is quoted only from a cohort of at least k tenants of which at least k did it:
    two of a big cohort are as identifying as two of a small one."""
    _, peers = _fintech_world()
    crowd = {
        f"big{n}": PeerTenant(f"big{n}", FINTECH_MID, {"plaid": 1.0, **({"salesforce": 3.0}
                                                                        if n < 4 else {})})
        for n in range(20)
    }  # fmt: skip
    found = cohort_candidates(
        {**peers, **crowd}, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin", limit=10
    )
    assert "salesforce" not in [c.item_id for c in found]  # 4 of 30 did: below k = 5
    five = {**crowd, "big4": PeerTenant("big4", FINTECH_MID, {"plaid": 1.0, "salesforce": 3.0})}
    found = cohort_candidates(
        {**peers, **five}, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin", limit=10
    )
    salesforce = next(c for c in found if c.item_id == "salesforce")
    assert salesforce.evidence.summary == (
        "Teams like yours (fintech, 10–50 seats): 2 in 10 use Salesforce."  # 5 of 30
    )


def test_peers_respect_the_industries_an_item_is_for() -> None:
    # Stripe is for fintech and ecommerce teams; a similar healthcare team is not offered it.
    ids = [c.item_id for c in _recommend(cohort=Cohort("healthcare", "10–50"))]
    assert "stripe" not in ids
    assert "slack" in ids  # for every industry


def test_a_team_with_nothing_used_gets_its_cohorts_adoptions() -> None:
    _, peers = _fintech_world()
    found = cohort_candidates(peers, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin")
    assert [c.item_id for c in found] == ["plaid", "slack"]  # Stripe: 4 tenants, fewer than k
    slack = found[1]
    assert slack.evidence.summary == (
        "Teams like yours (fintech, 10–50 seats): 7 in 10 connected Slack in their first week."
    )
    assert slack.score == pytest.approx(0.8)  # 8 of the 10 successful fintech tenants
    assert 0.0 < slack.confidence < slack.score
    # Never what the team has, never from a cohort of fewer than five tenants.
    assert [
        c.item_id
        for c in cohort_candidates(
            peers, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin", adopted={"plaid"}
        )
    ] == ["slack"]
    assert (
        cohort_candidates(
            peers, CATALOG, tenant_id="me", cohort=Cohort("legal", None), role="admin"
        )
        == []
    )
    four = {k: p for k, p in peers.items() if k in {"fin0", "fin1", "fin2", "fin3"}}
    five = {**four, "fin4": peers["fin4"]}
    assert cohort_candidates(four, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin") == []
    assert [
        c.item_id
        for c in cohort_candidates(five, CATALOG, tenant_id="me", cohort=FINTECH_MID, role="admin")
    ] == ["plaid", "slack"]  # Slack by all five; Stripe by four of them


def test_peer_evidence_never_names_another_tenant() -> None:
    _, peers = _fintech_world()
    for cohort in (FINTECH_MID, Cohort("fintech", "200+"), Cohort(None, None)):
        found = _recommend(cohort=cohort)
        assert [c.item_id for c in found] == ["plaid", "slack", "stripe"], cohort
        for candidate in found:
            said = candidate.evidence.summary + repr(candidate.evidence.drivers)
            assert not any(tenant in said for tenant in peers), said


def test_peers_through_a_faiss_index_match_the_exact_index() -> None:
    exact, peers = _fintech_world()
    index = FaissIndex(3)
    index.add(exact.ids(), np.stack([exact.vector(i) for i in exact.ids()]))  # type: ignore[misc]
    args: Mapping[str, object] = {"tenant_id": "me", "cohort": FINTECH_MID, "neighbours": 10}
    user = _unit(1, 0.05, 0.2)
    through_faiss = peer_candidates(user, index, peers, CATALOG, role="admin", **args)  # type: ignore[arg-type]
    through_exact = peer_candidates(user, exact, peers, CATALOG, role="admin", **args)  # type: ignore[arg-type]
    assert [c.item_id for c in through_exact] == ["plaid", "slack", "stripe"]
    assert through_faiss == through_exact


# --- friction → help ------------------------------------------------------------------------------


def test_friction_query_follows_the_most_frequent_feature_and_message() -> None:
    events = [
        FrictionEvent("reports", "The report timed out while loading"),
        FrictionEvent("automations", "Automation paused after 3 failed runs"),
        FrictionEvent("automations", "Couldn't save the automation: a step has no action"),
        FrictionEvent("automations", "Automation paused after 3 failed runs"),
    ]
    assert friction_query(events) == (
        "automations",
        "automations: Automation paused after 3 failed runs",
        3,
    )
    # A tie between messages goes to the first in order of text, whatever the order of events:
    # the same trouble always makes the same query, so its vector is reused.
    tied = [
        *events,
        FrictionEvent("automations", "Couldn't save the automation: a step has no action"),
    ]
    for order in (tied, tied[::-1]):
        query = friction_query(order)
        assert query is not None
        assert query[1] == "automations: Automation paused after 3 failed runs"
    assert friction_query([]) is None
    assert friction_query([FrictionEvent("api")]) == ("api", "api", 1)


def _help_index(embedder: HashingEmbedder | SentenceTransformerEmbedder) -> ExactIndex:
    help_items = CATALOG.of_kind("article", "lesson")
    index = ExactIndex(embedder.dim)
    index.add([i.id for i in help_items], embedder.embed(CATALOG.texts([i.id for i in help_items])))
    return index


@pytest.fixture(scope="module")
def minilm_help() -> tuple[SentenceTransformerEmbedder, ExactIndex]:
    embedder = shared_minilm()
    return embedder, _help_index(embedder)


@pytest.mark.parametrize(
    ("feature", "message"),
    [(feature, message) for feature, messages in ERROR_MESSAGES.items() for message in messages],
)
def test_every_error_the_demo_shows_finds_help_about_its_feature(
    minilm_help: tuple[SentenceTransformerEmbedder, ExactIndex], feature: str, message: str
) -> None:
    embedder, index = minilm_help
    events = [FrictionEvent(feature, message)] * 3
    (best,) = friction_candidates(events, embedder, index, CATALOG)
    item = CATALOG[best.item_id]
    assert feature in item.tags, (message, best.item_id)
    assert best.kind in ("article", "lesson")
    assert best.source == "recommender"
    assert best.confidence >= 0.5
    assert f"“{message}”" in best.evidence.summary
    assert ("friction.errors", 3) in best.evidence.drivers


def test_specific_errors_find_the_specific_article(
    minilm_help: tuple[SentenceTransformerEmbedder, ExactIndex],
) -> None:
    embedder, index = minilm_help
    cases = [
        ("integrations", "Sync failed: the connection's access token has expired",
         "reconnect-expired-integrations"),
        ("custom_fields", "Couldn't save the field: a field with this name already exists",
         "duplicate-field-names"),
        ("reports", "The report timed out while loading", "report-timeouts"),
    ]  # fmt: skip
    for feature, message, article in cases:
        (best,) = friction_candidates([FrictionEvent(feature, message)], embedder, index, CATALOG)
        assert best.item_id == article, message


def test_dismissed_help_is_not_offered_again(
    minilm_help: tuple[SentenceTransformerEmbedder, ExactIndex],
) -> None:
    embedder, index = minilm_help
    events = [FrictionEvent("reports", "The report timed out while loading")] * 3
    first = friction_candidates(events, embedder, index, CATALOG, limit=3)
    assert len(first) == 3
    again = friction_candidates(
        events, embedder, index, CATALOG, dismissed={first[0].item_id}, limit=3
    )
    assert [c.item_id for c in again[:2]] == [c.item_id for c in first[1:]]
    assert first[0].item_id not in [c.item_id for c in again]


def test_help_candidates_leave_out_weak_matches() -> None:
    embedder = HashingEmbedder(64)
    index = _help_index(embedder)
    catalog = Catalog([*CATALOG.values(), CatalogItem(id="x", kind="template", title="T")])
    query = embedder.embed_query("zzzz qqqq")  # shares no word with any article
    assert help_candidates(query, index, catalog, min_similarity=0.3) == []
    weak = help_candidates(query, index, catalog, min_similarity=-1.0, limit=3)
    assert len(weak) == 3 and all(c.score < 0.3 for c in weak)  # there, but below the bar
    query = embedder.embed_query("Set up single sign-on")
    (best,) = help_candidates(query, index, catalog, feature="sso")
    assert best.item_id in {"kb_sso_setup", "set-up-sso"}
    assert best.evidence.drivers[0] == ("friction.feature", "sso")
