"""Helpers that several end-to-end modules use on a page running the web SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
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


# Every WCAG 2.0 / 2.1 / 2.2 A and AA rule, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


# Rules a scan must have run and passed somewhere, so that a page that offers nothing for them to
# check (no buttons, no selects) cannot pass by accident: pages name theirs.
INTERACTIVE_RULES = frozenset(
    {"color-contrast", "button-name", "link-name", "select-name", "target-size"}
)


def axe(
    page: Page,
    script: Path,
    *,
    motion: str = "no-preference",
    must_check: frozenset[str] = INTERACTIVE_RULES,
) -> list[dict[str, Any]]:
    page.emulate_media(reduced_motion=motion)  # type: ignore[arg-type]
    page.wait_for_timeout(300)  # let the entrance animation finish
    page.add_script_tag(path=str(script))
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    checked = {rule["id"] for rule in result["passes"]}
    assert must_check <= checked, must_check - checked
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]


def known_user(
    server: Any, tenant: str, user: str, *, role: str, plan: str, seats: int = 80
) -> None:
    """A user Cairn knows, through an identify and a group call sent with the secret key."""
    import httpx

    batch = [
        {"type": "identify", "messageId": f"{user}-i", "tenantId": tenant, "userId": user,
         "traits": {"role": role}},
        {"type": "group", "messageId": f"{user}-g", "userId": user, "groupId": tenant,
         "traits": {"plan": plan, "industry": "software", "seats": seats}},
    ]  # fmt: skip
    r = httpx.post(
        f"{server.base}/v1/events",
        json={"batch": batch},
        headers={"Authorization": f"Bearer {server.settings.secret_key}"},
    )
    assert r.status_code == 200, r.text
