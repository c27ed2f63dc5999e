"""What a running Cairn process holds: the pool, layouts, profile cache, and change notifications.

Processes stay coherent through PostgreSQL: ingestion sends NOTIFY cairn_profile after commit, every
process LISTENs, drops that user's cached profile and wakes the user's live streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import logging
import time
from collections.abc import Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from app.config.layouts import LayoutConfigError, load_layouts
from app.engine.model import Layouts
from app.engine.profile import PeerStats
from app.engine.propensity import PropensityModels
from app.engine.retention import Retention
from app.engine.vocabulary import Vocabulary
from app.serving.arm_latency import LatencyTally
from app.serving.audit import Auditor, layout_changes
from app.serving.catalog_index import CatalogIndex
from app.serving.experiments import ResultsCache, check_guardrails
from app.serving.flag_events import FlagTally
from app.serving.hub import Hub
from app.serving.memo import DecisionMemo
from app.serving.metrics import MetricsService
from app.serving.metrics_refresh import refresh_metrics
from app.serving.ops_metrics import OpsMetrics
from app.serving.recommendations import Recommender
from app.serving.retention import (
    ANALYZE_EVERY,
    FIRST_RETENTION_S,
    RETENTION_INTERVAL_S,
    apply_retention,
)
from app.settings import Settings
from app.storage.catalog import CATALOG_CHANNEL
from app.storage.db import DATABASE_ERRORS, EmbeddedPostgres, Pool, create_pool, migrate
from app.storage.events import PROFILE_CHANNEL
from app.storage.experiments import EXPERIMENTS_CHANNEL, ExperimentState, load_states
from app.storage.keys import KEYS_CHANNEL, KeyRing
from app.storage.metrics import METRICS_CHANNEL
from app.storage.models import MODELS_CHANNEL, load_models
from app.storage.peers import load_peer_stats
from app.storage.profiles import ProfileStore
from recommender.embedder import SentenceTransformerEmbedder

log = logging.getLogger("cairn.runtime")


def settle_heap() -> None:
    """Move every object alive now out of the cyclic collector's reach (`gc.freeze`).

    What start-up and model builds make (the embedding model, the peer model, indexes, layouts)
    lives for minutes or for good; a full collection walking those hundreds of thousands of
    objects stalled every request for 0.13-0.54 s (measured under load with 2,000 users; 30-85 ms
    with the heap settled). Frozen objects are still freed by reference counting when they are
    let go (a replaced model is); only cycles among them would stay. `CAIRN_SETTLE_HEAP=1` (the
    default of `cairn serve`); off in processes that start many runtimes (the tests'). The
    garbage of the moment is collected first, so none of it is frozen.
    """
    gc.collect()
    gc.freeze()


RECS_REFRESH_S = 300.0
FLAG_COUNTS_FLUSH_S = 60.0  # evaluation counts reach flag_evaluations this often
LISTEN_RETRY_MIN_S = 0.25  # a lost LISTEN connection: the first retries
LISTEN_RETRY_MAX_S = 2.0  # and the longest wait between them
FIRST_METRICS_REFRESH_S = 30.0  # after start: a demo or a new deployment fills its dashboards


class _Notice(msgspec.Struct):
    t: str
    u: str | None = None


EXPORTS_AT_ONCE = 2  # each holds a database connection while it streams


class Runtime:
    def __init__(self, settings: Settings, *, layouts: Layouts | None = None) -> None:
        self.settings = settings
        # experiments stopped (or resumed) at run time, by a guardrail or a person
        self.experiment_states: dict[str, ExperimentState] = {}
        self.layouts: Layouts = self._with_states(layouts or load_layouts(settings.layouts_dir))
        self.layout_error: str | None = None
        self.hub = Hub()
        self.decisions = DecisionMemo()  # decisions kept for reuse (app.serving.decisions)
        self.peers = PeerStats()
        self._pool: Pool | None = None
        self._profiles: ProfileStore | None = None
        self._embedded: EmbeddedPostgres | None = None
        self._listener: Any = None
        self._listener_lost = asyncio.Event()  # set when the LISTEN connection ends
        self._tasks: set[asyncio.Task[None]] = set()  # background work, while it runs
        self._dsn = ""
        self.keyring = KeyRing(settings, None)
        self.embedder = SentenceTransformerEmbedder(settings.embedding_model or None)
        self.catalog: CatalogIndex | None = None
        self.recommender: Recommender | None = None
        self.propensity: PropensityModels | None = None  # trained by `cairn models train`
        self._metrics: MetricsService | None = None
        self.metrics_error: str | None = None  # the last background refresh's failure
        self._recs_stale = asyncio.Event()
        self.flag_tally = FlagTally()  # what flags served, until flushed to the database
        self.experiment_results = ResultsCache()
        self.arm_latency = LatencyTally()  # decision time per experiment arm, until flushed
        self.ops = OpsMetrics(lambda: self.listening)  # served at /metrics
        self.guardrail_error: str | None = None  # the last guardrail check's failure
        self._states_lock = asyncio.Lock()  # reloads of experiment states, one at a time
        self.audit = Auditor(settings.identity_secret, settings.audit_decision_sample)
        self.exports = asyncio.Semaphore(EXPORTS_AT_ONCE)  # tenant exports streaming now
        self.ready = False

    @property
    def region(self) -> str | None:
        return self.settings.region

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the database is not started")
        return self._pool

    @property
    def profiles(self) -> ProfileStore:
        if self._profiles is None:
            raise RuntimeError("the database is not started")
        return self._profiles

    @property
    def metrics(self) -> MetricsService:
        if self._metrics is None:
            raise RuntimeError("the database is not started")
        return self._metrics

    @property
    def vocabulary(self) -> Vocabulary:
        return self.layouts.vocabulary

    @property
    def retention(self) -> Retention:
        return self.layouts.retention

    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        self._embedded = EmbeddedPostgres(self.settings.data_dir)
        return self._embedded.start()

    async def start(self) -> None:
        dsn = await asyncio.to_thread(self.database_url)
        self._pool = await create_pool(dsn)
        async with self._pool.acquire() as conn:
            await migrate(conn)
        self._spawn(self.audit.run(self._pool))
        self._audit_layouts(None, self.layouts)
        self._profiles = ProfileStore(
            self._pool, self.vocabulary, cache_size=self.settings.profile_cache_size
        )
        self.keyring = KeyRing(self.settings, self._pool)
        self._metrics = MetricsService(self._pool)
        self.catalog = CatalogIndex(self._pool, self.embedder)
        await self.catalog.load()
        self.catalog.on_synced = self._recs_stale.set
        self.recommender = Recommender(
            self.catalog,
            self.embedder,
            budget_s=self.settings.recommender_budget_ms / 1000,
            enabled=self.settings.recommender,
            min_tenants=self.settings.peer_min_tenants,
            on_ready=lambda tenant_id, user_id: self.hub.publish(tenant_id, user_id, "recs"),
        )
        if self.settings.recommender:
            self.recommender.load_model(self.embedder.load)
            self._spawn(self.catalog.run())
            await self.refresh_recommender()
            self._spawn(self._refresh_recommender_forever())
        self._dsn = dsn
        await self.reload_models()
        await self.reload_experiment_states()
        await self._listen()
        self._spawn(self._keep_listening())
        await self.refresh_peers()
        self._spawn(self._refresh_peers_forever())
        if self.settings.reload_layouts:
            self._spawn(self._watch_layouts())
        if self.settings.metrics_refresh_s > 0:
            self._spawn(self._refresh_metrics_forever())
        self._spawn(self._flush_flag_counts_forever())
        if self.settings.guardrail_interval_s > 0:
            self._spawn(self._check_guardrails_forever())
        self._spawn(self._apply_retention_forever())
        if self.settings.settle_heap:
            settle_heap()
        self.ready = True

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Background work for a request that must not wait for it (see `_spawn`)."""
        self._spawn(work)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background until it ends or the runtime stops; a finished task is
        dropped at once, so one-off work (a models reload per NOTIFY) does not pile up."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def background_tasks(self) -> int:
        """Background tasks running now."""
        return len(self._tasks)

    async def stop(self) -> None:
        self.ready = False
        self.ops.shutdown()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self.audit.flush(self._pool)
            with contextlib.suppress(Exception):
                await self.flag_tally.flush(self._pool, self.now().date())
                await self.arm_latency.flush(self._pool, self.now().date())
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    def forget(self, users: set[tuple[str, str]], tenants: Iterable[str] = ()) -> None:
        """After a local write: drop cached profiles and wake live streams (NOTIFY follows)."""
        if self._profiles is None:
            return
        for tenant_id in tenants:
            self._profiles.invalidate(tenant_id)
            self.hub.publish_tenant(tenant_id, "tenant")
        for tenant_id, user_id in users:
            self._profiles.invalidate(tenant_id, user_id)
            self.hub.publish(tenant_id, user_id)

    def prepare_help(self, errors: Iterable[Mapping[str, Any]]) -> None:
        """The properties of `error_shown` events just stored: the recommender embeds their
        friction queries ahead of the decisions that will ask for them."""
        if self.recommender is not None:
            self.recommender.prepare(errors)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(PROFILE_CHANNEL, self._on_profile)
        await conn.add_listener(KEYS_CHANNEL, self._on_keys)
        await conn.add_listener(CATALOG_CHANNEL, self._on_catalog)
        await conn.add_listener(MODELS_CHANNEL, self._on_models)
        await conn.add_listener(METRICS_CHANNEL, self._on_metrics)
        await conn.add_listener(EXPERIMENTS_CHANNEL, self._on_experiments)
        conn.add_termination_listener(lambda _conn: self._listener_lost.set())
        self._listener = conn

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def _keep_listening(self) -> None:
        """Reconnect LISTEN after a database restart (at once, then backing off to every
        LISTEN_RETRY_MAX_S); meanwhile nothing cached can be trusted, and /readyz says so."""
        delay = LISTEN_RETRY_MIN_S
        while True:
            with contextlib.suppress(TimeoutError):  # woken as soon as the connection ends
                await asyncio.wait_for(self._listener_lost.wait(), timeout=delay)
            if self.listening:
                delay = LISTEN_RETRY_MIN_S
                continue
            self._listener_lost.clear()
            try:
                await self._listen()
            except DATABASE_ERRORS as exc:
                log.warning("notifications lost, reconnecting: %r", exc)
                delay = min(delay * 2, LISTEN_RETRY_MAX_S)
                continue
            log.info("notifications restored; caches flushed")
            if self._profiles is not None:
                self._profiles.invalidate()
            self.keyring.forget()
            self.decisions.clear()
            self._spawn(self.reload_experiment_states())
            if self._metrics is not None:
                self._metrics.forget()
            self.hub.publish_all("reconnected")

    def _on_catalog(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        if self.catalog is not None:
            self.catalog.changed()

    def _on_metrics(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        if self._metrics is not None:
            self._metrics.forget()

    async def _refresh_metrics_forever(self) -> None:
        """Refresh the metrics soon after start, then on a schedule (one process at a time does
        the work, see `refresh_metrics`)."""
        await asyncio.sleep(min(FIRST_METRICS_REFRESH_S, self.settings.metrics_refresh_s))
        while True:
            try:
                await refresh_metrics(self.pool, self.layouts)
                self.metrics_error = None
            except Exception as exc:  # noqa: BLE001 - the schedule must outlive any one failure
                self.metrics_error = repr(exc)
                log.warning("metrics not refreshed: %r", exc)
            await asyncio.sleep(self.settings.metrics_refresh_s)

    async def _apply_retention_forever(self) -> None:
        """Drop expired partitions soon after start, then hourly (one process at a time)."""
        await asyncio.sleep(FIRST_RETENTION_S)
        for run in itertools.count():
            try:
                dropped = await apply_retention(
                    self.pool, self.layouts.retention, self.now(), analyze=run % ANALYZE_EVERY == 0
                )
                if dropped:
                    self.audit.record("retention.applied", "process", {"dropped": dropped})
            except Exception as exc:  # noqa: BLE001 - the schedule must outlive any one failure
                log.warning("retention not applied: %r", exc)
            await asyncio.sleep(RETENTION_INTERVAL_S)

    async def _flush_flag_counts_forever(self) -> None:
        while True:
            await asyncio.sleep(FLAG_COUNTS_FLUSH_S)
            await self.flag_tally.flush(self.pool, self.now().date())
            await self.arm_latency.flush(self.pool, self.now().date())

    async def _check_guardrails_forever(self) -> None:
        """Every CAIRN_GUARDRAIL_INTERVAL_S: stop experiments an arm of which hurts a guardrail
        (one process at a time does the work, see `check_guardrails`)."""
        while True:
            await asyncio.sleep(self.settings.guardrail_interval_s)
            try:  # a stop reaches every process, this one too, by NOTIFY
                await check_guardrails(self.pool, self.layouts, self.now())
                self.guardrail_error = None
            except Exception as exc:  # noqa: BLE001 - the schedule must outlive any one failure
                self.guardrail_error = repr(exc)
                log.warning("guardrails not checked: %r", exc)

    def _on_experiments(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        self._spawn(self.reload_experiment_states())

    async def reload_experiment_states(self) -> None:
        """Read which experiments are stopped; a stop serves control from the next decision."""
        self.experiment_results.forget()
        async with self._states_lock:  # in order: a later read never loses to an earlier one
            try:
                self.experiment_states = await load_states(self.pool)
            except DATABASE_ERRORS as exc:
                log.warning("experiment states not loaded: %r", exc)
                return
        for state in self.experiment_states.values():  # each change on record once
            action = "experiment.stopped" if state.status == "stopped" else "experiment.resumed"
            self.audit.record(
                action, state.changed_by,
                {"experiment": state.experiment, "reason": state.reason,
                 "evidence": state.evidence},
                at=state.changed_at,
                dedupe=f"experiment:{state.experiment}:{state.status}:{state.changed_at.isoformat()}",
            )  # fmt: skip
        self.layouts = self._with_states(self.layouts)
        self.hub.publish_all("experiments")

    def _with_states(self, layouts: Layouts) -> Layouts:
        """The layouts with what is decided at run time: experiments stopped, and the holdout
        of CAIRN_HOLDOUT_PERCENT when it is set."""
        stopped = frozenset(
            key for key, state in self.experiment_states.items() if state.status == "stopped"
        )
        experiments = layouts.experiments
        percent = self.settings.holdout_percent
        if percent is not None and percent != experiments.holdout.percent:
            holdout = msgspec.structs.replace(experiments.holdout, percent=percent)
            experiments = dataclasses.replace(experiments, holdout=holdout)
        if stopped != experiments.stopped:
            experiments = dataclasses.replace(experiments, stopped=stopped)
        if experiments is layouts.experiments:
            return layouts
        return dataclasses.replace(layouts, experiments=experiments)

    def _on_models(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        self._spawn(self.reload_models())

    async def reload_models(self) -> None:
        """Load the propensity models that `cairn models train` saved (none is fine)."""
        try:
            self.propensity = await load_models(self.pool)
        except DATABASE_ERRORS as exc:
            log.warning("propensity models not loaded: %r", exc)

    def _on_keys(self, _conn: Any, _pid: int, _channel: str, _payload: object) -> None:
        self.keyring.forget()

    def _on_profile(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            notice = msgspec.json.decode(str(payload), type=_Notice)
        except msgspec.DecodeError:
            return
        if self._profiles is not None:
            self._profiles.invalidate(notice.t, notice.u)
        if notice.u is None:
            self.hub.publish_tenant(notice.t, "tenant")
        else:
            self.hub.publish(notice.t, notice.u)

    async def refresh_peers(self) -> None:
        try:
            self.peers = await load_peer_stats(self.pool, self.settings.peer_min_tenants)
        except DATABASE_ERRORS as exc:
            log.warning("peer statistics not refreshed: %s", exc)

    async def _refresh_peers_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            await self.refresh_peers()

    async def refresh_recommender(self) -> None:
        """Rebuild the recommender's peer model from what every tenant adopted."""
        if self.recommender is None or not self.recommender.enabled:
            return
        try:
            await self.recommender.rebuild(self.pool, self.vocabulary, self.now())
        except DATABASE_ERRORS as exc:
            self.recommender.last_error = repr(exc)
            log.warning("recommender not rebuilt: %r", exc)
        if self.settings.settle_heap:  # the new model (and the embedding model) lives on
            settle_heap()

    async def _refresh_recommender_forever(self) -> None:
        """Every five minutes, and soon after the catalog gains vectors."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recs_stale.wait(), RECS_REFRESH_S)
            self._recs_stale.clear()
            await self.refresh_recommender()

    def reload_layouts(self) -> bool:
        """Load layouts/ again; a broken file keeps the last good version live."""
        try:
            layouts = load_layouts(self.settings.layouts_dir)
        except LayoutConfigError as exc:
            self.layout_error = str(exc)
            log.error("layouts not reloaded, the last good version stays live:\n%s", exc)
            return False
        lost = sorted(set(self.layouts.screens) - set(layouts.screens) - layouts.removed_screens)
        if lost:
            self.layout_error = (
                f"layouts not reloaded: screens {', '.join(lost)} would go out of service (their"
                " files are gone); to take a screen out of service on purpose, leave in"
                " screens/ a file that says `screen: NAME` and `removed: true`"
            )
            log.error("%s; the last good version stays live", self.layout_error)
            return False
        self.layout_error = None
        if layouts.version != self.layouts.version:
            self._audit_layouts(self.layouts, layouts)
            self.layouts = self._with_states(layouts)
            if self._profiles is not None:
                self._profiles.vocab = layouts.vocabulary
                self._profiles.invalidate()
            self.hub.publish_all("layouts")
            log.info("layouts reloaded (version %s)", layouts.version)
        return True

    def _audit_layouts(self, before: Layouts | None, after: Layouts) -> None:
        """A layouts version on record, once whatever the number of processes that load it
        together: each start with it, and each change."""
        # processes starting or reloading together write one entry; a later deploy another
        since = before.version if before is not None else ""
        dedupe = f"layouts:{since}:{after.version}:{int(time.time() // 600)}"
        self.audit.record("layouts.loaded", "process", layout_changes(before, after), dedupe=dedupe)

    async def _watch_layouts(self) -> None:
        from watchfiles import awatch

        async for _changes in awatch(Path(self.settings.layouts_dir), debounce=200):
            try:
                self.reload_layouts()
            except Exception:  # a reload that fails oddly must not stop the watching
                self.layout_error = "layouts not reloaded: an unexpected error (see the log)"
                log.exception("layouts not reloaded, the last good version stays live")

    def now(self) -> datetime:
        return datetime.now(UTC)
