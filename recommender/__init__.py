"""Cairn's recommender: embeddings, vector indexes, candidates for layout slots, offline evaluation.

- `embedder`: the `Embedder` protocol, sentence-transformers (packaged MiniLM by default), a
  deterministic twin for tests, and a cache for free-text queries.
- `index`: the `VectorIndex` protocol, `ExactIndex` (the oracle) and `FaissIndex` (flat, then HNSW).
- `catalog`: catalog items, the text that is embedded and its content hash.
- `candidates`: peer adoption with k-anonymous proof, and friction → help, as `Candidate`s.
- `evaluate`: popularity vs item-kNN vs Cairn's blend on held-out interactions; `synthetic`.
- `logistic`: L2-regularised logistic regression per segment, on a time split (propensity).

The package never imports the app; the app reads and writes the database and calls in here.
"""
