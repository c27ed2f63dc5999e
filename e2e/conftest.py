"""End-to-end fixtures: a seeded Cairn demo server in a subprocess, and Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

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
    from app.cli import seed

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
    }
    settings = Settings.from_env(env)
    run_sync(seed(database_dsn, settings, tenants=20, users=150, events=6000, progress=False))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/readyz", proc)
        yield Server(base, settings)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
