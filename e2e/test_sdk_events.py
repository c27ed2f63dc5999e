"""Events from the web SDK: exposures after a second on screen, clicks and dismissals at once, every
one with a messageId and the decision id; batched; kept through outages and sent exactly once;
sent on page hide; and only what the user's personalization preference allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from e2e.conftest import Harness
from e2e.page_helpers import eventually, queued

pytestmark = pytest.mark.e2e

EVENTS = "**/v1/events"


def keep(held: list[Route]) -> Callable[[Route], None]:
    """A route handler that holds requests back until the test lets them go."""

    def hold(route: Route) -> None:
        held.append(route)

    return hold


def record_batches(page: Page, answer: Callable[[Route], None] | None = None) -> list[Any]:
    """Every batch the page posts to /v1/events, passed on to Cairn (or to `answer`)."""
    batches: list[Any] = []

    def handle(route: Route) -> None:
        batches.append(route.request.post_data_json)
        (answer or Route.continue_)(route)

    page.route(EVENTS, handle)
    return batches


def sent(batches: list[Any]) -> list[dict[str, Any]]:
    return [event for body in batches for event in body["batch"]]


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("event") or e["type"] for e in events]


def test_views_need_half_the_widget_on_screen_for_a_second(harness: Harness) -> None:
    page = harness.page
    page.set_viewport_size({"width": 900, "height": 420})
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    decision = page.get_attribute("#cairn-root", "data-cairn-decision")
    painted_at = page.evaluate("cairnHarness.layouts.at(-1).at")
    viewed = eventually(
        page, lambda: [e for e in sent(batches) if e.get("event") == "widget_viewed"]
    )
    for event in viewed:  # its timestamp is when the SDK counted the widget as seen
        seen_at = page.evaluate("t => Date.parse(t)", event["timestamp"])
        assert seen_at - painted_at >= 1000, "viewed before a second on screen"
    first_seen = {e["properties"]["widget_id"] for e in viewed}
    below = page.eval_on_selector_all(
        "#cairn-root [data-widget-id]",
        "els => els.filter(e => e.getBoundingClientRect().top > innerHeight)"
        ".map(e => e.dataset.widgetId)",
    )
    assert below, "the test needs a widget below the fold"
    assert not first_seen & set(below), "a widget off screen was reported as viewed"
    viewed_batches = [
        b for b in batches if any(e.get("event") == "widget_viewed" for e in b["batch"])
    ]
    assert len(viewed_batches) == 1, "the views on screen together were not sent in one batch"
    for event in viewed:
        assert event["messageId"]
        assert event["properties"]["decision_id"] == decision
        assert event["properties"]["screen"] == "home"
        assert event["tenantId"] == who.tenant
        assert event["userId"] == who.user
    page.locator(f'[data-widget-id="{below[-1]}"]').scroll_into_view_if_needed()
    eventually(
        page,
        lambda: (
            below[-1]
            in {
                e["properties"]["widget_id"]
                for e in sent(batches)
                if e.get("event") == "widget_viewed"
            }
        ),
    )
    stored = eventually(page, lambda: len(harness.stored_events(who)) >= len(viewed) + 1)
    assert stored


def test_dismiss_hides_at_once_and_reports_with_the_decision(harness: Harness) -> None:
    page = harness.page
    held: list[Route] = []
    batches = record_batches(page, keep(held))
    who = harness.new_user()
    harness.open(who)
    decision = page.get_attribute("#cairn-root", "data-cairn-decision")
    card = page.locator("#cairn-root .cairn-next_step_card")
    widget_id = card.get_attribute("data-widget-id")
    card.get_by_role("button", name="Dismiss").click()
    expect(card).to_be_hidden()  # while the event is still on its way
    eventually(page, lambda: "widget_dismissed" in names(sent(batches)))
    dismissed = next(e for e in sent(batches) if e.get("event") == "widget_dismissed")
    assert dismissed["properties"] == {
        "widget_id": widget_id,
        "widget_type": "next_step_card",
        "decision_id": decision,
        "screen": "home",
    }
    for route in held:
        route.continue_()
    page.unroute(EVENTS)
    eventually(page, lambda: "widget_dismissed" in dict(harness.stored_events(who)).values())
    # Cairn rests the card: the layout fetched after the dismissal no longer has it.
    page.wait_for_function(
        "id => cairnHarness.layouts.length > 1 && !document.querySelector("
        "`#cairn-root [data-widget-id='${id}']:not([hidden])`)",
        arg=widget_id,
    )


def test_a_click_reports_the_item_and_the_page_moves_on(harness: Harness) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    page.evaluate(
        "document.getElementById('cairn-root').addEventListener('click', e => e.preventDefault())"
    )
    card = page.locator("#cairn-root .cairn-next_step_card")
    card.get_by_role("link").first.click()
    clicked = eventually(
        page, lambda: [e for e in sent(batches) if e.get("event") == "widget_clicked"]
    )
    assert clicked[0]["properties"]["item"] == "cta"
    assert clicked[0]["properties"]["widget_type"] == "next_step_card"


def test_offline_then_online_every_event_arrives_exactly_once(harness: Harness) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    eventually(page, lambda: "widget_viewed" in names(sent(batches)))
    page.context.set_offline(True)
    page.evaluate(
        """() => {
            Cairn.track('report_created', {source: 'offline'});
            Cairn.track('feature_used', {feature: 'reports'});
            return Cairn.flush();
        }"""
    )
    assert [e["event"] for e in queued(page, who)] == ["report_created", "feature_used"]
    assert any(e.get("status") is None for e in harness.errors())  # the network error was heard
    page.context.set_offline(False)  # the browser says it is online again: the SDK sends at once
    stored = eventually(
        page,
        lambda: [
            s for s in harness.stored_events(who) if s[1] in ("report_created", "feature_used")
        ],
    )
    eventually(page, lambda: not queued(page, who))
    ids = [m for m, _ in harness.stored_events(who)]
    assert len(ids) == len(set(ids))
    assert sorted(name for _, name in stored) == ["feature_used", "report_created"]


def test_a_lost_answer_is_retried_with_backoff_and_stored_once(harness: Harness) -> None:
    """Cairn stores the batch but the answer never reaches the browser: the SDK sends it again
    after a backoff, and Cairn keeps one copy (messageId)."""
    page = harness.page
    attempts: list[float] = []

    def lose_first_answers(route: Route) -> None:
        body: dict[str, Any] = route.request.post_data_json or {"batch": []}
        if any(e.get("event") == "report_created" for e in body["batch"]):
            attempts.append(time.monotonic() * 1000)
            if len(attempts) <= 2:
                route.fetch()  # Cairn stores it...
                route.abort("connectionreset")  # ...and the answer is lost
                return
        route.continue_()

    who = harness.new_user()
    harness.open(who)
    page.route(EVENTS, lose_first_answers)
    page.evaluate("Cairn.track('report_created', {n: 1}); Cairn.flush()")
    eventually(page, lambda: len(attempts) >= 3, timeout_ms=10_000)
    eventually(page, lambda: not queued(page, who))
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert first >= 900, f"retried after {first:.0f} ms"
    assert second >= 1900, f"the second retry came after {second:.0f} ms: no backoff"
    stored = [s for s in harness.stored_events(who) if s[1] == "report_created"]
    assert len(stored) == 1


def test_events_left_by_a_page_are_sent_by_the_next_one(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    page.route(EVENTS, lambda route: route.abort("connectionrefused"))
    page.evaluate("Cairn.track('template_used', {template: 'crm'}); Cairn.flush()")
    assert [e["event"] for e in queued(page, who)] == ["template_used"]
    page.unroute(EVENTS)
    harness.open(who)
    eventually(page, lambda: "template_used" in dict(harness.stored_events(who)).values())
    eventually(page, lambda: not queued(page, who))


def test_the_offline_queue_is_bounded_keeping_the_newest(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    page.route(EVENTS, lambda route: route.abort("connectionrefused"))
    page.evaluate("for (let i = 0; i < 250; i++) Cairn.track('feature_used', {n: i})")
    kept = queued(page, who)
    assert len(kept) == 200
    assert kept[-1]["properties"] == {"n": 249}
    assert kept[0]["properties"] == {"n": 50}


def test_a_hidden_page_sends_at_once_and_a_closing_page_still_delivers(
    harness: Harness,
) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    eventually(page, lambda: "widget_viewed" in names(sent(batches)))  # consent level known
    # The tab is hidden: what is queued leaves now, not at the end of the batching window.
    posted = page.evaluate(
        """() => {
            const posted = [];
            const real = navigator.sendBeacon;
            navigator.sendBeacon = function (url, data) {
                if (String(url).includes('/v1/events')) posted.push(data.type);
                return real.apply(navigator, arguments);
            };
            Cairn.track('report_created', {source: 'hidden tab'});
            Object.defineProperty(document, 'visibilityState', {value: 'hidden'});
            document.dispatchEvent(new Event('visibilitychange'));
            navigator.sendBeacon = real;
            return posted;  // beacons sent by the event itself, before any timer ran
        }"""
    )
    assert posted == ["text/plain;charset=utf-8"], "nothing left at once, in a beacon, when hidden"
    eventually(page, lambda: "report_created" in names(sent(batches)))
    # The page goes away within the batching window: pagehide sends in a beacon.
    page.evaluate("Cairn.track('feature_used', {source: 'last words'}); location.href = '/healthz'")
    page.wait_for_url("**/healthz")
    eventually(page, lambda: "feature_used" in dict(harness.stored_events(who)).values())


def test_track_and_identify_go_through_the_same_queue(harness: Harness) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    page.evaluate(
        """() => {
            Cairn.identify({company_size: 12, theme: 'dark'});
            Cairn.track('automation_created', {kind: 'digest'});
        }"""
    )
    eventually(page, lambda: {"identify", "automation_created"} <= set(names(sent(batches))))
    identify = next(e for e in sent(batches) if e["type"] == "identify")
    assert identify["traits"] == {"company_size": 12, "theme": "dark"}
    assert identify["messageId"] and identify["timestamp"]
    eventually(
        page,
        lambda: (
            {"identify", "automation_created"} <= set(dict(harness.stored_events(who)).values())
        ),
    )


def test_identify_another_user_swaps_layout_and_queue_without_mixing_them(
    harness: Harness,
) -> None:
    page = harness.page
    admin = harness.new_user(role="admin")
    maker = harness.new_user(role="maker")
    harness.open(admin)
    expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-layout", "home/admin")
    page.evaluate(
        """([maker]) => {
            Cairn.track('report_created', {who: 'admin'});
            Cairn.identify(maker.user, {theme: 'dark'}, {userHash: maker.hash});
            Cairn.track('report_created', {who: 'maker'});
        }""",
        [{"user": maker.user, "hash": maker.hash}],
    )
    # Another tenant too: switch fully through init, as a host app does on sign-in.
    page.evaluate(
        """([t, u, h]) => Cairn.init(Object.assign({}, cairnHarness.options,
            {tenantId: t, userId: u, userHash: h}))""",
        [maker.tenant, maker.user, maker.hash],
    )
    expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-layout", "home/maker")
    assert page.locator("#cairn-root").get_attribute("data-cairn-source") == "server"
    page.evaluate("Cairn.track('report_created', {who: 'maker'}); Cairn.flush()")
    eventually(page, lambda: "report_created" in dict(harness.stored_events(admin)).values())
    eventually(page, lambda: "report_created" in dict(harness.stored_events(maker)).values())


def serve_with_a_help_tip(route: Route) -> None:
    response = route.fetch()
    layout = response.json()
    layout["slots"].insert(
        0,
        {
            "id": "help",
            "widgets": [
                {
                    "id": "tip_reports",
                    "type": "help_tip",
                    "props": {
                        "title": "Build a report in two minutes",
                        "body": "A short lesson.",
                        "article": {"id": "a1", "title": "Reports", "href": "/help/reports",
                                    "kind": "lesson"},
                        "trigger": "friction",
                    },
                    "why": {"summary": "Shown to everyone.", "source": "default",
                            "confidence": 1, "drivers": []},
                    "fallback": "drop",
                }
            ],
        },
    )  # fmt: skip
    route.fulfill(response=response, json=layout)


def test_personalization_off_sends_nothing_and_remembers_dismissals_on_the_device(
    harness: Harness,
) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user(personalization="off")
    # The shipped default home has nothing dismissible: give the user a layout that has.
    page.route("**/v1/layouts/home?*", serve_with_a_help_tip)
    harness.open(who)
    page.evaluate(
        "document.getElementById('cairn-root').addEventListener('click', e => e.preventDefault())"
    )
    dismissible = page.locator("#cairn-root article:has([data-cairn-ui=dismiss])").first
    widget_id = dismissible.get_attribute("data-widget-id")
    page.locator("#cairn-root a").first.click()
    dismissible.get_by_role("button", name="Dismiss").click()
    expect(dismissible).to_be_hidden()
    page.evaluate(
        """() => {
            Cairn.track('report_created');
            Cairn.identify({theme: 'dark'});
            return Cairn.flush();
        }"""
    )
    page.wait_for_timeout(1300)  # long enough for views to have been reported
    assert batches == [], "events left the browser with personalization off"
    assert queued(page, who) == []
    harness.open(who)
    assert page.locator(f'#cairn-root [data-widget-id="{widget_id}"]').count() == 0
    assert harness.stored_events(who) == []


def test_personalization_basic_sends_declared_traits_and_dismissals_only(
    harness: Harness,
) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user(personalization="basic")
    page.route("**/v1/layouts/home?*", serve_with_a_help_tip)
    harness.open(who)
    page.evaluate(
        "document.getElementById('cairn-root').addEventListener('click', e => e.preventDefault())"
    )
    page.locator("#cairn-root a").first.click()
    page.locator("#cairn-root .cairn-help_tip").get_by_role("button", name="Dismiss").click()
    page.evaluate(
        """() => {
            Cairn.track('report_created');
            Cairn.identify({theme: 'dark'});
            return Cairn.flush();
        }"""
    )
    page.wait_for_timeout(1300)  # long enough for views to have been reported
    assert sorted(names(sent(batches))) == ["identify", "widget_dismissed"]
    eventually(page, lambda: "widget_dismissed" in dict(harness.stored_events(who)).values())


def test_turning_personalization_off_drops_what_is_queued_and_stops_sending(
    harness: Harness,
) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    page.evaluate(
        """() => {
            Cairn.track('report_created');
            return Cairn.setPersonalization('off');
        }"""
    )
    page.evaluate("Cairn.track('feature_used'); Cairn.flush()")
    # Cairn has the new preference, and the page shows the layout it now decides: the default.
    page.wait_for_function("cairnHarness.layouts.length >= 2")
    expect(page.locator("#cairn-root")).not_to_have_attribute("data-cairn-layout", "home/admin")
    secret = {"Authorization": f"Bearer {harness.server.settings.secret_key}"}
    params = {"tenant_id": who.tenant, "user_id": who.user}
    prefs = httpx.get(f"{harness.server.base}/v1/preferences", params=params, headers=secret)
    assert prefs.json()["personalization"] == "off"
    assert page.locator("#cairn-root .cairn-next_step_card").count() == 0
    page.wait_for_timeout(300)
    assert "report_created" not in names(sent(batches))
    assert "feature_used" not in names(sent(batches))


def test_complete_reports_the_widget_with_its_decision(harness: Harness) -> None:
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who)
    decision = page.get_attribute("#cairn-root", "data-cairn-decision")
    widget_id = page.get_attribute("#cairn-root .cairn-next_step_card", "data-widget-id")
    page.evaluate("id => Cairn.complete(id, {via: 'host'})", widget_id)
    completed = eventually(
        page, lambda: [e for e in sent(batches) if e.get("event") == "widget_completed"]
    )
    assert completed[0]["properties"] == {
        "widget_id": widget_id,
        "widget_type": "next_step_card",
        "decision_id": decision,
        "screen": "home",
        "via": "host",
    }
    eventually(page, lambda: "widget_completed" in dict(harness.stored_events(who)).values())


def test_render_and_accessibility_problems_are_reported_once(harness: Harness) -> None:
    """`sdk_problem` (what experiments' render guardrail reads): a renderer that throws on a
    widget's props, and a link without a name; once per decision, widget and kind."""
    page = harness.page
    batches = record_batches(page)
    who = harness.new_user()
    harness.open(who, mode="descriptor", source=None)
    descriptor = {
        "schema_version": 1, "screen": "home", "layout": "home/admin", "decision_id": "dcs_p1",
        "generated_at": "2026-12-01T00:00:00Z", "personalized": True, "degraded": False,
        "view": {"id": "admin", "label": "Admin", "options": []}, "presets": None,
        "slots": [{"id": "shortcuts", "widgets": [
            {"id": "nameless", "type": "shortcut_grid",
             "props": {"title": "Go", "items": [{"label": "", "href": "/x", "icon": "x"}]},
             "why": {"summary": "s", "source": "rule", "confidence": 0.9}, "fallback": "drop"},
            {"id": "broken", "type": "checklist",
             "props": {"title": "T", "items": 7},
             "why": {"summary": "s", "source": "rule", "confidence": 0.9}, "fallback": "drop"},
        ]}],
    }  # fmt: skip
    page.evaluate("d => { cairnHarness.show(d); cairnHarness.show(d); }", descriptor)
    problems = eventually(
        page, lambda: [e for e in sent(batches) if e.get("event") == "sdk_problem"]
    )
    page.wait_for_timeout(500)
    problems = [e for e in sent(batches) if e.get("event") == "sdk_problem"]
    kinds = sorted((e["properties"]["widget_id"], e["properties"]["kind"]) for e in problems)
    assert ("nameless", "accessibility") in kinds
    assert len(kinds) == len(set(kinds)), kinds  # once each, though shown twice
    assert all(e["properties"]["decision_id"] == "dcs_p1" for e in problems)
