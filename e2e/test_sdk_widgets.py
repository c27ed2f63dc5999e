"""Widgets users can trust: an axe-core scan of the demo, keyboard-only use, the "Why this?"
disclosure, the view switch, theming, host renderers, unknown types, and screenshots of the demo."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import ARTIFACTS, Harness, Server
from e2e.page_helpers import axe

pytestmark = pytest.mark.e2e


def personas(server: Server) -> list[dict[str, str]]:
    import json

    data: list[dict[str, str]] = json.loads(
        (server.settings.data_dir / "demo-personas.json").read_text()
    )
    return data


def persona(server: Server, pattern: str) -> int:
    for i, p in enumerate(personas(server)):
        if re.search(pattern, p["label"] + " " + p["description"], re.I):
            return i
    raise AssertionError(f"no persona matches {pattern!r}")


def open_demo(page: Page, server: Server, who: int, screen: str = "home") -> None:
    page.goto(f"{server.base}/demo/?persona={who}&screen={screen}")
    page.wait_for_selector('#cairn-root[data-cairn-source="server"]')


def act(page: Page, action: str | None) -> None:
    """Put the demo in one of its main states."""
    root = page.locator("#cairn-root")
    if action == "why":
        for button in root.get_by_role("button", name="Why this?").all():
            button.click()
    elif action == "maker":
        page.get_by_label("Switch view").select_option("maker")
        expect(root).to_have_attribute("data-cairn-layout", "home/maker")
    elif action == "limit":
        page.get_by_role("button", name="Hit the seat limit here").click()
        expect(root.locator(".cairn-upgrade_gate")).to_have_count(1, timeout=5000)
    elif action == "errors":
        page.get_by_role("button", name="Hit 3 automation errors").click()
        expect(root.locator(".cairn-help_tip")).to_have_count(1, timeout=5000)


# (name, persona, screen, state): the demo's main states, scanned and photographed.
STATES = [
    ("demo-home-new-admin", r"new admin", "home", None),
    ("demo-home-why-open", r"new admin", "home", "why"),
    ("demo-home-maker-view", r"new admin", "home", "maker"),
    ("demo-home-healthcare-end-user", r"healthcare", "home", None),
    ("demo-settings-upgrade-gate", r"seat limit", "settings", "limit"),
    ("demo-home-help-tip", r"stuck", "home", "errors"),
]


def test_the_demo_in_its_main_states_has_no_axe_violations(
    page: Page, server: Server, axe_script: Path
) -> None:
    """axe-core on the demo in each main state; a screenshot of each in test-results/."""
    ARTIFACTS.mkdir(exist_ok=True)
    for name, who, screen, state in STATES:
        open_demo(page, server, persona(server, who), screen)
        act(page, state)
        if name != "demo-home-new-admin":  # the same page with its disclosures open is scanned
            assert axe(page, axe_script) == [], name
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_demo_in_a_dark_theme_with_reduced_motion_has_no_axe_violations(
    page: Page, server: Server, axe_script: Path
) -> None:
    open_demo(page, server, persona(server, r"new admin"))
    page.add_style_tag(
        content="#cairn-root { --cairn-bg: #111827; --cairn-fg: #f3f4f6; --cairn-accent: #93c5fd;"
        " --cairn-on-accent: #030712; background: #030712; }"
    )
    for button in page.locator("#cairn-root").get_by_role("button", name="Why this?").all():
        button.click()
    assert axe(page, axe_script, motion="reduce") == []
    page.screenshot(path=str(ARTIFACTS / "sdk-demo-dark-theme.png"), full_page=True)


def test_keyboard_only_use(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    root = page.locator("#cairn-root")

    def focused() -> dict[str, Any]:
        info: dict[str, Any] = page.evaluate(
            """() => {
                const a = document.activeElement, s = getComputedStyle(a);
                return {tag: a.tagName, text: a.textContent.trim(), ui: a.dataset.cairnUi || null,
                        widget: a.closest('[data-widget-id]')?.dataset.widgetId || null,
                        outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2};
            }"""
        )
        return info

    # Tab reaches the view switch first, then every control of every widget, in reading order.
    page.locator("body").focus()
    page.keyboard.press("Tab")
    assert focused()["tag"] == "SELECT"
    assert focused()["outline"], "no visible focus on the view switch"
    seen: list[dict[str, Any]] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        now = focused()
        if now["widget"] is None:
            break
        assert now["outline"], f"no visible focus on {now}"
        seen.append(now)
    controls = root.locator("a[href], button").count()
    assert len(seen) == controls, "some controls cannot be reached with Tab"

    # "Why this?" opens with Enter and closes with Space; focus stays on the button.
    why = root.locator(".cairn-next_step_card [data-cairn-ui=why]")
    why.focus()
    page.keyboard.press("Enter")
    expect(why).to_have_attribute("aria-expanded", "true")
    panel = page.locator(f"#{why.get_attribute('aria-controls')}")
    expect(panel).to_be_visible()
    page.keyboard.press("Space")
    expect(panel).to_be_hidden()
    expect(why).to_be_focused()

    # Dismiss with the keyboard: the card goes, focus moves on to the next control, not to <body>.
    card = root.locator(".cairn-next_step_card")
    card.locator("[data-cairn-ui=dismiss]").focus()
    page.keyboard.press("Enter")
    expect(card).to_be_hidden()
    assert focused()["tag"] in ("A", "BUTTON", "SELECT")

    # The view switch works from the keyboard alone.
    select = page.get_by_label("Switch view")
    select.focus()
    page.keyboard.press("ArrowDown")
    expect(root).not_to_have_attribute("data-cairn-layout", "home/admin")
    expect(page.get_by_label("Switch view")).to_be_focused()


def test_why_this_is_an_accessible_disclosure_with_summary_and_drivers(
    harness: Harness,
) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    widget = page.locator("#cairn-root .cairn-integration_prompt")
    why = widget.get_by_role("button", name="Why this?")
    expect(why).to_have_attribute("aria-expanded", "false")
    panel = page.locator(f"#{why.get_attribute('aria-controls')}")
    expect(panel).to_be_hidden()
    why.click()
    expect(why).to_have_attribute("aria-expanded", "true")
    expect(panel).to_be_visible()
    expect(panel.locator("p")).to_contain_text("admin")
    assert panel.locator("li").count() >= 1  # the signals it rests on
    assert re.search(r"\w+: \S", panel.locator("li").first.inner_text())
    # The button's accessible description names its widget, for screen-reader users.
    described = page.evaluate(
        "b => document.getElementById(b.getAttribute('aria-describedby')).textContent",
        why.element_handle(),
    )
    assert described == widget.locator("h2").inner_text()
    # An open disclosure stays open when the layout is painted again with the same widget.
    page.evaluate("Cairn.render('home', '#cairn-root')")
    page.wait_for_function("cairnHarness.layouts.length >= 2")
    expect(page.locator("#cairn-root .cairn-integration_prompt .cairn-why")).to_be_visible()


def test_the_view_switch_is_remembered_per_user_and_screen(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    harness.open(who)
    root = page.locator("#cairn-root")
    expect(root).to_have_attribute("data-cairn-layout", "home/admin")
    page.get_by_label("Switch view").select_option("maker")
    expect(root).to_have_attribute("data-cairn-layout", "home/maker")
    expect(root.locator(".cairn-shortcut_grid")).to_contain_text("New report")
    harness.open(who)
    expect(root).to_have_attribute("data-cairn-layout", "home/maker")
    # Another user of the same browser keeps their own view.
    other = harness.new_user()
    harness.open(other)
    expect(root).to_have_attribute("data-cairn-layout", "home/admin")
    # A remembered view that is no longer offered is forgotten: the default comes back.
    page.evaluate(
        "k => localStorage.setItem(k, 'retired_view')", f"cairn:v:{other.tenant}:{other.user}:home"
    )
    harness.open(other)
    expect(root).to_have_attribute("data-cairn-layout", "home/admin")


def test_theming_through_css_custom_properties(harness: Harness) -> None:
    page = harness.page
    who = harness.new_user()
    page.add_init_script(
        "document.addEventListener('DOMContentLoaded', () => document.body.style.cssText ="
        " '--cairn-accent: rgb(200, 0, 100); --cairn-bg: rgb(10, 20, 30);"
        " --cairn-fg: rgb(240, 240, 240); --cairn-radius: 3px; --cairn-on-accent: rgb(1, 2, 3)')"
    )
    harness.open(who)
    style = page.evaluate(
        """() => {
            const w = getComputedStyle(document.querySelector('#cairn-root .cairn-widget'));
            const cta = getComputedStyle(document.querySelector('#cairn-root a.cairn-cta'));
            return {bg: w.backgroundColor, fg: w.color, radius: w.borderTopLeftRadius,
                    accent: cta.backgroundColor, onAccent: cta.color};
        }"""
    )
    assert style == {
        "bg": "rgb(10, 20, 30)",
        "fg": "rgb(240, 240, 240)",
        "radius": "3px",
        "accent": "rgb(200, 0, 100)",
        "onAccent": "rgb(1, 2, 3)",
    }


@pytest.mark.parametrize(
    ("motion", "animation"), [("no-preference", "cairn-in"), ("reduce", "none")]
)
def test_new_widgets_animate_in_unless_the_user_asks_for_reduced_motion(
    harness: Harness, motion: str, animation: str
) -> None:
    page = harness.page
    page.emulate_media(reduced_motion=motion)  # type: ignore[arg-type]
    harness.open(mode="descriptor", source=None)
    first = descriptor_with_host_types()
    later = descriptor_with_host_types()
    first["slots"][0]["widgets"] = first["slots"][0]["widgets"][:2]
    page.evaluate("d => cairnHarness.show(d)", first)
    page.evaluate("d => cairnHarness.show(d)", later)
    new = page.locator("#cairn-root .cairn-new")
    expect(new).to_have_attribute("data-widget-id", "board_list")
    assert new.evaluate("e => getComputedStyle(e).animationName") == animation
    kept = page.locator("#cairn-root [data-widget-id=tip]")
    assert kept.evaluate("e => getComputedStyle(e).animationName") == "none"


def test_host_renderers_for_own_types_and_overrides(harness: Harness) -> None:
    page = harness.page
    harness.open(mode="descriptor", source=None)
    page.evaluate(
        """() => {
            Cairn.registerRenderer('nps_survey', (w, ctx) => ctx.h('div', null,
                ctx.heading(w.props.title),
                ctx.h('button', {type: 'button', 'data-cairn-cta': '', class: 'nps'}, 'Rate us')));
            Cairn.registerRenderer('help_tip', (w, ctx) => ctx.h('div', {class: 'host-tip'},
                ctx.heading('Host: ' + w.props.title)));
        }"""
    )
    page.evaluate("d => cairnHarness.show(d)", descriptor_with_host_types())
    root = page.locator("#cairn-root")
    expect(root.locator("[data-widget-type=nps_survey] h2")).to_have_text("How are we doing?")
    expect(root.locator(".host-tip h2")).to_have_text("Host: Stuck on automations?")
    # The frame ("Why this?") wraps host renderers too, and the header lists the host's type.
    expect(root.locator("[data-widget-type=nps_survey] [data-cairn-ui=why]")).to_have_count(1)
    header = page.evaluate(
        """async () => {
            let seen = null;
            const real = window.fetch;
            window.fetch = (url, init) => {
                seen = init.headers['X-Cairn-Client'];
                return real(url, init);
            };
            Cairn.init(Object.assign({}, cairnHarness.options, {tenantId: 'x'}));
            await Cairn.render('home', document.createElement('div'));
            window.fetch = real;
            return seen;
        }"""
    )
    assert re.search(r"widgets=.*\bnps_survey\b", header)


def test_unknown_types_use_their_fallback_or_are_dropped_with_a_warning(harness: Harness) -> None:
    page = harness.page
    harness.open(mode="descriptor", source=None)
    page.evaluate("d => cairnHarness.show(d)", descriptor_with_host_types())
    root = page.locator("#cairn-root")
    types = root.locator("[data-widget-type]").evaluate_all(
        "els => els.map(e => e.dataset.widgetType)"
    )
    # nps_survey (no renderer here) is dropped; kanban_board falls back to a checklist.
    assert types == ["help_tip", "checklist"]
    warnings = page.evaluate("cairnHarness.warnings")
    assert any("dropped widget nps of type nps_survey" in w for w in warnings)
    assert any("fallback of widget board of type kanban_board" in w for w in warnings)


def descriptor_with_host_types() -> dict[str, Any]:
    why = {"summary": "Because.", "source": "rule", "confidence": 0.9, "drivers": []}
    return {
        "schema_version": 1,
        "screen": "home",
        "layout": "home/host",
        "decision_id": "dcs_host",
        "generated_at": "2026-11-27T10:00:00Z",
        "personalized": True,
        "degraded": False,
        "view": {"id": "admin", "label": "Admin", "options": []},
        "presets": None,
        "slots": [
            {
                "id": "main",
                "widgets": [
                    {"id": "nps", "type": "nps_survey", "props": {"title": "How are we doing?"},
                     "why": why, "fallback": "drop"},
                    {"id": "tip", "type": "help_tip",
                     "props": {"title": "Stuck on automations?", "body": "Read this.",
                               "article": {"id": "a", "title": "Automations", "href": "/help/a",
                                           "kind": "article"}, "trigger": "friction"},
                     "why": why, "fallback": "drop"},
                    {"id": "board", "type": "kanban_board", "props": {"columns": 3}, "why": why,
                     "fallback": {"id": "board_list", "type": "checklist",
                                  "props": {"title": "Your board", "items": [
                                      {"id": "c1", "label": "Plan", "done": True, "href": "/b/1"}]},
                                  "why": why, "fallback": "drop"}},
                ],
            }
        ],
    }  # fmt: skip
