"""The real embedding model for tests, loaded once per test process and shared by every module."""

from __future__ import annotations

import functools
import os

from recommender.embedder import SentenceTransformerEmbedder


@functools.cache
def shared_minilm() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, offline, one torch thread: loaded once per test process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    embedder = SentenceTransformerEmbedder(None, threads=1)
    embedder.load()
    return embedder
