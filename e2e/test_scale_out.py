"""Two `cairn serve` processes (one with `--workers 2`) on one PostgreSQL behind Debian's HAProxy,
as the README's scale-out recipe runs them: an event sent through one changes what the other
serves within half a second, a layout edit reaches live-stream clients of both within a second,
and a revoked key stops working on both."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.serving.identity import user_hash
from e2e.conftest import ROOT, _free_port, _wait_ready
from e2e.test_live_api import next_step_title

pytestmark = pytest.mark.e2e

SECRET = "sk_scale_secret"
PUBLISHABLE = "pk_scale_publishable"
IDENTITY = "whsec_scale_identity"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# The load balancer's configuration (the README's recipe): round robin over the processes, long
# enough timeouts for live streams, and a health check on /readyz.
HAPROXY_CFG = """\
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend cairn
    bind 127.0.0.1:{port}
    default_backend processes
backend processes
    balance roundrobin
    option httpchk GET /readyz
{servers}
"""


class _Cluster:
    def __init__(self, bases: list[str], balancer: str, layouts: Path, env: dict[str, str]):
        self.bases = bases
        self.balancer = balancer
        self.layouts = layouts
        self.env = env


@pytest.fixture(scope="module")
def cluster(database_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Cluster]:
    tmp = tmp_path_factory.mktemp("scale-out")
    layouts = tmp / "layouts"
    shutil.copytree(ROOT / "layouts", layouts)
    env = {
        **os.environ, "CAIRN_SECRET_KEY": SECRET, "CAIRN_PUBLISHABLE_KEY": PUBLISHABLE,
        "CAIRN_IDENTITY_SECRET": IDENTITY, "DATABASE_URL": database_dsn,
        "CAIRN_LAYOUTS_DIR": str(layouts), "CAIRN_RELOAD_LAYOUTS": "1", "CAIRN_RECOMMENDER": "0",
        "CAIRN_METRICS_REFRESH_S": "0", "CAIRN_RATE_LIMIT_KEY": "off",
        "CAIRN_RATE_LIMIT_USER": "off",
    }  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    bases = []
    try:
        for i, workers in enumerate((1, 2)):
            port = _free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port),
                 "--workers", str(workers)],
                cwd=ROOT, env={**env, "CAIRN_DATA_DIR": str(tmp / f"data{i}")},
                start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(bases, procs, strict=True):
            _wait_ready(f"{base}/readyz", proc)
        port = _free_port()
        servers = "\n".join(
            f"    server p{i} {base.removeprefix('http://')} check inter 1s"
            for i, base in enumerate(bases)
        )
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(port=port, servers=servers))
        balancer = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], start_new_session=True)
        procs.append(balancer)
        _wait_ready(f"http://127.0.0.1:{port}/readyz", balancer)
        yield _Cluster(bases, f"http://127.0.0.1:{port}", layouts, env)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _secret() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRET}"}


def _new_admin(base: str) -> tuple[str, str]:
    """An admin of a new trial tenant: their next step is to invite a teammate."""
    tenant, user = f"t-{uuid.uuid4().hex[:8]}", "u1"
    batch = [
        {"type": "identify", "messageId": f"{tenant}-1", "tenantId": tenant, "userId": user,
         "traits": {"role": "admin"}},
        {"type": "group", "messageId": f"{tenant}-2", "userId": user, "groupId": tenant,
         "traits": {"plan": "trial", "industry": "fintech"}},
    ]  # fmt: skip
    r = httpx.post(f"{base}/v1/events", json={"batch": batch}, headers=_secret())
    assert r.status_code == 200, r.text
    return tenant, user


def _layout(base: str, tenant: str, user: str, headers: dict[str, str] | None = None) -> Any:
    return httpx.get(f"{base}/v1/layouts/home", params={"tenant_id": tenant, "user_id": user},
                     headers=headers or _secret(), timeout=5)  # fmt: skip


def _within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until `check` holds (polled); fails past `seconds`."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"not within {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_an_event_through_one_process_changes_what_every_other_serves(cluster: _Cluster) -> None:
    first, second = cluster.bases
    tenant, user = _new_admin(cluster.balancer)
    for base in (first, second, second, cluster.balancer, cluster.balancer):  # cached everywhere
        assert next_step_title(_layout(base, tenant, user).json()) == "Invite a teammate"
    invited = {"type": "track", "messageId": f"{tenant}-3", "tenantId": tenant, "userId": user,
               "event": "teammate_invited", "properties": {"count": 1}}  # fmt: skip
    r = httpx.post(f"{first}/v1/events", json={"batch": [invited]}, headers=_secret())
    assert r.status_code == 200, r.text
    changed = "Connect your first integration"
    _within(0.5, lambda: next_step_title(_layout(second, tenant, user).json()) == changed)
    # both workers of the second process, and both processes behind the balancer, alike
    for base in (second, second, second, cluster.balancer, cluster.balancer, cluster.balancer):
        assert next_step_title(_layout(base, tenant, user).json()) == changed


def test_a_layout_edit_reaches_live_streams_on_every_process_within_a_second(
    cluster: _Cluster,
) -> None:
    tenant, user = _new_admin(cluster.balancer)
    browser = {"Authorization": f"Bearer {PUBLISHABLE}",
               "X-Cairn-User-Hash": user_hash(IDENTITY, tenant, user)}  # fmt: skip
    received: dict[str, list[tuple[float, dict[str, Any]]]] = {b: [] for b in cluster.bases}
    opened = {b: threading.Event() for b in cluster.bases}
    done = threading.Event()

    def listen(base: str) -> None:
        with httpx.stream("GET", f"{base}/v1/layouts/home/stream",
                          params={"tenant_id": tenant, "user_id": user}, headers=browser,
                          timeout=15) as response:  # fmt: skip
            assert response.status_code == 200
            event = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "layout":
                    received[base].append((time.monotonic(), json.loads(line[5:])))
                    opened[base].set()
                    if len(received[base]) == 2 or done.is_set():
                        return

    readers = [threading.Thread(target=listen, args=(b,), daemon=True) for b in cluster.bases]
    for reader in readers:
        reader.start()
    assert all(opened[b].wait(15) for b in cluster.bases), "a stream sent no first layout"
    home = cluster.layouts / "screens" / "home.yaml"
    original = home.read_text()
    start = 'cta: {label: "Start", href: "{{ activation.next.href }}"}'
    assert original.count(start) == 1  # the admin's next step card
    try:
        edited_at = time.monotonic()
        home.write_text(original.replace(start, start.replace('"Start"', '"Begin now"')))
        for reader in readers:
            reader.join(5)
    finally:
        done.set()
        home.write_text(original)
    for base in cluster.bases:
        assert len(received[base]) == 2, f"no new layout from {base}"
        at, descriptor = received[base][1]
        assert "Begin now" in json.dumps(descriptor)
        assert at - edited_at < 1.0, (base, at - edited_at)


def test_a_revoked_key_stops_working_on_every_process(cluster: _Cluster) -> None:
    tenant, user = _new_admin(cluster.balancer)

    def cairn(*args: str) -> str:
        command = [sys.executable, "-m", "app.cli", *args]
        done = subprocess.run(command, check=False, cwd=ROOT, env=cluster.env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    key = cairn("keys", "create", "--tenant", tenant)
    scoped = {"Authorization": f"Bearer {key}"}
    backends = [*cluster.bases, cluster.bases[1], cluster.balancer]  # the second has 2 workers
    for base in backends:
        assert _layout(base, tenant, user, scoped).status_code == 200
    cairn("keys", "revoke", key)
    revoked_at = time.monotonic()
    for base in backends:
        _within(1.0, lambda b=base: _layout(b, tenant, user, scoped).status_code == 401)  # type: ignore[misc]
    assert time.monotonic() - revoked_at < 2.0
