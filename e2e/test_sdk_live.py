"""Live updates: the SDK re-renders on server-sent `layout` events and reconnects with backoff."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest
from playwright.sync_api import Route, expect

from e2e.conftest import Harness, SdkUser

pytestmark = pytest.mark.e2e

STREAM = "**/v1/layouts/home/stream?*"


def report(harness: Harness, who: SdkUser, event: str, **properties: object) -> None:
    """The host app's backend reports a product event (not through the page)."""
    secret = {"Authorization": f"Bearer {harness.server.settings.secret_key}"}
    message = {
        "type": "track",
        "messageId": f"{who.tenant}-{event}-{time.monotonic_ns()}",
        "tenantId": who.tenant,
        "userId": who.user,
        "event": event,
        "properties": properties,
    }
    r = httpx.post(f"{harness.server.base}/v1/events", json={"batch": [message]}, headers=secret)
    assert r.status_code == 200, r.text


def test_an_event_updates_the_page_over_the_live_stream(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who, live=1)
    card = page.locator("#cairn-root .cairn-next_step_card h2")
    expect(card).to_have_text("Invite a teammate")
    page.wait_for_timeout(300)  # the stream is open
    report(harness, who, "teammate_invited", count=1)
    expect(card).to_have_text("Connect your first integration", timeout=5000)
    # The new layout replaced the cache too.
    cached = page.evaluate(
        "k => JSON.parse(localStorage.getItem(k))", f"cairn:l:{who.tenant}:{who.user}:home:"
    )
    titles = [w["props"].get("title") for s in cached["slots"] for w in s["widgets"]]
    assert "Connect your first integration" in titles


def test_the_stream_reconnects_with_backoff_and_keeps_updating(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    attempts: list[float] = []

    def flaky(route: Route) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            route.abort("connectionrefused")  # Cairn restarting
        elif len(attempts) == 3:
            # A proxy that cuts the stream after one event.
            layout = route.fetch(url=route.request.url.replace("/stream", "")).json()
            body = f"event: layout\ndata: {json.dumps(layout)}\n\n"
            route.fulfill(status=200, content_type="text/event-stream", body=body)
        else:
            route.continue_()

    page.route(STREAM, flaky)
    harness.open(who, live=1)
    deadline = time.monotonic() + 12
    while len(attempts) < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(attempts) >= 4, attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.9, gaps  # 1 s (+ up to half of it, at random)
    assert gaps[1] >= 1.9, gaps  # 2 s: backing off
    assert gaps[2] < 3.5, gaps  # a layout arrived: the delay starts again from 1 s (not 4 s)
    assert len(harness.errors()) >= 2
    page.wait_for_timeout(300)
    report(harness, who, "teammate_invited", count=1)
    expect(page.locator("#cairn-root .cairn-next_step_card h2")).to_have_text(
        "Connect your first integration", timeout=5000
    )


def test_a_stream_refused_for_good_is_not_retried(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    attempts: list[float] = []

    def refuse(route: Route) -> None:
        attempts.append(time.monotonic())
        route.fulfill(
            status=403,
            content_type="application/json",
            body='{"error": {"code": "user_hash_invalid", "message": "No."}}',
        )

    page.route(STREAM, refuse)
    harness.open(who, live=1)
    page.wait_for_timeout(1700)  # a retry would have come after 1 to 1.5 s
    assert len(attempts) == 1
    assert {"message": "No.", "code": "user_hash_invalid", "status": 403} in harness.errors()
