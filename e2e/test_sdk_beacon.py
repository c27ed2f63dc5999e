"""Page hide sends the queue with navigator.sendBeacon: a text/plain body carrying the publishable
key and the user hash (a beacon cannot set headers), which needs no CORS preflight. A beacon gives
no receipt, so what it carried stays queued and is sent again by the next page (or by the same
page once it is shown again): Cairn stores it once. A batch too big for a beacon goes by fetch.

A beacon sent while the page unloads never reaches Playwright's request routing, so the SDK talks
to Cairn through a small forwarding proxy on the test's side, which also serves the host page:
every request that reaches the real server is recorded there, with its headers, as the network
carried it.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Route

from e2e.conftest import HARNESS_FILE, HARNESS_PATH, Harness, SdkUser, Server
from e2e.page_helpers import eventually, queued

pytestmark = pytest.mark.e2e

HIDE = """() => {
    Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
    document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
    Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
    document.dispatchEvent(new Event('visibilitychange'));
}"""
HOP_BY_HOP = {"host", "connection", "content-length", "accept-encoding", "transfer-encoding"}
DROPPED = {"content-encoding", "date", "server"}  # the proxy sends its own


@dataclass(frozen=True)
class Posted:
    """A POST to /v1/events as it reached Cairn, and Cairn's answer."""

    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    answer: Any

    @property
    def beacon(self) -> bool:
        return "authorization" not in self.headers and self.headers.get(
            "content-type", ""
        ).lower().startswith("text/plain")

    def ids(self) -> list[str]:
        return [e["messageId"] for e in self.body.get("batch", [])]

    def names(self) -> list[str]:
        return [e.get("event") or e["type"] for e in self.body.get("batch", [])]


class Recorder(http.server.ThreadingHTTPServer):
    """Serves the harness page from its own origin (a real page on the loopback network, as a host
    app's would be) and forwards everything else to the real Cairn server, recording what reaches
    /v1/events."""

    def __init__(self, server: Server) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = server.base
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.posted: list[Posted] = []
        self.preflights: list[str] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def beacons(self, event: str) -> list[Posted]:
        """The beacons that carried `event`."""
        return [p for p in list(self.posted) if p.beacon and event in p.names()]

    def fetches(self, event: str) -> list[Posted]:
        """The other requests (fetch, with the Authorization header) that carried `event`."""
        return [p for p in list(self.posted) if not p.beacon and event in p.names()]


class _Forward(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def handle_one(self) -> None:
        if self.command == "GET" and self.path.startswith(HARNESS_PATH):
            return self.answer(200, {"Content-Type": "text/html"}, HARNESS_FILE.read_bytes())
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        with httpx.Client(timeout=30) as client:
            r = client.request(
                self.command, self.server.upstream + self.path, content=body, headers=headers
            )
        if self.path.startswith("/v1/events"):
            if self.command == "OPTIONS":
                self.server.preflights.append(self.path)
            elif self.command == "POST":
                sent = {k.lower(): v for k, v in self.headers.items()}
                self.server.posted.append(Posted(sent, json.loads(body), r.status_code, r.json()))
        kept = {k: v for k, v in r.headers.items() if k.lower() not in HOP_BY_HOP | DROPPED}
        return self.answer(r.status_code, kept, r.content)

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.handle_one()

    def do_POST(self) -> None:
        self.handle_one()

    def do_PUT(self) -> None:
        self.handle_one()

    def do_OPTIONS(self) -> None:
        self.handle_one()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(server: Server) -> Iterator[Recorder]:
    recorder = Recorder(server)
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()


def open_via(proxy: Recorder, harness: Harness, who: SdkUser, origin: str = "") -> None:
    """The harness at the proxy's origin (or `origin`, another name for it), talking to Cairn
    through the proxy."""
    url = harness.url(who, personalization="full", host=proxy.base)
    harness.page.goto(url.replace(harness.server.base, origin or proxy.base, 1))
    if not origin:
        harness.wait_source("server")


def stored_once(harness: Harness, who: SdkUser, name: str) -> list[str]:
    ids = [m for m, n in harness.stored_events(who) if n == name]
    assert len(ids) <= 1, f"{name} stored {len(ids)} times"
    return ids


def test_a_hidden_page_sends_its_queue_by_beacon_with_credentials_in_the_body(
    harness: Harness, proxy: Recorder
) -> None:
    page = harness.page
    who = harness.new_user()
    open_via(proxy, harness, who)
    page.evaluate("Cairn.track('report_created', {source: 'hidden tab'})")
    page.evaluate(HIDE)  # within the batching window: only the page hide sends it
    beacon = eventually(page, lambda: proxy.beacons("report_created"))[0]
    assert beacon.headers["content-type"].lower() == "text/plain;charset=utf-8"
    assert "authorization" not in beacon.headers
    assert "x-cairn-user-hash" not in beacon.headers
    assert beacon.body["writeKey"] == harness.server.settings.publishable_key
    assert beacon.body["userHash"] == who.hash
    assert beacon.body["sentAt"]
    assert (beacon.status, beacon.answer) == (200, {"accepted": 1, "duplicates": 0})
    assert not proxy.fetches("report_created")
    # No receipt: the event stays queued, and a second hide (pagehide follows) sends it no more.
    assert [e["event"] for e in queued(page, who)] == ["report_created"]
    page.evaluate("dispatchEvent(new Event('pagehide'))")
    # Shown again: the page sends it once more with a receipt, Cairn keeps one copy.
    page.evaluate(SHOW)
    again = eventually(page, lambda: proxy.fetches("report_created"))[0]
    assert set(beacon.ids()) <= set(again.ids())
    assert again.answer["duplicates"] >= 1
    eventually(page, lambda: not queued(page, who))
    assert len(proxy.beacons("report_created")) == 1
    assert len(stored_once(harness, who, "report_created")) == 1


def test_a_page_left_at_once_delivers_by_beacon_and_the_next_page_resends_it_once(
    harness: Harness, proxy: Recorder
) -> None:
    page = harness.page
    who = harness.new_user()
    open_via(proxy, harness, who)
    page.evaluate("Cairn.track('feature_used', {source: 'last words'}); location.href = '/healthz'")
    page.wait_for_url("**/healthz")
    beacon = eventually(page, lambda: proxy.beacons("feature_used"))[0]
    assert beacon.body["writeKey"] == harness.server.settings.publishable_key
    assert (beacon.status, beacon.answer) == (200, {"accepted": 1, "duplicates": 0})
    assert not proxy.fetches("feature_used")
    assert len(stored_once(harness, who, "feature_used")) == 1
    # The beacon left no receipt: the event is still queued for the next page...
    assert [e["event"] for e in queued(page, who)] == ["feature_used"]
    # ...which sends it again, by fetch, and Cairn counts it as a duplicate.
    open_via(proxy, harness, who)
    resent = eventually(page, lambda: proxy.fetches("feature_used"))[0]
    assert resent.headers["authorization"] == f"Bearer {harness.server.settings.publishable_key}"
    assert set(beacon.ids()) <= set(resent.ids())
    assert resent.answer["duplicates"] >= 1
    eventually(page, lambda: not queued(page, who))
    assert len(stored_once(harness, who, "feature_used")) == 1


def test_a_beacon_lost_on_the_way_is_delivered_by_the_next_page(
    harness: Harness, proxy: Recorder
) -> None:
    page = harness.page
    lost: list[str] = []

    def lose_beacons(route: Route) -> None:
        if route.request.resource_type == "ping":  # what navigator.sendBeacon sends
            lost.append(route.request.post_data or "")
            route.abort("connectionreset")
        else:
            route.continue_()

    who = harness.new_user()
    open_via(proxy, harness, who)
    page.route("**/v1/events", lose_beacons)
    page.evaluate("Cairn.track('template_used', {template: 'crm'})")
    page.evaluate(HIDE)
    eventually(page, lambda: any("template_used" in body for body in lost))
    assert "template_used" not in dict(harness.stored_events(who)).values()
    assert [e["event"] for e in queued(page, who)] == ["template_used"]
    page.unroute("**/v1/events")
    open_via(proxy, harness, who)
    eventually(page, lambda: stored_once(harness, who, "template_used"))
    eventually(page, lambda: not queued(page, who))


def test_a_batch_too_big_for_a_beacon_goes_by_fetch(harness: Harness, proxy: Recorder) -> None:
    page = harness.page
    who = harness.new_user()
    open_via(proxy, harness, who)
    # 100 events of about 1 KB: over the 64 KB a browser lets beacons carry.
    page.evaluate(
        """() => {
            for (let i = 0; i < 100; i++) {
                Cairn.track('report_created', {n: i, note: 'x'.repeat(900)});
            }
        }"""
    )
    page.evaluate(HIDE)
    posted = eventually(page, lambda: proxy.fetches("report_created"))[0]
    assert len(posted.body["batch"]) == 100
    assert len(json.dumps(posted.body)) > 64 * 1024
    assert posted.headers["authorization"] == f"Bearer {harness.server.settings.publishable_key}"
    assert posted.headers["content-type"] == "application/json"
    assert "writeKey" not in posted.body
    assert posted.answer == {"accepted": 100, "duplicates": 0}
    assert not proxy.beacons("report_created")
    eventually(page, lambda: not queued(page, who))


def test_a_beacon_to_cairn_on_another_origin_needs_no_preflight(
    harness: Harness, proxy: Recorder
) -> None:
    """The host page is on one origin and Cairn on another, which allows no origin (no
    CAIRN_CORS_ORIGINS): layouts cannot be read there, yet the beacon, a simple request, arrives."""
    page = harness.page
    who = harness.new_user()
    host_app = proxy.base.replace("127.0.0.1", "localhost")
    open_via(proxy, harness, who, origin=host_app)
    harness.wait_source("default")  # the layout request was refused: the bundled default
    page.evaluate("Cairn.track('automation_created', {kind: 'digest'})")
    page.evaluate(HIDE)
    beacon = eventually(page, lambda: proxy.beacons("automation_created"))[0]
    assert beacon.headers["origin"] == host_app
    assert (beacon.status, beacon.answer) == (200, {"accepted": 1, "duplicates": 0})
    assert proxy.preflights == []
    assert len(stored_once(harness, who, "automation_created")) == 1
