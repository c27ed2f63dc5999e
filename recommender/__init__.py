"""Cairn recommender: embeddings, vector indexes, candidates (see the recommender issue)."""
