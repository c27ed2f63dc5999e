"""`cairn serve` killed with SIGKILL three times under continuous ingestion, its clients sending
each batch again (the same messageIds) until it is acknowledged: every acknowledged event is
stored, and none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from e2e.conftest import ROOT, _free_port, _wait_ready
from tests.conftest import run_sync

pytestmark = pytest.mark.e2e

SECRET = "sk_crash_secret"
SENDERS = 4
BATCH = 50


class _Cairn:
    """`cairn serve` on one port, started again after each kill."""

    def __init__(self, database_dsn: str, data_dir: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "CAIRN_SECRET_KEY": SECRET, "CAIRN_PUBLISHABLE_KEY": "pk_crash",
            "CAIRN_IDENTITY_SECRET": "whsec_crash", "DATABASE_URL": database_dsn,
            "CAIRN_DATA_DIR": data_dir, "CAIRN_LAYOUTS_DIR": str(ROOT / "layouts"),
            "CAIRN_RELOAD_LAYOUTS": "0", "CAIRN_RECOMMENDER": "0",
            "CAIRN_METRICS_REFRESH_S": "0", "CAIRN_RATE_LIMIT_KEY": "off",
        }  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its workers with it: killed together, as a container is
        )  # fmt: skip
        _wait_ready(f"{self.base}/healthz", self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        # SIGKILL to the server and its workers: no shutdown, no flush, whatever was in flight
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def test_kill_9_under_ingestion_loses_no_acknowledged_event_and_stores_none_twice(
    database_dsn: str, tmp_path: Any
) -> None:
    tenant = f"crash-{uuid.uuid4().hex[:8]}"
    cairn = _Cairn(database_dsn, str(tmp_path))
    cairn.start()
    acknowledged: list[str] = []
    retried = [0]
    done = threading.Event()
    lock = threading.Lock()

    def send(sender: int) -> None:
        with httpx.Client(base_url=cairn.base, timeout=5) as client:
            n = 0
            while not done.is_set():
                ids = [f"{tenant}-{sender}-{n}-{i}" for i in range(BATCH)]
                body = {"batch": [{"type": "track", "event": "feature_used", "tenantId": tenant,
                                   "userId": f"u{sender}", "messageId": m,
                                   "properties": {"feature": "reports"}} for m in ids]}  # fmt: skip
                while True:  # as a sender does: the same batch until it is acknowledged
                    try:
                        r = client.post("/v1/events", json=body,
                                        headers={"Authorization": f"Bearer {SECRET}"})  # fmt: skip
                        if r.status_code == 200:
                            break
                        assert r.status_code in (502, 503), r.text
                    except httpx.TransportError:
                        pass
                    with lock:
                        retried[0] += 1
                    time.sleep(0.05)
                with lock:
                    acknowledged.extend(ids)
                n += 1

    threads = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(1.0)
            cairn.kill()
            time.sleep(0.3)  # the senders meet a closed port
            cairn.start()
        time.sleep(1.0)
    finally:
        done.set()
        for t in threads:
            t.join(30)
        cairn.kill()

    async def stored() -> dict[str, int]:
        conn = await asyncpg.connect(database_dsn)
        try:
            rows = await conn.fetch(
                "SELECT message_id, count(*) AS n FROM events WHERE tenant_id = $1 GROUP BY 1",
                tenant,
            )
        finally:
            await conn.close()
        return {r["message_id"]: r["n"] for r in rows}

    found = run_sync(stored())
    assert len(acknowledged) >= SENDERS * BATCH * 3  # it ran between the kills
    assert retried[0] > 0  # and the kills were felt
    missing = set(acknowledged) - set(found)
    assert not missing, f"{len(missing)} acknowledged events lost"
    twice = {m: n for m, n in found.items() if n > 1}
    assert not twice, f"{len(twice)} events stored more than once"
