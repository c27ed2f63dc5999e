"""What several `cairn` commands share: reporting layout errors, and finding the database."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.settings import Settings

if TYPE_CHECKING:
    from app.storage.db import Pool

T = TypeVar("T")


def validate_or_report(root: Path) -> int:
    """Load the layouts folder; print every problem as `file:line:col: message`. 1 on problems."""
    from app.config.layouts import LayoutConfigError, load_layouts

    try:
        load_layouts(root)
    except LayoutConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    return 0


def command_settings() -> tuple[Settings, bool]:
    """Settings for a command, and whether its identity secret is the deployment's: from the
    environment, else the one `cairn demo` keeps in its data directory (else a new one, for
    commands that do not need it)."""
    import json
    import os

    env = dict(os.environ)
    if not env.get("CAIRN_IDENTITY_SECRET"):
        saved = Path(env.get("CAIRN_DATA_DIR", ".cairn")) / "demo-keys.json"
        if saved.exists():
            for name, value in json.loads(saved.read_text()).items():
                if not env.get(name):
                    env[name] = value
    stable = bool(env.get("CAIRN_IDENTITY_SECRET"))
    return Settings.from_env(env, generate_keys=True), stable


def settings_and_layouts(command: str) -> Any:
    """(settings, layouts) for a command of the analysts' YAML (`cairn metrics show`...), or None
    with every problem printed (`file:line:col: message`)."""
    from app.config.layouts import LayoutConfigError, load_layouts
    from app.settings import ConfigError

    try:
        settings = Settings.from_env(generate_keys=True)
        return settings, load_layouts(settings.layouts_dir)
    except ConfigError as exc:
        print(f"cairn {command}: {exc}", file=sys.stderr)
    except LayoutConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
    return None


def with_layouts_on_database(
    command: str, url: str | None, work: Callable[[Pool, Any], Awaitable[T]]
) -> T | None:
    """`work(pool, layouts)` on the command's database; None, with the problem printed, when
    the layouts do not load or there is no database."""
    loaded = settings_and_layouts(command)
    if loaded is None:
        return None
    settings, layouts = loaded
    try:
        return on_database(settings, url, lambda pool: work(pool, layouts))
    except NoDatabaseError as exc:
        print(f"cairn {command}: {exc}", file=sys.stderr)
    return None


class NoDatabaseError(Exception):
    """Neither a database URL nor an embedded database to fall back on."""


@contextlib.contextmanager
def database(settings: Settings, url: str | None = None) -> Iterator[str]:
    """The DSN to work on: `url`, else DATABASE_URL, else the embedded database that `cairn demo`
    keeps in the data directory (started for the command and stopped after it)."""
    from app.storage.db import EmbeddedPostgres

    dsn = url or settings.database_url
    if dsn:
        yield dsn
        return
    if not (settings.data_dir / "pg").exists():
        raise NoDatabaseError(
            "no database: pass --database-url or set DATABASE_URL "
            f"(or run `cairn demo`, which keeps one in {settings.data_dir})"
        )
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def on_database(
    settings: Settings,
    url: str | None,
    work: Callable[[Pool], Awaitable[T]],
    *,
    connections: int = 3,
) -> T:
    """Run `work(pool)` on the command's database (see `database`), migrated first."""
    from app.storage.db import create_pool, migrate

    async def run(dsn: str) -> T:
        pool = await create_pool(dsn, min_size=1, max_size=connections)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            return await work(pool)
        finally:
            await pool.close()

    with database(settings, url) as dsn:
        return asyncio.run(run(dsn))


def with_pool(
    command: str, work: Callable[[Any], Awaitable[T]], audit: Callable[[T], Any] | None = None
) -> T | None:
    """Run `work(pool)` on DATABASE_URL (else the demo's embedded database), migrated first,
    then put what `audit(result)` says (an AuditEntry, or None) on the audit log; None when
    there is no database."""
    from app.storage.audit import append, audit_key

    settings, stable = command_settings()

    async def run(pool: Any) -> T:
        result = await work(pool)
        entry = audit(result) if audit is not None else None
        if entry is not None and stable:
            async with pool.acquire() as conn:
                await append(conn, audit_key(settings.identity_secret), [entry])
        elif entry is not None:
            print(f"cairn {command}: not on the audit log (set CAIRN_IDENTITY_SECRET)",
                  file=sys.stderr)  # fmt: skip
        return result

    try:
        return on_database(settings, None, run, connections=1)
    except NoDatabaseError as exc:
        print(f"cairn {command}: {exc}", file=sys.stderr)
        return None


def cli_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"
