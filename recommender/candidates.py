"""Recommender candidates for layout slots, from plain inputs: no database, no clock, no I/O.

Two generators, each returning `Candidate`s with their source, score, confidence and the evidence
for their "why":

- `peer_candidates`: the templates and integrations that the tenants most similar to this one
  adopted, among tenants that succeeded (activated, retained), minus what this user or tenant
  already adopted, dismissed or cannot use on their plan. Tenants are compared by vectors built with
  `profile_vector` (a recency-weighted mean of the embeddings of the catalog items they used).
  Peer proof is k-anonymous (k = `min_tenants`): nothing is recommended from fewer than k distinct
  peer tenants, and a number is quoted only when it rests on a cohort of at least k tenants of
  which at least k did the thing (else the why says so without a number, or the item stands
  aside); no other tenant or user is ever named. Callers skip this generator for users whose
  personalization is `basic` (no cross-tenant similarity).
- `help_candidates`: recent errors (feature and message) become a text query over help articles
  and lessons; the closest match, favouring help about the failing feature, fills a help tip.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import numpy as np

from recommender.catalog import CatalogItem, ItemKind
from recommender.embedder import Vector
from recommender.index import VectorIndex

__all__ = [
    "SOURCE",
    "Candidate",
    "Cohort",
    "Cohorts",
    "Evidence",
    "FrictionEvent",
    "PeerTenant",
    "Usage",
    "cohort_candidates",
    "friction_candidates",
    "friction_query",
    "help_candidates",
    "peer_candidates",
    "profile_vector",
    "seats_band",
    "top_message",
]

SOURCE: Final = "recommender"
MIN_TENANTS: Final = 5  # k-anonymity: the fewest distinct tenants any peer statement rests on
_DAY: Final = 86_400.0
_Z: Final = 1.2816  # one-sided 90% for the Wilson lower bound
MIN_TENTHS: Final = 2  # "1 in 10 teams like yours" persuades no one: quote from 2 in 10


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a candidate is there: a sentence for people and the signals it rests on."""

    summary: str
    drivers: tuple[tuple[str, str | int | float], ...] = ()
    cohort: str | None = None  # the cohort quoted, when one is (never fewer than 5 tenants)
    cohort_tenants: int = 0
    share: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One recommended catalog item for a slot, scored and explained."""

    kind: ItemKind
    item_id: str
    score: float
    confidence: float
    source: str
    evidence: Evidence


# --------------------------------------------------------------------------------------------------
# Profile vectors.


@dataclass(frozen=True, slots=True)
class Usage:
    """A user or tenant used a catalog item at `at` (epoch seconds or an aware datetime)."""

    item_id: str
    at: float | datetime


def _seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def profile_vector(
    usage: Iterable[Usage | tuple[str, float | datetime]],
    vector_of: Callable[[str], Vector | None],
    *,
    now: float | datetime,
    half_life_days: float = 30.0,
) -> Vector | None:
    """The recency-weighted mean of the embeddings of the items used, at unit length.

    Each use weighs 0.5 ** (age / half-life); an item's weight is log1p of its summed weights, so
    an item used daily leads without drowning the rest. Items without a vector are skipped; None
    when nothing is left.
    """
    t_now = _seconds(now)
    weights: dict[str, float] = {}
    for entry in usage:
        item_id, at = (entry.item_id, entry.at) if isinstance(entry, Usage) else entry
        age_days = max(0.0, (t_now - _seconds(at)) / _DAY)
        weights[item_id] = weights.get(item_id, 0.0) + 0.5 ** (age_days / half_life_days)
    total: Vector | None = None
    for item_id, weight in weights.items():
        vector = vector_of(item_id)
        if vector is None:
            continue
        part = np.asarray(vector, dtype=np.float32) * np.float32(math.log1p(weight))
        total = part if total is None else total + part
    if total is None:
        return None
    norm = float(np.linalg.norm(total))
    if norm == 0.0:
        return None
    out: Vector = (total / norm).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------
# Peers.


def seats_band(seats: int | None) -> str | None:
    """The seat band a cohort label quotes: 1 to 10, 10 to 50, 50 to 200 or 200+ seats."""
    if seats is None or seats < 1:
        return None
    if seats < 10:
        return "1\u201310"  # \u2013: the en dash that cohort labels print
    if seats < 50:
        return "10\u201350"
    if seats < 200:
        return "50\u2013200"
    return "200+"


@dataclass(frozen=True, slots=True)
class Cohort:
    """A group of tenants that peer proof may quote: industry and seat band."""

    industry: str | None = None
    seats: str | None = None  # a `seats_band`

    def label(self) -> str:
        parts = [p for p in (self.industry, f"{self.seats} seats" if self.seats else None) if p]
        return ", ".join(parts) or "all teams"

    def coarser(self) -> Cohort | None:
        """The same industry without the seat band, then nothing."""
        if self.seats is not None and self.industry is not None:
            return Cohort(self.industry, None)
        return None


@dataclass(frozen=True, slots=True)
class PeerTenant:
    """A tenant whose adoption can be learned from: its cohort and what it adopted, when.

    `adopted` maps catalog item ids to the days from the tenant's start to its first use.
    """

    tenant_id: str
    cohort: Cohort
    adopted: Mapping[str, float]
    succeeded: bool = True


class Cohorts:
    """The successful peers of every cohort and of every industry, grouped once per peer model
    (a decision only looks its groups up)."""

    def __init__(self, peers: Mapping[str, PeerTenant]) -> None:
        self.by_cohort: dict[Cohort, list[PeerTenant]] = {}
        self.by_industry: dict[str | None, list[PeerTenant]] = {}
        for peer in peers.values():
            if peer.succeeded:
                self.by_cohort.setdefault(peer.cohort, []).append(peer)
                self.by_industry.setdefault(peer.cohort.industry, []).append(peer)

    def group(self, cohort: Cohort, tenant_id: str) -> list[PeerTenant]:
        """The cohort's successful peers other than `tenant_id` (an industry-only cohort: every
        seat band of the industry)."""
        if cohort.seats is None:
            group = self.by_industry.get(cohort.industry, [])
        else:
            group = self.by_cohort.get(cohort, [])
        return [p for p in group if p.tenant_id != tenant_id]

    def quotable(
        self, cohort: Cohort, tenant_id: str, min_tenants: int
    ) -> tuple[Cohort, list[PeerTenant]] | None:
        """The narrowest cohort, from `cohort` widening to its industry, whose group spans at
        least `min_tenants` tenants, with that group; None when even the widest is smaller."""
        current: Cohort | None = cohort
        while current is not None:
            group = self.group(current, tenant_id)
            if len({p.tenant_id for p in group}) >= min_tenants:
                return current, group
            current = current.coarser()
        return None


_VERBS: Final[Mapping[str, tuple[str, str]]] = {
    # kind → (past tense phrase, present tense phrase); {t} is the title
    "integration": ("connected {t}", "use {t}"),
    "template": ("started from the {t} template", "use the {t} template"),
    "feature": ("used {t}", "use {t}"),
    "lesson": ("took the lesson “{t}”", "took the lesson “{t}”"),
    "article": ("read “{t}”", "read “{t}”"),
}


def _wilson_lower(successes: float, n: float) -> float:
    if n <= 0:
        return 0.0
    p = successes / n
    z2 = _Z * _Z
    centre = p + z2 / (2 * n)
    margin = _Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z2 / n))


def _cohort_proof(
    item: CatalogItem,
    cohort: Cohort,
    cohorts: Cohorts,
    tenant_id: str,
    min_tenants: int,
    first_week_days: float,
) -> Evidence | None:
    """A quotable statement about the item's adoption in the user's cohort, if k-anonymous."""
    found = cohorts.quotable(cohort, tenant_id, min_tenants)
    if found is None:
        return None
    current, group = found
    n = len(group)
    early = sum(1 for p in group if p.adopted.get(item.id, math.inf) <= first_week_days)
    ever = sum(1 for p in group if item.id in p.adopted)
    past, present = _VERBS[item.kind]
    if early / n >= 0.3 and early >= min_tenants:
        did, phrase = early, past.format(t=item.title) + " in their first week"
    else:
        did, phrase = ever, present.format(t=item.title)
    if did < min_tenants:  # k-anonymous: a number rests on at least k tenants that did it
        return None
    share = did / n
    tenths = round(share * 10)
    if tenths < MIN_TENTHS:
        return None
    label = current.label()
    return Evidence(
        summary=f"Teams like yours ({label}): {tenths} in 10 {phrase}.",
        drivers=(("peers.cohort", label), ("peers.share", round(share, 2))),
        cohort=label,
        cohort_tenants=n,
        share=round(share, 2),
    )


def _offerable(
    item: CatalogItem | None,
    excluded: Collection[str],
    kinds: Collection[ItemKind],
    role: str | None,
) -> bool:
    """An item that exists, that the user's team has not adopted, dismissed or lost to its plan,
    of a kind asked for and meant for the user's role."""
    return (
        item is not None and item.id not in excluded and item.kind in kinds and item.for_role(role)
    )


def peer_candidates(
    user_vector: Vector,
    peer_index: VectorIndex,
    peers: Mapping[str, PeerTenant],
    catalog: Mapping[str, CatalogItem],
    *,
    tenant_id: str,
    cohort: Cohort,
    adopted: Collection[str] = (),
    dismissed: Collection[str] = (),
    unavailable: Collection[str] = (),
    role: str | None = None,
    kinds: Collection[ItemKind] = ("integration", "template"),
    neighbours: int = 30,
    min_support: int = 2,
    min_tenants: int = MIN_TENANTS,
    first_week_days: float = 7.0,
    limit: int = 3,
    cohorts: Cohorts | None = None,
) -> list[Candidate]:
    """What the most similar successful tenants adopted that this user has not, best first.

    `peer_index` holds one vector per peer tenant (ids = tenant ids, as in `peers`). The user's own
    tenant is never its own peer. An item needs `min_support` adopting neighbours; nothing is
    returned unless the neighbours span at least `min_tenants` tenants. The score is the similarity-
    weighted share of neighbours that adopted the item; the confidence is a lower bound (Wilson,
    one-sided 90%) of the plain share.
    """
    hits = peer_index.search(np.asarray(user_vector, dtype=np.float32)[None, :], neighbours + 1)
    chosen: list[tuple[PeerTenant, float]] = []
    for peer_id, similarity in zip(hits.ids[0], np.asarray(hits.scores[0]).tolist(), strict=True):
        peer = peers.get(peer_id)
        if peer is None or peer_id == tenant_id or not peer.succeeded:
            continue
        chosen.append((peer, max(0.0, similarity)))
        if len(chosen) == neighbours:
            break
    if len({p.tenant_id for p, _ in chosen}) < min_tenants:
        return []
    excluded = set(adopted) | set(dismissed) | set(unavailable)
    weight_total = sum(s for _, s in chosen) or 1.0
    weighted: dict[str, float] = {}
    support: Counter[str] = Counter()
    for peer, similarity in chosen:
        for item_id in peer.adopted:
            weighted[item_id] = weighted.get(item_id, 0.0) + similarity
            support[item_id] += 1
    cohorts = cohorts or Cohorts(peers)

    out: list[Candidate] = []
    for item_id, weight in weighted.items():
        item = catalog.get(item_id)
        if (
            item is None
            or not _offerable(item, excluded, kinds, role)
            or support[item_id] < min_support
            or (cohort.industry is not None and not item.for_industry(cohort.industry))
        ):
            continue
        score = weight / weight_total
        proof = _cohort_proof(item, cohort, cohorts, tenant_id, min_tenants, first_week_days)
        if proof is None:
            phrase = _VERBS[item.kind][1].format(t=item.title)
            n = support[item_id]
            if n >= min_tenants:  # a count that rests on at least k tenants
                summary = (
                    f"{n} of the {len(chosen)} teams whose work looks most like yours {phrase}."
                )
            else:
                summary = f"Teams whose work looks most like yours {phrase}."
            proof = Evidence(
                summary=summary,
                drivers=(("peers.similar_teams", len(chosen)),),
            )
        out.append(
            Candidate(
                kind=item.kind,
                item_id=item_id,
                score=round(score, 4),
                confidence=round(_wilson_lower(support[item_id], len(chosen)), 3),
                source=SOURCE,
                evidence=proof,
            )
        )
    out.sort(key=lambda c: (-c.score, c.item_id))
    return out[:limit]


def cohort_candidates(
    peers: Mapping[str, PeerTenant],
    catalog: Mapping[str, CatalogItem],
    *,
    tenant_id: str,
    cohort: Cohort,
    adopted: Collection[str] = (),
    dismissed: Collection[str] = (),
    unavailable: Collection[str] = (),
    role: str | None = None,
    kinds: Collection[ItemKind] = ("integration", "template"),
    min_tenants: int = MIN_TENANTS,
    first_week_days: float = 7.0,
    limit: int = 3,
    cohorts: Cohorts | None = None,
) -> list[Candidate]:
    """For a team with no usage to compare yet: what most successful tenants of its cohort adopted.

    The cohort is the industry and seat band, widened to the industry when the band has fewer than
    `min_tenants` successful tenants; nothing is returned for a cohort smaller than that. The score
    is the share of the cohort that adopted the item; the confidence its Wilson lower bound.
    """
    cohorts = cohorts or Cohorts(peers)
    found = cohorts.quotable(cohort, tenant_id, min_tenants)
    if found is None or not found[1]:
        return []
    current, group = found
    excluded = set(adopted) | set(dismissed) | set(unavailable)
    counts: Counter[str] = Counter(item for p in group for item in p.adopted)
    out: list[Candidate] = []
    for item_id, count in counts.items():
        item = catalog.get(item_id)
        if item is None or not _offerable(item, excluded, kinds, role):
            continue
        if not item.for_industry(cohort.industry):
            continue
        proof = _cohort_proof(item, current, cohorts, tenant_id, min_tenants, first_week_days)
        if proof is None:
            continue  # fewer than one in ten: not worth recommending on cohort evidence alone
        out.append(
            Candidate(
                kind=item.kind,
                item_id=item_id,
                score=round(count / len(group), 4),
                confidence=round(_wilson_lower(count, len(group)), 3),
                source=SOURCE,
                evidence=proof,
            )
        )
    out.sort(key=lambda c: (-c.score, c.item_id))
    return out[:limit]


# --------------------------------------------------------------------------------------------------
# Friction → help.


@dataclass(frozen=True, slots=True)
class FrictionEvent:
    """An error the user saw: the feature it happened in and the message shown."""

    feature: str
    message: str = ""


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> Vector: ...


def friction_query(events: Sequence[FrictionEvent]) -> tuple[str, str, int] | None:
    """(feature, query text, errors for it) for the feature with the most errors; None if none.

    The query is the feature's name and its most frequent message (ties: the first in order of
    text), so that the same trouble always makes the same query and its embedding is reused:
    users who hit the same error share one cached vector.
    """
    if not events:
        return None
    by_feature = Counter(e.feature for e in events)
    feature, count = min(by_feature.items(), key=lambda kv: (-kv[1], kv[0]))
    message = top_message(events, feature)
    text = feature.replace("_", " ") + (": " + message if message else "")
    return feature, text, count


def top_message(events: Sequence[FrictionEvent], feature: str) -> str:
    """The message shown most often with errors in `feature` (ties: the first in order of text);
    '' when none had one."""
    messages = Counter(e.message.strip() for e in events if e.feature == feature and e.message)
    return min(messages.items(), key=lambda kv: (-kv[1], kv[0]))[0] if messages else ""


def help_candidates(
    query_vector: Vector,
    help_index: VectorIndex,
    catalog: Mapping[str, CatalogItem],
    *,
    feature: str | None = None,
    errors: int = 0,
    message: str | None = None,
    dismissed: Collection[str] = (),
    kinds: Collection[ItemKind] = ("article", "lesson"),
    feature_boost: float = 0.1,
    min_similarity: float = 0.2,
    search_k: int = 20,
    limit: int = 1,
) -> list[Candidate]:
    """Help articles and lessons closest to a friction query, best first.

    `help_index` holds help vectors (ids = catalog ids). Items tagged with the failing `feature`
    get `feature_boost` added to their cosine similarity; items below `min_similarity` are left out.
    The confidence rises with the similarity: 0.5 at 0.35, 0.9 at 0.55 and above.
    """
    hits = help_index.search(np.asarray(query_vector, dtype=np.float32)[None, :], search_k)
    scored: list[tuple[float, float, CatalogItem]] = []
    for item_id, similarity in zip(hits.ids[0], hits.scores[0], strict=True):
        item = catalog.get(item_id)
        if item is None or item.kind not in kinds or item_id in dismissed:
            continue
        if similarity < min_similarity:
            continue
        on_topic = feature is not None and feature in item.tags
        scored.append((similarity + (feature_boost if on_topic else 0.0), similarity, item))
    scored.sort(key=lambda s: (-s[0], s[2].id))
    out: list[Candidate] = []
    for score, similarity, item in scored[:limit]:
        confidence = min(0.9, max(0.1, 0.5 + 2.0 * (score - 0.35)))
        where = f" in {feature.replace('_', ' ')}" if feature else ""
        if message and errors > 1:
            summary = f"You hit “{message}”{where} {errors} times just now; this {item.kind} helps."
        elif errors > 1:
            summary = f"You hit {errors} errors{where} just now; this {item.kind} helps."
        else:
            summary = f"This {item.kind} is the closest match to the problem you ran into{where}."
        drivers: list[tuple[str, str | int | float]] = [("help.match", round(similarity, 2))]
        if feature:
            drivers.insert(0, ("friction.feature", feature))
        if errors:
            drivers.insert(1, ("friction.errors", errors))
        out.append(
            Candidate(
                kind=item.kind,
                item_id=item.id,
                score=round(score, 4),
                confidence=round(confidence, 3),
                source=SOURCE,
                evidence=Evidence(summary=summary, drivers=tuple(drivers)),
            )
        )
    return out


def friction_candidates(
    events: Sequence[FrictionEvent],
    embedder: QueryEmbedder,
    help_index: VectorIndex,
    catalog: Mapping[str, CatalogItem],
    *,
    dismissed: Collection[str] = (),
    limit: int = 1,
) -> list[Candidate]:
    """`friction_query` → cached query embedding → `help_candidates`."""
    query = friction_query(events)
    if query is None:
        return []
    feature, text, count = query
    return help_candidates(
        embedder.embed_query(text),
        help_index,
        catalog,
        feature=feature,
        errors=count,
        message=top_message(events, feature) or None,
        dismissed=dismissed,
        limit=limit,
    )
