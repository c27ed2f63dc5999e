"""Safe by construction: script payloads in layout text and links never run, whichever way the
descriptor arrives (the server's answer, the cache, the live stream, renderDescriptor)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Dialog, Page, Route

from e2e.conftest import Harness

pytestmark = pytest.mark.e2e

RUN = "window.__pwned = (window.__pwned || 0) + 1"
TEXT = [
    f'<img src=x onerror="{RUN}">',
    f"<script>{RUN}</script>",
    f'"><svg onload="{RUN}">',
    f"</p><iframe srcdoc='<script>parent.{RUN}</script>'></iframe>",
    f"{{{{constructor.constructor('{RUN}')()}}}}",
]
HREFS = [
    f"javascript:{RUN}",
    f"JaVaScRiPt:{RUN}",
    f"  javascript:{RUN}",
    f"java\tscript:{RUN}",
    f"\njavascript:{RUN}",
    f"data:text/html,<script>{RUN}</script>",
    "data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0xPC9zY3JpcHQ+",
    f"vbscript:{RUN}",
    f"javascript&colon;{RUN}",
]
SAFE_HREFS = ["/settings/team", "https://example.com/docs", "//example.com/x", "?tab=2"]


def text(i: int) -> str:
    return TEXT[i % len(TEXT)]


def hostile_descriptor() -> dict[str, Any]:
    """Every text field carries markup and every link a script URL (a few safe links too)."""
    hrefs = iter(HREFS * 4)
    why = {
        "summary": text(0),
        "source": "rule",
        "confidence": 0.9,
        "drivers": [{"signal": text(1), "value": text(2)}, {"signal": "list", "value": TEXT}],
    }

    def widget(i: int, wtype: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"id": f'w{i}" onclick="{RUN}', "type": wtype, "props": props, "why": why,
                "fallback": "drop"}  # fmt: skip

    def link(i: int) -> dict[str, str]:
        return {"label": text(i), "href": next(hrefs)}

    widgets = [
        widget(0, "next_step_card", {"title": text(0), "body": text(1), "cta": link(2),
                                     "progress": {"done": text(3), "total": 6},
                                     "dismissible": True}),
        widget(1, "shortcut_grid", {"title": text(1), "items": [
            {"label": text(i), "href": next(hrefs), "icon": text(i + 1)} for i in range(4)] + [
            {"label": "Safe", "href": h, "icon": "ok"} for h in SAFE_HREFS]}),
        widget(2, "checklist", {"title": text(2), "items": [
            {"id": text(i), "label": text(i), "done": i == 0, "href": next(hrefs)}
            for i in range(3)]}),
        widget(3, "integration_prompt", {"title": text(3), "integrations": [
            {"id": text(i), "name": text(i), "connect_href": next(hrefs),
             "peer_adoption": {"share": 0.5, "cohort": text(i + 1)}} for i in range(3)]}),
        widget(4, "upgrade_gate", {"trigger": {"kind": "limit", "name": text(4)},
                                   "title": text(4), "roi": text(0), "cta": link(1),
                                   "back": link(2)}),
        widget(5, "help_tip", {"title": text(0), "body": text(1), "trigger": text(2),
                               "article": {"id": text(3), "title": text(4), "href": next(hrefs),
                                           "kind": text(0)}}),
        widget(6, "template_gallery", {"title": text(1), "templates": [
            {"id": text(i), "name": text(i), "href": next(hrefs), "reason": text(i + 2)}
            for i in range(3)]}),
        {"id": "x", "type": f'x" onmouseover="{RUN}', "props": {}, "why": why, "fallback": "drop"},
        {"id": "proto", "type": "__proto__", "props": {"__proto__": {"polluted": True}},
         "why": why, "fallback": {"id": "ctor", "type": "constructor", "props": {}, "why": why,
                                  "fallback": "drop"}},
    ]  # fmt: skip
    return {
        "schema_version": 1,
        "screen": "home",
        "layout": f'home/"><script>{RUN}</script>',
        "decision_id": f"<img src=x onerror='{RUN}'>",
        "generated_at": "2026-11-27T10:00:00Z",
        "personalized": True,
        "degraded": False,
        "view": {
            "id": "a",
            "label": text(0),
            "options": [{"id": f'b"><x onclick="{RUN}', "label": text(1)}],
        },
        "presets": None,
        "slots": [{"id": text(2), "widgets": widgets}],
    }


def assert_nothing_ran(page: Page, dialogs: list[Dialog]) -> None:
    # Hover, focus and click every control: HTMLElement.click() runs a link's activation as a
    # user's click does (links to relative URLs are stopped from navigating away).
    page.evaluate(
        """() => {
            const root = document.getElementById('cairn-root');
            root.addEventListener('click', e => {
                const a = e.target.closest('a');
                if (a && /^https?:/.test(a.href)) e.preventDefault();
            });
            for (const el of root.querySelectorAll('a, button, select, span, h2, li')) {
                el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
                el.focus();
                el.click();
            }
        }"""
    )
    page.wait_for_timeout(200)
    report = page.evaluate(
        """() => {
            const root = document.getElementById('cairn-root');
            const all = [...root.querySelectorAll('*')];
            return {
                pwned: window.__pwned || 0,
                polluted: ({}).polluted === true,
                elements: [...new Set(all.map(e => e.tagName.toLowerCase()))].sort(),
                handlers: all.flatMap(e => [...e.attributes].map(a => a.name))
                    .filter(n => n.startsWith('on')),
                hrefs: [...root.querySelectorAll('[href]')].map(a => a.href),
                srcs: all.filter(e => e.hasAttribute('src') || e.hasAttribute('srcdoc')).length,
                text: root.textContent,
            };
        }"""
    )
    assert report["pwned"] == 0
    assert dialogs == []
    assert not report["polluted"]
    assert report["handlers"] == []
    assert report["srcs"] == 0
    assert set(report["elements"]) <= {
        "article", "button", "div", "h2", "label", "li", "option", "p", "progress", "section",
        "select", "span", "strong", "ul", "a", "h3",
    }  # fmt: skip
    assert all(h.startswith(("http://", "https://")) for h in report["hrefs"]), report["hrefs"]
    # The safe links stay links; so does "javascript&colon;…", a relative path here (setAttribute
    # decodes no entities), which resolves to this page's own origin.
    assert len(report["hrefs"]) == len(SAFE_HREFS) + 1
    # The markup is shown as the text it is.
    assert TEXT[0] in report["text"]
    assert TEXT[1] in report["text"]


@pytest.fixture
def dialogs(page: Page) -> list[Dialog]:
    seen: list[Dialog] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(dialog)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def test_payloads_in_the_servers_answer_and_then_from_the_cache_never_run(
    harness: Harness, dialogs: list[Dialog]
) -> None:
    page = harness.page
    who = harness.new_user()
    body = json.dumps(hostile_descriptor())

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=body)

    page.route("**/v1/layouts/home?*", serve)
    page.route("**/v1/events", lambda route: route.fulfill(json={"accepted": 0, "duplicates": 0}))
    harness.open(who)
    assert_nothing_ran(page, dialogs)
    # The hostile descriptor rendered, so it was cached: show it again from the cache, offline.
    page.unroute("**/v1/layouts/home?*")
    page.route("**/v1/layouts/home?*", lambda route: route.abort("connectionrefused"))
    harness.open(who, source="cache")
    assert_nothing_ran(page, dialogs)


def test_payloads_through_the_live_stream_never_run(
    harness: Harness, dialogs: list[Dialog]
) -> None:
    page = harness.page
    who = harness.new_user()
    stream = f"event: layout\ndata: {json.dumps(hostile_descriptor())}\n\n"
    page.route(
        "**/v1/layouts/home/stream?*",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=stream),
    )
    page.route("**/v1/layouts/home?*", lambda route: route.abort("connectionrefused"))
    harness.open(who, source="server", live=1, defaults=0)
    assert_nothing_ran(page, dialogs)


def test_payloads_through_render_descriptor_never_run(
    harness: Harness, dialogs: list[Dialog]
) -> None:
    page = harness.page
    harness.open(mode="descriptor", source=None)
    page.evaluate("d => cairnHarness.show(d)", hostile_descriptor())
    assert_nothing_ran(page, dialogs)
