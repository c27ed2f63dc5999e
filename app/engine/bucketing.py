"""Deterministic bucketing: which variant of a rollout a unit gets. Pure.

The hash is GrowthBook's version 2, so any of GrowthBook's SDKs (and anyone with twenty lines of
code) reproduces Cairn's assignments:

    fnv1a32(s)       FNV-1a, 32 bits, over the UTF-16 code units of s
    hash(salt, id)   (fnv1a32(str(fnv1a32(salt + id))) % 10000) / 10000   →  [0, 1)

A rollout's percentages become consecutive ranges of [0, 1) in the order they are written; the
unit gets the variant whose range holds its hash. Growing one variant of a two-variant rollout
(`{on: 10, off: 90}` → `{on: 30, off: 70}`) only moves units into it: every unit that had `on`
keeps it. The unit id is the tenant id for tenant flags and `<tenant_id>:<user_id>` for user
flags (user ids are unique only within a tenant); the salt is the flag's key unless it sets one.
Tests hold this module to the cases GrowthBook's SDK specification publishes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32(text: str, h: int = _FNV_OFFSET) -> int:
    """FNV-1a 32 over UTF-16 code units (as JavaScript's `charCodeAt` reads a string); `h`
    continues a hash of what came before."""
    if text.isascii():
        for byte in text.encode():
            h = ((h ^ byte) * _FNV_PRIME) & _MASK
        return h
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & _MASK
    return h


def unit_hash(salt: str, unit_id: str) -> float:
    """The unit's place in [0, 1) for this salt, in steps of 1/10,000."""
    return (fnv1a32(str(fnv1a32(salt + unit_id))) % 10_000) / 10_000


def salted_hash(salt: str, cache_size: int = 1 << 16) -> Callable[[str], float]:
    """`unit_hash(salt, ·)` for one salt: the salt's part of the first hash is done once (FNV-1a
    reads left to right), and recent units' answers are kept (a unit is asked again and again)."""
    state = fnv1a32(salt)

    @functools.lru_cache(maxsize=cache_size)
    def hash_of(unit_id: str) -> float:
        return (fnv1a32(str(fnv1a32(unit_id, state))) % 10_000) / 10_000

    return hash_of


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Consecutive ranges of [0, 1) for weights that sum to 1; with coverage below 1 each range
    keeps only its first part (units past it are in no variant)."""
    coverage = min(max(coverage, 0.0), 1.0)
    ranges = []
    start = 0.0
    for w in weights:
        ranges.append((start, start + coverage * w))
        start += w
    return ranges


def choose(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The index of the range holding n, or -1."""
    for i, (low, high) in enumerate(ranges):
        if low <= n < high:
            return i
    return -1


def user_unit(tenant_id: str, user_id: str) -> str:
    return f"{tenant_id}:{user_id}"
