"""Live layout streams: who is watching, and waking them when their decision may have changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


class Hub:
    """Wakes live layout streams when a user's decision may have changed."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], set[asyncio.Queue[str]]] = defaultdict(set)

    def subscribe(self, tenant_id: str, user_id: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self._subs[(tenant_id, user_id)].add(queue)
        return queue

    def unsubscribe(self, tenant_id: str, user_id: str, queue: asyncio.Queue[str]) -> None:
        subs = self._subs.get((tenant_id, user_id))
        if subs is not None:
            subs.discard(queue)
            if not subs:
                self._subs.pop((tenant_id, user_id), None)

    def _put(self, queue: asyncio.Queue[str], reason: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(reason)

    def publish(self, tenant_id: str, user_id: str, reason: str = "profile") -> None:
        for queue in self._subs.get((tenant_id, user_id), ()):
            self._put(queue, reason)

    def publish_tenant(self, tenant_id: str, reason: str) -> None:
        for (t, _), queues in self._subs.items():
            if t == tenant_id:
                for queue in queues:
                    self._put(queue, reason)

    def publish_all(self, reason: str) -> None:
        for queues in self._subs.values():
            for queue in queues:
                self._put(queue, reason)
