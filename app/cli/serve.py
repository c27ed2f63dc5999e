"""`cairn serve` and `cairn demo`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from app.cli.common import validate_or_report
from app.cli.seed import add_size_arguments, seed
from app.settings import ConfigError, Settings


def add_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="seed a demo population and serve it with a demo app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_size_arguments(p)
    p.add_argument(
        "--reseed", action="store_true", help="empty the demo database and seed it again"
    )
    p.set_defaults(func=cmd_demo)


def serve(host: str, port: int, workers: int) -> None:
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
    if validate_or_report(settings.layouts_dir):
        return 2
    serve(args.host, args.port, args.workers)
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
    # The demo keeps 5% of its users out of personalization: the holdout its results compare with
    env.setdefault("CAIRN_HOLDOUT_PERCENT", "5")
    os.environ.setdefault("CAIRN_HOLDOUT_PERCENT", "5")
    return Settings.from_env(env)


async def _seeded(dsn: str, *, clear: bool = False) -> bool:
    """Whether the database holds events; with `clear`, empty it first (demo reseeding)."""
    import asyncpg

    from app.storage.db import has_events, migrate, truncate_all

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if clear:
            await truncate_all(conn)
        return await has_events(conn)
    finally:
        await conn.close()


def _train_demo_models(dsn: str, settings: Settings) -> None:
    """`cairn models train` on the fresh demo history, so propensity signals are live at once."""
    from app.cli.models import format_training
    from app.config.layouts import load_layouts
    from app.training.propensity import SNAPSHOT_EVERY, train_models

    print("Training the propensity models (cairn models train)...", file=sys.stderr)
    vocab = load_layouts(settings.layouts_dir).vocabulary
    report = asyncio.run(train_models(dsn, vocab, every=SNAPSHOT_EVERY))
    print(format_training(report), file=sys.stderr)


def _refresh_demo_metrics(dsn: str, settings: Settings) -> None:
    """`cairn metrics refresh` on the fresh demo history, so the dashboards have data at once."""
    from app.cli.metrics import show_progress
    from app.config.layouts import load_layouts
    from app.serving.metrics_refresh import refresh_metrics
    from app.storage.db import create_pool

    async def run() -> None:
        pool = await create_pool(dsn, min_size=1, max_size=3)
        try:
            await refresh_metrics(pool, load_layouts(settings.layouts_dir), progress=show_progress)
        finally:
            await pool.close()

    print("Computing the metrics (cairn metrics refresh)...", file=sys.stderr)
    asyncio.run(run())


def cmd_demo(args: argparse.Namespace) -> int:
    from app.storage.db import EmbeddedPostgres

    data_dir = Path(os.environ.get("CAIRN_DATA_DIR", ".cairn"))
    settings = _demo_settings(data_dir)
    if validate_or_report(settings.layouts_dir):
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
            _refresh_demo_metrics(dsn, settings)
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
        serve(args.host, args.port, 1)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
