"""The golden descriptor corpus (tests/golden/descriptors) rendered by the web SDK in Chromium.

For every file: with all built-in renderers the DOM matches the file's `dom` summary (slots,
widgets, headings, text as read aloud, links, buttons, the "why" text, the views offered); and for
each capability case, a page whose SDK renders only those widget types shows exactly the widgets
the case expects, as the server's negotiate() does (tests/unit/test_descriptor_corpus.py). Both
the full build (dist/cairn.min.js) and the core build (dist/cairn.core.min.js) are checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

FILES = sorted((ROOT / "tests" / "golden" / "descriptors").glob("*.json"))
BUILDS = {
    "full": ROOT / "web_sdk" / "dist" / "cairn.min.js",
    "core": ROOT / "web_sdk" / "dist" / "cairn.core.min.js",
}

DOM_SUMMARY = """() => {
    const root = document.getElementById('root');
    const text = (el) => el ? el.textContent.replace(/\\s+/g, ' ').trim() : null;
    return {
        views: [...root.querySelectorAll('.cairn-views option')]
            .map(o => [o.value, o.textContent, o.selected]),
        slots: [...root.querySelectorAll('[data-slot]')].map(s => ({
            slot: s.dataset.slot,
            widgets: [...s.querySelectorAll(':scope > [data-widget-id]')].map(w => ({
                id: w.dataset.widgetId,
                type: w.dataset.widgetType,
                heading: text(w.querySelector('h2, h3, h4, h5, h6')),
                text: text(w.firstElementChild),
                links: [...w.firstElementChild.querySelectorAll('a[href]')]
                    .map(a => [text(a), a.getAttribute('href')]),
                buttons: [...w.querySelectorAll('button')].map(text),
                why: text(w.querySelector('.cairn-why')),
            })),
        })),
    };
}"""


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def open_blank(page: Page, build: str, types: list[str] | None = None) -> None:
    """A page with the SDK and nothing else; with `types`, only those renderers are kept."""
    page.goto("about:blank")  # a new window: no SDK state from the page before
    page.set_content('<main><h1>Corpus</h1><div id="root"></div></main>')
    page.add_script_tag(path=str(BUILDS[build]))
    if types is not None:
        page.evaluate(
            """keep => ['shortcut_grid', 'next_step_card', 'checklist', 'integration_prompt',
                        'upgrade_gate', 'help_tip', 'template_gallery']
                .filter(t => !keep.includes(t))
                .forEach(t => Cairn.registerRenderer(t, null))""",
            types,
        )


def show(page: Page, descriptor: dict[str, Any]) -> dict[str, Any]:
    page.evaluate(
        "d => Cairn.renderDescriptor(document.getElementById('root'), d, {preview: true})",
        descriptor,
    )
    summary: dict[str, Any] = page.evaluate(DOM_SUMMARY)
    return summary


@pytest.mark.parametrize("build", list(BUILDS))
def test_every_descriptor_renders_as_the_corpus_says(page: Page, build: str) -> None:
    open_blank(page, build)
    for path in FILES:
        case = load(path)
        assert show(page, case["descriptor"]) == case["dom"], path.stem


@pytest.mark.parametrize("build", list(BUILDS))
def test_a_client_with_fewer_renderers_shows_what_negotiation_gives(page: Page, build: str) -> None:
    checked = 0
    for path in FILES:
        case = load(path)
        for item in case["cases"]:
            if item["widgets"] is None:
                continue
            open_blank(page, build, item["widgets"])
            shown = show(page, case["descriptor"])["slots"]
            got = [[s["slot"], [f"{w['id']}:{w['type']}" for w in s["widgets"]]] for s in shown]
            assert got == item["expect"], (path.stem, item["widgets"])
            checked += 1
    assert checked >= 8
