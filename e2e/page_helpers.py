"""Helpers that several end-to-end modules use on a page running the web SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from playwright.sync_api import Page

from e2e.conftest import SdkUser

T = TypeVar("T")


def eventually(page: Page, probe: Callable[[], T], timeout_ms: int = 8000) -> T:
    """Poll `probe` (letting the page run) until it returns something truthy."""
    for _ in range(timeout_ms // 100):
        value = probe()
        if value:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"not within {timeout_ms} ms")


def queued(page: Page, who: SdkUser) -> list[dict[str, Any]]:
    """The events the SDK holds in its offline queue for `who`."""
    raw = page.evaluate("k => localStorage.getItem(k)", f"cairn:q:{who.tenant}:{who.user}")
    return json.loads(raw) if raw else []
