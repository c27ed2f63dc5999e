"""The preference center (`Cairn.preferences(element)`, dist/cairn.preferences.min.js) in Chromium
against a real Cairn: it renders what the explanation offers, passes axe, works from the keyboard
alone, saves the whole document (the next layout follows at once), shows the server's message for a
bad time zone, and leaves a clear message, never an exception, when Cairn cannot answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from e2e.conftest import Harness, SdkUser, Server
from e2e.page_helpers import axe, eventually, queued

pytestmark = pytest.mark.e2e

CENTER = "/sdk/cairn.preferences.js"
SAVED = "Your preferences are saved."


def open_center(harness: Harness, who: SdkUser) -> Locator:
    """The harness with the user's home (the full bundle), then the preference center."""
    harness.open(who)
    return show_center(harness)


def show_center(harness: Harness) -> Locator:
    """The preference center loaded after the SDK on the page, rendered into #prefs in main."""
    page = harness.page
    page.add_script_tag(url=f"{harness.server.base}{CENTER}")
    shown = page.evaluate(
        """() => {
            const el = document.createElement('div');
            el.id = 'prefs';
            document.querySelector('main').append(el);
            return Cairn.preferences(el);
        }"""
    )
    assert shown is not None, harness.errors()
    center = page.locator("#prefs")
    expect(center.locator("form")).to_be_visible()
    return center


def secret(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.settings.secret_key}"}


def _read(server: Server, path: str, who: SdkUser) -> dict[str, Any]:
    """What the server says of the user at `path`, asked with the secret key."""
    r = httpx.get(
        f"{server.base}{path}",
        params={"tenant_id": who.tenant, "user_id": who.user},
        headers=secret(server),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def stored(server: Server, who: SdkUser) -> dict[str, Any]:
    return _read(server, "/v1/preferences", who)


def next_layout(server: Server, who: SdkUser) -> dict[str, Any]:
    return _read(server, "/v1/layouts/home", who)


def widget_ids(layout: dict[str, Any]) -> set[str]:
    return {w["id"] for slot in layout["slots"] for w in slot["widgets"]}


def on_screen(page: Page) -> set[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#cairn-root [data-widget-id]", "els => els.map(e => e.dataset.widgetId)"
    )
    return set(ids)


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def focused_name(page: Page) -> str:
    name: str = page.evaluate(
        "() => { const el = document.activeElement;"
        " return ((el.labels && el.labels[0]) || el).textContent.trim(); }"
    )
    return name


def test_it_renders_the_explanation_and_the_saved_preferences_and_passes_axe(
    harness: Harness, axe_script: Path
) -> None:
    page = harness.page
    who = harness.new_user()
    center = open_center(harness, who)

    expect(center.get_by_role("heading", name="Your preferences")).to_be_visible()
    expect(center.locator(".cairn-prefs-summary")).to_contain_text("We use every purpose")
    for legend in ("Personalization", "What we may use", "Notifications", "Channels",
                   "Categories", "Quiet hours"):  # fmt: skip
        expect(center.locator("legend", has_text=legend)).to_have_count(1)
    dial = center.get_by_role("radio")
    expect(dial).to_have_count(3)
    expect(center.get_by_role("radio", name="Full")).to_be_checked()
    # The purpose the product needs: always on, not changeable, and said why.
    needed = center.get_by_role("checkbox", name="Needed to run the product")
    expect(needed).to_be_checked()
    expect(needed).to_be_disabled()
    expect(needed).to_have_accessible_description(
        "The screen you are on, the layout you chose, and the switches of the product. "
        "Always on. Cannot be turned off: the product needs it."
    )
    usage = center.get_by_role("checkbox", name="How you use the product")
    expect(usage).to_be_checked()
    expect(usage).to_be_enabled()
    # The notification defaults, and quiet hours off (their fields disabled until turned on).
    expect(center.get_by_role("checkbox", name="In the product")).to_be_checked()
    expect(center.get_by_role("checkbox", name="Email")).to_be_checked()
    expect(center.get_by_role("checkbox", name="Slack")).not_to_be_checked()
    expect(center.get_by_role("checkbox", name="Tips and how-tos")).to_be_checked()
    expect(center.get_by_label("Digest", exact=True)).to_have_value("weekly")
    expect(
        center.get_by_role("checkbox", name="Pause notifications during quiet hours")
    ).not_to_be_checked()
    expect(center.get_by_label("From", exact=True)).to_be_disabled()
    expect(center.get_by_label("Time zone", exact=True)).to_be_disabled()
    expect(center.get_by_role("status")).to_have_attribute("aria-live", "polite")
    expect(center.get_by_role("button", name="Save preferences")).to_be_visible()
    assert page.locator("style#cairn-prefs-css").count() == 1
    assert page.locator("#prefs [style]").count() == 0  # no inline styles (CSP)
    assert axe(page, axe_script) == []

    # Personalization off: every purpose but the needed one is off, and cannot be changed.
    center.get_by_role("radio", name="Off").check()
    expect(usage).not_to_be_checked()
    expect(usage).to_be_disabled()
    expect(center.get_by_text("Personalization is off")).to_be_visible()
    center.get_by_role("radio", name="Full").check()
    expect(usage).to_be_checked()
    expect(usage).to_be_enabled()


def test_it_is_operable_from_the_keyboard_alone_and_saving_changes_the_next_layout(
    harness: Harness,
) -> None:
    page = harness.page
    who = harness.new_user()
    before = next_layout(harness.server, who)
    assert "next_activation_step" in widget_ids(before), "rests on usage: the test needs it"
    open_center(harness, who)
    assert "next_activation_step" in on_screen(page)
    decision = page.get_attribute("#cairn-root", "data-cairn-decision")

    # Into the level's radio group, and back: arrow keys move the choice.
    tab_to(page, "#prefs [type=radio]")
    assert focused_name(page) == "Full"
    page.keyboard.press("ArrowDown")
    assert focused_name(page) == "Basic"
    expect(page.get_by_role("radio", name="Basic")).to_be_checked()
    page.keyboard.press("ArrowUp")
    expect(page.get_by_role("radio", name="Full")).to_be_checked()
    # Opt out of one purpose with Space.
    tab_to(page, '#prefs [data-cairn-field="purposes.behavioural"]')
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name="How you use the product")).not_to_be_checked()
    # A channel on, the digest daily, quiet hours on and an hour later.
    tab_to(page, '#prefs [type=checkbox][value="slack"]')
    page.keyboard.press("Space")
    tab_to(page, "#prefs select")
    page.keyboard.press("ArrowUp")  # weekly → daily
    expect(page.get_by_label("Digest", exact=True)).to_have_value("daily")
    tab_to(page, "#prefs .cairn-prefs-choice:has(+ .cairn-prefs-times) input")
    page.keyboard.press("Space")
    tab_to(page, '#prefs [type=time][data-cairn-field$="start"]')
    page.keyboard.press("ArrowUp")  # the hour: 22:00 → 23:00
    expect(page.get_by_label("From", exact=True)).to_have_value("23:00")
    # And save with Enter.
    tab_to(page, "#prefs button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(SAVED)
    assert focused_name(page) == "Save preferences", "focus stays where it was"

    prefs = stored(harness.server, who)
    assert prefs["personalization"] == "full"
    assert prefs["purposes"] == {"behavioural": False}
    assert prefs["notifications"]["channels"] == ["in_app", "email", "slack"]
    assert prefs["notifications"]["categories"] == ["product_updates", "tips", "billing"]
    assert prefs["notifications"]["digest"] == "daily"
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert prefs["notifications"]["quiet_hours"] == {
        "start": "23:00", "end": "07:00", "time_zone": zone,
    }  # fmt: skip
    assert "next_activation_step" not in widget_ids(next_layout(harness.server, who))
    # The layout on screen was fetched again at once: the widget resting on usage is gone.
    expect(page.locator("#cairn-root")).not_to_have_attribute("data-cairn-decision", decision or "")
    eventually(page, lambda: "next_activation_step" not in on_screen(page))


def test_turning_personalization_off_shows_the_default_layout_and_stops_events(
    harness: Harness,
) -> None:
    page = harness.page
    who = harness.new_user()
    center = open_center(harness, who)
    before = page.get_attribute("#cairn-root", "data-cairn-layout")
    center.get_by_role("radio", name="Off").focus()
    page.keyboard.press("Space")
    center.get_by_role("button", name="Save preferences").focus()
    page.keyboard.press("Space")
    expect(center.get_by_role("status")).to_have_text(SAVED)
    assert stored(harness.server, who)["personalization"] == "off"
    default = next_layout(harness.server, who)
    assert default["personalized"] is False
    assert default["layout"] != before
    expect(center.locator(".cairn-prefs-summary")).to_contain_text("personalize nothing")
    # The layout on screen was fetched again at once: the default one now.
    expect(page.locator("#cairn-root")).to_have_attribute("data-cairn-layout", default["layout"])
    # The SDK on the page follows the saved level: nothing is queued for Cairn any more.
    page.evaluate("Cairn.track('report_created')")
    assert [e for e in queued(page, who) if e.get("event") == "report_created"] == []


def test_a_bad_time_zone_shows_the_servers_message_and_changes_nothing(
    harness: Harness, axe_script: Path
) -> None:
    page = harness.page
    who = harness.new_user()
    center = open_center(harness, who)
    center.get_by_role("checkbox", name="Pause notifications during quiet hours").check()
    zone = center.get_by_label("Time zone", exact=True)
    zone.fill("Mars/Olympus")
    zone.press("Enter")  # submits the form
    status = center.get_by_role("status")
    expect(status).to_contain_text("Not saved. Time zone: Unknown time zone 'Mars/Olympus'")
    expect(status).to_contain_text("use an IANA name")
    expect(zone).to_have_attribute("aria-invalid", "true")
    assert stored(harness.server, who)["notifications"]["quiet_hours"] is None
    assert [e["status"] for e in harness.errors()] == [400]  # reported to onError too
    assert axe(page, axe_script) == []

    zone.fill("Europe/Berlin")
    center.get_by_role("button", name="Save preferences").click()
    expect(status).to_have_text(SAVED)
    expect(zone).not_to_have_attribute("aria-invalid", "true")
    assert (
        stored(harness.server, who)["notifications"]["quiet_hours"]["time_zone"] == "Europe/Berlin"
    )


def test_the_time_zone_defaults_to_the_browsers(
    browser: Browser, server: Server, database_dsn: str
) -> None:
    context = browser.new_context(timezone_id="Asia/Tokyo")
    try:
        harness = Harness(context.new_page(), server, database_dsn)
        center = open_center(harness, harness.new_user())
        expect(center.get_by_label("Time zone", exact=True)).to_have_value("Asia/Tokyo")
        options = center.locator("datalist option")
        assert options.count() > 100  # the zones the browser knows, as suggestions
    finally:
        context.close()


def test_when_cairn_cannot_answer_the_element_says_so_and_nothing_throws(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    page.route("**/v1/preferences/explain**", lambda route: route.fulfill(status=503, body="down"))
    page.add_script_tag(url=f"{harness.server.base}{CENTER}")
    shown = page.evaluate(
        """() => {
            const el = document.createElement('div');
            el.id = 'prefs';
            document.querySelector('main').append(el);
            return Cairn.preferences(el);
        }"""
    )
    assert shown is None
    center = page.locator("#prefs")
    expect(center.get_by_role("alert")).to_have_text(
        "Your preferences could not be loaded: the service could not be reached."
        " Please try again in a moment."
    )
    assert 503 in [e["status"] for e in harness.errors()]
    page.unroute("**/v1/preferences/explain**")
    center.get_by_role("button", name="Try again").click()
    expect(center.locator("form")).to_be_visible()

    # Saving while Cairn is down: a message in the status region; the choices stay on screen.
    page.route("**/v1/preferences?**", lambda route: route.abort()
               if route.request.method == "PUT" else route.continue_())  # fmt: skip
    center.get_by_role("radio", name="Basic").check()
    center.get_by_role("button", name="Save preferences").click()
    expect(center.get_by_role("status")).to_have_text(
        "Not saved: the service could not be reached. Please try again in a moment."
    )
    expect(center.get_by_role("radio", name="Basic")).to_be_checked()
    assert stored(harness.server, who)["personalization"] == "full"


def test_server_text_is_shown_as_text(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()

    def markup(route: Route) -> None:
        body = route.fetch().json()
        body["summary"] = '<img src=x onerror="window.hacked=1">'
        body["purposes"][1]["label"] = "<b>bold</b>"
        route.fulfill(json=body)

    page.route("**/v1/preferences/explain**", markup)
    center = open_center(harness, who)
    expect(center.locator(".cairn-prefs-summary")).to_have_text(
        '<img src=x onerror="window.hacked=1">'
    )
    expect(center.get_by_role("checkbox", name="<b>bold</b>")).to_have_count(1)
    assert center.locator("img, b").count() == 0
    assert page.evaluate("window.hacked") is None


def test_with_the_core_bundle_and_no_stylesheet(harness: Harness) -> None:
    """The core bundle alone still renders layouts and has no preference center; loaded after it,
    the preference center works, and with init({css: false}) it adds no stylesheet."""
    page = harness.page
    who = harness.new_user()
    harness.open(who, sdk="/sdk/cairn.core.js")
    assert on_screen(page)
    assert page.evaluate("typeof Cairn.preferences") == "undefined"
    assert page.evaluate("typeof Cairn.setPersonalization") == "undefined"
    page.evaluate("Cairn.init(Object.assign({}, cairnHarness.options, {css: false}))")
    center = show_center(harness)
    assert page.locator("style#cairn-prefs-css").count() == 0
    center.get_by_role("radio", name="Basic").check()
    center.get_by_role("checkbox", name="Learning from teams like yours").check()
    center.get_by_role("button", name="Save preferences").click()
    expect(center.get_by_role("status")).to_have_text(SAVED)
    prefs = stored(harness.server, who)
    assert prefs["personalization"] == "basic"
    assert prefs["purposes"] == {"cross_tenant": True}
    assert harness.errors() == []


def test_called_before_init_it_says_so_in_the_element(page: Page, server: Server) -> None:
    page.set_content('<main><h1>Settings</h1><div id="prefs"></div></main>')
    page.add_script_tag(url=f"{server.base}/sdk/cairn.js")
    page.add_script_tag(url=f"{server.base}{CENTER}")
    assert page.evaluate("Cairn.preferences('#prefs')") is None
    expect(page.locator("#prefs")).to_have_text(
        "Your preferences cannot be shown yet: the page has not started Cairn."
    )


def test_an_answer_that_is_not_an_explanation_gets_the_message(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    page.route(
        "**/v1/preferences/explain**",
        lambda route: route.fulfill(status=200, json=None),
    )
    page.add_script_tag(url=f"{harness.server.base}{CENTER}")
    assert page.evaluate("Cairn.preferences(document.querySelector('main'))") is None
    expect(page.get_by_role("alert")).to_contain_text("Your preferences could not be loaded")
    expect(page.locator("#cairn-root")).to_have_count(0)  # the element's content was replaced
