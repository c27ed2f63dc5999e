"""Open-loop load on `GET /v1/layouts/home` against `GET /healthz`, one and two workers; a soak.

    python -m tests.bench.bench_load [--rates 500,1000,2000,4000] [--workers 1,2] [--quick]
    python -m tests.bench.bench_load --soak [SECONDS] [--workers 1]   # 600 s without a value

1. Starts an embedded PostgreSQL in a temporary directory (or, with `--dsn`, uses the server it
   names) and makes a throwaway database `cairn_bench_<random>` on it, seeded with the demo
   population through the ingestion path (`app.cli.seed`, the demo's size: 200 tenants, 2,000
   users, 200,000 events); both go away at the end. DATABASE_URL is not read, so the database
   `test` on 127.0.0.1:5432 is never touched.
2. For each worker count (`--workers`): starts `python -m app.cli serve --workers N` (the
   recommender on) on a free port, waits until /readyz answers on many fresh connections in a row
   (so on every worker) and the server's CPU settles (the catalog embedded, the peer model
   built), then requests every user's layout at a modest rate (profiles cached, as in steady
   traffic).
3. For each rate: an open-loop generator sends requests at fixed times whatever happened to the
   earlier ones: request k is due at start + k / rate. It is `--clients` processes (one per core
   by default), each with its own fixed share of the schedule (interleaved, so the sum is
   uniform) and its own keep-alive HTTP/1.1 connections on raw non-blocking sockets (64 in all);
   a request leaves at its due time on a free connection or, when all are busy (a server behind),
   waits in the generator's queue for one. Each latency runs from the request's due time, not from
   when it was sent, to the end of its response, so a server that falls behind is charged for
   the requests it kept waiting (coordinated omission counted, as wrk2 does). First `GET
   /healthz` (the baseline: the same server, generator and connections, no work), then `GET
   /v1/layouts/home` with the secret key for the 2,000 seeded users in turn (each user every
   2,000 / rate seconds, so a good share of requests miss the 5-s decision memo). A 2-s warm-up
   precedes each 10-s measured window. A request sent and not answered within `--timeout` (2 s)
   is a timeout; one still queued `--timeout` after the window ends is "unsent". Between runs the
   server is left to go idle (an overloaded one finishes its backlog).
4. Prints, per rate: the achieved rate (answers per second), p50/p99/max over the answered
   requests, errors, timeouts and unsent, the ratio of the layout's p99 to healthz's, the cores
   used by the server, the generator and the rest of the machine (PostgreSQL, other jobs), and
   beside the 2,000 req/s row the budget, p99 < 5 ms, as met or MISSED (with no errors and >= 95%
   of the rate answered, p50 < 5 ms; printed, never asserted). Capacity: the highest rate up to
   which every rate met that; sustained: up to which every rate was served with p50 < 5 ms.

Soak (`--soak [SECONDS]`, 600 s when given without a value; not part of `make bench`): after the
sweep, on the server of `--soak-workers` (1 by default), `GET /v1/layouts/home` at half the
capacity just measured for the duration (when no rate met the budget: half the highest rate
sustained, i.e. every request answered, >= 95% of the rate, p50 < 5 ms). Every `--interval` seconds
(10-30 s, by the duration) it samples the server's RSS and PSS summed over its processes and their
open file descriptors (from /proc), the PostgreSQL connections to its database (pg_stat_activity),
and the interval's p50/p99; prints the table, and a verdict on whether RSS levels off: its growth
in the last third of the soak against the first third.

The generator is Python because no real open-loop tool installs from Debian (wrk2 and vegeta are
not packaged; wrk and hey are closed-loop, httperf opens a connection per request and reports no
percentiles). It shares the 2-core machine with the server and PostgreSQL: every row shows the
cores it used ("gen") and how late it woke up for requests ("lag", inside the latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import logging
import math
import os
import random
import select
import socket
import sys
import tempfile
import time
from array import array
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.bench._common import CORES, ROOT, SummaryRow, percentile, report

if TYPE_CHECKING:
    from tests.bench.bench_layout_http import Server

HOST = "127.0.0.1"
BUDGET_MS = 5.0
BUDGET_RATE = 2000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
_DEGRADED = b'"degraded":true'


# --- The generator: one process's share of the schedule ------------------------------------------
#
# `python -m tests.bench.bench_load --worker` reads a JSON spec on stdin, opens its connections,
# prints {"ready": true}, reads the start time (time.monotonic(), the same clock in every process)
# and then fires its requests; it prints one JSON line per measured interval once every request
# due in it has been answered or timed out, and a last {"done": ...} line. Only the standard
# library is imported on this path, so that it starts fast and stays light.


class _Pending:
    __slots__ = ("due", "req", "retried", "slot")

    def __init__(self, due: float, req: int, slot: int) -> None:
        self.due = due
        self.req = req
        self.slot = slot  # measured interval, -1 for the warm-up
        self.retried = False


class _Slot:
    """One measured interval's outcomes, in this process."""

    __slots__ = ("answered", "degraded", "errors", "lag", "lat", "ok", "open", "sent", "waited")

    def __init__(self) -> None:
        self.lat = array("d")  # ms from due time to the end of the response, 200s only
        self.lag = array("d")  # ms the generator woke up late for a request (its own share)
        self.errors: Counter[str] = Counter()
        self.degraded = 0
        self.ok = 0
        self.sent = 0
        self.open = 0  # due but not answered (nor failed) yet
        self.answered = 0  # 200s that came during the interval, for whichever request
        self.waited = 0  # requests that found every connection busy and queued for one


class _Conn:
    """A keep-alive connection on a raw non-blocking socket, one request at a time."""

    __slots__ = ("buf", "chunk", "end", "fd", "head", "out", "pending", "reused", "sent_at", "sock")

    def __init__(self, port: int) -> None:
        sock = socket.create_connection((HOST, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.buf = bytearray()
        self.pending: _Pending | None = None
        self.out = b""
        self.head = -1  # where the body starts, once the head is in
        self.end = -1  # where the response ends, once known
        self.chunk = -1  # for chunked bodies: where the next chunk's size line starts
        self.reused = False
        self.sent_at = 0.0

    def send(self, p: _Pending, data: bytes, now: float) -> None:
        self.pending = p
        self.sent_at = now
        self.buf.clear()
        self.head = self.end = self.chunk = -1
        n = self.sock.send(data)
        self.out = data[n:]

    def parse(self) -> tuple[int, bool, bool] | None:
        """(status, degraded, close) once the whole response is in, else None."""
        buf = self.buf
        if self.head < 0:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return None
            self.head = i + 4
            lines = bytes(buf[:i]).split(b"\r\n")
            if not lines[0].startswith(b"HTTP/1.") or len(lines[0]) < 12:
                raise ValueError(f"bad status line {lines[0][:40]!r}")
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self.end = self.head + int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunk = self.head
            if self.end < 0 and self.chunk < 0:
                self.end = self.head
        while self.end < 0:  # chunked: walk the chunks that are in
            eol = buf.find(b"\r\n", self.chunk)
            if eol < 0:
                return None
            size = int(bytes(buf[self.chunk : eol]).split(b";")[0], 16)
            if size == 0:
                trailer = buf.find(b"\r\n\r\n", self.chunk)
                if trailer < 0:
                    return None
                self.end = trailer + 4
            else:
                self.chunk = eol + 2 + size + 2
                if self.chunk > len(buf):
                    return None
        if len(buf) < self.end:
            return None
        head = bytes(buf[: self.head]).lower()
        status = int(buf[9:12])
        degraded = buf.find(_DEGRADED, self.head, self.end) >= 0
        return status, degraded, b"\r\nconnection: close" in head

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _worker(spec: dict[str, Any], stdin: Any, emit: Callable[[dict[str, Any]], None]) -> None:  # noqa: C901 - one event loop, read top to bottom
    port: int = spec["port"]
    requests = [r.encode("latin-1") for r in spec["requests"]]
    procs: int = spec["procs"]
    index: int = spec["index"]
    rate: float = spec["rate"]
    timeout: float = spec["timeout_s"]
    interval_s: float = spec["interval_s"]
    slots = [_Slot() for _ in range(spec["intervals"])]
    warm = _Slot()
    idle = [_Conn(port) for _ in range(spec["connections"])]
    busy: dict[int, _Conn] = {}
    gc.disable()  # no collector pauses in the schedule; nothing here makes cycles
    emit({"ready": True})

    start = float(stdin.readline())
    window = start + spec["warmup_s"]
    end = window + spec["measure_s"]
    cutoff = end + timeout  # requests still waiting for a connection then are given up
    step = procs / rate  # this process's spacing
    first = start + index / rate
    total = max(0, math.ceil((end - first) / step))
    queue: deque[_Pending] = deque()
    marks: list[float] = []  # CPU time at each interval boundary, as the clock passes it
    emitted = 0
    reconnects = 0
    k = 0
    cpu_start = time.process_time()

    def fail(p: _Pending, why: str) -> None:
        slot = warm if p.slot < 0 else slots[p.slot]
        slot.open -= 1
        if p.slot >= 0:
            slot.errors[why] += 1

    while True:
        now = time.monotonic()
        while len(marks) <= len(slots) and now >= window + len(marks) * interval_s:
            marks.append(time.process_time())
        # Everything due by now joins the queue, answered or not before it.
        carried = len(queue)  # requests already waiting for a free connection
        while k < total:
            due = first + k * step
            if due > now:
                break
            slot_no = -1 if due < window else min(int((due - window) / interval_s), len(slots) - 1)
            slot = warm if slot_no < 0 else slots[slot_no]
            slot.sent += 1
            slot.open += 1
            if slot_no >= 0:
                slot.lag.append((now - due) * 1000.0)
            queue.append(_Pending(due, (index + k * procs) % len(requests), slot_no))
            k += 1
        if now >= cutoff:
            while queue:
                fail(queue.popleft(), "unsent")
        while queue and idle:
            p = queue.popleft()
            if carried:
                carried -= 1
                if p.slot >= 0:
                    slots[p.slot].waited += 1
            conn = idle.pop()
            try:
                conn.send(p, requests[p.req], now)
            except OSError:  # the server closed it while idle: once more on a new one
                conn.close()
                conn = _Conn(port)
                reconnects += 1
                conn.send(p, requests[p.req], now)
            busy[conn.fd] = conn
        # Requests sent longer than the timeout ago: the connection's state is unknown, so a new
        # one.
        for fd, conn in list(busy.items()):
            assert conn.pending is not None
            if conn.sent_at + timeout <= now:
                fail(conn.pending, "timeout")
                del busy[fd]
                conn.close()
                idle.append(_Conn(port))
                reconnects += 1
        # Intervals whose requests are all settled, in order.
        while (
            emitted < len(slots)
            and len(marks) > emitted + 1
            and slots[emitted].open == 0
            and (k >= total or first + k * step >= window + (emitted + 1) * interval_s)
        ):
            s = slots[emitted]
            emit(
                {
                    "interval": emitted,
                    "lat": base64.b64encode(s.lat.tobytes()).decode(),
                    "lag": base64.b64encode(s.lag.tobytes()).decode(),
                    "errors": dict(s.errors),
                    "degraded": s.degraded,
                    "ok": s.ok,
                    "sent": s.sent,
                    "waited": s.waited,
                    "answered": s.answered,
                    "cpu_s": marks[emitted + 1] - marks[emitted],
                }
            )
            slots[emitted] = _Slot()  # free the samples
            emitted += 1
        if k >= total and not queue and not busy and emitted == len(slots):
            break

        # Sleep until the next due time or timeout, or until a response arrives.
        wake = first + k * step if k < total else now + timeout
        if queue:
            wake = min(wake, max(cutoff, now))
        for conn in busy.values():
            wake = min(wake, conn.sent_at + timeout)
        if len(marks) <= len(slots):
            wake = min(wake, window + len(marks) * interval_s)
        writers = [fd for fd, conn in busy.items() if conn.out]
        ready, writable, _ = select.select(list(busy), writers, [], max(0.0, wake - now))
        for fd in writable:
            conn = busy[fd]
            with contextlib.suppress(BlockingIOError):
                conn.out = conn.out[conn.sock.send(conn.out) :]
        if not ready:
            continue
        done = time.monotonic()
        for fd in ready:
            conn = busy[fd]
            pend = conn.pending
            assert pend is not None
            try:
                data = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed: a stale keep-alive connection is retried once on a new one
                del busy[fd]
                conn.close()
                fresh = _Conn(port)
                reconnects += 1
                if conn.reused and not conn.buf and not pend.retried:
                    pend.retried = True
                    fresh.send(pend, requests[pend.req], done)
                    busy[fresh.fd] = fresh
                else:
                    fail(pend, "closed")
                    idle.append(fresh)
                continue
            conn.buf += data
            try:
                parsed = conn.parse()
            except ValueError:
                parsed = (0, False, True)
            if parsed is None:
                continue
            status, degraded, close = parsed
            slot = warm if pend.slot < 0 else slots[pend.slot]
            slot.open -= 1
            del busy[fd]
            conn.pending = None
            if status == 200 and window <= done < end:
                slots[min(int((done - window) / interval_s), len(slots) - 1)].answered += 1
            if pend.slot >= 0:
                if status == 200:
                    slot.lat.append((done - pend.due) * 1000.0)
                    slot.ok += 1
                    slot.degraded += degraded
                else:
                    slot.errors[f"http {status}" if status else "bad response"] += 1
            conn.reused = True
            if close:
                conn.close()
                conn = _Conn(port)
                reconnects += 1
            idle.append(conn)
    emit({"done": True, "cpu_s": time.process_time() - cpu_start, "reconnects": reconnects})
    stdin.readline()  # the connections stay open until the benchmark has taken its last sample
    for conn in idle:
        conn.close()


def _worker_main() -> int:
    spec = json.loads(sys.stdin.readline())
    out = sys.stdout

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    _worker(spec, sys.stdin, emit)
    return 0


# --- The generator, seen from the benchmark ------------------------------------------------------


@dataclass
class Interval:
    """One measured window's outcomes, every generator process merged."""

    rate: float
    start: float  # time.monotonic() at the window's start
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    ok: int = 0
    sent: int = 0
    waited: int = 0
    answered: int = 0  # 200s that came during the window, whichever request they answered
    client_cpu_s: float = 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def timeouts(self) -> int:
        return self.errors.get("timeout", 0)

    @property
    def unsent(self) -> int:
        """Requests still waiting for a free connection when the run ended (window + timeout)."""
        return self.errors.get("unsent", 0)

    @property
    def failed(self) -> int:
        """Errors other than timeouts and requests never sent."""
        return sum(self.errors.values()) - self.timeouts - self.unsent

    @property
    def achieved(self) -> float:
        """Answers (200) per second that came during the window (for a server behind, some
        answer requests due before it)."""
        return self.answered / self.seconds if self.seconds > 0 else 0.0


def _floats(encoded: str) -> list[float]:
    values = array("d")
    values.frombytes(base64.b64decode(encoded))
    return values.tolist()


async def _read_results(proc: asyncio.subprocess.Process, out: list[Interval]) -> None:
    """Merge one generator process's interval lines into `out`, up to its "done" line."""
    assert proc.stdout is not None
    async for line in proc.stdout:
        msg = json.loads(line)
        if "done" in msg:
            return
        iv = out[msg["interval"]]
        iv.latencies_ms += _floats(msg["lat"])
        iv.lag_ms += _floats(msg["lag"])
        iv.errors.update(msg["errors"])
        iv.degraded += msg["degraded"]
        iv.ok += msg["ok"]
        iv.sent += msg["sent"]
        iv.waited += msg["waited"]
        iv.answered += msg["answered"]
        iv.client_cpu_s += msg["cpu_s"]


async def run_load(
    port: int,
    requests: Sequence[bytes],
    rate: float,
    *,
    clients: int,
    connections: int,
    warmup_s: float,
    measure_s: float,
    timeout_s: float,
    interval_s: float | None = None,
    at_boundary: Callable[[int], Awaitable[None]] | None = None,
) -> list[Interval]:
    """Open-loop load at `rate` req/s from `clients` processes; one Interval per `interval_s` of
    the measured window (the whole window by default). `at_boundary(j)` runs as the clock passes
    the start of interval j (j = 0 .. n, n being the end)."""
    interval_s = interval_s or measure_s
    n = max(1, math.ceil(measure_s / interval_s - 1e-9))
    procs = max(1, min(clients, int(rate)))
    spec = {
        "port": port,
        "requests": [r.decode("latin-1") for r in requests],
        "procs": procs,
        "rate": rate,
        "timeout_s": timeout_s,
        "warmup_s": warmup_s,
        "measure_s": measure_s,
        "interval_s": interval_s,
        "intervals": n,
        "connections": max(1, connections // procs),
    }
    workers = []
    try:
        for index in range(procs):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.bench.bench_load",
                "--worker",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 28,
            )
            assert proc.stdin is not None
            proc.stdin.write((json.dumps({**spec, "index": index}) + "\n").encode())
            await proc.stdin.drain()
            workers.append(proc)
        for proc in workers:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line.startswith(b'{"ready"'):
                raise RuntimeError(f"a generator process did not start: {line[:200]!r}")
        start = time.monotonic() + 0.05
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write(f"{start!r}\n".encode())
            await proc.stdin.drain()
        window = start + warmup_s
        bounds = [window + j * interval_s for j in range(n)] + [window + measure_s]
        out = [
            Interval(rate=rate, start=bounds[j], seconds=bounds[j + 1] - bounds[j])
            for j in range(n)
        ]

        async def boundaries() -> None:
            for j, at in enumerate(bounds):
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                if at_boundary is not None:
                    await at_boundary(j)

        budget = warmup_s + measure_s + timeout_s + 60
        await asyncio.wait_for(
            asyncio.gather(boundaries(), *(_read_results(proc, out) for proc in workers)), budget
        )
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in workers:
            code = await asyncio.wait_for(proc.wait(), 30)
            if code != 0:
                raise RuntimeError(f"a generator process exited with {code}")
        return out
    finally:
        for proc in workers:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


# --- The server and the machine, from /proc -------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


def tree_cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass(frozen=True)
class Footprint:
    """The server's processes at one moment."""

    processes: int
    rss_kib: int
    pss_kib: int
    fds: int


def footprint(pids: Sequence[int]) -> Footprint:
    rss = pss = fds = alive = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                rss += int(f.read().split()[1]) * PAGE_KIB
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            alive += 1
        except OSError:
            continue
    return Footprint(processes=alive, rss_kib=rss, pss_kib=pss, fds=fds)


class CpuMeter:
    """CPU used between two marks by the server's processes and by the whole machine."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.marks: list[tuple[float, float, float]] = []  # (wall, server, machine)

    def mark(self) -> None:
        pids = process_tree(self.server_pid)
        self.marks.append((time.monotonic(), tree_cpu_s(pids), machine_busy_s()))

    def between(self, a: int, b: int) -> tuple[float, float, float]:
        """(seconds, server CPU s, machine busy CPU s) from mark a to mark b."""
        (w0, s0, m0), (w1, s1, m1) = self.marks[a], self.marks[b]
        return w1 - w0, s1 - s0, m1 - m0


# --- The run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    rates: tuple[int, ...]
    workers: tuple[int, ...]
    warmup_s: float
    measure_s: float
    tenants: int
    users: int
    events: int
    clients: int = max(1, CORES)
    connections: int = 64
    timeout_s: float = 2.0
    soak_s: float = 0.0
    soak_workers: int = 1
    interval_s: float = 20.0


@dataclass
class Measured:
    target: str
    rate: int
    result: Interval
    server_cpu_s: float
    machine_cpu_s: float

    @property
    def gen_cores(self) -> float:
        return self.result.client_cpu_s / self.result.seconds

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.result.seconds

    @property
    def other_cores(self) -> float:
        """The rest of the machine: PostgreSQL, this process, anything else running."""
        return max(
            0.0, self.machine_cpu_s / self.result.seconds - self.gen_cores - self.server_cores
        )

    def sustained(self) -> bool:
        """Kept up: every request answered, 95% of the rate or more, the median under budget
        (not queued behind a backlog)."""
        r = self.result
        return not r.errors and r.achieved >= 0.95 * self.rate and r.p(50) < BUDGET_MS

    def met(self) -> bool:
        """The budget: sustained, and p99 < 5 ms with no degraded answers."""
        return self.sustained() and self.result.p(99) < BUDGET_MS and not self.result.degraded


async def measure(
    server: Server, port: int, reqs: Sequence[bytes], target: str, rate: int, plan: Plan
) -> Measured:
    meter = CpuMeter(server.proc.pid)

    async def mark(_j: int) -> None:
        meter.mark()

    [result] = await run_load(
        port,
        reqs,
        rate,
        clients=plan.clients,
        connections=plan.connections,
        warmup_s=plan.warmup_s,
        measure_s=plan.measure_s,
        timeout_s=plan.timeout_s,
        at_boundary=mark,
    )
    _, server_cpu, machine_cpu = meter.between(0, 1)
    return Measured(target, rate, result, server_cpu, machine_cpu)


_HEAD = (
    f"  {'target':<8} {'rate':>6} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'errors':>6} {'timeouts':>8} {'unsent':>6} {'degraded':>8} {'queued':>7} {'lag p99':>7}  "
    f"{'server':>6} {'gen':>5} {'other':>5}  {'srv cpu':>7}"
)
_UNITS = (
    f"  {'':<8} {'req/s':>6} {'req/s':>9} {'':>8} {'':>8} {'':>8} {'':>6} {'':>8} {'':>6} "
    f"{'':>8} {'':>7} {'ms':>7}  {'cores':>6} {'cores':>5} {'cores':>5}  {'ms/req':>7}"
)


def _print_row(m: Measured, note: str = "") -> None:
    r = m.result
    per_req = m.server_cpu_s / r.answered * 1000 if r.answered else float("nan")
    detail = ""
    if r.failed:
        others = [(k, v) for k, v in r.errors.most_common() if k not in ("timeout", "unsent")]
        others = others[:3]
        detail = " (" + ", ".join(f"{k} {v}" for k, v in others) + ")"
    print(
        f"  {m.target:<8} {m.rate:>6} {r.achieved:>9.0f} {r.p(50):>8.2f} {r.p(99):>8.2f} "
        f"{max(r.latencies_ms, default=float('nan')):>8.2f} {r.failed:>6} {r.timeouts:>8} "
        f"{r.unsent:>6} {r.degraded:>8} {r.waited:>7} {percentile(r.lag_ms, 99):>7.2f}  "
        f"{m.server_cores:>6.2f} "
        f"{m.gen_cores:>5.2f} {m.other_cores:>5.2f}  {per_req:>7.2f}{detail}{note}",
        flush=True,
    )


def _ms(value: float) -> str:
    return "n/a (nothing answered)" if math.isnan(value) else f"{value:.2f} ms"


def capacity_of(results: Sequence[tuple[Measured, Measured]], *, budget: bool = True) -> int:
    """The highest rate up to which every layout run met the budget (or, with `budget` False,
    was sustained); 0 when the lowest did not."""
    best = 0
    for _health, layout in sorted(results, key=lambda pair: pair[1].rate):
        if not (layout.met() if budget else layout.sustained()):
            break
        best = layout.rate
    return best


async def ready_everywhere(server: Server, port: int, timeout_s: float, workers: int) -> None:
    """/readyz 200 on many fresh connections in a row (so on every worker), then the server's
    CPU quiet for a second (background start-up work done), or `timeout_s` passed."""
    from tests.bench.bench_layout_http import Connection, HttpError, get_request

    deadline = time.monotonic() + timeout_s
    await server.wait_ready(timeout_s)
    needed = 1 if workers == 1 else 12 * workers
    streak = 0
    while streak < needed:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every worker was ready within {timeout_s:g} s")
        conn = Connection(port)
        try:
            status, _ = await asyncio.wait_for(conn.exchange(get_request(port, "/readyz")), 5)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError):
            status = 0
        finally:
            conn.close()
        streak = streak + 1 if status == 200 else 0
        if status != 200:
            await asyncio.sleep(0.2)
    await settle(server, deadline - time.monotonic())


async def settle(server: Server, max_s: float, *, cores: float = 0.1) -> float:
    """Wait until the server's processes use under `cores` for a second, `max_s` at most (after
    start-up, or after a run that overloaded it); return the seconds waited."""
    t0 = time.monotonic()
    pids = process_tree(server.proc.pid)
    while time.monotonic() - t0 < max_s:
        cpu0 = tree_cpu_s(pids)
        await asyncio.sleep(1.0)
        if tree_cpu_s(pids) - cpu0 < cores:
            break
    return time.monotonic() - t0


async def sweep(
    server: Server, port: int, layout_reqs: Sequence[bytes], plan: Plan, workers: int
) -> tuple[list[tuple[Measured, Measured]], list[SummaryRow]]:
    from tests.bench.bench_layout_http import get_request

    health_reqs = [get_request(port, "/healthz")]
    # Every user's layout (twice, time allowing) at a modest rate, spread over the connections and
    # so over the workers: profiles cached, as in steady traffic.
    warm_rate = min(500, *plan.rates)
    await run_load(
        port,
        layout_reqs,
        warm_rate,
        clients=plan.clients,
        connections=plan.connections,
        warmup_s=0.0,
        measure_s=min(10.0, max(1.0, 2 * len(layout_reqs) / warm_rate)),
        timeout_s=plan.timeout_s,
    )
    await settle(server, 15)
    print(f"\n{workers} worker(s):\n{_HEAD}\n{_UNITS}", flush=True)
    pairs: list[tuple[Measured, Measured]] = []
    rows: list[SummaryRow] = []
    for rate in plan.rates:
        health = await measure(server, port, health_reqs, "healthz", rate, plan)
        _print_row(health)
        await settle(server, 15)
        layout = await measure(server, port, layout_reqs, "layout", rate, plan)
        ratio = layout.result.p(99) / health.result.p(99)
        budget = ""
        if rate == BUDGET_RATE:
            budget = f"p99 < {BUDGET_MS:g} ms at {BUDGET_RATE:,} req/s: " + (
                "met" if layout.met() else "MISSED"
            )
        _print_row(
            layout,
            f"   p99 layout / healthz {'n/a' if math.isnan(ratio) else f'{ratio:.2f}x'}"
            + (f"   {budget}" if budget else ""),
        )
        pairs.append((health, layout))
        r = layout.result
        errs = f", {r.failed} errors, {r.timeouts} timeouts, {r.unsent} unsent" if r.errors else ""
        rows.append(
            SummaryRow(
                "load",
                f"GET /v1/layouts/home p99 @ {rate:,} req/s, {workers} worker(s)",
                f"{_ms(r.p(99))} ({r.achieved:,.0f} req/s{errs})",
                f"{_ms(health.result.p(99))} (healthz)",
                "n/a" if math.isnan(ratio) else f"{ratio:.2f}x",
                budget,
            )
        )
        await settle(server, 15)  # an overloaded server finishes its backlog first
    capacity = capacity_of(pairs)
    sustained = capacity_of(pairs, budget=False)
    top = max((m for pair in pairs for m in pair), key=lambda m: m.gen_cores)
    lowest = min(plan.rates)
    print(
        f"  capacity with {workers} worker(s): "
        + (
            f"{capacity:,} req/s (the highest rate up to which p99 < {BUDGET_MS:g} ms, no errors)"
            if capacity
            else f"below {lowest:,} req/s (no rate met p99 < {BUDGET_MS:g} ms error-free)"
        )
        + "; sustained (every request answered, p50 < 5 ms): "
        + (f"up to {sustained:,} req/s" if sustained else f"below {lowest:,} req/s")
        + f"\n  the generator used at most {top.gen_cores:.2f} cores ({top.gen_cores / CORES:.0%} "
        f"of the machine; {top.target} at {top.rate:,} req/s), its lag p99 there "
        f"{percentile(top.result.lag_ms, 99):.2f} ms",
        flush=True,
    )
    rows.append(
        SummaryRow(
            "load",
            f"capacity, {workers} worker(s) (p99 < {BUDGET_MS:g} ms, no errors)",
            f"{capacity:,} req/s" if capacity else f"< {lowest:,} req/s",
            "",
            "",
            "sustained (p50 < 5 ms): "
            + (f"{sustained:,} req/s" if sustained else f"< {lowest:,} req/s")
            + f"; generator at most {top.gen_cores:.2f} cores",
        )
    )
    return pairs, rows


@dataclass(frozen=True)
class SoakSample:
    at_s: float
    footprint: Footprint
    pg_connections: int
    server_cpu_s: float
    machine_cpu_s: float


async def soak(
    server: Server,
    port: int,
    layout_reqs: Sequence[bytes],
    plan: Plan,
    rate: float,
    count_connections: Callable[[], Awaitable[int]],
) -> list[SummaryRow]:
    n = max(1, round(plan.soak_s / plan.interval_s))
    interval_s = plan.soak_s / n
    print(
        f"\nsoak: GET /v1/layouts/home at {rate:,.0f} req/s for {plan.soak_s:g} s on "
        f"{plan.soak_workers} worker(s), sampled every {interval_s:g} s",
        flush=True,
    )
    samples: list[SoakSample] = []
    t0 = 0.0

    async def sample(j: int) -> None:
        nonlocal t0
        now = time.monotonic()
        if j == 0:
            t0 = now
        pids = process_tree(server.proc.pid)
        samples.append(
            SoakSample(
                at_s=now - t0,
                footprint=footprint(pids),
                pg_connections=await count_connections(),
                server_cpu_s=tree_cpu_s(pids),
                machine_cpu_s=machine_busy_s(),
            )
        )

    intervals = await run_load(
        port,
        layout_reqs,
        rate,
        clients=plan.clients,
        connections=plan.connections,
        warmup_s=plan.warmup_s,
        measure_s=plan.soak_s,
        timeout_s=plan.timeout_s,
        interval_s=interval_s,
        at_boundary=sample,
    )
    print(
        f"  {'t s':>6} {'ans/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} {'errors':>6} "
        f"{'timeouts':>8}  {'RSS MiB':>8} {'PSS MiB':>8} {'procs':>5} {'fds':>5} {'PG conns':>8}"
        f"  {'server':>6} {'gen':>5} {'other':>5}"
    )
    s0 = samples[0]
    print(
        f"  {0:>6.0f} {'':>7} {'':>7} {'':>7} {'':>8} {'':>6} {'':>8}  "
        f"{s0.footprint.rss_kib / 1024:>8.1f} {s0.footprint.pss_kib / 1024:>8.1f} "
        f"{s0.footprint.processes:>5} {s0.footprint.fds:>5} {s0.pg_connections:>8}"
    )
    for j, iv in enumerate(intervals):
        a, b = samples[j], samples[j + 1]
        secs = b.at_s - a.at_s
        srv = (b.server_cpu_s - a.server_cpu_s) / secs
        gen = iv.client_cpu_s / iv.seconds
        other = max(0.0, (b.machine_cpu_s - a.machine_cpu_s) / secs - srv - gen)
        print(
            f"  {b.at_s:>6.0f} {iv.achieved:>7.0f} {iv.p(50):>7.2f} {iv.p(99):>7.2f} "
            f"{max(iv.latencies_ms, default=float('nan')):>8.2f} {iv.failed:>6} "
            f"{iv.timeouts + iv.unsent:>8}  {b.footprint.rss_kib / 1024:>8.1f} "
            f"{b.footprint.pss_kib / 1024:>8.1f} {b.footprint.processes:>5} {b.footprint.fds:>5} "
            f"{b.pg_connections:>8}  {srv:>6.2f} {gen:>5.2f} {other:>5.2f}"
        )
    print(
        "  RSS and PSS: summed over the server's processes (PSS counts shared pages once); "
        "fds: open file descriptors of those processes (the generator's 64 connections among "
        "them, while the server keeps them open); PG conns: its database's connections"
    )
    verdict, levels_off = rss_verdict([(s.at_s, s.footprint.rss_kib) for s in samples])
    print(f"  RSS: {verdict}")
    third = max(1, len(samples) // 3)
    first_pg = max(s.pg_connections for s in samples[: third + 1])
    last_pg = max(s.pg_connections for s in samples[-third - 1 :])
    first_fd = max(s.footprint.fds for s in samples[: third + 1])
    last_fd = max(s.footprint.fds for s in samples[-third - 1 :])
    print(
        f"  PostgreSQL connections: at most {first_pg} in the first third, {last_pg} in the last;"
        f" open fds: at most {first_fd} in the first third, {last_fd} in the last"
    )
    p99s = [iv.p(99) for iv in intervals if iv.latencies_ms]
    errors = sum(sum(iv.errors.values()) for iv in intervals)
    print(
        f"  p99 per interval: {min(p99s, default=float('nan')):.2f} .. "
        f"{max(p99s, default=float('nan')):.2f} ms; {errors} errors and timeouts in all",
        flush=True,
    )
    last = samples[-1]
    return [
        SummaryRow(
            "load",
            f"soak {plan.soak_s:g} s @ {rate:,.0f} req/s, {plan.soak_workers} worker(s): RSS",
            f"{s0.footprint.rss_kib / 1024:.0f} -> {last.footprint.rss_kib / 1024:.0f} MiB",
            "",
            "",
            "levels off" if levels_off else "STILL GROWING",
        ),
        SummaryRow(
            "load",
            "soak: p99 per interval, PG connections, fds",
            f"{min(p99s, default=float('nan')):.2f} .. {max(p99s, default=float('nan')):.2f} ms",
            "",
            "",
            f"PG {first_pg} -> {last_pg}, fds {first_fd} -> {last_fd}, {errors} errors",
        ),
    ]


def rss_verdict(points: Sequence[tuple[float, int]]) -> tuple[str, bool]:
    """Growth in the last third of the soak against the first third (KiB samples over time)."""
    if len(points) < 4:
        return "too few samples to tell (a longer soak, or a shorter --interval)", False
    end = points[-1][0]

    def at(t: float) -> int:
        return min(points, key=lambda p: abs(p[0] - t))[1]

    r0, r1, r2, r3 = at(0.0), at(end / 3), at(2 * end / 3), at(end)
    first, last = (r1 - r0) / 1024, (r3 - r2) / 1024
    noise = max(2.0, 0.005 * r0 / 1024)  # MiB: allocator jitter, not a trend
    levels_off = last <= max(noise, first / 3)
    per_hour = last / (end / 3) * 3600 if end else 0.0
    text = (
        f"{r0 / 1024:.1f} MiB at the start, {r3 / 1024:.1f} MiB at the end; grew {first:+.1f} MiB "
        f"in the first third, {last:+.1f} MiB in the last third -> "
    )
    if levels_off:
        text += f"levels off (the last third's growth is within {max(noise, first / 3):.1f} MiB)"
    else:
        text += f"STILL GROWING at about {per_hour:,.0f} MiB/hour in the last third"
    return text, levels_off


@contextlib.asynccontextmanager
async def _postgres(dsn: str | None, tmp: Path) -> AsyncIterator[str]:
    """The DSN of a PostgreSQL server to make the scratch database on: `dsn`, else embedded."""
    if dsn:
        yield dsn
        return
    from app.storage.db import EmbeddedPostgres

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # pgserver keeps a lock file in the user's runtime directory, and takes it again at exit: one
    # outside the temporary directory, else EmbeddedPostgres points it inside, and exit recreates it
    runtime = Path(tempfile.gettempdir()) / f"cairn-bench-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    embedded = EmbeddedPostgres(tmp / "pgdata")
    uri = await asyncio.to_thread(embedded.start)
    try:
        yield uri
    finally:
        await asyncio.to_thread(embedded.stop)


async def bench(plan: Plan, dsn: str | None) -> list[SummaryRow]:
    import asyncpg

    from tests.bench._common import scratch_database
    from tests.bench.bench_layout_http import (
        Server,
        free_port,
        layout_requests,
        seed_population,
    )

    print(
        f"Open-loop load: {plan.clients} generator processes, {plan.connections} keep-alive "
        f"connections in all, {plan.warmup_s:g} s warm-up + {plan.measure_s:g} s measured per "
        f"rate and target, request timeout {plan.timeout_s:g} s; latency from each request's "
        f"due time.\nNOTE: the generator, the server and PostgreSQL share this {CORES}-core "
        "machine (their CPU is shown per row); other work on it shows as 'other'.",
        flush=True,
    )
    rows: list[SummaryRow] = []
    with tempfile.TemporaryDirectory(prefix="cairn-bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        async with _postgres(dsn, tmp) as server_dsn, scratch_database(server_dsn) as db_dsn:
            t0 = time.perf_counter()
            stored, users = await seed_population(
                db_dsn, tmp, tenants=plan.tenants, users=plan.users, events=plan.events
            )
            if not users:
                raise RuntimeError("seeding produced no users")
            random.Random(5).shuffle(users)
            db_name = urlsplit(db_dsn).path.lstrip("/")
            print(
                f"seeded {plan.tenants} tenants, {len(users):,} users, {stored:,} events into "
                f"{db_name} ({'embedded PostgreSQL' if not dsn else 'the --dsn server'}) in "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            monitor = await asyncpg.connect(server_dsn, timeout=10)
            try:

                async def count_connections() -> int:
                    n: int = await monitor.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db_name
                    )
                    return n

                for workers in plan.workers:
                    port = free_port()
                    layout_reqs = layout_requests(port, users)
                    log_path = tmp / f"server-{workers}.log"
                    with log_path.open("wb") as log:
                        server = Server(db_dsn, port, log, workers)
                        try:
                            t1 = time.perf_counter()
                            try:
                                await ready_everywhere(server, port, 180, workers)
                            except RuntimeError:
                                log.flush()
                                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                                raise
                            pids = process_tree(server.proc.pid)
                            print(
                                f"\nserver with {workers} worker(s) ready on {HOST}:{port} in "
                                f"{time.perf_counter() - t1:.1f} s ({len(pids)} processes, "
                                f"{footprint(pids).rss_kib / 1024:.0f} MiB RSS, "
                                f"{await count_connections()} PostgreSQL connections)",
                                flush=True,
                            )
                            pairs, found = await sweep(server, port, layout_reqs, plan, workers)
                            rows += found
                            if plan.soak_s > 0 and workers == plan.soak_workers:
                                capacity = capacity_of(pairs)
                                if not capacity:
                                    capacity = capacity_of(pairs, budget=False)
                                    print(
                                        "  no rate met the budget: the soak takes as capacity the "
                                        "highest rate sustained (every request answered, >= 95% "
                                        f"of the rate, p50 < {BUDGET_MS:g} ms): "
                                        + (
                                            f"{capacity:,} req/s"
                                            if capacity
                                            else "none, so a quarter of the lowest rate"
                                        )
                                    )
                                rate = (capacity or min(plan.rates) / 2) / 2
                                rows += await soak(
                                    server, port, layout_reqs, plan, rate, count_connections
                                )
                        finally:
                            server.stop()
                    logged = log_path.read_text(errors="replace").strip().splitlines()
                    print(f"  server log: {len(logged)} lines" + (":" if logged else ""))
                    shown = logged if len(logged) <= 6 else [*logged[:3], "...", *logged[-3:]]
                    for line in shown:
                        print(f"    {line[:160]}")
            finally:
                await monitor.close()
    print(
        "\n  achieved: answers (200) that came during the measured window, per second (a server "
        "behind answers requests due before it); p50/p99/max: over the answered requests due in "
        "the window;\n  unsent: requests still waiting for a free connection when the run ended "
        "(window + timeout); queued: requests that found all the generator's connections busy (a "
        "server behind) and waited for one, the wait counted in their latencies;\n  lag p99: how "
        "late the generator woke up for a request (its own share, inside the latencies); server / "
        "gen / other: cores used by the server's processes, the generator's processes and "
        "everything else (PostgreSQL, other jobs) during the measured window;\n  srv cpu: server "
        "CPU per answer; degraded: 200s carrying the default layout (the profile store missed its "
        "budget)",
        flush=True,
    )
    return rows


def run_cli(argv: list[str] | None = None) -> list[SummaryRow]:
    parser = argparse.ArgumentParser(description="open-loop load on GET /v1/layouts/home; soak")
    parser.add_argument("--rates", default="500,1000,2000,4000", help="req/s, comma-separated")
    parser.add_argument(
        "--workers", default=None, help="server worker counts to run (1,2; --quick: 1)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--timeout", type=float, default=2.0, help="request timeout, seconds")
    parser.add_argument("--clients", type=int, default=max(1, CORES), help="generator processes")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--soak",
        type=float,
        nargs="?",
        const=600.0,
        default=0.0,
        metavar="SECONDS",
        help="after the sweep, half the measured capacity for this long (600 s if no value)",
    )
    parser.add_argument("--soak-workers", type=int, default=1, help="the server the soak runs on")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="soak sampling seconds (default 10-30)"
    )
    parser.add_argument(
        "--dsn", default=None, help="a PostgreSQL server for the scratch database (else embedded)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="two short rates, one worker, a small population"
    )
    args = parser.parse_args(argv)
    workers = tuple(int(w) for w in (args.workers or ("1" if args.quick else "1,2")).split(","))
    soak_s = float(args.soak)
    soak_workers = args.soak_workers if args.soak_workers in workers else workers[0]
    interval = args.interval or min(30.0, max(10.0, soak_s / 12))
    if args.quick:
        plan = Plan(
            rates=(500, 2000),
            workers=workers,
            warmup_s=0.5,
            measure_s=1.5,
            tenants=20,
            users=200,
            events=4000,
            clients=args.clients,
            connections=args.connections,
            timeout_s=args.timeout,
            soak_s=soak_s,
            soak_workers=soak_workers,
            interval_s=args.interval or min(30.0, max(5.0, soak_s / 6)),
        )
    else:
        plan = Plan(
            rates=tuple(int(r) for r in args.rates.split(",")),
            workers=workers,
            warmup_s=args.warmup,
            measure_s=args.seconds,
            tenants=args.tenants,
            users=args.users,
            events=args.events,
            clients=args.clients,
            connections=args.connections,
            timeout_s=args.timeout,
            soak_s=soak_s,
            soak_workers=soak_workers,
            interval_s=interval,
        )
    per_run = plan.warmup_s + plan.measure_s + plan.timeout_s + 8
    budget = 900 + len(plan.workers) * (240 + 2 * len(plan.rates) * per_run) + 2 * plan.soak_s
    rows = asyncio.run(asyncio.wait_for(bench(plan, args.dsn), budget))
    return report(rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        raise SystemExit(_worker_main())
    run_cli()
