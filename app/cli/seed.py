"""`cairn seed`: a generated demo population, ingested through the normal write path."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from app.settings import Settings


def add_commands(sub: Any) -> None:
    p = sub.add_parser("seed", help="ingest a generated population into DATABASE_URL")
    add_size_arguments(p)
    p.set_defaults(func=cmd_seed)


def add_size_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenants", type=int, default=200)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--events", type=int, default=200_000)


def cmd_seed(args: argparse.Namespace) -> int:
    settings = Settings.from_env(generate_keys=True)
    dsn = settings.database_url
    if not dsn:
        print("cairn seed: set DATABASE_URL", file=sys.stderr)
        return 2
    stored = asyncio.run(
        seed(dsn, settings, tenants=args.tenants, users=args.users, events=args.events)
    )
    print(f"stored {stored:,} events")
    return 0


async def seed(
    dsn: str, settings: Settings, *, tenants: int, users: int, events: int, progress: bool = True
) -> int:
    """Generate the demo population and ingest it through the normal ingestion path."""
    import msgspec

    from app.config.layouts import load_layouts
    from app.demo.catalog import demo_items
    from app.demo.population import PopulationSpec, generate
    from app.ingest.segment import parse_batch, pii_key
    from app.storage.catalog import put_items
    from app.storage.db import create_pool, migrate
    from app.storage.events import store_events
    from recommender.embedder import SentenceTransformerEmbedder

    layouts = load_layouts(settings.layouts_dir)
    vocab = layouts.vocabulary
    population = generate(
        PopulationSpec(tenants=tenants, users=users, events=events, now=datetime.now(UTC))
    )
    pool = await create_pool(dsn)
    stored = 0
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        # The product's catalog; the server embeds it in the background when it starts.
        model_id = SentenceTransformerEmbedder(settings.embedding_model or None).model_id
        await put_items(pool, demo_items(), model_id)
        key = pii_key(settings.identity_secret)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "demo-personas.json").write_bytes(
            msgspec.json.encode(
                [
                    {
                        "tenant_id": p.tenant_id,
                        "user_id": p.user_id,
                        "label": p.label,
                        "description": p.description,
                    }
                    for p in population.personas
                ]
            )
        )
        total = population.count
        for batch in population.batches(500):
            body = msgspec.json.encode(batch)
            rows = parse_batch(
                body, received_at=datetime.now(UTC), pii_mode=settings.pii_mode, pii_key=key
            ).rows
            result = await store_events(
                pool, rows, facets=vocab.facets, retention=layouts.retention
            )
            stored += result.accepted + result.duplicates
            if progress:
                done = min(stored / max(total, 1), 1.0)
                bar = "#" * int(done * 40)
                print(
                    f"\rseeding [{bar:<40}] {stored:,}/{total:,} events",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if progress:
            print(file=sys.stderr)
    finally:
        await pool.close()
    return stored
