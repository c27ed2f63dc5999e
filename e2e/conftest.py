"""End-to-end fixtures: a seeded Cairn demo server in a subprocess, and Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from app.settings import Settings
from tests.conftest import database_dsn, pg_server_dsn, run_sync

__all__ = ["database_dsn", "pg_server_dsn"]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CAIRN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout} s")


class Server:
    def __init__(self, base: str, settings: Settings) -> None:
        self.base = base
        self.settings = settings


@pytest.fixture(scope="session")
def server(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`cairn serve` with the demo app, on a database seeded with a small demo population."""
    from app.cli.seed import seed

    data_dir = tmp_path_factory.mktemp("cairn-e2e")
    env = {
        **os.environ,
        "CAIRN_SECRET_KEY": "sk_e2e_secret",
        "CAIRN_PUBLISHABLE_KEY": "pk_e2e_publishable",
        "CAIRN_IDENTITY_SECRET": "whsec_e2e_identity",
        "DATABASE_URL": database_dsn,
        "CAIRN_DATA_DIR": str(data_dir),
        "CAIRN_LAYOUTS_DIR": str(ROOT / "layouts"),
        "CAIRN_DEMO": "1",
        "CAIRN_RELOAD_LAYOUTS": "0",
        "CAIRN_BODY_TIMEOUT_S": "2",  # a stalled body is cut short quickly here
    }
    settings = Settings.from_env(env)
    run_sync(seed(database_dsn, settings, tenants=20, users=150, events=6000, progress=False))
    with serving(env) as base:
        yield Server(base, settings)


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path | None = None) -> Iterator[str]:
    """`cairn serve` on a free port with this environment, until the block ends; its base URL.
    Its output goes to `log` when one is given."""
    port = _free_port()
    out = log.open("wb") if log is not None else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/readyz", proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if out is not None:
            out.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
        assert errors == [], f"errors on the page: {errors}"
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        p.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()


# ---- The web SDK in a host page (e2e/test_sdk_*.py) ----------------------------------------------

HARNESS_FILE = ROOT / "e2e" / "sdk_harness.html"
HARNESS_PATH = "/__sdk_harness/"
AXE_SCRIPT = ROOT / "web_sdk" / "node_modules" / "axe-core" / "axe.min.js"


@dataclass(frozen=True)
class SdkUser:
    tenant: str
    user: str
    hash: str


class Harness:
    """e2e/sdk_harness.html served at the Cairn server's own origin (the page calls the real API,
    unless a test routes a request elsewhere), signed in with the publishable key and user hash."""

    def __init__(self, page: Page, server: Server, dsn: str) -> None:
        self.page = page
        self.server = server
        self.dsn = dsn
        page.context.route(
            f"{server.base}{HARNESS_PATH}**",
            lambda route: route.fulfill(
                body=HARNESS_FILE.read_text(encoding="utf-8"), content_type="text/html"
            ),
        )

    def new_user(
        self,
        role: str = "admin",
        plan: str = "trial",
        industry: str = "fintech",
        personalization: str | None = None,
    ) -> SdkUser:
        """A user of a fresh tenant, known to Cairn through identify and group calls."""
        import httpx

        from app.serving.identity import user_hash

        tenant, user = f"sdk-{uuid.uuid4().hex[:10]}", "u1"
        secret = {"Authorization": f"Bearer {self.server.settings.secret_key}"}
        batch = [
            {"type": "identify", "messageId": f"{tenant}-i", "tenantId": tenant, "userId": user,
             "traits": {"role": role}},
            {"type": "group", "messageId": f"{tenant}-g", "userId": user, "groupId": tenant,
             "traits": {"plan": plan, "industry": industry, "seats": 10, "seats_used": 2}},
        ]  # fmt: skip
        r = httpx.post(f"{self.server.base}/v1/events", json={"batch": batch}, headers=secret)
        assert r.status_code == 200, r.text
        if personalization is not None:
            r = httpx.put(
                f"{self.server.base}/v1/preferences",
                params={"tenant_id": tenant, "user_id": user},
                json={"personalization": personalization},
                headers=secret,
            )
            assert r.status_code == 200, r.text
        return SdkUser(tenant, user, user_hash(self.server.settings.identity_secret, tenant, user))

    def url(self, who: SdkUser | None = None, **params: object) -> str:
        query: dict[str, object] = {"key": self.server.settings.publishable_key}
        if who is not None:
            query |= {"tenant": who.tenant, "user": who.user, "hash": who.hash}
        query |= {k: v for k, v in params.items() if v is not None}
        return f"{self.server.base}{HARNESS_PATH}?{urllib.parse.urlencode(query)}"

    def open(
        self, who: SdkUser | None = None, source: str | None = "server", **params: object
    ) -> None:
        """Open the harness; wait until a layout from `source` is on screen (None: do not wait)."""
        self.page.goto(self.url(who, **params))
        if source is not None:
            self.wait_source(source)

    def wait_source(self, source: str, timeout: float = 10_000) -> None:
        self.page.wait_for_selector(f'#cairn-root[data-cairn-source="{source}"]', timeout=timeout)

    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self.page.evaluate("cairnHarness.errors")
        return errors

    def stored_events(self, who: SdkUser) -> list[tuple[str, str]]:
        """(messageId, event or type) of every event Cairn stored for the user, oldest first."""

        async def fetch() -> list[tuple[str, str]]:
            import asyncpg

            conn = await asyncpg.connect(self.dsn)
            try:
                rows = await conn.fetch(
                    "SELECT message_id, coalesce(event, type) AS name FROM events"
                    " WHERE tenant_id = $1 AND user_id = $2 AND message_id NOT LIKE $3"
                    " ORDER BY ts, message_id",
                    who.tenant,
                    who.user,
                    f"{who.tenant}-%",
                )
            finally:
                await conn.close()
            return [(r["message_id"], r["name"]) for r in rows]

        return run_sync(fetch())


@pytest.fixture
def harness(page: Page, server: Server, database_dsn: str) -> Harness:
    return Harness(page, server, database_dsn)


@pytest.fixture(scope="session")
def axe_script() -> Path:
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: `make node` installs the SDK's dev tools")
    return AXE_SCRIPT
