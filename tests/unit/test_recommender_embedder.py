"""Embedders: the real MiniLM model (loaded once per session), the hashing twin, the query cache."""

from __future__ import annotations

import numpy as np
import pytest

from app.demo.catalog import demo_catalog
from recommender.catalog import embedding_text
from recommender.embedder import (
    Embedder,
    HashingEmbedder,
    QueryCache,
    SentenceTransformerEmbedder,
    Vectors,
    normalize_rows,
)
from tests.embedders import shared_minilm


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return shared_minilm()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def _behaves_as_an_embedder(embedder: Embedder, texts: list[str]) -> Vectors:
    """What every `Embedder` promises, used only through the Protocol (so mypy checks that the
    embedder is one, signatures and all): an (n, dim) float32 matrix of unit rows, (0, dim) for no
    texts, a model id, and a query cache that gives the vector `embed` gives."""
    vectors = embedder.embed(texts)
    assert vectors.shape == (len(texts), embedder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)
    assert embedder.model_id.strip()
    np.testing.assert_allclose(embedder.query_cache.embed_query(texts[0]), vectors[0], atol=1e-5)
    return vectors


# --- the real model ------------------------------------------------------------------------------


def test_minilm_gives_unit_float32_rows_of_384_dimensions(
    minilm: SentenceTransformerEmbedder,
) -> None:
    texts = ["Connect Slack", "Fix a failing automation", "KYC review queue"]
    vectors = _behaves_as_an_embedder(minilm, texts)
    assert minilm.dim == 384
    assert vectors.shape == (3, 384)
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_places_related_catalog_text_together(minilm: SentenceTransformerEmbedder) -> None:
    catalog = demo_catalog()
    ids = ["slack", "microsoft_teams", "kyc_review", "fix-failing-automations"]
    v = dict(zip(ids, minilm.embed(catalog.texts(ids)), strict=True))
    # Two chat integrations are closer to each other than to a compliance template.
    assert _cos(v["slack"], v["microsoft_teams"]) > _cos(v["slack"], v["kyc_review"]) + 0.1
    query = minilm.embed(["Automation paused after 3 failed runs"])[0]
    assert _cos(query, v["fix-failing-automations"]) > _cos(query, v["slack"])
    assert _cos(query, v["fix-failing-automations"]) > _cos(query, v["kyc_review"])


def test_minilm_is_deterministic_and_batch_independent(minilm: SentenceTransformerEmbedder) -> None:
    texts = [embedding_text(demo_catalog()["sprint_board"]), "Release checklist"]
    together = minilm.embed(texts)
    alone = minilm.embed(texts[:1])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)


def test_query_embeddings_are_cached(minilm: SentenceTransformerEmbedder) -> None:
    cache = minilm.query_cache
    text = "Sync failed: the connection's access token has expired"
    first = minilm.embed_query(text)
    hits = cache.hits
    again = minilm.embed_query("  Sync failed:  the connection's access token has expired ")
    assert again is first  # whitespace does not matter; no second embedding
    assert cache.hits == hits + 1
    assert not first.flags.writeable
    np.testing.assert_allclose(first, minilm.embed([text])[0], atol=1e-5)


# --- the deterministic twin ----------------------------------------------------------------------


def test_hashing_embedder_is_deterministic_unit_length_and_word_sensitive() -> None:
    a, b = HashingEmbedder(64), HashingEmbedder(64)
    texts = ["connect slack alerts", "connect slack alerts", "quarterly tax filing", ""]
    va, vb = a.embed(texts), b.embed(texts)
    assert va.shape == (4, 64)
    assert va.dtype == np.float32
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-6)
    shared = a.embed(["connect slack"])[0]
    assert _cos(shared, va[0]) > _cos(shared, va[2])
    assert a.calls == 5
    np.testing.assert_array_equal(_behaves_as_an_embedder(b, texts), va)


def test_hashing_embedder_rejects_a_tiny_dimension() -> None:
    with pytest.raises(ValueError, match="dim"):
        HashingEmbedder(1)


# --- the query cache ------------------------------------------------------------------------------


def test_query_cache_evicts_the_least_recently_used() -> None:
    embedder = HashingEmbedder(16)
    cache = QueryCache(embedder, maxsize=2)
    cache.embed_query("alpha")
    cache.embed_query("beta")
    cache.embed_query("alpha")  # alpha is now the most recent
    cache.embed_query("gamma")  # evicts beta
    assert len(cache) == 2
    calls = embedder.calls
    cache.embed_query("alpha")
    assert embedder.calls == calls
    cache.embed_query("beta")
    assert embedder.calls == calls + 1
    assert (cache.hits, cache.misses) == (2, 4)
    with pytest.raises(ValueError, match="maxsize"):
        QueryCache(embedder, maxsize=0)


def test_normalize_rows_keeps_zero_rows() -> None:
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32
