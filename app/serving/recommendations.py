"""The recommender at the edge: candidates for layout slots, from a model of peers.

The peer model is rebuilt in the background from every tenant's adoption (`Recommender.rebuild`);
a decision computes its candidates from the model in memory, within its time budget
(`Recommender.recommend`). The catalog's vectors come from `app.serving.catalog_index`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

from app.engine.profile import ProfileData
from app.engine.recs import RecDriver, RecItem, Recs, RecsStatus
from app.engine.vocabulary import Vocabulary
from app.serving.catalog_index import CatalogIndex
from app.storage.db import Pool
from app.storage.peers import TenantAdoption, load_adoption
from app.telemetry import tracer
from recommender.candidates import (
    MIN_TENANTS,
    Candidate,
    Cohort,
    Cohorts,
    FrictionEvent,
    PeerTenant,
    Usage,
    cohort_candidates,
    friction_query,
    help_candidates,
    peer_candidates,
    profile_vector,
    seats_band,
)
from recommender.catalog import CatalogItem, off_plan
from recommender.embedder import Embedder, Vector
from recommender.index import ExactIndex, FaissIndex, VectorIndex

log = logging.getLogger("cairn.recommender")


RECENT_DAYS = 30  # a tenant that used the product for value this recently is retained
ACTIVATED_STEPS = 3  # ... and one that reached this many activation steps has activated
PREPARE_MAX = 64  # friction queries being embedded ahead of decisions, at most
SPARSE_USAGE = 3  # a team that used fewer catalog items than this is compared by its cohort


@dataclass(frozen=True)
class RecsModel:
    """Everything a decision's candidates are computed from; replaced whole on every rebuild."""

    catalog: dict[str, CatalogItem]
    vectors: dict[str, Vector]
    peers: dict[str, PeerTenant]  # successful tenants, the only ones peers are learned from
    cohorts: Cohorts
    peer_index: VectorIndex
    tenant_vectors: dict[str, Vector]
    tenant_adopted: dict[str, frozenset[str]]
    help_index: VectorIndex
    unavailable: dict[str, frozenset[str]]  # plan → catalog items it puts out of reach
    min_tenants: int  # k: the fewest tenants any peer statement rests on
    tenants: int
    built_at: datetime
    build_ms: float

    @property
    def size(self) -> dict[str, int]:
        return {
            "catalog": len(self.catalog),
            "help": len(self.help_index),
            "tenants": self.tenants,
            "successful_peers": len(self.peer_index),
        }


def build_recs_model(
    adoption: list[TenantAdoption],
    catalog: dict[str, CatalogItem],
    vectors: dict[str, Vector],
    vocab: Vocabulary,
    now: datetime,
    min_tenants: int = MIN_TENANTS,
) -> RecsModel:
    """Peers, their vectors and indexes from every tenant's adoption (CPU only, no I/O)."""
    started = time.perf_counter()
    dim = next(iter(vectors.values())).shape[0] if vectors else 384
    plans = vocab.signals.plans
    features = {f for p in plans.values() for f in p.features}
    unavailable = {
        plan_id: frozenset(off_plan(catalog.values(), plan.features, features))
        for plan_id, plan in plans.items()
    }
    peers: dict[str, PeerTenant] = {}
    tenant_vectors: dict[str, Vector] = {}
    tenant_adopted: dict[str, frozenset[str]] = {}
    for t in adoption:
        used = {item: times for item, times in t.adopted.items() if item in catalog}
        tenant_adopted[t.tenant_id] = frozenset(used)
        vector = profile_vector(
            [Usage(item, last) for item, (_, last, _) in used.items()], vectors.get, now=now
        )
        if vector is not None:
            tenant_vectors[t.tenant_id] = vector
        last_value = t.last_value_day
        succeeded = t.activation_steps >= ACTIVATED_STEPS and (
            last_value is not None and (now.date() - last_value).days <= RECENT_DAYS
        )
        if not succeeded or not t.shares_evidence:  # evidence only from tenants that allow it
            continue
        industry = t.traits.get("industry")
        seats = t.traits.get("seats")
        peers[t.tenant_id] = PeerTenant(
            tenant_id=t.tenant_id,
            cohort=Cohort(
                industry if isinstance(industry, str) and industry else None,
                seats_band(seats if isinstance(seats, int) else None),
            ),
            adopted={  # what peers can recommend; help and features read are not adoption
                item: max(0.0, (first - t.started).total_seconds() / 86_400)
                for item, (first, _, _) in used.items()
                if catalog[item].kind in PEER_KINDS
            },
        )
    peer_index = FaissIndex(dim)
    ids = [tid for tid in peers if tid in tenant_vectors]
    if ids:
        peer_index.upsert(ids, np.stack([tenant_vectors[i] for i in ids]))
    help_index = ExactIndex(dim)
    help_ids = [i for i, item in catalog.items() if item.kind in HELP_KINDS and i in vectors]
    if help_ids:
        help_index.upsert(help_ids, np.stack([vectors[i] for i in help_ids]))
    return RecsModel(
        catalog=catalog,
        vectors=vectors,
        peers=peers,
        cohorts=Cohorts(peers),
        peer_index=peer_index,
        tenant_vectors=tenant_vectors,
        tenant_adopted=tenant_adopted,
        help_index=help_index,
        unavailable=unavailable,
        min_tenants=min_tenants,
        tenants=len(adoption),
        built_at=now,
        build_ms=(time.perf_counter() - started) * 1000,
    )


HELP_KINDS: Final = ("article", "lesson")
PEER_KINDS: Final = ("integration", "template")  # what peers' adoption recommends


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _drivers(candidate: Candidate) -> tuple[RecDriver, ...]:
    return tuple(RecDriver(name, value) for name, value in candidate.evidence.drivers)


def rec_item(candidate: Candidate, item: CatalogItem, vocab: Vocabulary) -> RecItem:
    """A candidate as the widgets that show its kind expect it."""
    props: dict[str, Any]
    if item.kind == "integration":
        spec = vocab.presets.integrations.get(item.id)
        proof = candidate.evidence
        props = {
            "name": item.title,
            "connect_href": item.href
            or (spec.connect_href if spec and spec.connect_href else "")
            or f"/settings/integrations/{item.id}/connect",
            "peer_adoption": (
                {"share": proof.share, "cohort": proof.cohort}
                if proof.share is not None and proof.cohort
                else None
            ),
        }
    elif item.kind in HELP_KINDS:
        props = {
            "title": item.title,
            "href": item.href or f"/help/{item.id}",
            "kind": item.kind,
            "summary": item.description,
        }
    else:
        props = {
            "name": item.title,
            "href": item.href or f"/{item.kind}s/{item.id}",
            "reason": candidate.evidence.summary,
        }
    return RecItem(
        id=item.id,
        kind=item.kind,
        score=candidate.score,
        confidence=candidate.confidence,
        reason=candidate.evidence.summary,
        drivers=_drivers(candidate),
        props=props,
    )


def peer_recs(
    model: RecsModel, profile: ProfileData, vocab: Vocabulary, now: datetime, *, limit: int = 3
) -> tuple[tuple[RecItem, ...], tuple[RecItem, ...]]:
    """(integrations, templates) for a user: similar successful tenants' adoptions, or the
    cohort's when the user's team has used nothing yet. Nothing the team already adopted, nothing
    its plan lacks, nothing for another role."""
    traits = profile.tenant_traits
    industry = _text(traits.get("industry")) or None
    seats = traits.get("seats")
    cohort = Cohort(industry, seats_band(seats if isinstance(seats, int) else None))
    plan = _text(traits.get("plan")) or "free"
    role = _text(profile.user_traits.get("role")) or None
    connected = [k for k, v in profile.integrations.items() if v]
    adopted = (
        {f.value for f in profile.facets}
        | set(connected)
        | model.tenant_adopted.get(profile.tenant_id, frozenset())
    )
    usage = [Usage(f.value, f.last_at) for f in profile.facets] + [Usage(i, now) for i in connected]
    query = profile_vector(usage, model.vectors.get, now=now)
    if query is None:
        query = model.tenant_vectors.get(profile.tenant_id)
    common: dict[str, Any] = {
        "tenant_id": profile.tenant_id,
        "cohort": cohort,
        "adopted": adopted,
        "unavailable": model.unavailable.get(plan, frozenset()),
        "role": role,
        "kinds": PEER_KINDS,
        "limit": 4 * limit,
        "cohorts": model.cohorts,
        "min_tenants": model.min_tenants,
    }
    similar: list[Candidate] = []
    if query is not None and len(model.peer_index):
        with tracer.start_as_current_span("cairn.recommender.search") as span:
            span.set_attribute("cairn.index_size", len(model.peer_index))
            similar = peer_candidates(query, model.peer_index, model.peers, model.catalog, **common)
    cohort_found = cohort_candidates(model.peers, model.catalog, **common)
    # A team that has used little is known by its cohort better than by a vector of one or two
    # items; a team with a history is known by the teams whose history looks like its own.
    used = {u.item_id for u in usage if u.item_id in model.catalog} | (
        model.tenant_adopted.get(profile.tenant_id, frozenset())
    )
    first, then = (cohort_found, similar) if len(used) < SPARSE_USAGE else (similar, cohort_found)
    found: dict[str, Candidate] = {}
    for candidate in (*first, *then):
        found.setdefault(candidate.item_id, candidate)
    by_kind: dict[str, list[RecItem]] = {"integration": [], "template": []}
    for candidate in found.values():
        group = by_kind[candidate.kind]
        if len(group) < limit:
            group.append(rec_item(candidate, model.catalog[candidate.item_id], vocab))
    return tuple(by_kind["integration"]), tuple(by_kind["template"])


def friction_of(
    profile: ProfileData, vocab: Vocabulary, now: datetime
) -> tuple[str, str, int, str]:
    """(feature, query text, errors, the latest message) of the user's repeated friction;
    ('', '', 0, '') when there is none. The query quotes the message seen most (it is cached
    across users); the explanation quotes the one the user has just seen."""
    window = now - timedelta(minutes=vocab.signals.friction.window_minutes)
    events = [  # latest first, as the profile keeps them
        FrictionEvent(
            _text(e.properties.get("feature")) or "unknown", _text(e.properties.get("message"))
        )
        for e in profile.recent
        if e.event == "error_shown" and e.ts >= window
    ]
    query = friction_query(events)
    if query is None or query[2] < vocab.signals.friction.repeat_threshold:
        return "", "", 0, ""
    feature, text, count = query
    latest = next((e.message for e in events if e.feature == feature and e.message), "")
    return feature, text, count, latest


def help_recs(
    model: RecsModel,
    query: Vector,
    feature: str,
    errors: int,
    message: str,
    vocab: Vocabulary,
    dismissed: frozenset[str] = frozenset(),
) -> tuple[RecItem, ...]:
    with tracer.start_as_current_span("cairn.recommender.search") as span:
        span.set_attribute("cairn.index_size", len(model.help_index))
        found = help_candidates(
            query,
            model.help_index,
            model.catalog,
            feature=feature,
            errors=errors,
            message=message or None,
            dismissed=dismissed,
        )
    return tuple(rec_item(c, model.catalog[c.item_id], vocab) for c in found)


REUSE = timedelta(seconds=60)
REUSE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class _Answer:
    profile: ProfileData
    model: RecsModel
    vocab: Vocabulary
    at: datetime
    recs: Recs


class Recommender:
    """Candidates for one decision within a time budget; the peer model rebuilt in the background.

    A decision never waits longer than the budget: candidates from the in-memory model take well
    under a millisecond; a friction query that was never embedded is embedded in a worker thread,
    and if that does not finish in time the decision goes on without help candidates (status
    `over_budget`) while the embedding completes, is cached, and `on_ready` tells the user's open
    layout streams to fetch again.
    """

    def __init__(
        self,
        catalog: CatalogIndex,
        embedder: Embedder,
        *,
        budget_s: float,
        enabled: bool = True,
        on_ready: Callable[[str, str], None] | None = None,
        min_tenants: int = MIN_TENANTS,
    ) -> None:
        self.catalog = catalog
        self.min_tenants = min_tenants
        self.embedder = embedder
        self.budget_s = budget_s
        self.enabled = enabled
        self.on_ready = on_ready
        self.model: RecsModel | None = None
        self.last_error: str | None = None
        self.builds = 0
        self._inflight: dict[str, asyncio.Future[Vector]] = {}
        self._waited: set[str] = set()  # queries in flight that a decision already waited for
        # One query is embedded at a time, so the model never takes more than one core from
        # the decisions being served.
        self._embedding_thread = ThreadPoolExecutor(1, thread_name_prefix="cairn-embed")
        # (tenant, user) → the last answer, kept while its profile, model and vocabulary are the
        # very same objects (an event, a rebuild or a reload replaces them) for up to REUSE
        self._answers: OrderedDict[tuple[str, str], _Answer] = OrderedDict()

    @property
    def status(self) -> RecsStatus:
        if not self.enabled:
            return "off"
        return "ok" if self.model is not None else "not_ready"

    async def rebuild(self, pool: Pool, vocab: Vocabulary, now: datetime) -> RecsModel:
        """Read every tenant's adoption and build a new model off the event loop."""
        with tracer.start_as_current_span("cairn.recommender.peers") as span:
            signals = vocab.signals
            adoption = await load_adoption(
                pool, [s.event for s in signals.activation], list(signals.events.value)
            )
            items = dict(self.catalog.items)
            vectors = {i: v for i in items if (v := self.catalog.index.vector(i)) is not None}
            model = await asyncio.to_thread(
                build_recs_model, adoption, items, vectors, vocab, now, self.min_tenants
            )
            span.set_attribute("cairn.tenants", model.tenants)
            span.set_attribute("cairn.successful_peers", len(model.peer_index))
        self.model = model
        self.builds += 1
        self.last_error = None
        return model

    def load_model(self, load: Callable[[], None]) -> None:
        """Load the embedding model on the embedding thread now, in the background, so that the
        first friction query does not also pay for loading it (seconds)."""
        future = asyncio.get_running_loop().run_in_executor(self._embedding_thread, load)

        def loaded(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                self.last_error = repr(done.exception())

        future.add_done_callback(loaded)

    def prepare(self, errors: Iterable[Mapping[str, Any]]) -> None:
        """The properties of `error_shown` events just ingested: embed their friction queries
        now, on the embedding thread, so that the decisions that follow find them cached. Never
        waits; a flood of distinct messages is not queued past PREPARE_MAX embeddings at a time."""
        if not self.enabled:
            return
        cache = self.embedder.query_cache
        for props in errors:
            if len(self._inflight) >= PREPARE_MAX:
                return
            feature, message = _text(props.get("feature")), _text(props.get("message"))
            query = friction_query([FrictionEvent(feature or "unknown", message)])
            if query is not None and cache.cached(query[1]) is None:
                self._embedding(query[1])

    def _embedding(
        self, text: str, waiting: tuple[str, str] | None = None
    ) -> asyncio.Future[Vector]:
        """The query's embedding, shared by concurrent decisions; tells the (tenant, user)
        `waiting` for it when it lands."""
        future = self._inflight.get(text)
        if future is None:
            cache = self.embedder.query_cache

            async def embed() -> Vector:
                loop = asyncio.get_running_loop()
                try:
                    with tracer.start_as_current_span("cairn.recommender.embed_query"):
                        return await loop.run_in_executor(
                            self._embedding_thread, cache.embed_query, text
                        )
                finally:
                    self._inflight.pop(text, None)
                    self._waited.discard(text)

            future = asyncio.ensure_future(embed())
            self._inflight[text] = future
        if waiting is not None:
            tenant_id, user_id = waiting

            def landed(done: asyncio.Future[Vector]) -> None:
                if self.on_ready is not None and not done.cancelled() and done.exception() is None:
                    self.on_ready(tenant_id, user_id)

            future.add_done_callback(landed)
        return future

    async def recommend(self, profile: ProfileData, vocab: Vocabulary, now: datetime) -> Recs:
        """The decision's candidates, or why there are none (never raises). The same profile,
        model and vocabulary a moment ago give the same candidates: they are reused for up to
        REUSE (recency weights and the friction window move in hours, not seconds)."""
        model = self.model
        if not self.enabled:
            return Recs(status="off")
        if model is None:
            return Recs(status="not_ready", detail="the peer model is still being built")
        key = (profile.tenant_id, profile.user_id)
        kept = self._answers.get(key)
        if (
            kept is not None
            and kept.profile is profile
            and kept.model is model
            and kept.vocab is vocab
            and timedelta(0) <= now - kept.at < REUSE
        ):
            self._answers.move_to_end(key)
            return kept.recs
        recs = await self._recommend(model, profile, vocab, now)
        if recs.available:
            self._answers[key] = _Answer(profile, model, vocab, now, recs)
            self._answers.move_to_end(key)
            if len(self._answers) > REUSE_SIZE:
                self._answers.popitem(last=False)
        return recs

    async def _recommend(
        self, model: RecsModel, profile: ProfileData, vocab: Vocabulary, now: datetime
    ) -> Recs:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.budget_s
        with tracer.start_as_current_span("cairn.recommender.candidates") as span:
            try:
                integrations, templates = peer_recs(model, profile, vocab, now)
                feature, text, errors, message = friction_of(profile, vocab, now)
                help_items: tuple[RecItem, ...] = ()
                if text:
                    query = self.embedder.query_cache.cached(text)
                    if query is None:
                        pending = self._embedding(text, (profile.tenant_id, profile.user_id))
                        if text in self._waited:  # one decision has spent its budget on it
                            return Recs(
                                status="over_budget",
                                detail="the friction query is still being embedded",
                            )
                        self._waited.add(text)
                        try:
                            query = await asyncio.wait_for(
                                asyncio.shield(pending), max(0.0, deadline - loop.time())
                            )
                        except TimeoutError:
                            span.set_attribute("cairn.over_budget", True)
                            return Recs(
                                status="over_budget",
                                detail=f"embedding the friction query took over "
                                f"{self.budget_s * 1000:.0f} ms",
                            )
                    help_items = help_recs(model, query, feature, errors, message, vocab)
            except Exception as exc:  # noqa: BLE001 - personalization never fails a layout
                log.warning("recommender failed; rules-only layout: %r", exc)
                self.last_error = repr(exc)
                span.set_attribute("cairn.error", repr(exc))
                return Recs(status="down", detail=f"the recommender failed: {exc}")
            span.set_attribute(
                "cairn.candidates", len(integrations) + len(templates) + len(help_items)
            )
        return Recs(status="ok", integrations=integrations, templates=templates, help=help_items)
