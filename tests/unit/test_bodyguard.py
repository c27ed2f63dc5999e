"""Bodies that stall are cut short (408); bodies left unread are drained before the answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.errors import BodyTimeoutError
from app.http.bodyguard import BodyGuard

SCOPE = {"type": "http", "headers": [(b"content-length", b"100")]}


def _receiver(chunks: list[bytes], *, stall: bool = False) -> tuple[Any, list[bytes]]:
    taken: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not chunks:
            if stall:
                await asyncio.sleep(60)
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        taken.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or stall}

    return receive, taken


async def _noop_send(_: Any) -> None:
    return None


async def test_a_body_that_stops_arriving_is_refused() -> None:
    async def reads(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass

    receive, _ = _receiver([b"a" * 10], stall=True)
    with pytest.raises(BodyTimeoutError) as refused:
        await asyncio.wait_for(BodyGuard(reads, stall_s=0.05)(SCOPE, receive, _noop_send), 5)
    assert refused.value.code == "body_timeout"


async def test_a_body_left_unread_is_drained_before_the_answer() -> None:
    async def refuses(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # reads one chunk, then answers without the rest

    receive, taken = _receiver([b"a" * 10, b"b" * 10, b"c" * 10])
    await BodyGuard(refuses, stall_s=1)(SCOPE, receive, _noop_send)
    assert taken == [b"a" * 10, b"b" * 10, b"c" * 10]


async def test_requests_without_a_body_pass_straight_through() -> None:
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(receive)

    async def receive() -> dict[str, Any]:
        raise AssertionError("not read")

    await BodyGuard(app)({"type": "http", "headers": []}, receive, _noop_send)
    assert seen == [receive]
