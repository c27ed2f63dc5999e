"""Background work of a running process ends and is let go: nothing piles up for its lifetime."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.serving.runtime import Runtime
from app.storage.db import Pool
from app.storage.models import MODELS_CHANNEL

pytestmark = pytest.mark.integration


async def test_models_notifications_leave_no_finished_tasks_behind(
    client: AsyncTestClient[Any], runtime: Runtime, pool: Pool
) -> None:
    del client  # the runtime runs in the app's lifespan
    steady = runtime.background_tasks
    assert steady >= 3  # listening, peer statistics, recommender: the long-lived ones
    reloads = 0
    original = runtime.reload_models

    async def counted() -> None:
        nonlocal reloads
        await original()
        reloads += 1

    runtime.reload_models = counted  # type: ignore[method-assign]
    for _ in range(25):
        await pool.execute("SELECT pg_notify($1, '')", MODELS_CHANNEL)
    for _ in range(200):  # a bound on failure, not a speed check
        if reloads == 25 and runtime.background_tasks == steady:
            break
        await asyncio.sleep(0.05)
    assert reloads == 25  # every notification reloaded the models...
    assert runtime.background_tasks == steady  # ...and its task was dropped once done
