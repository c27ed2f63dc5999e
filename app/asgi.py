"""ASGI entry point for servers: `granian --interface asgi --factory app.asgi:create`."""

from __future__ import annotations

import logging
import os

from litestar import Litestar

from app.main import create_app
from app.settings import Settings


def create() -> Litestar:
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it narrates its CPU probing
    logging.basicConfig(
        level=os.environ.get("CAIRN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return create_app(Settings.from_env(), demo=os.environ.get("CAIRN_DEMO") == "1")
