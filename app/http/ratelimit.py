"""Rate limits per API key and per browser user, counted with the `limits` library.

Two budgets, each a list of limits in `limits`' notation (`"20/second;600/minute"`):

- per key (`CAIRN_RATE_LIMIT_KEY`): every request an API key authenticates, whatever it is for;
- per user (`CAIRN_RATE_LIMIT_USER`): every request a browser or app makes for one user with the
  publishable key (the user its hash proves), so one page in a loop cannot take a tenant's share.

Over either, the answer is 429 `rate_limited` with `Retry-After` (seconds until the window that
refused it has room again). Counters live in `CAIRN_RATE_LIMIT_STORAGE`: `memory://` (each
process counts its own requests) or a shared store `limits` knows (`redis://host:6379`) to count
across processes. If the store fails, requests go through (logged once): a limit never blocks a
core flow. Keys are counted by a digest, never stored as they are.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.errors import RateLimitedError
from app.settings import Settings

log = logging.getLogger("cairn.http")


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self._per_key = _parse(settings.rate_limit_key)
        self._per_user = _parse(settings.rate_limit_user)
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        if self._per_key or self._per_user:
            storage = storage_from_string(settings.rate_limit_storage)
            self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._failing = False

    def key(self, key: str) -> None:
        """Count one request of this API key; RateLimitedError when it is over its limits."""
        if self._per_key:
            digest = hashlib.sha256(key.encode()).hexdigest()[:32]
            self._hit(self._per_key, ("key", digest), "this API key")

    def user(self, tenant_id: str, user_id: str) -> None:
        """Count one request made for this user with the publishable key."""
        if self._per_user:
            self._hit(self._per_user, ("user", tenant_id, user_id), "this user")

    def _hit(self, limits: list[RateLimitItem], ids: tuple[str, ...], whose: str) -> None:
        limiter = self._limiter
        assert limiter is not None
        try:
            for item in limits:
                if not limiter.hit(item, *ids):
                    reset, _ = limiter.get_window_stats(item, *ids)
                    wait = max(1, math.ceil(reset - time.time()))
                    raise RateLimitedError(
                        "rate_limited",
                        f"Too many requests for {whose} (at most {item}); retry in {wait} s.",
                        retry_after=wait,
                    )
        except RateLimitedError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store failing never blocks a request
            if not self._failing:
                log.warning("rate limits not counted, their store failed: %r", exc)
            self._failing = True
            return
        self._failing = False


def _parse(text: str) -> list[RateLimitItem]:
    return [] if text.strip() in ("", "off") else parse_many(text)


def rate_limits_of(state: Any) -> RateLimits | None:
    found = getattr(state, "rate_limits", None)
    return found if isinstance(found, RateLimits) else None
