"""The demo in Debian Chromium: a role home renders, a click moves the next step, views switch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.conftest import Server
from e2e.page_helpers import axe

pytestmark = pytest.mark.e2e


def personas(server: Server) -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(
        (server.settings.data_dir / "demo-personas.json").read_text()
    )
    return data


def persona_index(server: Server, pattern: str) -> int:
    for i, p in enumerate(personas(server)):
        if re.search(pattern, p["label"] + " " + p["description"], re.I):
            return i
    raise AssertionError(f"no persona matches {pattern!r}: {personas(server)}")


def open_demo(page: Page, server: Server, persona: int, screen: str = "home") -> None:
    page.goto(f"{server.base}/demo/?persona={persona}&screen={screen}")
    page.wait_for_selector("#cairn-root[data-cairn-decision]")


def test_new_admin_sees_an_admin_home(page: Page, server: Server) -> None:
    open_demo(page, server, persona_index(server, r"new admin"))
    root = page.locator("#cairn-root")
    expect(root).to_have_attribute("data-cairn-layout", "home/admin")
    expect(root.locator(".cairn-shortcut_grid")).to_contain_text("Admin shortcuts")
    expect(root.locator(".cairn-next_step_card")).to_have_count(1)
    expect(root.locator(".cairn-integration_prompt")).to_have_count(1)
    expect(root.locator(".cairn-checklist")).to_have_count(1)


def test_clicking_the_next_step_moves_it_on(page: Page, server: Server) -> None:
    open_demo(page, server, persona_index(server, r"new admin"))
    card = page.locator("#cairn-root .cairn-next_step_card")
    expect(card).to_have_count(1)
    heading = card.locator("h2, h3, h4").first
    before = heading.inner_text()
    card.locator("a").first.click()
    expect(page.locator("#demo-status")).to_contain_text("reported as")
    expect(heading).not_to_have_text(before, timeout=5000)
    expect(
        page.locator(
            "#cairn-root .cairn-next_step_card h2, #cairn-root .cairn-next_step_card h3"
        ).first
    ).not_to_have_text(before)


def test_the_view_switch_changes_the_home(page: Page, server: Server) -> None:
    open_demo(page, server, persona_index(server, r"new admin"))
    root = page.locator("#cairn-root")
    page.get_by_label("Switch view").select_option("maker")
    expect(root).to_have_attribute("data-cairn-layout", "home/maker")
    expect(root.locator(".cairn-shortcut_grid")).to_contain_text("New report")


def test_why_this_explains_a_widget(page: Page, server: Server) -> None:
    open_demo(page, server, persona_index(server, r"new admin"))
    widget = page.locator("#cairn-root .cairn-integration_prompt")
    why = widget.get_by_role("button", name=re.compile("why this", re.I))
    expect(why).to_have_attribute("aria-expanded", "false")
    why.click()
    expect(why).to_have_attribute("aria-expanded", "true")
    expect(widget).to_contain_text("admin")


def test_healthcare_end_user_sees_industry_words(page: Page, server: Server) -> None:
    open_demo(page, server, persona_index(server, r"healthcare"))
    root = page.locator("#cairn-root")
    expect(root).to_have_attribute("data-cairn-layout", "home/end_user")
    expect(root.locator(".cairn-shortcut_grid")).to_contain_text("patients")


def test_friction_brings_help_found_by_the_recommender(page: Page, server: Server) -> None:
    # A maker in the editor hits the same automation error three times: the recommender turns the
    # messages into a query over the catalog's help and the live layout shows what it found. (If
    # the query's first embedding outlasts the decision's budget, the rules' article shows first
    # and the stream brings the recommender's a moment later.)
    open_demo(page, server, persona_index(server, r"stuck"), screen="editor")
    page.get_by_role("button", name="Hit 3 automation errors").click()
    tip = page.locator("#cairn-root .cairn-help_tip")
    expect(tip).to_have_count(1)
    why = tip.get_by_role("button", name=re.compile("why this", re.I))
    why.click()
    expect(tip).to_contain_text("Trigger failed", timeout=15_000)
    expect(tip).to_contain_text("times just now")


def test_the_settings_screen_has_the_preference_center(
    page: Page, server: Server, axe_script: Path
) -> None:
    open_demo(page, server, persona_index(server, r"new admin"), screen="settings")
    center = page.locator("#cairn-preferences")
    expect(center.get_by_role("radio", name="Full")).to_be_checked()
    expect(center.get_by_role("button", name="Save preferences")).to_be_visible()
    assert axe(page, axe_script) == []
