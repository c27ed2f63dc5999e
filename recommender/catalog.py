"""Catalog items: what the product offers, the text the recommender embeds, and its content hash.

An item is a template, integration, help article, micro-lesson or feature, as the catalog API
(`PUT /v1/catalog/items/{id}`) takes it. Empty `industries` or `roles` mean every industry or
role. `tags` carry topics; a tag that names a product feature (reports, automations, sso…) links
the item to that feature: friction with the feature finds help tagged with it, and a template,
integration, lesson or feature tagged with a feature the tenant's plan lacks is not recommended
to that tenant.

Vectors are keyed by `content_hash(item, model_id)`: the hash of the embedded text and the model,
so an item whose text did not change is never embedded again, and changing the model re-embeds
everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import msgspec
import numpy as np

from recommender.embedder import Embedder, Vectors

__all__ = [
    "KINDS",
    "Catalog",
    "CatalogItem",
    "EmbedBatch",
    "ItemKind",
    "content_hash",
    "decode_items",
    "embed_changed",
    "embedding_text",
    "off_plan",
    "on_plan",
]

ItemKind = Literal["template", "integration", "article", "lesson", "feature"]
KINDS: Final[tuple[ItemKind, ...]] = get_args(ItemKind)
# Kinds a plan can put out of reach (help is readable on any plan).
GATED_KINDS: Final[frozenset[str]] = frozenset({"template", "integration", "lesson", "feature"})

_KIND_WORDS: Final[Mapping[str, str]] = {
    "template": "Template",
    "integration": "Integration",
    "article": "Help article",
    "lesson": "Lesson",
    "feature": "Feature",
}


class CatalogItem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing the product offers, as `PUT /v1/catalog/items/{id}` describes it."""

    id: str
    kind: ItemKind
    title: str
    description: str = ""
    href: str = ""
    tags: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    def for_industry(self, industry: str | None) -> bool:
        return not self.industries or (industry is not None and industry in self.industries)

    def for_role(self, role: str | None) -> bool:
        return not self.roles or (role is not None and role in self.roles)


def decode_items(data: bytes | str) -> list[CatalogItem]:
    """A JSON array of catalog items (unknown fields are ignored, as on the wire)."""
    return msgspec.json.decode(data, type=list[CatalogItem])


def embedding_text(item: CatalogItem) -> str:
    """The text the recommender embeds for an item: what it is, what it does, for whom."""
    parts = [f"{_KIND_WORDS[item.kind]}: {item.title.strip()}."]
    if item.description.strip():
        parts.append(item.description.strip())
    if item.tags:
        parts.append("Topics: " + ", ".join(t.replace("_", " ") for t in item.tags) + ".")
    if item.industries:
        parts.append("For " + ", ".join(item.industries) + " teams.")
    if item.roles:
        parts.append("For " + ", ".join(r.replace("_", " ") + "s" for r in item.roles) + ".")
    return " ".join(parts)


def content_hash(item: CatalogItem, model_id: str) -> str:
    """Changes exactly when the embedded text or the model changes."""
    digest = hashlib.sha256(f"{model_id}\n{embedding_text(item)}".encode())
    return digest.hexdigest()


def on_plan(item: CatalogItem, plan_features: Collection[str], features: Collection[str]) -> bool:
    """Whether a tenant whose plan has `plan_features` can use the item.

    `features` are every product feature that exists (the plans' union); an item tagged with one
    that the plan lacks is out of reach, unless it is help, which anyone may read.
    """
    if item.kind not in GATED_KINDS:
        return True
    needed = [t for t in item.tags if t in features]
    if item.kind == "feature" and item.id in features:
        needed.append(item.id)
    return all(f in plan_features for f in needed)


def off_plan(
    items: Iterable[CatalogItem], plan_features: Collection[str], features: Collection[str]
) -> set[str]:
    """The ids of the items a plan puts out of reach (for `peer_candidates(unavailable=...)`)."""
    return {i.id for i in items if not on_plan(i, plan_features, features)}


@dataclass(frozen=True, slots=True)
class EmbedBatch:
    """The items whose text changed, embedded; the ids that were already up to date."""

    ids: list[str]
    hashes: list[str]
    vectors: Vectors
    unchanged: list[str]


def embed_changed(
    items: Iterable[CatalogItem], embedder: Embedder, known: Mapping[str, str]
) -> EmbedBatch:
    """Embed the items whose content hash differs from `known` (item id → stored hash)."""
    todo: list[CatalogItem] = []
    hashes: list[str] = []
    unchanged: list[str] = []
    for item in items:
        digest = content_hash(item, embedder.model_id)
        if known.get(item.id) == digest:
            unchanged.append(item.id)
        else:
            todo.append(item)
            hashes.append(digest)
    vectors = (
        embedder.embed([embedding_text(i) for i in todo])
        if todo
        else np.zeros((0, embedder.dim), dtype=np.float32)
    )
    return EmbedBatch([i.id for i in todo], hashes, vectors, unchanged)


class Catalog(Mapping[str, CatalogItem]):
    """Catalog items by id, with lookups by kind."""

    def __init__(self, items: Iterable[CatalogItem]) -> None:
        self._items: dict[str, CatalogItem] = {}
        for item in items:
            if item.id in self._items:
                raise ValueError(f"catalog item {item.id!r} appears twice")
            self._items[item.id] = item

    def __getitem__(self, item_id: str) -> CatalogItem:
        return self._items[item_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def of_kind(self, *kinds: ItemKind) -> list[CatalogItem]:
        return [i for i in self._items.values() if i.kind in kinds]

    def texts(self, ids: Sequence[str]) -> list[str]:
        return [embedding_text(self._items[i]) for i in ids]
