"""What several `cairn` commands share: reporting layout errors, and finding the database."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from app.settings import Settings


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
