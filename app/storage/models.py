"""Trained models in PostgreSQL: saved by `cairn models train`, loaded by every server."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

import msgspec

from app.engine.propensity import PropensityModels
from app.storage.db import Pool

log = logging.getLogger("cairn.models")

MODELS_CHANNEL: Final = "cairn_models"  # notified (empty payload) when models are saved
PROPENSITY: Final = "propensity"


async def save_models(pool: Pool, models: PropensityModels) -> None:
    """Replace the saved propensity models and tell running servers (after the commit)."""
    trained_at = datetime.fromisoformat(models.trained_at)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO models (name, body, trained_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body,"
            " trained_at = EXCLUDED.trained_at, saved_at = now()",
            PROPENSITY,
            msgspec.to_builtins(models),
            trained_at,
        )
        await conn.execute("SELECT pg_notify($1, '')", MODELS_CHANNEL)


async def load_models(pool: Pool) -> PropensityModels | None:
    """The saved propensity models; None when none were saved, or when the saved ones do not fit
    this version's shape (they are then ignored until trained again)."""
    body = await pool.fetchval("SELECT body FROM models WHERE name = $1", PROPENSITY)
    if body is None:
        return None
    try:
        return msgspec.convert(body, PropensityModels)
    except msgspec.ValidationError as exc:
        log.warning("ignoring the saved propensity models: %s (run `cairn models train`)", exc)
        return None
