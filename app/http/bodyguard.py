"""Request bodies that stall, and bodies refused before they were read.

- A body that stops arriving (no chunk for `CAIRN_BODY_TIMEOUT_S` seconds, 10 by default) is
  answered 408 `body_timeout`: a client that sends headers and then waits holds no connection
  for long.
- A body the app did not read to its end (refused as too large, say) is read and thrown away, up
  to DRAIN_BYTES, before the answer goes: a simple client still sending then gets the 413 instead
  of a broken pipe.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.errors import BodyTimeoutError

DRAIN_BYTES = 32 * 1024 * 1024
Message = dict[str, Any]


class BodyGuard:
    def __init__(self, app: Any, stall_s: float = 10.0) -> None:
        self.app = app
        self.stall_s = stall_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        more = True  # body still to come
        stall_s = self.stall_s

        async def guarded() -> Message:
            nonlocal more
            if not more:
                message: Message = await receive()
                return message
            try:
                message = await asyncio.wait_for(receive(), stall_s)
            except TimeoutError:
                more = False
                raise BodyTimeoutError(
                    "body_timeout",
                    f"The request body stopped arriving for {stall_s:g} s; send it whole.",
                ) from None
            if message["type"] == "http.request":
                more = bool(message.get("more_body", False))
            else:
                more = False
            return message

        try:
            await self.app(scope, guarded, send)
        finally:
            if more:
                await _drain(receive, stall_s)


def _has_body(scope: Any) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


async def _drain(receive: Any, stall_s: float) -> None:
    """Read and drop the rest of a body, up to DRAIN_BYTES, while it keeps arriving."""
    left = DRAIN_BYTES
    while left > 0:
        try:
            message = await asyncio.wait_for(receive(), stall_s)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        left -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return
