"""Vector indexes: a protocol, an exact brute-force oracle and a FAISS index for serving.

Vectors are unit length (see `recommender.embedder`), so scores are inner products, i.e. cosine
similarities, highest first. Ids are strings (catalog item ids, user or tenant ids).

- `ExactIndex` scores every vector with numpy. It is the oracle: tests and benchmarks judge the
  approximate index by how many of the exact index's top k it finds (recall@k).
- `FaissIndex` is exact (`IndexFlatIP`) while small and switches to HNSW above a size threshold.
  Items are added, replaced and removed one batch at a time; removals leave tombstones that searches
  skip, and a rebuild (in a background thread, with progress) compacts them away. Index files are
  written with `faiss.write_index` next to a JSON sidecar that maps positions to ids.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ExactIndex",
    "FaissIndex",
    "IndexKind",
    "Progress",
    "RebuildJob",
    "SearchResult",
    "VectorIndex",
    "recall_at_k",
]

IndexKind = Literal["flat", "hnsw"]
Progress = Callable[[int, int], None]  # (vectors added so far, vectors in total)

_FORMAT = 1


class SearchResult(NamedTuple):
    """Per query row: the ids found, best first, and their inner-product scores."""

    ids: list[list[str]]
    scores: list[list[float]]


@runtime_checkable
class VectorIndex(Protocol):
    """A store of id → unit vector with top-k inner-product search."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...

    def add(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        """Add new ids; an id already present is an error (use `upsert` to replace)."""
        ...

    def upsert(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        """Add ids, replacing the vectors of those already present."""
        ...

    def remove(self, ids: Iterable[str]) -> int:
        """Remove ids (unknown ones are ignored); returns how many were removed."""
        ...

    def search(self, queries: ArrayLike, k: int) -> SearchResult:
        """The k best ids per query row (fewer when the index holds fewer)."""
        ...

    def vector(self, item_id: str) -> NDArray[np.float32] | None:
        """The stored vector of an id, or None."""
        ...

    def ids(self) -> list[str]: ...

    def save(self, path: str | os.PathLike[str]) -> None: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self: ...


def recall_at_k(found: Sequence[Sequence[str]], truth: Sequence[Sequence[str]], k: int) -> float:
    """Mean share of each true top-k that `found` retrieved in its top k."""
    if len(found) != len(truth):
        raise ValueError("found and truth must have one row per query")
    total, hits = 0, 0
    for got, want in zip(found, truth, strict=True):
        target = set(want[:k])
        total += len(target)
        hits += len(target.intersection(got[:k]))
    return hits / total if total else 1.0


def _as_matrix(vectors: ArrayLike, dim: int) -> NDArray[np.float32]:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"expected vectors of {dim} dimensions, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors must be finite")
    return matrix


def _check_ids(ids: Sequence[str], rows: int) -> None:
    if len(ids) != rows:
        raise ValueError(f"{len(ids)} ids for {rows} vectors")
    if any(not isinstance(i, str) or not i for i in ids):
        raise ValueError("ids must be non-empty strings")


def _last_wins(ids: Sequence[str], matrix: NDArray[np.float32]) -> tuple[list[str], NDArray[Any]]:
    """One row per id, the last given one."""
    if len(set(ids)) == len(ids):
        return list(ids), matrix
    last = {item_id: row for row, item_id in enumerate(ids)}
    rows = sorted(last.values())
    return [ids[r] for r in rows], matrix[rows]


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# The oracle.


class ExactIndex:
    """Brute-force inner-product search over a numpy matrix: exact, and the oracle in tests."""

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        self._dim = dim
        self._data = np.zeros((16, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def vector(self, item_id: str) -> NDArray[np.float32] | None:
        with self._lock:
            row = self._row.get(item_id)
            return None if row is None else self._data[row].copy()

    def matrix(self) -> NDArray[np.float32]:
        """A copy of the stored vectors, in the order of `ids()`."""
        with self._lock:
            return self._data[: len(self._ids)].copy()

    def add(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        matrix = _as_matrix(vectors, self._dim)
        _check_ids(ids, len(matrix))
        with self._lock:
            present = [i for i in ids if i in self._row]
            if present or len(set(ids)) != len(ids):
                raise ValueError(f"ids already present: {sorted(set(present))[:5] or 'repeated'}")
            self._append(list(ids), matrix)

    def upsert(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        matrix = _as_matrix(vectors, self._dim)
        _check_ids(ids, len(matrix))
        unique, matrix = _last_wins(ids, matrix)
        with self._lock:
            new_ids: list[str] = []
            new_rows: list[int] = []
            for at, item_id in enumerate(unique):
                row = self._row.get(item_id)
                if row is None:
                    new_ids.append(item_id)
                    new_rows.append(at)
                else:
                    self._data[row] = matrix[at]
            if new_ids:
                self._append(new_ids, matrix[new_rows])

    def _append(self, ids: list[str], matrix: NDArray[np.float32]) -> None:
        n = len(self._ids)
        need = n + len(ids)
        if need > len(self._data):
            grown = np.zeros((max(need, 2 * len(self._data)), self._dim), dtype=np.float32)
            grown[:n] = self._data[:n]
            self._data = grown
        self._data[n:need] = matrix
        for offset, item_id in enumerate(ids):
            self._row[item_id] = n + offset
        self._ids.extend(ids)

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        with self._lock:
            for item_id in ids:
                row = self._row.pop(item_id, None)
                if row is None:
                    continue
                last = len(self._ids) - 1
                if row != last:  # move the last row into the hole
                    moved = self._ids[last]
                    self._data[row] = self._data[last]
                    self._ids[row] = moved
                    self._row[moved] = row
                self._ids.pop()
                removed += 1
        return removed

    def search(self, queries: ArrayLike, k: int) -> SearchResult:
        q = _as_matrix(queries, self._dim)
        with self._lock:
            n = len(self._ids)
            if n == 0 or k < 1:
                return SearchResult([[] for _ in q], [[] for _ in q])
            scores = q @ self._data[:n].T
            ids = self._ids
        kk = min(k, n)
        if kk < n:
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        else:
            top = np.broadcast_to(np.arange(n), (len(q), n))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        return SearchResult(
            [[ids[j] for j in row] for row in top.tolist()],
            top_scores.tolist(),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        target = Path(path)
        with self._lock:
            data = self._data[: len(self._ids)].copy()
            ids = list(self._ids)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.savez(fh, vectors=data, ids=np.array(ids, dtype=np.str_))

        _write_atomic(target, write)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        with np.load(Path(path), allow_pickle=False) as stored:
            vectors = stored["vectors"]
            ids = [str(i) for i in stored["ids"]]
        index = cls(int(vectors.shape[1]))
        if ids:
            index.add(ids, vectors)
        return index


# --------------------------------------------------------------------------------------------------
# FAISS.


@dataclass
class RebuildJob:
    """A rebuild in progress (or done): wait for it, read its progress or its error."""

    total: int = 0
    added: int = 0
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.finished.is_set()

    @property
    def progress(self) -> float:
        return 1.0 if self.done or self.total == 0 else self.added / self.total

    def wait(self, timeout: float | None = None) -> bool:
        """True once the rebuild has finished (successfully or not)."""
        return self.finished.wait(timeout)


class _State:
    """One FAISS index with its position → id map and the bitmap of live positions."""

    def __init__(self, index: Any, kind: IndexKind, ef_search: int) -> None:
        self.index = index
        self.kind: IndexKind = kind
        self.ef_search = ef_search
        self.ids: list[str | None] = []  # by position; None = removed
        self.pos: dict[str, int] = {}
        self.live = np.zeros(0, dtype=np.uint8)  # bit i: position i is live (faiss bit order)
        self.dead = 0
        self._params: Any = None  # search parameters excluding dead positions, built lazily
        self._keep: tuple[Any, ...] = ()  # objects the parameters point at

    def __len__(self) -> int:
        return len(self.pos)

    def set_ef_search(self, value: int) -> None:
        self.ef_search = value
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = value
        self._params = None

    def add(self, ids: list[str], matrix: NDArray[np.float32]) -> None:
        """Append new ids (they must not be present)."""
        start = len(self.ids)
        self.index.add(matrix)
        self.ids.extend(ids)
        for offset, item_id in enumerate(ids):
            self.pos[item_id] = start + offset
        bits = np.zeros((len(self.ids) + 7) // 8, dtype=np.uint8)
        bits[: len(self.live)] = self.live
        positions = np.arange(start, len(self.ids))
        np.bitwise_or.at(bits, positions >> 3, (1 << (positions & 7)).astype(np.uint8))
        self.live = bits
        self._params = None

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for item_id in ids:
            at = self.pos.pop(item_id, None)
            if at is None:
                continue
            self.ids[at] = None
            self.live[at >> 3] &= np.uint8(~(1 << (at & 7)) & 0xFF)
            self.dead += 1
            removed += 1
        if removed:
            self._params = None
        return removed

    def upsert(self, ids: list[str], matrix: NDArray[np.float32]) -> None:
        self.remove([i for i in ids if i in self.pos])
        self.add(ids, matrix)

    def params(self) -> Any:
        if self._params is None:
            faiss = _faiss()
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW()
                params.efSearch = self.ef_search
            else:
                params = faiss.SearchParameters()
            if self.dead:
                selector = faiss.IDSelectorBitmap(len(self.ids), faiss.swig_ptr(self.live))
                params.sel = selector
                self._keep = (selector, self.live)
            else:
                self._keep = ()
            self._params = params
        return self._params

    def search(self, q: NDArray[np.float32], k: int) -> SearchResult:
        if not self.pos or k < 1:
            return SearchResult([[] for _ in q], [[] for _ in q])
        kk = min(k, len(self.pos))
        scores, positions = self.index.search(q, kk, params=self.params())
        out_ids: list[list[str]] = []
        out_scores: list[list[float]] = []
        names = self.ids
        for row_pos, row_scores in zip(positions.tolist(), scores.tolist(), strict=True):
            row_ids: list[str] = []
            kept: list[float] = []
            for at, score in zip(row_pos, row_scores, strict=True):
                if at < 0:
                    continue
                name = names[at]
                if name is not None:
                    row_ids.append(name)
                    kept.append(score)
            out_ids.append(row_ids)
            out_scores.append(kept)
        return SearchResult(out_ids, out_scores)

    def vectors(self, positions: NDArray[np.int64]) -> NDArray[np.float32]:
        if len(positions) == 0:
            return np.zeros((0, self.index.d), dtype=np.float32)
        out: NDArray[np.float32] = self.index.reconstruct_batch(positions)
        return out


class FaissIndex:
    """FAISS inner-product index: exact below `hnsw_threshold` vectors, HNSW above it.

    Adds, replacements and removals apply at once. Replacing or removing leaves a tombstone that
    searches skip (a bitmap selector); when tombstones pass `compact_ratio` of the index, or a flat
    index outgrows the threshold, a background rebuild starts (`auto_rebuild`). During a rebuild,
    searches keep using the current index and every change is journaled and replayed onto the new
    one before it takes over. One lock serialises changes and searches.

    FAISS's OpenMP thread count is per calling thread: `search_threads` (1: one query at a time on a
    serving core) is applied in each thread that searches, `build_threads` in the rebuild thread.
    """

    def __init__(
        self,
        dim: int,
        *,
        hnsw_threshold: int = 2048,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 40,
        auto_rebuild: bool = True,
        compact_ratio: float = 0.3,
        search_threads: int = 1,
        build_threads: int | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError("dim must be positive")
        self._dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self._ef_search = ef_search
        self.auto_rebuild = auto_rebuild
        self.compact_ratio = compact_ratio
        self.search_threads = search_threads
        self.build_threads = build_threads
        self._lock = threading.RLock()
        self._state = _State(self._new_index("flat"), "flat", ef_search)
        self._journal: list[tuple[str, list[str], NDArray[np.float32] | None]] | None = None
        self._job: RebuildJob | None = None
        self._local = threading.local()

    # ------------------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def kind(self) -> IndexKind:
        return self._state.kind

    @property
    def tombstones(self) -> int:
        return self._state.dead

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        with self._lock:
            self._ef_search = value
            self._state.set_ef_search(value)

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._state.pos

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._state.pos)

    def vector(self, item_id: str) -> NDArray[np.float32] | None:
        with self._lock:
            at = self._state.pos.get(item_id)
            if at is None:
                return None
            found: NDArray[np.float32] = self._state.vectors(np.array([at], dtype=np.int64))[0]
            return found

    # --------------------------------------------------------------------------------- changes

    def add(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        matrix = _as_matrix(vectors, self._dim)
        _check_ids(ids, len(matrix))
        with self._lock:
            present = [i for i in ids if i in self._state.pos]
            if present or len(set(ids)) != len(ids):
                raise ValueError(f"ids already present: {sorted(set(present))[:5] or 'repeated'}")
            self._apply("upsert", list(ids), matrix)

    def upsert(self, ids: Sequence[str], vectors: ArrayLike) -> None:
        matrix = _as_matrix(vectors, self._dim)
        _check_ids(ids, len(matrix))
        unique, matrix = _last_wins(ids, matrix)
        with self._lock:
            self._apply("upsert", unique, matrix)

    def remove(self, ids: Iterable[str]) -> int:
        with self._lock:
            gone = [i for i in dict.fromkeys(ids) if i in self._state.pos]
            if gone:
                self._apply("remove", gone, None)
            return len(gone)

    def _apply(self, op: str, ids: list[str], matrix: NDArray[np.float32] | None) -> None:
        self._serving_threads()
        if op == "upsert":
            assert matrix is not None
            self._state.upsert(ids, matrix)
        else:
            self._state.remove(ids)
        if self._journal is not None:
            self._journal.append((op, ids, None if matrix is None else matrix.copy()))
        if self.auto_rebuild and self._needs_rebuild():
            self.rebuild(background=True)

    def _needs_rebuild(self) -> bool:
        if self._job is not None and not self._job.done:
            return False
        state = self._state
        outgrown = state.kind == "flat" and len(state) > self.hnsw_threshold
        crowded = state.dead > 64 and state.dead > self.compact_ratio * len(state.ids)
        return outgrown or crowded

    # ---------------------------------------------------------------------------------- search

    def search(self, queries: ArrayLike, k: int) -> SearchResult:
        q = _as_matrix(queries, self._dim)
        self._serving_threads()
        with self._lock:
            return self._state.search(q, k)

    def _serving_threads(self) -> None:
        if getattr(self._local, "threads", None) != self.search_threads:
            faiss = _faiss()

            faiss.omp_set_num_threads(self.search_threads)
            self._local.threads = self.search_threads

    # --------------------------------------------------------------------------------- rebuild

    def rebuild(self, *, background: bool = True, progress: Progress | None = None) -> RebuildJob:
        """Build a fresh index from the live vectors (flat or HNSW by size) and swap it in.

        In the background, changes made meanwhile are journaled and replayed before the swap; a
        rebuild already running is returned instead of starting another. `progress(added, total)`
        is called from the rebuilding thread as vectors go in.
        """
        with self._lock:
            if self._job is not None and not self._job.done:
                return self._job
            state = self._state
            positions = np.fromiter(state.pos.values(), dtype=np.int64, count=len(state.pos))
            ids = list(state.pos)
            vectors = state.vectors(positions)
            job = RebuildJob(total=len(ids))
            self._job = job
            self._journal = []
        if not background:
            self._run_rebuild(job, ids, vectors, progress)
            if job.error is not None:
                raise job.error
            return job
        thread = threading.Thread(
            target=self._run_rebuild,
            args=(job, ids, vectors, progress),
            name="cairn-index-rebuild",
            daemon=True,
        )
        thread.start()
        return job

    def _run_rebuild(
        self,
        job: RebuildJob,
        ids: list[str],
        vectors: NDArray[np.float32],
        progress: Progress | None,
    ) -> None:
        try:
            if self.build_threads is not None:
                faiss = _faiss()

                faiss.omp_set_num_threads(self.build_threads)
            kind: IndexKind = "hnsw" if len(ids) > self.hnsw_threshold else "flat"
            fresh = _State(self._new_index(kind), kind, self._ef_search)
            step = max(1024, len(ids) // 20)
            for start in range(0, len(ids), step):
                fresh.add(ids[start : start + step], vectors[start : start + step])
                job.added = min(start + step, len(ids))
                if progress is not None:
                    progress(job.added, job.total)
            with self._lock:
                for op, op_ids, matrix in self._journal or []:
                    if op == "upsert":
                        assert matrix is not None
                        fresh.upsert(op_ids, matrix)
                    else:
                        fresh.remove(op_ids)
                self._state = fresh
                self._journal = None
            if progress is not None and not ids:
                progress(0, 0)
        except BaseException as exc:  # noqa: BLE001 - reported through the job
            job.error = exc
            with self._lock:
                self._journal = None
        finally:
            job.finished.set()

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        job = self._job
        return True if job is None else job.wait(timeout)

    def _new_index(self, kind: IndexKind) -> Any:
        faiss = _faiss()

        if kind == "flat":
            return faiss.IndexFlatIP(self._dim)
        index = faiss.IndexHNSWFlat(self._dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self._ef_search
        return index

    # ----------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to `path` (faiss.write_index) and its ids to `path` + ".ids.json"."""
        faiss = _faiss()

        target = Path(path)
        with self._lock:
            state = self._state
            meta = {
                "format": _FORMAT,
                "dim": self._dim,
                "kind": state.kind,
                "hnsw_threshold": self.hnsw_threshold,
                "hnsw_m": self.hnsw_m,
                "ef_construction": self.ef_construction,
                "ef_search": self._ef_search,
                "ids": state.ids,
            }
            _write_atomic(target, lambda tmp: faiss.write_index(state.index, str(tmp)))
            sidecar = _sidecar(target)
            _write_atomic(sidecar, lambda tmp: tmp.write_text(json.dumps(meta)))

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        """An index saved by `save`; keyword options override the saved settings."""
        faiss = _faiss()

        target = Path(path)
        meta = json.loads(_sidecar(target).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{target}: unknown index format {meta.get('format')!r}")
        raw = faiss.read_index(str(target))
        ids: list[str | None] = meta["ids"]
        if raw.ntotal != len(ids) or raw.d != meta["dim"]:
            raise ValueError(f"{target}: the index and its id sidecar do not match")
        settings: dict[str, Any] = {
            "hnsw_threshold": meta["hnsw_threshold"],
            "hnsw_m": meta["hnsw_m"],
            "ef_construction": meta["ef_construction"],
            "ef_search": meta["ef_search"],
        }
        settings.update(options)
        index = cls(int(meta["dim"]), **settings)
        kind: IndexKind = meta["kind"]
        if kind == "hnsw":
            raw.hnsw.efSearch = index.ef_search
        state = _State(raw, kind, index.ef_search)
        state.ids = ids
        state.pos = {name: at for at, name in enumerate(ids) if name is not None}
        live = np.array([name is not None for name in ids], dtype=bool)
        state.live = np.packbits(live, bitorder="little")
        state.dead = len(ids) - len(state.pos)
        index._state = state
        return index


def _faiss() -> Any:
    """The faiss module, imported on first use (its SWIG types are not useful to a checker)."""
    import faiss

    return faiss


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".ids.json")
