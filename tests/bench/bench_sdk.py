"""The web SDK in Debian's Chromium: descriptor to DOM, and a cached layout on screen, Cairn down.

    python -m tests.bench.bench_sdk [--renders 300] [--loads 60] [--quick]

1. Descriptor to DOM for the largest layout the demo decides: the shipped layouts decided for a few
   hundred synthetic profiles (tests/bench/_common.py) on every screen and view, and the
   descriptor with the most widgets (then the most bytes). In the page: `Cairn.renderDescriptor`
   into a fresh element, then a forced style and layout (`offsetHeight`), timed with
   `performance.now()`, many times. Baseline in the same page: the DOM it produced, as an HTML
   string, through `innerHTML` and forced the same way (what a server-rendered template costs).
2. Cached layout on screen after init with Cairn down: a host page (the built bundle,
   web_sdk/dist/cairn.min.js, as a self-hosting app ships it) whose Cairn host is a closed port of
   127.0.0.1 (connection refused), the user's layout in localStorage from an earlier visit. Each
   load measures from just before `Cairn.init` to the frame after the layout is in the DOM (two
   `requestAnimationFrame`s). Baseline: the same page putting the same HTML in place at the same
   moment, no SDK. Budget: 100 ms at p95.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
from typing import Any

import msgspec
from playwright.sync_api import Page, Route, sync_playwright

from app.config.layouts import load_layouts
from app.engine.decide import DecisionInput, decide
from e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.bench._common import (
    LAYOUTS_DIR,
    NOW,
    ROOT,
    SummaryRow,
    mode_of,
    percentile,
    report,
    synthetic_peers,
    synthetic_profiles,
)

BUNDLE = ROOT / "web_sdk" / "dist" / "cairn.min.js"
ORIGIN = "http://host.test"
SCREENS = ("home", "editor", "settings", "billing")
VIEWS = (None, "admin", "maker", "end_user")
BUDGET_MS = 100.0


def largest_layout(profiles: int) -> dict[str, Any]:
    layouts = load_layouts(LAYOUTS_DIR)
    peers = synthetic_peers()
    rng = random.Random(11)
    best: tuple[int, int, bytes] = (0, 0, b"")
    for profile in synthetic_profiles(profiles):
        for screen in SCREENS:
            for view in VIEWS:
                decision = decide(
                    layouts,
                    DecisionInput(
                        screen=screen,
                        profile=profile,
                        mode=mode_of(profile),
                        now=NOW,
                        seed=rng.getrandbits(64),
                        peers=peers,
                        view=view,
                    ),
                )
                body = msgspec.json.encode(decision.descriptor)
                widgets = sum(len(s.widgets) for s in decision.descriptor.slots)
                best = max(best, (widgets, len(body), body))
    descriptor: dict[str, Any] = json.loads(best[2])
    return descriptor


RENDER = """async ([descriptor, n]) => {
    const host = document.getElementById('host');
    const sdk = [], html = [];
    const probe = document.createElement('div');
    Cairn.renderDescriptor(probe, descriptor, {preview: true});
    const markup = probe.innerHTML;
    for (let i = 0; i < n; i++) {
        let el = document.createElement('div');
        host.replaceChildren(el);
        let t0 = performance.now();
        Cairn.renderDescriptor(el, descriptor, {preview: true});
        el.offsetHeight;
        sdk.push(performance.now() - t0);
        Cairn.unmount(el);
        el = document.createElement('div');
        host.replaceChildren(el);
        t0 = performance.now();
        el.innerHTML = markup;
        el.offsetHeight;
        html.push(performance.now() - t0);
        if (i % 20 === 0) await new Promise(r => setTimeout(r, 0));
    }
    return {sdk, html, widgets: probe.querySelectorAll('[data-widget-id]').length};
}"""

HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host</title>
<script src="/cairn.min.js"></script></head>
<body><main><h1>Home</h1><div id="cairn-home"></div></main>
<script>
  const done = new Promise(resolve => {
    const root = document.getElementById('cairn-home');
    const t0 = performance.now();
    const frame = () => requestAnimationFrame(() => requestAnimationFrame(
        () => resolve(performance.now() - t0)));
    if (MODE === 'sdk') {
      root.addEventListener('cairn:layout', frame, {once: true});
      Cairn.init({host: CAIRN, key: 'pk_bench', tenantId: 't1', userId: 'u1', userHash: 'x'});
      Cairn.render('home', root);
    } else {
      root.innerHTML = localStorage.getItem('bench:markup');
      frame();
    }
  });
  window.onScreenMs = done;
</script></body></html>"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there any more: connection refused


def serve(page: Page, mode: str, cairn: str) -> None:
    def handle(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/cairn.min.js":
            route.fulfill(body=BUNDLE.read_text(encoding="utf-8"), content_type="text/javascript")
        else:
            html = HOST_PAGE.replace("MODE", json.dumps(mode)).replace("CAIRN", json.dumps(cairn))
            route.fulfill(body=html, content_type="text/html")

    page.unroute(f"{ORIGIN}/**")
    page.route(f"{ORIGIN}/**", handle)


def ms(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q):.2f} ms"


def run(renders: int, loads: int, profiles: int) -> list[SummaryRow]:
    descriptor = largest_layout(profiles)
    size = len(json.dumps(descriptor))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_content('<main><div id="host"></div></main>')
            page.add_script_tag(path=str(BUNDLE))
            page.evaluate(RENDER, [descriptor, 20])  # warm-up
            timing = page.evaluate(RENDER, [descriptor, renders])
            # Cached layout with Cairn down.
            cairn = f"http://127.0.0.1:{closed_port()}"
            serve(page, "sdk", cairn)
            page.goto(f"{ORIGIN}/")
            page.evaluate(
                """([key, d, markup]) => {
                    localStorage.setItem(key, JSON.stringify(d));
                    localStorage.setItem('bench:markup', markup);
                }""",
                [
                    "cairn:l:t1:u1:home:",
                    descriptor,
                    page.evaluate(
                        "d => { const e = document.createElement('div');"
                        " Cairn.renderDescriptor(e, d, {preview: true}); return e.innerHTML; }",
                        descriptor,
                    ),
                ],
            )
            on_screen: dict[str, list[float]] = {"sdk": [], "html": []}
            for i in range(loads + 2):
                for mode in ("sdk", "html"):
                    serve(page, mode, cairn)
                    page.goto(f"{ORIGIN}/?{i}")
                    value = float(page.evaluate("window.onScreenMs"))
                    if mode == "sdk":
                        source = page.get_attribute("#cairn-home", "data-cairn-source")
                        assert source == "cache", f"the layout on screen came from {source}"
                    if i >= 2:  # the first loads warm the browser's caches
                        on_screen[mode].append(value)
        finally:
            browser.close()
    sdk, html = timing["sdk"], timing["html"]
    print(
        f"largest demo layout: {timing['widgets']} widgets, {size:,} bytes of JSON "
        f"({descriptor['screen']}, {descriptor['layout']})"
    )
    print(
        f"descriptor -> DOM ({renders} renders): SDK p50 {ms(sdk, 50)}, p95 {ms(sdk, 95)}; "
        f"innerHTML of the same DOM p50 {ms(html, 50)}, p95 {ms(html, 95)}"
    )
    print(
        f"cached layout on screen after init, Cairn down ({loads} loads): "
        f"SDK p50 {ms(on_screen['sdk'], 50)}, p95 {ms(on_screen['sdk'], 95)}; "
        f"static HTML p50 {ms(on_screen['html'], 50)}, p95 {ms(on_screen['html'], 95)}"
    )
    p95 = percentile(on_screen["sdk"], 95)
    return [
        SummaryRow(
            "sdk",
            f"descriptor -> DOM, {timing['widgets']} widgets, p50 / p95",
            f"{ms(sdk, 50)} / {ms(sdk, 95)}",
            f"innerHTML {ms(html, 50)} / {ms(html, 95)}",
            f"{percentile(sdk, 50) / percentile(html, 50):.1f}x",
        ),
        SummaryRow(
            "sdk",
            "cached layout on screen after init, Cairn down, p95",
            ms(on_screen["sdk"], 95),
            f"static HTML {ms(on_screen['html'], 95)}",
            f"{p95 / percentile(on_screen['html'], 95):.1f}x",
            f"<= {BUDGET_MS:.0f} ms {'ok' if p95 <= BUDGET_MS else 'OVER'}",
        ),
    ]


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="the web SDK in Chromium")
    parser.add_argument("--renders", type=int, default=300)
    parser.add_argument("--loads", type=int, default=60)
    parser.add_argument("--profiles", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="30 renders, 8 loads, 40 profiles")
    args = parser.parse_args(argv)
    if args.quick:
        args.renders, args.loads, args.profiles = 30, 8, 40
    if not BUNDLE.exists():
        raise SystemExit(f"{BUNDLE} is missing: run `make sdk`")
    rows = run(args.renders, args.loads, args.profiles)
    return report(rows)


if __name__ == "__main__":
    run_cli()
