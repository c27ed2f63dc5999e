"""Ingestion throughput: Segment batches parsed and stored durably, against a plain-insert baseline.

    python -m tests.bench.bench_ingest [--events 100000] [--batch 500] [--concurrency 4]

Uses DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test) to create a throwaway
database `cairn_bench_<random>`, migrated like a real deployment, and drops it afterwards.

- Cairn: each batch body (JSON, as a client sends it) goes through `parse_batch` and
  `store_events`: validation, skew correction, identifier hashing, the events insert, every
  aggregate and the notifications, one committed transaction per batch.
- Baselines: the same rows, per batch into a bare copy of the events table (no keys, no indexes,
  no aggregates), also one committed transaction per batch: by `COPY` (the fastest way rows get
  into PostgreSQL; the ratio is to this) and by one `executemany` INSERT.

Both use the same number of concurrent senders and connections; the budget is 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from app.config.layouts import load_layouts
from app.ingest.segment import parse_batch, pii_key
from app.storage.db import Pool, create_pool, migrate
from app.storage.events import EventRow, event_values, store_events

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
FACETS = {"feature_used": "feature", "template_used": "template", "help_article_viewed": "article"}
# the shipped windows: what a deployment writes with (page and screen views in monthly partitions)
RETENTION = load_layouts(Path(__file__).resolve().parents[2] / "layouts").retention
FEATURES = ["reports", "automations", "dashboards", "exports", "api", "sso", "audit_log", "forms"]
TEMPLATES = ["invoice", "onboarding", "okr", "crm_pipeline", "weekly_report", "roadmap"]
ARTICLES = ["getting-started", "connect-slack", "billing-faq", "automations-101", "sso-setup"]
INTEGRATIONS = ["slack", "salesforce", "hubspot", "stripe", "github", "jira", "zapier"]
WIDGETS = ["connect_billing", "invite_team", "try_templates", "upgrade_reports", "help_sso"]

# (event, weight): the shipped vocabulary, weighted like a product's real traffic.
TRACK_EVENTS = [
    ("feature_used", 30),
    ("widget_viewed", 15),
    ("template_used", 6),
    ("help_article_viewed", 5),
    ("report_created", 5),
    ("widget_clicked", 4),
    ("error_shown", 3),
    ("automation_created", 3),
    ("feature_attempted", 2),
    ("widget_dismissed", 2),
    ("integration_connected", 2),
    ("teammate_invited", 2),
    ("limit_reached", 1),
    ("widget_completed", 1),
    ("integration_disconnected", 1),
    ("billing_connected", 1),
    ("plan_upgraded", 1),
    ("signed_up", 1),
]


def _properties(rng: random.Random, event: str) -> dict[str, Any]:
    if event in ("feature_used", "feature_attempted"):
        return {"feature": rng.choice(FEATURES), "screen": rng.choice(["home", "editor"])}
    if event == "template_used":
        return {"template": rng.choice(TEMPLATES)}
    if event == "help_article_viewed":
        return {"article": rng.choice(ARTICLES), "source": "help_tip"}
    if event.startswith("integration_"):
        return {"integration": rng.choice(INTEGRATIONS)}
    if event.startswith("widget_"):
        return {"widget_id": rng.choice(WIDGETS), "decision_id": f"dcs_{rng.getrandbits(48):x}"}
    if event == "error_shown":
        return {"feature": rng.choice(FEATURES), "message": "Something went wrong"}
    if event == "limit_reached":
        return {"limit": "seats", "used": 10, "max": 10}
    if event == "teammate_invited":
        return {"count": rng.randint(1, 5)}
    if event == "plan_upgraded":
        return {"plan": rng.choice(["team", "business"])}
    return {}


def generate_bodies(
    count: int,
    batch_size: int,
    *,
    tenants: int = 50,
    users_per_tenant: int = 400,
    sent_at: datetime = datetime(2026, 11, 27, 12, tzinfo=UTC),
    seed: int = 7,
) -> list[bytes]:
    """Batch bodies as a backend sender posts them: mostly track, some identify/page/group.

    Events happened in the hour before `sent_at` (a live sender, not a backfill).
    """
    rng = random.Random(seed)
    names = [name for name, _ in TRACK_EVENTS]
    weights = [weight for _, weight in TRACK_EVENTS]
    bodies = []
    for first in range(0, count, batch_size):
        batch = []
        for n in range(first, min(first + batch_size, count)):
            tenant = f"tenant_{rng.randrange(tenants):03d}"
            user = f"user_{rng.randrange(users_per_tenant):04d}"
            when = sent_at - timedelta(milliseconds=rng.randrange(3_600_000))
            event: dict[str, Any] = {
                "messageId": f"{uuid.UUID(int=rng.getrandbits(128))}",
                "tenantId": tenant,
                "userId": f"{tenant}:{user}",
                "timestamp": when.isoformat(),
                "context": {
                    "library": {"name": "analytics-python", "version": "2.4.0"},
                    "ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                },
            }
            kind = rng.random()
            if kind < 0.04:
                event |= {
                    "type": "identify",
                    "traits": {
                        "role": rng.choice(["admin", "maker", "end_user"]),
                        "email": f"{user}@{tenant}.example",
                        "lifecycle": "active",
                    },
                }
            elif kind < 0.05:
                event |= {
                    "type": "group",
                    "groupId": tenant,
                    "traits": {
                        "plan": rng.choice(["trial", "team", "business"]),
                        "seats": 20,
                        "seats_used": rng.randrange(1, 20),
                        "industry": "fintech",
                    },
                }
            elif kind < 0.12:
                event |= {
                    "type": "page",
                    "name": rng.choice(["Home", "Settings", "Billing"]),
                    "properties": {"path": "/app"},
                }
            else:
                name = rng.choices(names, weights)[0]
                event |= {"type": "track", "event": name, "properties": _properties(rng, name)}
            event["messageId"] = f"m{n}-{event['messageId']}"
            batch.append(event)
        bodies.append(msgspec.json.encode({"batch": batch, "sentAt": sent_at.isoformat()}))
    return bodies


async def run_concurrently(jobs: list[Callable[[], Awaitable[None]]], concurrency: int) -> float:
    """Run `jobs` with `concurrency` workers; the elapsed seconds."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, dsn: str) -> None:
    name = f"cairn_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(dsn)
    bench_dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    try:
        conn = await asyncpg.connect(bench_dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(bench_dsn, min_size=args.concurrency, max_size=args.concurrency)
        try:
            await _measure(pool, args)
        finally:
            await pool.close()
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _measure(pool: Pool, args: argparse.Namespace) -> None:
    events, batch_size, concurrency = args.events, args.batch, args.concurrency
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bare_events (LIKE events INCLUDING DEFAULTS)")
        await conn.execute("CREATE TABLE copied_events (LIKE events INCLUDING DEFAULTS)")
        settings = {
            s: await conn.fetchval(f"SHOW {s}")
            for s in ("server_version", "fsync", "synchronous_commit")
        }
    sent_at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    bodies = generate_bodies(
        events, batch_size, tenants=args.tenants, users_per_tenant=args.users, sent_at=sent_at
    )
    key = pii_key("bench-identity-secret")
    received_at = sent_at + timedelta(milliseconds=40)
    parsed: list[list[EventRow]] = []

    def cairn_job(body: bytes) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            batch = parse_batch(body, received_at=received_at, pii_mode="hash", pii_key=key)
            await store_events(pool, batch.rows, facets=FACETS, retention=RETENTION)
            parsed.append(batch.rows)

        return job

    def baseline_job(rows: list[EventRow]) -> Callable[[], Awaitable[None]]:
        values = [event_values(r) for r in rows]

        async def job() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "INSERT INTO bare_events (tenant_id, message_id, user_id, type, event,"
                    " properties, traits, context, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    values,
                )

        return job

    columns = ["tenant_id", "message_id", "user_id", "type", "event", "properties", "traits",
               "context", "ts"]  # fmt: skip

    def copy_job(rows: list[EventRow]) -> Callable[[], Awaitable[None]]:
        # the batch as COPY's CSV, made before the clock starts (jsonb goes as its text)
        out = io.StringIO()
        writer = csv.writer(out)
        for r in rows:
            writer.writerow([
                r.tenant_id, r.message_id, r.user_id, r.type, r.event,
                msgspec.json.encode(r.properties).decode(), msgspec.json.encode(r.traits).decode(),
                msgspec.json.encode(r.context).decode(), r.ts.isoformat(),
            ])  # fmt: skip
        data = out.getvalue().encode()

        async def job() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_to_table(
                    "copied_events", source=io.BytesIO(data), columns=columns, format="csv"
                )

        return job

    cairn_s = await run_concurrently([cairn_job(b) for b in bodies], concurrency)
    baseline_s = await run_concurrently([baseline_job(rows) for rows in parsed], concurrency)
    copy_s = await run_concurrently([copy_job(rows) for rows in parsed], concurrency)
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM events")
        bare = await conn.fetchval("SELECT count(*) FROM bare_events")
        copied = await conn.fetchval("SELECT count(*) FROM copied_events")
        users = await conn.fetchval("SELECT count(*) FROM users")
        days = await conn.fetchval("SELECT count(*) FROM user_event_days")
    assert stored == events == bare == copied, (stored, bare, copied, events)

    cairn_rate = events / cairn_s
    baseline_rate = events / baseline_s
    copy_rate = events / copy_s
    print(
        f"PostgreSQL {settings['server_version']}, fsync={settings['fsync']}, "
        f"synchronous_commit={settings['synchronous_commit']}"
    )
    print(
        f"{events} events in {len(bodies)} batches of {batch_size}, "
        f"{concurrency} concurrent senders, {args.tenants} tenants x {args.users} users "
        f"({users} seen, {days} user-day-event rows)"
    )
    print(
        f"cairn    (parse + store + aggregates + notify): {cairn_rate:>9,.0f} events/s durable "
        f"({cairn_s:.2f} s)"
    )
    print(
        f"baseline (executemany into a bare table):      {baseline_rate:>9,.0f} events/s durable "
        f"({baseline_s:.2f} s)"
    )
    print(
        f"baseline (COPY into a bare table):             {copy_rate:>9,.0f} events/s durable "
        f"({copy_s:.2f} s)"
    )
    print(
        f"ratio cairn / COPY: {cairn_rate / copy_rate:.2f}x, cairn / executemany: "
        f"{cairn_rate / baseline_rate:.2f}x   "
        f"budget 20,000 events/s: {'met' if cairn_rate >= 20_000 else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--users", type=int, default=400, help="users per tenant")
    args = parser.parse_args()
    asyncio.run(bench(args, os.environ.get("DATABASE_URL") or DEFAULT_DSN))


if __name__ == "__main__":
    main()
