"""The catalog's vectors at the edge: embedded and indexed from PostgreSQL.

Items are embedded when they are created or change (their content hash differs from the one
embedded), in a worker thread, never on the request path; vectors persist in PostgreSQL, so a
restarted process only loads them into its index. Every process rebuilds its index from the
database and follows changes through NOTIFY cairn_catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.storage.catalog import embedded_items, refresh_hashes, save_embeddings, stale_items
from app.storage.db import Pool
from app.telemetry import tracer
from recommender.catalog import CatalogItem, embedding_text
from recommender.embedder import Embedder
from recommender.index import FaissIndex

log = logging.getLogger("cairn.recommender")


@dataclass
class CatalogStatus:
    items: int = 0
    pending: int = 0
    embedded_total: int = 0
    last_sync: float | None = None  # monotonic seconds of the last completed sync
    last_error: str | None = None
    building: bool = False
    wall_ms: dict[str, float] = field(default_factory=dict)


class CatalogIndex:
    """The catalog's vectors in a FAISS index, kept in step with PostgreSQL."""

    def __init__(self, pool: Pool, embedder: Embedder, *, dim: int = 384) -> None:
        self.pool = pool
        self.embedder = embedder
        self.index = FaissIndex(dim)
        self.items: dict[str, CatalogItem] = {}
        self.status = CatalogStatus()
        self.on_synced: Callable[[], None] | None = None  # called after new vectors are indexed
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def ready(self) -> bool:
        return self.status.last_sync is not None and self.status.pending == 0

    def changed(self) -> None:
        """Something in the catalog changed (NOTIFY): sync soon."""
        self._wake.set()

    async def load(self) -> None:
        """At start: the model may have changed; load what is embedded into the index."""
        await refresh_hashes(self.pool, self.model_id)
        await self._load_embedded()

    async def _load_embedded(self) -> None:
        rows = await embedded_items(self.pool)
        self.items = {item.id: item for item, _ in rows}
        if rows:
            vectors = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
            self.index.upsert([item.id for item, _ in rows], vectors)
        self.status.items = len(self.items)

    async def sync(self) -> int:
        """Embed every item whose text changed, store the vectors, update the index."""
        async with self._lock:
            started = time.perf_counter()
            done = 0
            while True:
                stale = await stale_items(self.pool)
                self.status.pending = len(stale)
                if not stale:
                    break
                self.status.building = True
                texts = [embedding_text(item) for item, _ in stale]
                with tracer.start_as_current_span("cairn.recommender.embed") as span:
                    span.set_attribute("cairn.items", len(texts))
                    vectors = await asyncio.to_thread(self.embedder.embed, texts)
                await save_embeddings(
                    self.pool,
                    [
                        (item.id, digest, vectors[i].tobytes())
                        for i, (item, digest) in enumerate(stale)
                    ],
                    self.model_id,
                )
                self.index.upsert([item.id for item, _ in stale], vectors)
                for item, _ in stale:
                    self.items[item.id] = item
                done += len(stale)
            self.status.building = False
            self.status.items = len(self.items)
            self.status.embedded_total += done
            self.status.last_sync = time.monotonic()
            self.status.wall_ms["last_sync"] = (time.perf_counter() - started) * 1000
            if done and self.on_synced is not None:
                self.on_synced()
            return done

    async def run(self) -> None:
        """Sync now, then whenever the catalog changes (and every minute as a safety net)."""
        while True:
            try:
                await self.sync()
                self.status.last_error = None
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one failure
                self.status.last_error = repr(exc)
                self.status.building = False
                log.warning("catalog not embedded yet: %r", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 60)
