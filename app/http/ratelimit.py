"""Rate limits per secret key and per browser user, counted with the `limits` library.

Two budgets, each a list of limits in `limits`' notation (`"20/second;600/minute"`):

- per key (`CAIRN_RATE_LIMIT_KEY`): every request a secret key authenticates (a server's runaway
  loop). A publishable key is public, so it has no budget of its own anyone could spend for
  everyone: its callers are counted per user, once the user's hash is checked;
- per user (`CAIRN_RATE_LIMIT_USER`): every request a browser or app makes for one verified user
  with the publishable key, so one page in a loop cannot take a tenant's share.

Over either, the answer is 429 `rate_limited` with `Retry-After` (seconds until the window that
refused it has room again). Each process counts its own requests, in memory (a sliding window
counter): with N processes behind a balancer, a client gets up to N times the limit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
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
            self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._failing = False

    def key(self, key: str) -> None:
        """Count one request of this API key; RateLimitedError when it is over its limits."""
        if self._per_key:
            digest = hashlib.sha256(key.encode()).hexdigest()[:32]
            self._hit(self._per_key, f"key:{digest}", "this API key")

    def user(self, tenant_id: str, user_id: str) -> None:
        """Count one request made for this user with the publishable key."""
        if self._per_user:
            # one identifier, length-prefixed: ("a/b", "c") and ("a", "b/c") never share a count
            self._hit(self._per_user, f"user:{len(tenant_id)}:{tenant_id}:{user_id}", "this user")

    def _hit(self, limits: list[RateLimitItem], key: str, whose: str) -> None:
        limiter = self._limiter
        assert limiter is not None
        try:
            for item in limits:
                if not limiter.hit(item, key):
                    reset, _ = limiter.get_window_stats(item, key)
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
