"""The `cairn` command line: serve, demo, validate, seed, schema, keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

from app.settings import ConfigError, Settings


def _serve(host: str, port: int, workers: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        "app.asgi:create",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=False,
    ).serve()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"cairn: {exc}", file=sys.stderr)
        return 2
    if _validate_or_report(settings.layouts_dir):
        return 2
    _serve(args.host, args.port, args.workers)
    return 0


def _validate_or_report(root: Path) -> int:
    from app.config.compile import LayoutConfigError, load_layouts

    try:
        load_layouts(root)
    except LayoutConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    roots = [Path(p) for p in (args.paths or [os.environ.get("CAIRN_LAYOUTS_DIR", "layouts")])]
    failed = 0
    for root in roots:
        target = (
            root
            if root.is_dir()
            else root.parent.parent
            if root.parent.name == "screens"
            else root.parent
        )
        failed |= _validate_or_report(target)
        if not failed:
            print(f"{root}: ok")
    return failed


def cmd_schema(args: argparse.Namespace) -> int:
    from widgets.schema import layout_json_schema

    path = Path(__file__).resolve().parents[1] / "widgets" / "layout.schema.json"
    text = json.dumps(layout_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run 'cairn schema'", file=sys.stderr)
            return 1
        print(f"{path}: up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def _demo_settings(data_dir: Path) -> Settings:
    """Keys from the environment, else the ones this data directory was given before."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "demo-keys.json"
    saved: dict[str, str] = json.loads(key_file.read_text()) if key_file.exists() else {}
    env = dict(os.environ)
    for name, prefix in (
        ("CAIRN_SECRET_KEY", "sk_"),
        ("CAIRN_PUBLISHABLE_KEY", "pk_"),
        ("CAIRN_IDENTITY_SECRET", "whsec_"),
    ):
        if not env.get(name):
            env[name] = saved.get(name) or prefix + secrets.token_urlsafe(24)
            saved[name] = env[name]
            os.environ[name] = env[name]
    key_file.write_text(json.dumps(saved, indent=2))
    key_file.chmod(0o600)
    env.setdefault("CAIRN_DATA_DIR", str(data_dir))
    return Settings.from_env(env)


async def seed(
    dsn: str, settings: Settings, *, tenants: int, users: int, events: int, progress: bool = True
) -> int:
    """Generate the demo population and ingest it through the normal ingestion path."""
    from app.config.compile import load_layouts
    from app.demo.population import PopulationSpec, generate
    from app.ingest import parse_batch, pii_key
    from app.storage.db import create_pool, migrate
    from app.storage.events import store_events

    vocab = load_layouts(settings.layouts_dir).vocabulary
    population = generate(
        PopulationSpec(tenants=tenants, users=users, events=events, now=datetime.now(UTC))
    )
    pool = await create_pool(dsn)
    stored = 0
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        import msgspec

        from app.storage.catalog import put_items
        from recommender.demo_catalog import demo_items
        from recommender.embedder import SentenceTransformerEmbedder

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
            result = await store_events(pool, rows, facets=vocab.facets)
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


async def _seeded(dsn: str, *, clear: bool = False) -> bool:
    """Whether the database holds events; with `clear`, empty it first (demo reseeding)."""
    import asyncpg

    from app.storage.db import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if clear:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'schema_migrations'"
            )
            await conn.execute("TRUNCATE " + ", ".join(f'"{r["tablename"]}"' for r in tables))
        return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events)"))
    finally:
        await conn.close()


def _train_demo_models(dsn: str, settings: Settings) -> None:
    """`cairn recs train` on the fresh demo history, so propensity signals are live at once."""
    from app.config.compile import load_layouts
    from app.propensity_cli import format_training, train_models
    from app.propensity_train import SNAPSHOT_EVERY

    print("Training the propensity models (cairn recs train)...", file=sys.stderr)
    vocab = load_layouts(settings.layouts_dir).vocabulary
    report = asyncio.run(train_models(dsn, vocab, every=SNAPSHOT_EVERY))
    print(format_training(report), file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.storage.db import EmbeddedPostgres

    data_dir = Path(os.environ.get("CAIRN_DATA_DIR", ".cairn"))
    settings = _demo_settings(data_dir)
    if _validate_or_report(settings.layouts_dir):
        return 2
    embedded = None
    dsn = settings.database_url
    if not dsn:
        embedded = EmbeddedPostgres(data_dir)
        dsn = embedded.start()
        os.environ["DATABASE_URL"] = dsn
    try:
        if not asyncio.run(_seeded(dsn, clear=args.reseed)):
            print(
                f"Seeding the demo population ({args.tenants} tenants, {args.users} users, "
                f"{args.events:,} events)...",
                file=sys.stderr,
            )
            asyncio.run(
                seed(dsn, settings, tenants=args.tenants, users=args.users, events=args.events)
            )
            _train_demo_models(dsn, settings)
        host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host  # noqa: S104
        base = f"http://{host}:{args.port}"
        print(
            f"\nCairn demo is running.\n"
            f"  Demo app:          {base}/demo/\n"
            f"  API docs:          {base}/schema\n"
            f"  Layout JSON:       {base}/v1/layouts/home?tenant_id=...&user_id=...\n"
            f"  Secret key:        {settings.secret_key}\n"
            f"  Publishable key:   {settings.publishable_key}\n"
            f"  Identity secret:   {settings.identity_secret}\n"
            f"  (keys are kept in {data_dir / 'demo-keys.json'}; Ctrl-C stops the demo)\n",
            flush=True,
        )
        os.environ["CAIRN_DEMO"] = "1"
        _serve(args.host, args.port, 1)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


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


def cmd_user_hash(args: argparse.Namespace) -> int:
    from app.http.auth import user_hash

    secret = os.environ.get("CAIRN_IDENTITY_SECRET", "")
    if not secret:
        print("cairn user-hash: set CAIRN_IDENTITY_SECRET", file=sys.stderr)
        return 2
    print(user_hash(secret, args.tenant_id, args.user_id))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from app.storage.db import create_pool, migrate
    from app.storage.keys import create_api_key

    dsn = os.environ.get("DATABASE_URL", "")
    if not dsn:
        print("cairn keys: set DATABASE_URL", file=sys.stderr)
        return 2

    async def run() -> str:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            return await create_api_key(pool, args.tenant, args.kind)
        finally:
            await pool.close()

    print(asyncio.run(run()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cairn", description="Cairn personalization engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="seed a demo population and serve it with a demo app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tenants", type=int, default=200)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument(
        "--reseed", action="store_true", help="empty the demo database and seed it again"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="check layout YAML; problems as file:line:col: message")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("seed", help="ingest a generated population into DATABASE_URL")
    p.add_argument("--tenants", type=int, default=200)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--events", type=int, default=200_000)
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("schema", help="write (or --check) widgets/layout.schema.json")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("user-hash", help="compute X-Cairn-User-Hash for a user")
    p.add_argument("tenant_id")
    p.add_argument("user_id")
    p.set_defaults(func=cmd_user_hash)

    p = sub.add_parser("keys", help="create a key scoped to one tenant (shown once)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--kind", choices=["secret", "publishable"], default="secret")
    p.set_defaults(func=cmd_keys)

    from app.recs_cli import add_recs_commands

    add_recs_commands(sub)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
