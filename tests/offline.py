"""A runtime of the layouts alone (no database started), for tests of loading and reloading."""

from __future__ import annotations

from pathlib import Path

from app.serving.runtime import Runtime
from app.settings import Settings


def offline_runtime(layouts_dir: Path) -> Runtime:
    settings = Settings(
        secret_key="s",
        publishable_key="p",
        identity_secret="i",
        layouts_dir=layouts_dir,
        reload_layouts=False,
    )
    return Runtime(settings)
