"""The catalog in PostgreSQL: items as the API writes them, and their embeddings."""

from __future__ import annotations

from typing import Any

from app.storage.db import Pool
from recommender.catalog import CatalogItem, content_hash

CATALOG_CHANNEL = "cairn_catalog"  # NOTIFY here when items change: embed and re-index them

_UPSERT = """
INSERT INTO catalog_items (item_id, kind, title, description, href, tags, industries, roles,
                           content_hash, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
ON CONFLICT (item_id) DO UPDATE SET
    kind = EXCLUDED.kind, title = EXCLUDED.title, description = EXCLUDED.description,
    href = EXCLUDED.href, tags = EXCLUDED.tags, industries = EXCLUDED.industries,
    roles = EXCLUDED.roles, content_hash = EXCLUDED.content_hash, updated_at = now()
RETURNING (xmax = 0) AS created
"""


async def put_items(pool: Pool, items: list[CatalogItem], model_id: str) -> list[bool]:
    """Create or replace items in one transaction; True for each item that was new."""
    created: list[bool] = []
    async with pool.acquire() as conn, conn.transaction():
        for item in items:
            row = (
                item.id,
                item.kind,
                item.title,
                item.description,
                item.href,
                list(item.tags),
                list(item.industries),
                list(item.roles),
                content_hash(item, model_id),
            )
            created.append(await conn.fetchval(_UPSERT, *row))
        await conn.execute("SELECT pg_notify($1, 'changed')", CATALOG_CHANNEL)
    return created


def _item(row: Any) -> CatalogItem:
    return CatalogItem(
        id=row["item_id"],
        kind=row["kind"],
        title=row["title"],
        description=row["description"],
        href=row["href"],
        tags=tuple(row["tags"]),
        industries=tuple(row["industries"]),
        roles=tuple(row["roles"]),
    )


async def list_items(
    pool: Pool, *, kind: str | None = None, after: str = "", limit: int = 100
) -> list[CatalogItem]:
    rows = await pool.fetch(
        "SELECT * FROM catalog_items WHERE item_id > $1 AND ($2::text IS NULL OR kind = $2)"
        " ORDER BY item_id LIMIT $3",
        after,
        kind,
        limit,
    )
    return [_item(r) for r in rows]


async def get_item(pool: Pool, item_id: str) -> CatalogItem | None:
    row = await pool.fetchrow("SELECT * FROM catalog_items WHERE item_id = $1", item_id)
    return _item(row) if row else None


async def stale_items(pool: Pool, limit: int = 256) -> list[tuple[CatalogItem, str]]:
    """Items whose text (or the model) changed since they were embedded, with the new hash."""
    rows = await pool.fetch(
        "SELECT * FROM catalog_items WHERE embedded_hash IS DISTINCT FROM content_hash"
        " ORDER BY item_id LIMIT $1",
        limit,
    )
    return [(_item(r), r["content_hash"]) for r in rows]


async def save_embeddings(pool: Pool, done: list[tuple[str, str, bytes]], model_id: str) -> None:
    """(item_id, content hash embedded, float32 vector bytes) for each embedded item."""
    await pool.executemany(
        "UPDATE catalog_items SET embedding = $3, embedded_hash = $2, model = $4"
        " WHERE item_id = $1 AND content_hash = $2",
        [(item_id, digest, vector, model_id) for item_id, digest, vector in done],
    )


async def embedded_items(pool: Pool) -> list[tuple[CatalogItem, bytes]]:
    rows = await pool.fetch(
        "SELECT * FROM catalog_items WHERE embedding IS NOT NULL"
        " AND embedded_hash = content_hash ORDER BY item_id"
    )
    return [(_item(r), bytes(r["embedding"])) for r in rows]


async def refresh_hashes(pool: Pool, model_id: str) -> int:
    """After a model change every item needs a new embedding: recompute the content hashes."""
    rows = await pool.fetch("SELECT * FROM catalog_items")
    updates = [
        (r["item_id"], content_hash(_item(r), model_id))
        for r in rows
        if r["content_hash"] != content_hash(_item(r), model_id)
    ]
    if updates:
        await pool.executemany(
            "UPDATE catalog_items SET content_hash = $2 WHERE item_id = $1", updates
        )
    return len(updates)
