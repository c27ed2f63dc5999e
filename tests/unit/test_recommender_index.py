"""Vector indexes: the exact oracle, and FAISS judged against it (recall@10 on MiniLM vectors)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from app.demo.catalog import demo_items
from recommender.embedder import HashingEmbedder, SentenceTransformerEmbedder, normalize_rows
from recommender.index import ExactIndex, FaissIndex, VectorIndex, recall_at_k
from recommender.synthetic import activity_texts
from tests.embedders import shared_minilm

DIM = 32


def _vectors(n: int, seed: int = 0, dim: int = DIM) -> NDArray[np.float32]:
    """Clustered unit vectors (structure like text embeddings, not uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 50), dim))
    x = centres[rng.integers(len(centres), size=n)] + 0.35 * rng.normal(size=(n, dim))
    return normalize_rows(x)


def _ids(n: int, prefix: str = "v") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _brute_force(
    x: NDArray[np.float32], ids: list[str], q: NDArray[np.float32], k: int
) -> tuple[list[list[str]], NDArray[np.float32]]:
    scores = q @ x.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[ids[j] for j in row] for row in order], np.take_along_axis(scores, order, axis=1)


def _stored(index: VectorIndex, item_id: str) -> NDArray[np.float32]:
    vector = index.vector(item_id)
    assert vector is not None
    return vector


def _behaves_as_a_vector_index(index: VectorIndex, ids: list[str], x: NDArray[np.float32]) -> None:
    """What every `VectorIndex` holding `x` under `ids` promises, used only through the Protocol
    (so mypy checks that the index is one, signatures and all): its size, membership, ids and
    stored vectors, and an exact top-k where every stored vector finds itself first."""
    assert index.dim == x.shape[1]
    assert len(index) == len(ids)
    assert sorted(index.ids()) == sorted(ids)
    assert ids[3] in index and "nope" not in index
    np.testing.assert_allclose(_stored(index, ids[3]), x[3], atol=1e-6)
    assert index.vector("nope") is None
    found = index.search(x[:5], 3)
    want_ids, want_scores = _brute_force(x, ids, x[:5], 3)
    assert found.ids == want_ids
    assert [row[0] for row in found.ids] == ids[:5]
    np.testing.assert_allclose(found.scores, want_scores, rtol=1e-5, atol=1e-5)


def _kind(index: FaissIndex) -> str:
    return index.kind


@pytest.fixture(scope="module")
def real_vectors() -> tuple[list[str], NDArray[np.float32], NDArray[np.float32]]:
    """900 MiniLM vectors of varied product sentences, and 100 held-out query vectors."""
    texts = activity_texts(1000, demo_items(), seed=5)
    vectors = shared_minilm().embed(texts)
    return _ids(900, "t"), vectors[:900], vectors[900:]


# --- the oracle -----------------------------------------------------------------------------------


def test_exact_index_matches_brute_force() -> None:
    x, ids = _vectors(500), _ids(500)
    index = ExactIndex(DIM)
    index.add(ids, x)
    q = _vectors(20, seed=9)
    found = index.search(q, 10)
    want_ids, want_scores = _brute_force(x, ids, q, 10)
    assert found.ids == want_ids
    np.testing.assert_allclose(found.scores, want_scores, rtol=1e-5, atol=1e-6)
    _behaves_as_a_vector_index(index, ids, x)
    assert len(index) == 500
    assert "v3" in index
    assert "nope" not in index


def test_exact_index_upserts_removes_and_refuses_duplicates() -> None:
    x = _vectors(50)
    index = ExactIndex(DIM)
    index.add(_ids(50), x)
    with pytest.raises(ValueError, match="already present"):
        index.add(["v1"], x[:1])
    index.upsert(["v1", "new"], np.stack([x[2], x[3]]))
    np.testing.assert_allclose(_stored(index, "v1"), x[2])
    assert len(index) == 51
    assert index.remove(["v1", "v1", "missing"]) == 1
    assert "v1" not in index
    assert len(index) == 50
    top = index.search(x[2], 2).ids[0]
    assert top[0] == "v2"
    assert "v1" not in top
    with pytest.raises(ValueError, match="dimensions"):
        index.add(["bad"], np.zeros((1, DIM + 1), dtype=np.float32))


def test_exact_index_search_on_small_or_empty_index() -> None:
    index = ExactIndex(DIM)
    assert index.search(_vectors(2), 5).ids == [[], []]
    index.add(["a", "b"], _vectors(2))
    assert len(index.search(_vectors(1), 5).ids[0]) == 2


def test_exact_index_saves_and_loads(tmp_path: Path) -> None:
    x = _vectors(100)
    index = ExactIndex(DIM)
    index.add(_ids(100), x)
    index.save(tmp_path / "exact.npz")
    loaded = ExactIndex.load(tmp_path / "exact.npz")
    q = _vectors(5, seed=4)
    assert loaded.search(q, 10) == index.search(q, 10)


# --- FAISS against the oracle ---------------------------------------------------------------------


def test_small_faiss_index_is_flat_and_exact() -> None:
    x, ids = _vectors(300), _ids(300)
    faiss_index, exact = FaissIndex(DIM), ExactIndex(DIM)
    faiss_index.add(ids, x)
    exact.add(ids, x)
    assert faiss_index.kind == "flat"
    q = _vectors(30, seed=3)
    from_faiss, from_exact = faiss_index.search(q, 10), exact.search(q, 10)
    assert from_faiss.ids == from_exact.ids
    np.testing.assert_allclose(from_faiss.scores, from_exact.scores, rtol=1e-5, atol=1e-5)
    _behaves_as_a_vector_index(faiss_index, ids, x)


def test_faiss_removal_and_replacement_leave_no_trace_in_results() -> None:
    x, ids = _vectors(400), _ids(400)
    index = FaissIndex(DIM, auto_rebuild=False)
    exact = ExactIndex(DIM)
    index.add(ids, x)
    exact.add(ids, x)
    gone = ids[:100:3]
    assert index.remove(gone) == len(gone)
    exact.remove(gone)
    moved = _vectors(10, seed=8)
    index.upsert(ids[200:210], moved)
    exact.upsert(ids[200:210], moved)
    assert index.tombstones == len(gone) + 10
    assert len(index) == len(exact)
    q = np.concatenate([x[:40], moved])
    assert index.search(q, 10).ids == exact.search(q, 10).ids
    assert index.vector(ids[0]) is None
    np.testing.assert_allclose(_stored(index, ids[205]), moved[5], atol=1e-6)
    with pytest.raises(ValueError, match="already present"):
        index.add([ids[300]], x[:1])
    index.rebuild(background=False)
    assert index.tombstones == 0
    assert index.search(q, 10).ids == exact.search(q, 10).ids


def test_faiss_switches_to_hnsw_above_the_threshold_in_the_background() -> None:
    x, ids = _vectors(1200), _ids(1200)
    index = FaissIndex(DIM, hnsw_threshold=500)
    index.add(ids[:400], x[:400])
    assert index.kind == "flat"
    index.add(ids[400:], x[400:])  # crosses the threshold: a rebuild starts
    assert index.wait_for_rebuild(30)
    assert _kind(index) == "hnsw"
    assert len(index) == 1200
    exact = ExactIndex(DIM)
    exact.add(ids, x)
    q = _vectors(50, seed=21)
    assert recall_at_k(index.search(q, 10).ids, exact.search(q, 10).ids, 10) >= 0.95


def test_background_rebuild_reports_progress_and_keeps_changes_made_meanwhile() -> None:
    x, ids = _vectors(3000), _ids(3000)
    index = FaissIndex(DIM, hnsw_threshold=1000, auto_rebuild=False)
    index.add(ids, x)  # still flat: no automatic rebuild
    assert index.kind == "flat"
    calls: list[tuple[int, int]] = []
    gate = threading.Event()

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        gate.wait(5)  # hold the rebuild until the changes below are made

    job = index.rebuild(progress=progress)
    assert index.rebuild() is job  # one rebuild at a time
    extra = _vectors(5, seed=77)
    index.add(_ids(5, "late"), extra)
    index.remove(["v0", "v1"])
    index.upsert(["v2"], extra[:1])
    gate.set()
    assert job.wait(60)
    assert job.error is None
    assert job.progress == 1.0
    assert calls[-1] == (3000, 3000)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert _kind(index) == "hnsw"
    assert len(index) == 3003
    assert "late4" in index
    assert "v0" not in index
    assert index.search(extra[:1], 2).ids[0][0] in {"late0", "v2"}
    exact = ExactIndex(DIM)
    exact.add(index.ids(), np.stack([_stored(index, i) for i in index.ids()]))
    q = _vectors(40, seed=31)
    assert recall_at_k(index.search(q, 10).ids, exact.search(q, 10).ids, 10) >= 0.95


def test_faiss_saves_and_loads_with_tombstones(tmp_path: Path) -> None:
    x, ids = _vectors(600), _ids(600)
    index = FaissIndex(DIM, hnsw_threshold=200, auto_rebuild=False)
    index.add(ids, x)
    index.rebuild(background=False)
    index.remove(ids[:10])
    path = tmp_path / "catalog.faiss"
    index.save(path)
    assert (tmp_path / "catalog.faiss.ids.json").exists()
    loaded = FaissIndex.load(path)
    assert loaded.kind == "hnsw"
    assert len(loaded) == 590
    assert loaded.tombstones == 10
    q = _vectors(20, seed=2)
    assert loaded.search(q, 10) == index.search(q, 10)
    loaded.add(["fresh"], x[:1])
    assert loaded.search(x[:1], 1).ids[0][0] in {"fresh", "v0"}
    assert "v0" not in loaded


def test_faiss_load_refuses_a_mismatched_sidecar(tmp_path: Path) -> None:
    index = FaissIndex(DIM)
    index.add(_ids(10), _vectors(10))
    index.save(tmp_path / "a.faiss")
    other = FaissIndex(DIM)
    other.add(_ids(11), _vectors(11))
    other.save(tmp_path / "b.faiss")
    (tmp_path / "a.faiss.ids.json").write_text((tmp_path / "b.faiss.ids.json").read_text())
    with pytest.raises(ValueError, match="do not match"):
        FaissIndex.load(tmp_path / "a.faiss")


def test_hashing_vectors_agree_between_indexes() -> None:
    texts = activity_texts(300, demo_items(), seed=1)
    vectors = HashingEmbedder(DIM).embed(texts)
    faiss_index, exact = FaissIndex(DIM), ExactIndex(DIM)
    for index in (faiss_index, exact):
        index.add(_ids(300), vectors)
    assert faiss_index.search(vectors[:10], 5).ids == exact.search(vectors[:10], 5).ids


# --- real MiniLM vectors --------------------------------------------------------------------------


def _minilm_recall(index: FaissIndex, exact: ExactIndex, q: NDArray[np.float32]) -> float:
    return recall_at_k(index.search(q, 10).ids, exact.search(q, 10).ids, 10)


def test_hnsw_recall_on_real_minilm_vectors(
    real_vectors: tuple[list[str], NDArray[np.float32], NDArray[np.float32]], tmp_path: Path
) -> None:
    ids, x, q = real_vectors
    exact = ExactIndex(384)
    exact.add(ids, x)
    index = FaissIndex(384, hnsw_threshold=256, auto_rebuild=False)
    index.add(ids[:600], x[:600])
    index.rebuild(background=False)
    assert index.kind == "hnsw"
    index.add(ids[600:], x[600:])  # incremental adds into the HNSW graph
    assert _minilm_recall(index, exact, q) >= 0.95
    index.save(tmp_path / "minilm.faiss")
    loaded = FaissIndex.load(tmp_path / "minilm.faiss")
    assert _minilm_recall(loaded, exact, q) >= 0.95
    assert loaded.search(q, 10) == index.search(q, 10)


def test_minilm_embedder_feeds_the_index() -> None:
    embedder: SentenceTransformerEmbedder = shared_minilm()
    assert embedder.dim == 384
    texts = ["Connect Slack to get alerts", "Quarterly KYC review for new clients"]
    index = FaissIndex(embedder.dim)
    index.add(["slack", "kyc"], embedder.embed(texts))
    hit = index.search(embedder.embed_query("send notifications to a chat channel"), 1)
    assert hit.ids == [["slack"]]
