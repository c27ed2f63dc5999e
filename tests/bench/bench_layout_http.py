"""The full layout path over HTTP, open loop, against `GET /healthz` on the same server.

    python -m tests.bench.bench_layout_http [--rates 250,500,1000,2000] [--seconds 5] [--quick]

1. Creates a throwaway database `cairn_bench_<random>` on DATABASE_URL (default
   postgresql://postgres@127.0.0.1:5432/test) and seeds a demo population into it through the
   ingestion path (`app.cli.seed`); the database is dropped at the end.
2. Starts `python -m app.cli serve` (one worker, the recommender on) on a free port of 127.0.0.1
   and waits for /readyz: the catalog embedded and the peer model built, so every layout below
   also asks the recommender for candidates within its budget.
3. For each rate: an open-loop load generator fires requests at fixed times, independent of the
   responses, over a pool of keep-alive connections, and records each latency: from the moment
   the request is fired (waiting for a free connection included) to its response. How late the
   client fired against the schedule is reported apart ("lag"). First `GET /healthz` (the
   baseline: the same server, client and connections, no work), then `GET /v1/layouts/home` for
   a mix of the seeded users with the secret key, then OpenFeature's bulk evaluation
   (`POST /ofrep/v1/evaluate/flags`, every flag) for the same users. A short warm-up precedes
   each measurement.
4. "Event -> next layout": posts the event that completes a user's next activation step and polls
   the user's layout until its next step changes; 50 times.

The load generator runs on the same machine as the server and shares its CPU cores: at the higher
rates part of each latency is the client's. Cairn's budgets: p99 < 5 ms at 2,000 req/s per
worker core, warm; an event changes the next layout within 500 ms (p95).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from app.cli.seed import seed
from app.config.layouts import load_layouts
from app.settings import Settings
from tests.bench._common import CORES, LAYOUTS_DIR, ROOT, SummaryRow, percentile, report

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
HOST = "127.0.0.1"
SECRET_KEY = "sk_bench_" + uuid.uuid4().hex
PUBLISHABLE_KEY = "pk_bench_" + uuid.uuid4().hex
IDENTITY_SECRET = "whsec_bench_" + uuid.uuid4().hex
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_DEGRADED = b'"degraded":true'


# --- A minimal HTTP/1.1 keep-alive client --------------------------------------------------------


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive connection, opened on first use and again after a failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its response; a stale keep-alive connection is retried once
        on a new one (the server closes connections idle for a while, as HTTP clients expect)."""
        reused = self.reader is not None and not self.reader.at_eof()
        if not reused:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self._connect()
            assert self.reader is not None and self.writer is not None
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length = 0
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks.append(data[:-2])
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    async def _connect(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Client:
    """A fixed pool of keep-alive connections; a request waits for a free one."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self._idle: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        for _ in range(connections):
            self._idle.put_nowait(Connection(port))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        conn = await self._idle.get()
        ok = False
        try:
            result = await conn.exchange(data)
            ok = True
            return result
        finally:
            if not ok:  # failed or cancelled half-way: the connection's state is unknown
                conn.close()
            self._idle.put_nowait(conn)

    async def open_all(self) -> None:
        """Connect every connection now, so that connecting is not measured."""
        conns = [self._idle.get_nowait() for _ in range(self._idle.qsize())]
        try:
            for conn in conns:
                await conn.exchange(get_request(self.port, "/healthz"))
        finally:
            for conn in conns:
                self._idle.put_nowait(conn)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


def get_request(port: int, path: str, key: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}\r\n".encode()


def post_request(port: int, path: str, key: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# --- The open-loop load generator -----------------------------------------------------------------


@dataclass
class LoadResult:
    target: str
    rate: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # how late the client fired
    errors: Counter[str] = field(default_factory=Counter)
    degraded: int = 0  # 200s that carry the default layout because the profile store was late
    sent: int = 0
    last_done: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def open_loop(  # noqa: C901 - one request's outcomes are counted where it is fired
    client: Client,
    requests: Sequence[bytes],
    *,
    target: str,
    rate: int,
    warmup_s: float,
    measure_s: float,
    timeout_s: float,
    server_cpu: Callable[[], float],
) -> LoadResult:
    """Fire request k at start + k / rate whatever happened to the earlier ones.

    A latency runs from the moment the request is fired, waiting for a free connection included,
    to the end of its response. The event loop wakes up to a millisecond late (timer resolution,
    a busy loop): requests whose time has come are then fired at once, and how late they were is
    recorded apart as `lag`, the client's own share.
    """
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    total = int(rate * (warmup_s + measure_s))
    start = loop.time() + 0.05
    window = start + warmup_s
    result = LoadResult(target=target, rate=rate, seconds=measure_s)
    tasks: set[asyncio.Task[None]] = set()
    cpu0 = cpu_client0 = 0.0

    async def one(k: int, due: float) -> None:
        measured = due >= window
        fired = loop.time()
        if measured:
            result.lag_ms.append((fired - due) * 1000)
        try:
            async with asyncio.timeout(timeout_s):
                status, body = await client.request(requests[k % len(requests)])
        except TimeoutError:
            if measured:
                result.errors[f"timeout>{timeout_s:g}s"] += 1
            return
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            HttpError,
            ValueError,
        ) as exc:
            if measured:
                result.errors[type(exc).__name__] += 1
            return
        done = loop.time()
        if not measured:
            return
        if status == 200:
            result.latencies_ms.append((done - fired) * 1000)
            result.last_done = max(result.last_done, done)
            result.degraded += _DEGRADED in body
        else:
            result.errors[f"http {status}"] += 1

    k = 0
    while k < total:
        now = loop.time()
        if cpu0 == 0.0 and now >= window:
            cpu0, cpu_client0 = server_cpu(), time.process_time()
        while k < total and start + k * interval <= now:
            task = asyncio.create_task(one(k, start + k * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if k < total:
            await asyncio.sleep(max(0.0, start + k * interval - loop.time()))
    result.sent = total - int(rate * warmup_s)
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout_s + 1.0)
    for task in list(tasks):
        task.cancel()
    result.server_cpu_s = server_cpu() - cpu0
    result.client_cpu_s = time.process_time() - cpu_client0
    if result.last_done > window:
        result.seconds = max(measure_s, result.last_done - window)
    return result


# --- The server under test ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total


class Server:
    """`python -m app.cli serve` in its own process group, stopped by that group's id."""

    def __init__(self, dsn: str, port: int, log: IO[bytes], workers: int) -> None:
        env = {
            **os.environ,
            "CAIRN_SECRET_KEY": SECRET_KEY,
            "CAIRN_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "CAIRN_IDENTITY_SECRET": IDENTITY_SECRET,
            "DATABASE_URL": dsn,
            "CAIRN_RELOAD_LAYOUTS": "0",
            "CAIRN_LOG_LEVEL": "WARNING",
            "CAIRN_LAYOUTS_DIR": str(LAYOUTS_DIR),
        }
        self.port = port
        self.log = log
        self.stopped = False
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def cpu(self) -> float:
        return _process_tree_cpu(self.proc.pid)

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        conn = Connection(self.port)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.proc.returncode}")
                try:
                    status, _ = await asyncio.wait_for(
                        conn.exchange(get_request(self.port, "/readyz")), 2.0
                    )
                    if status == 200:
                        return
                except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError):
                    conn.close()
                await asyncio.sleep(0.2)
            raise RuntimeError(f"the server was not ready within {timeout_s:g} s")
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 15 s; then any stragglers."""
        if self.stopped:
            return
        self.stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # workers that outlived the leader


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


# --- Event -> next layout -------------------------------------------------------------------------


def next_step(body: bytes) -> str | None:
    """The id of the activation step the home layout's next-step card suggests, if it shows one."""
    descriptor = json.loads(body)
    for slot in descriptor.get("slots", []):
        for widget in slot.get("widgets", []):
            if widget.get("id") != "next_activation_step":
                continue
            for driver in widget.get("why", {}).get("drivers", []):
                if driver.get("signal") == "activation.next.id":
                    return str(driver.get("value"))
            return "?"
    return None


_STEP_PROPERTIES: dict[str, dict[str, Any]] = {
    "integration_connected": {"integration": "slack"},
    "teammate_invited": {"count": 1},
    "template_used": {"template": "weekly_report"},
}


def event_body(tenant_id: str, user_id: str, event: str) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "batch": [
                {
                    "type": "track",
                    "messageId": f"bench-{uuid.uuid4().hex}",
                    "tenantId": tenant_id,
                    "userId": user_id,
                    "event": event,
                    "properties": _STEP_PROPERTIES.get(event, {}),
                    "timestamp": now,
                }
            ],
            "sentAt": now,
        }
    ).encode()


@dataclass
class EventResult:
    latencies_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    first_get_changed: int = 0
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def event_to_layout(
    port: int,
    users: Sequence[tuple[str, str]],
    steps: dict[str, str],
    *,
    samples: int,
    budget_s: float,
    poll_timeout_s: float = 3.0,
) -> EventResult:
    """Complete users' next activation steps one event at a time; time until the layout moves."""
    conn = Connection(port)
    out = EventResult()
    deadline = time.monotonic() + budget_s
    try:
        for tenant_id, user_id in users:
            path = f"/v1/layouts/home?tenant_id={quote(tenant_id)}&user_id={quote(user_id)}"
            get = get_request(port, path, SECRET_KEY)
            while len(out.latencies_ms) + out.timeouts < samples and time.monotonic() < deadline:
                status, body = await asyncio.wait_for(conn.exchange(get), 5.0)
                step = next_step(body) if status == 200 else None
                if step is None or step not in steps:
                    break
                post = post_request(
                    port, "/v1/events", SECRET_KEY, event_body(tenant_id, user_id, steps[step])
                )
                t0 = time.perf_counter()
                status, _ = await asyncio.wait_for(conn.exchange(post), 5.0)
                out.post_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    out.errors[f"POST http {status}"] += 1
                    break
                polls = 0
                while True:
                    polls += 1
                    status, body = await asyncio.wait_for(conn.exchange(get), 5.0)
                    elapsed = time.perf_counter() - t0
                    if status == 200 and next_step(body) != step:
                        out.latencies_ms.append(elapsed * 1000)
                        out.first_get_changed += polls == 1
                        break
                    if elapsed > poll_timeout_s:
                        out.timeouts += 1
                        break
                    await asyncio.sleep(0.005)
            if len(out.latencies_ms) + out.timeouts >= samples or time.monotonic() >= deadline:
                break
    finally:
        conn.close()
    return out


# --- The run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]
    warmup_s: float
    measure_s: float
    tenants: int
    users: int
    events: int
    samples: int
    connections: int = 64
    timeout_s: float = 5.0
    workers: int = 1


async def _create_database(server_dsn: str) -> tuple[str, str]:
    name = f"cairn_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, with_database(server_dsn, name)


async def _drop_database(server_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(server_dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def layout_requests(port: int, users: Sequence[tuple[str, str]]) -> list[bytes]:
    """`GET /v1/layouts/home` for each user, with the secret key."""
    return [
        get_request(port, f"/v1/layouts/home?tenant_id={quote(t)}&user_id={quote(u)}", SECRET_KEY)
        for t, u in users
    ]


async def seed_population(
    dsn: str, data_dir: Path, *, tenants: int, users: int, events: int, timeout_s: float = 600
) -> tuple[int, list[tuple[str, str]]]:
    """The demo population through the ingestion path into `dsn`: events stored, and the
    (tenant, user) pairs seeded."""
    settings = Settings(
        secret_key=SECRET_KEY,
        publishable_key=PUBLISHABLE_KEY,
        identity_secret=IDENTITY_SECRET,
        database_url=dsn,
        data_dir=data_dir,
        layouts_dir=LAYOUTS_DIR,
        reload_layouts=False,
    )
    stored = await asyncio.wait_for(
        seed(dsn, settings, tenants=tenants, users=users, events=events, progress=False),
        timeout_s,
    )
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT tenant_id, user_id FROM users ORDER BY tenant_id, user_id")
    finally:
        await conn.close()
    return stored, [(r["tenant_id"], r["user_id"]) for r in rows]


async def _burst(client: Client, requests: Sequence[bytes], concurrency: int = 0) -> LoadResult:
    """Every request at once (or `concurrency` at a time); latencies from the start of each."""
    result = LoadResult(target="burst", rate=0, seconds=0.0)
    gate = asyncio.Semaphore(concurrency or len(requests))

    async def one(request: bytes) -> None:
        async with gate:
            t0 = time.perf_counter()
            status, body = await client.request(request)
            if status != 200:
                result.errors[f"http {status}"] += 1
                return
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.degraded += _DEGRADED in body

    await asyncio.gather(*(one(r) for r in requests))
    return result


def _print_load(r: LoadResult, note: str = "") -> None:
    errors = sum(r.errors.values())
    detail = f" ({', '.join(f'{k} {v}' for k, v in r.errors.most_common(3))})" if errors else ""
    served = len(r.latencies_ms)
    cpu = (
        f"{r.server_cpu_s / served * 1000:6.2f} {r.client_cpu_s / served * 1000:6.2f}"
        if served
        else f"{'-':>6} {'-':>6}"
    )
    print(
        f"  {r.target:<8} {r.rate:>6} {r.achieved:>9.0f} {r.p(50):>8.2f} {r.p(95):>8.2f} "
        f"{r.p(99):>8.2f} {max(r.latencies_ms, default=float('nan')):>8.2f} "
        f"{percentile(r.lag_ms, 99):>8.2f} {cpu} {r.degraded:>8} {errors:>7}{detail}{note}"
    )


async def bench(plan: Plan, server_dsn: str) -> list[SummaryRow]:
    print(
        f"Layout over HTTP: open loop, {plan.connections} keep-alive connections, "
        f"{plan.warmup_s:g} s warm-up + {plan.measure_s:g} s per rate, request timeout "
        f"{plan.timeout_s:g} s; server: cairn serve, {plan.workers} worker(s)."
    )
    print(
        f"NOTE: the load generator runs on the same {CORES}-core machine and shares the cores "
        f"with the server (and its PostgreSQL); latencies include the client's share."
    )
    rows: list[SummaryRow] = []
    name, dsn = await _create_database(server_dsn)
    server: Server | None = None
    client: Client | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
            t0 = time.perf_counter()
            stored, users = await seed_population(
                dsn, Path(tmp), tenants=plan.tenants, users=plan.users, events=plan.events
            )
            print(
                f"seeded {plan.tenants} tenants, {len(users)} users, {stored:,} events into "
                f"{name} in {time.perf_counter() - t0:.1f} s"
            )
            if not users:
                raise RuntimeError("seeding produced no users")
            random.Random(5).shuffle(users)

            port = free_port()
            log_path = Path(tmp) / "server.log"
            with log_path.open("wb") as log:
                server = Server(dsn, port, log, plan.workers)
                try:
                    await server.wait_ready(60)
                except RuntimeError:
                    log.flush()
                    print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                print(f"server ready on {HOST}:{port} (pid {server.proc.pid})")
                client = Client(port, plan.connections)
                await client.open_all()

                layout_reqs = layout_requests(port, users)
                health_reqs = [get_request(port, "/healthz")]
                ofrep_reqs = [
                    post_request(
                        port,
                        "/ofrep/v1/evaluate/flags",
                        SECRET_KEY,
                        json.dumps({"context": {"targetingKey": u, "tenant_id": t}}).encode(),
                    )
                    for t, u in users
                ]
                # Cold burst: every user once, all at once, over the pool's connections.
                burst = await asyncio.wait_for(_burst(client, layout_reqs), 120)
                b50, b99 = percentile(burst.latencies_ms, 50), percentile(burst.latencies_ms, 99)
                print(
                    f"cold burst: {len(layout_reqs)} users' layouts at once over "
                    f"{plan.connections} connections: p50 {b50:.1f} ms, p99 {b99:.1f} ms, "
                    f"{burst.degraded} degraded (the profile store missed its budget), "
                    f"{sum(burst.errors.values())} errors"
                )
                rows.append(
                    SummaryRow(
                        "layout_http",
                        f"cold burst of {len(layout_reqs)} users p50 / p99",
                        f"{b50:.1f} / {b99:.1f} ms",
                        "",
                        "",
                        f"{burst.degraded} degraded, {sum(burst.errors.values())} errors",
                    )
                )
                # Warm: every user's profile into the server's cache, 8 at a time.
                await asyncio.wait_for(_burst(client, layout_reqs, concurrency=8), 120)
                await asyncio.sleep(1.0)  # let the server settle before the first rate
                print(
                    f"\n  {'target':<8} {'rate':>6} {'achieved':>9} {'p50 ms':>8} "
                    f"{'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lag p99':>8} "
                    f"{'srv cpu':>6} {'cli cpu':>6} {'degraded':>8} {'errors':>7}"
                )
                print(
                    f"  {'':<8} {'req/s':>6} {'req/s':>9} {'':>8} {'':>8} {'':>8} {'':>8} "
                    f"{'ms':>8} {'ms/req':>6} {'ms/req':>6}"
                )
                for rate in plan.rates:
                    results = {}
                    targets = (
                        ("healthz", health_reqs),
                        ("layout", layout_reqs),
                        ("ofrep bulk", ofrep_reqs),
                    )
                    for target, reqs in targets:
                        results[target] = await open_loop(
                            client,
                            reqs,
                            target=target,
                            rate=rate,
                            warmup_s=plan.warmup_s,
                            measure_s=plan.measure_s,
                            timeout_s=plan.timeout_s,
                            server_cpu=server.cpu,
                        )
                        await asyncio.sleep(0.5)
                    health, layout = results["healthz"], results["layout"]
                    ofrep = results["ofrep bulk"]
                    ratio = layout.p(99) / health.p(99)
                    _print_load(health)
                    _print_load(layout, f"   p99 ratio layout / healthz {ratio:.2f}x")
                    _print_load(
                        ofrep, f"   p99 ratio OFREP bulk / layout {ofrep.p(99) / layout.p(99):.2f}x"
                    )
                    rows.append(
                        SummaryRow(
                            "layout_http",
                            f"POST /ofrep/v1/evaluate/flags (bulk) @ {rate} req/s",
                            f"{ofrep.achieved:,.0f} req/s, p99 {ofrep.p(99):.2f} ms",
                            f"layout {layout.achieved:,.0f} req/s, p99 {layout.p(99):.2f} ms",
                            f"{ofrep.p(99) / layout.p(99):.2f}x",
                            f"{sum(ofrep.errors.values())} errors",
                        )
                    )
                    met = (
                        layout.p(99) < 5.0
                        and not layout.errors
                        and not layout.degraded
                        and layout.achieved >= 0.95 * rate
                    )
                    rows.append(
                        SummaryRow(
                            "layout_http",
                            f"GET /v1/layouts/home p99 @ {rate} req/s",
                            f"{layout.p(99):.2f} ms",
                            f"{health.p(99):.2f} ms (healthz)",
                            f"{ratio:.2f}x",
                            ("p99 < 5 ms: " + ("met" if met else "MISSED")) if rate == 2000 else "",
                        )
                    )
                print(
                    "  lag p99: how late the client fired (its share of the latency); srv/cli "
                    "cpu: CPU time per served request of the server process tree / the client;\n"
                    "  degraded: 200s carrying the default layout (the profile store missed its "
                    "budget), counted in the latencies too"
                )

                layouts = load_layouts(LAYOUTS_DIR)
                steps = {s.id: s.event for s in layouts.vocabulary.signals.activation}
                ev = await event_to_layout(port, users, steps, samples=plan.samples, budget_s=120)
                n = len(ev.latencies_ms)
                print(
                    f"\nevent -> next layout ({n} samples, {ev.timeouts} timeouts > 3 s): "
                    f"p50 {percentile(ev.latencies_ms, 50):.1f} ms, "
                    f"p95 {percentile(ev.latencies_ms, 95):.1f} ms, "
                    f"max {max(ev.latencies_ms, default=float('nan')):.1f} ms; the POST alone "
                    f"p50 {percentile(ev.post_ms, 50):.1f} ms; the first GET after the POST "
                    f"already showed the new step {ev.first_get_changed}/{n} times"
                    + (f"; errors {dict(ev.errors)}" if ev.errors else "")
                )
                if n < plan.samples:
                    print(
                        f"  (only {n} of {plan.samples}: not enough users with an activation "
                        "step left)"
                    )
                p95 = percentile(ev.latencies_ms, 95)
                rows.append(
                    SummaryRow(
                        "layout_http",
                        "event -> next layout p50 / p95",
                        f"{percentile(ev.latencies_ms, 50):.1f} / {p95:.1f} ms",
                        f"POST alone {percentile(ev.post_ms, 50):.1f} ms",
                        "",
                        "p95 < 500 ms: "
                        + ("met" if n and p95 < 500 and not ev.timeouts else "MISSED"),
                    )
                )
                server.stop()
            logged = log_path.read_text(errors="replace").strip().splitlines()
            late = sum("profile store unavailable" in line for line in logged)
            print(
                f"server log: {len(logged)} lines, {late} 'profile store unavailable' warnings"
                + (":" if logged else "")
            )
            shown = logged if len(logged) <= 8 else [*logged[:3], "...", *logged[-5:]]
            for line in shown:
                print(f"  {line[:160]}")
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
        await _drop_database(server_dsn, name)
        print(f"dropped {name}")
    return rows


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="GET /v1/layouts over HTTP, open loop")
    parser.add_argument("--rates", default="250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=50, help="event -> layout samples")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="two short rates, a small population")
    args = parser.parse_args(argv)
    if args.quick:
        plan = Plan(
            rates=(100, 400),
            warmup_s=0.3,
            measure_s=1.0,
            tenants=10,
            users=60,
            events=2000,
            samples=10,
            workers=args.workers,
        )
    else:
        plan = Plan(
            rates=tuple(int(r) for r in args.rates.split(",")),
            warmup_s=args.warmup,
            measure_s=args.seconds,
            tenants=args.tenants,
            users=args.users,
            events=args.events,
            samples=args.samples,
            workers=args.workers,
        )
    budget = 120 + len(plan.rates) * 2 * (plan.warmup_s + plan.measure_s + plan.timeout_s + 3) + 240
    rows = asyncio.run(
        asyncio.wait_for(bench(plan, os.environ.get("DATABASE_URL") or DEFAULT_DSN), budget)
    )
    return report(rows)


if __name__ == "__main__":
    run_cli()
