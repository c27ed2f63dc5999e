"""The API over real HTTP against `cairn serve`: the live stream, and Segment's own library."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from app.serving.identity import user_hash
from e2e.conftest import Server

pytestmark = pytest.mark.e2e


def next_step_title(descriptor: dict[str, Any]) -> str | None:
    for slot in descriptor["slots"]:
        for widget in slot["widgets"]:
            if widget["type"] == "next_step_card":
                title: str = widget["props"]["title"]
                return title
    return None


def test_stream_pushes_a_new_layout_within_a_second_of_an_event(server: Server) -> None:
    tenant, user = f"t-{uuid.uuid4().hex[:8]}", "u1"
    secret = {"Authorization": f"Bearer {server.settings.secret_key}"}
    browser = {
        "Authorization": f"Bearer {server.settings.publishable_key}",
        "X-Cairn-User-Hash": user_hash(server.settings.identity_secret, tenant, user),
    }
    setup = [
        {
            "type": "identify",
            "messageId": "s1",
            "tenantId": tenant,
            "userId": user,
            "traits": {"role": "admin"},
        },
        {
            "type": "group",
            "messageId": "s2",
            "userId": user,
            "groupId": tenant,
            "traits": {"plan": "trial", "industry": "fintech"},
        },
    ]
    assert (
        httpx.post(f"{server.base}/v1/events", json={"batch": setup}, headers=secret).status_code
        == 200
    )
    layouts: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:
        params = {"tenant_id": tenant, "user_id": user}
        with httpx.stream(
            "GET",
            f"{server.base}/v1/layouts/home/stream",
            params=params,
            headers=browser,
            timeout=10,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "layout":
                    layouts.append(json.loads(line[5:]))
                    opened.set()
                    if len(layouts) == 2:
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(10), "the stream sent no first layout"
    assert next_step_title(layouts[0]) == "Invite a teammate"
    r = httpx.post(  # an invitation changes the whole tenant: the host app's server reports it
        f"{server.base}/v1/events",
        headers=secret,
        json={
            "batch": [
                {
                    "type": "track",
                    "messageId": "s3",
                    "tenantId": tenant,
                    "userId": user,
                    "event": "teammate_invited",
                    "properties": {"count": 1},
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    reader.join(5)
    assert len(layouts) == 2, "no new layout after the event"
    assert next_step_title(layouts[1]) == "Connect your first integration"
    # How fast it arrives is measured by tests/bench/bench_layout_http.py, not asserted here.


def test_segment_python_library_works_unchanged(server: Server) -> None:
    """segment-analytics-python pointed at Cairn: Basic auth, /v1/batch, its own payload shape."""
    import segment.analytics as analytics

    tenant = f"seg-{uuid.uuid4().hex[:8]}"
    client = analytics.Client(
        write_key=server.settings.secret_key, host=server.base, sync_mode=True, max_retries=1
    )
    client.identify(
        "u9", {"role": "maker", "email": "maker@example.com"}, context={"groupId": tenant}
    )
    client.group("u9", tenant, {"plan": "pro", "industry": "education"})
    client.track("u9", "report_created", {"source": "segment"}, context={"groupId": tenant})
    client.flush()
    headers = {"Authorization": f"Bearer {server.settings.secret_key}"}
    layout = httpx.get(
        f"{server.base}/v1/layouts/home",
        headers=headers,
        params={"tenant_id": tenant, "user_id": "u9"},
    ).json()
    assert layout["personalized"] is True
    assert layout["layout"] == "home/maker"
    assert layout["presets"]["industry"] == "education"
