"""The web SDK never breaks the host page: cache first, a bundled default, nothing bad cached.

Failures of Cairn are made with Playwright's request routing on the one shared server: the layout
request is aborted (server down), held back (slow), answered with a 500, an HTML error page,
truncated JSON or a descriptor of another schema version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from e2e.conftest import Harness, SdkUser

pytestmark = pytest.mark.e2e

LAYOUTS = "**/v1/layouts/home?*"


def keep(held: list[Route]) -> Callable[[Route], None]:
    """A route handler that holds requests back until the test lets them go."""

    def hold(route: Route) -> None:
        held.append(route)

    return hold


def cache_key(who: SdkUser, screen: str = "home", view: str = "") -> str:
    return f"cairn:l:{who.tenant}:{who.user}:{screen}:{view}"


def cached(page: Page, who: SdkUser) -> Any:
    raw = page.evaluate("k => localStorage.getItem(k)", cache_key(who))
    return None if raw is None else json.loads(raw)


def widget_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#cairn-root [data-widget-id]", "els => els.map(e => e.dataset.widgetId)"
    )
    return ids


def fill_cache(harness: Harness, who: SdkUser) -> list[str]:
    """Open the page once with Cairn up, so the user's home is cached; the widgets it showed."""
    harness.open(who)
    assert cached(harness.page, who) is not None
    return widget_ids(harness.page)


BROKEN: dict[str, Callable[[Route], None]] = {
    "server down": lambda route: route.abort("connectionrefused"),
    "500": lambda route: route.fulfill(
        status=500,
        content_type="application/json",
        body='{"error": {"code": "internal", "message": "Something broke."}}',
    ),
    "HTML error page": lambda route: route.fulfill(
        status=502, content_type="text/html", body="<html><body><h1>502 Bad Gateway</h1>"
    ),
    "HTML with 200": lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>Sign in</title>"
    ),
    "truncated JSON": lambda route: route.fulfill(
        status=200, content_type="application/json", body='{"schema_version": 1, "slots": [{"id'
    ),
    "wrong schema version": lambda route: route.fulfill(
        status=200,
        content_type="application/json",
        body=json.dumps(
            {"schema_version": 2, "screen": "home", "decision_id": "dcs_v2", "slots": []}
        ),
    ),
    "not a descriptor": lambda route: route.fulfill(
        status=200, content_type="application/json", body='{"slots": "nope"}'
    ),
}


def test_a_broken_answer_shows_the_cache_and_does_not_enter_it(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    shown = fill_cache(harness, who)
    before = cached(page, who)
    for failure, answer in BROKEN.items():
        page.route(LAYOUTS, answer)
        harness.open(who, source="cache")
        errors = len(harness.errors())
        page.evaluate("cairnHarness.done")
        assert widget_ids(page) == shown, failure
        assert cached(page, who) == before, f"{failure}: the answer entered the cache"
        assert len(harness.errors()) > errors or harness.errors(), (
            f"{failure}: onError heard nothing"
        )
        expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-source", "cache")
        page.unroute(LAYOUTS)


def test_with_no_cache_a_broken_answer_shows_the_bundled_default_at_once(
    harness: Harness,
) -> None:
    page = harness.page
    who = harness.new_user()
    for failure in ("server down", "500", "HTML error page", "truncated JSON"):
        page.route(LAYOUTS, BROKEN[failure])
        # The no-cache timeout is a minute: the default can only appear in time because the
        # failure shows it at once, not because the timeout ran out.
        harness.open(who, source="default", timeout=60000)
        assert widget_ids(page) == ["default_shortcuts"], failure
        assert cached(page, who) is None, failure
        page.unroute(LAYOUTS)


def test_a_slow_server_gets_the_default_after_the_timeout_then_the_real_layout(
    harness: Harness,
) -> None:
    page = harness.page
    who = harness.new_user()
    held: list[Route] = []
    page.route(LAYOUTS, keep(held))
    harness.open(who, source=None, timeout=300)
    expect(page.locator("#host-placeholder")).to_be_visible()  # the host's own content meanwhile
    harness.wait_source("default", timeout=3000)
    assert page.evaluate("cairnHarness.done.then(d => d && d.decision_id)") == (
        "dcs_bundled_default"
    )
    assert len(held) == 1
    held[0].continue_()
    harness.wait_source("server")
    assert "default_shortcuts" not in widget_ids(page)
    assert cached(page, who) is not None


def test_cache_first_then_swap_only_when_the_layout_changed(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    fill_cache(harness, who)
    # Same content, new decision id: the cached DOM stays as it is (no flicker).
    harness.open(who, source="server")
    page.evaluate("document.querySelector('#cairn-root article').dataset.mark = 'kept'")
    page.evaluate(
        "new Promise(r => setTimeout(r, 0)).then(() => Cairn.render('home', '#cairn-root'))"
    )
    page.wait_for_function("cairnHarness.layouts.length >= 2")
    assert page.evaluate("document.querySelector('#cairn-root article').dataset.mark") == "kept"
    sources = [entry["source"] for entry in page.evaluate("cairnHarness.layouts")]
    assert sources[0] == "cache"
    assert sources[-1] == "server"
    decisions = {entry["decision"] for entry in page.evaluate("cairnHarness.layouts")}
    assert len(decisions) >= 2, "the fresh decision id did not replace the cached one"


def test_a_changed_layout_replaces_the_cached_one(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    fill_cache(harness, who)
    stale = cached(page, who)
    stale["slots"] = stale["slots"][:1]
    stale["decision_id"] = "dcs_stale"
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [cache_key(who), json.dumps(stale)])
    held: list[Route] = []
    page.route(LAYOUTS, keep(held))
    harness.open(who, source="cache")
    expect(page.locator("#cairn-root [data-slot]")).to_have_count(1)
    held[0].continue_()
    harness.wait_source("server")
    assert page.locator("#cairn-root [data-slot]").count() > 1
    assert cached(page, who)["decision_id"] != "dcs_stale"


CORRUPTED = [
    "{not json",
    "null",
    '"a string"',
    '{"schema_version": 1, "decision_id": "d", "slots": [{"id": "x", "widgets": 5}]}',
    '{"schema_version": 7, "decision_id": "d", "slots": []}',
]


def test_a_corrupted_cache_is_ignored_and_replaced(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    for garbage in CORRUPTED:
        page.evaluate("([k, v]) => localStorage.setItem(k, v)", [cache_key(who), garbage])
        page.route(LAYOUTS, BROKEN["server down"])
        harness.open(who, source="default", timeout=200)
        page.unroute(LAYOUTS)
        harness.open(who, source="server")
        assert cached(page, who)["schema_version"] == 1, garbage


STORAGE = {
    "disabled": """
        Object.defineProperty(window, 'localStorage', {get() {
            throw new DOMException('The operation is insecure.', 'SecurityError'); }});
    """,
    "full": """
        Storage.prototype.setItem = function () {
            throw new DOMException('The quota has been exceeded.', 'QuotaExceededError'); };
    """,
    "throwing on read": """
        Storage.prototype.getItem = function () { throw new Error('storage is broken'); };
    """,
}


def test_without_usable_storage_the_layout_still_renders(harness: Harness) -> None:
    who = harness.new_user()
    for state, script in STORAGE.items():
        page = harness.page.context.new_page()
        page.add_init_script(script)
        page.goto(harness.url(who))
        page.wait_for_selector('#cairn-root[data-cairn-source="server"]')
        assert len(widget_ids(page)) >= 3, state
        # The view choice is still remembered for the page's life, in memory.
        page.get_by_label("Switch view").select_option("maker")
        expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-layout", "home/maker")
        page.evaluate("Cairn.render('home', '#cairn-root')")
        expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-layout", "home/maker")
        page.close()


def test_a_full_storage_makes_room_by_dropping_cached_layouts(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    page.evaluate("k => localStorage.removeItem(k)", cache_key(who))
    page.evaluate(
        """() => {
            localStorage.setItem('cairn:l:other:u:home:', 'x'.repeat(100000));
            let i = 0;
            for (let size = 1 << 20; size >= 1; size >>= 1) {
                try { for (;;) localStorage.setItem('host:filler' + i++, 'x'.repeat(size)); }
                catch (e) { /* full at this size: try a smaller one */ }
            }
        }"""
    )
    harness.open(who)
    assert cached(page, who) is not None
    assert page.evaluate("localStorage.getItem('cairn:l:other:u:home:')") is None
    assert page.evaluate("localStorage.getItem('host:filler0')") is not None, "host data was lost"
    page.evaluate("Object.keys(localStorage).forEach(k => localStorage.removeItem(k))")


def test_public_calls_never_throw_into_the_page(harness: Harness) -> None:
    page = harness.page
    harness.open(mode="manual", source=None)
    results = page.evaluate(
        """async () => {
            const out = [];
            const attempt = async (name, fn) => {
                try { await fn(); out.push([name, 'ok']); }
                catch (e) { out.push([name, String(e)]); }
            };
            await attempt('init without options', () => Cairn.init());
            await attempt('init with nonsense', () => Cairn.init(42));
            await attempt('render into nothing', () => Cairn.render('home', '#nope'));
            await attempt('render a bad descriptor', () =>
                Cairn.renderDescriptor(document.body, {slots: 'x'}));
            await attempt('unmount a stranger', () => Cairn.unmount(document.body));
            await attempt('track nonsense', () => Cairn.track(undefined, 5));
            await attempt('identify nonsense', () => Cairn.identify(undefined));
            await attempt('complete nothing', () => Cairn.complete('nope'));
            await attempt('flush', () => Cairn.flush());
            await attempt('personalization nonsense', () => Cairn.setPersonalization('max'));
            Cairn.init(Object.assign({}, cairnHarness.options, {
                onError() { throw new Error('the host callback broke'); }}));
            await attempt('a throwing onError', () => Cairn.render('home', '#nope'));
            return out;
        }"""
    )
    assert all(outcome == "ok" for _, outcome in results), results


def test_a_throwing_host_renderer_falls_back_and_the_rest_renders(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who, mode="manual", source=None)
    page.evaluate(
        """() => {
            Cairn.registerRenderer('checklist', () => { throw new Error('host bug'); });
            return Cairn.render('home', '#cairn-root');
        }"""
    )
    harness.wait_source("server")
    types = page.eval_on_selector_all(
        "#cairn-root [data-widget-type]", "els => els.map(e => e.dataset.widgetType)"
    )
    assert "checklist" not in types
    assert "next_step_card" in types
    warnings = page.evaluate("cairnHarness.warnings")
    assert any("renderer failed for checklist" in w for w in warnings)


def test_with_the_cache_turned_off_no_layout_is_kept(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who, mode="manual", source=None)
    page.evaluate(
        """() => {
            Cairn.init(Object.assign({}, cairnHarness.options, {cache: false}));
            return Cairn.render('home', '#cairn-root');
        }"""
    )
    harness.wait_source("server")
    keys = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('cairn:l:'))")
    assert keys == []


def test_a_host_rendered_layout_before_init_can_be_used_without_errors(
    page: Page, server: Any
) -> None:
    """renderDescriptor before init: clicking and dismissing send nothing and throw nothing."""
    root = Path(__file__).resolve().parents[1]
    case = json.loads((root / "tests/golden/descriptors/every_widget_type.json").read_text())
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.base}/healthz")
    page.set_content('<div id="root"></div>')
    page.add_script_tag(url=f"{server.base}/sdk/cairn.js")
    page.evaluate(
        "d => Cairn.renderDescriptor(document.getElementById('root'), d)", case["descriptor"]
    )
    expect(page.locator("#root [data-widget-id]").first).to_be_visible()
    links = page.locator("#root [data-widget-id] a[href]")
    assert links.count() > 0
    page.evaluate(
        """() => document.querySelectorAll('#root [data-widget-id] a[href]').forEach(a =>
            a.addEventListener('click', e => e.preventDefault()))"""
    )
    links.first.click()
    page.locator("#root [data-cairn-ui=dismiss]").first.click()
    page.wait_for_timeout(400)  # past the SDK's refresh delay (150 ms) after a click
    assert errors == []
