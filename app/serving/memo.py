"""Decisions kept for reuse: the same profile and layouts a moment ago give the same layout.

A decision is reused while the user's profile and the layouts are the very same objects (a new
event or a reload replaces them), for a few seconds. Peer statistics, the recommender's peer model
and the propensity models are rebuilt on schedules of minutes: a reused decision is at most a few
seconds behind them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.engine.model import Layouts
from app.engine.profile import ProfileData
from app.engine.reasons import Exclusion
from widgets import LayoutDescriptor

MEMO_TTL = timedelta(seconds=5)  # time-based signals (cool-downs, windows) move on within this
MEMO_SIZE = 50_000

# (tenant, user, screen, view asked for, widget types the client renders)
MemoKey = tuple[str, str, str, str | None, frozenset[str] | None]


@dataclass(frozen=True, slots=True)
class MemoEntry:
    profile: ProfileData
    layouts: Layouts
    expires: datetime
    descriptor: LayoutDescriptor
    etag: str
    trace: list[Exclusion]


class DecisionMemo:
    """The most recent decisions, least recently used dropped first."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self._entries: OrderedDict[MemoKey, MemoEntry] = OrderedDict()
        self._size = size

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(
        self, key: MemoKey, profile: ProfileData, layouts: Layouts, now: datetime
    ) -> MemoEntry | None:
        """The decision made for `key` from this very profile and these layouts, if fresh."""
        entry = self._entries.get(key)
        if (
            entry is None
            or entry.profile is not profile
            or entry.layouts is not layouts
            or now >= entry.expires
        ):
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self,
        key: MemoKey,
        profile: ProfileData,
        layouts: Layouts,
        now: datetime,
        descriptor: LayoutDescriptor,
        etag: str,
        trace: list[Exclusion],
    ) -> None:
        self._entries[key] = MemoEntry(profile, layouts, now + _ttl(key), descriptor, etag, trace)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _ttl(key: MemoKey) -> timedelta:
    """Between half and all of MEMO_TTL, spread by key: decisions made together (a warm-up, a
    burst) do not all expire together and come back as one burst of work."""
    return MEMO_TTL * (0.5 + (hash(key) % 512) / 1024)
