"""The catalog API: what the product offers (templates, integrations, help, lessons, features).

Deployment-wide secret key only: the catalog is the product's, the same for every tenant.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, put

from app.errors import InvalidInputError, NotFoundError
from app.http.auth import Caller
from app.http.contract import KEYED, WITH_BODY, documented
from app.http.dependencies import RuntimeDep
from app.storage.catalog import get_item, list_items, put_items
from app.storage.keys import Principal
from recommender.catalog import CatalogItem, ItemKind

Req = Request[Any, Any, Any]

_ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_Word = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CatalogItemBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`PUT /v1/catalog/items/{id}`: everything but the id, which is in the path."""

    kind: ItemKind
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    href: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    tags: Annotated[list[_Word], msgspec.Meta(max_length=50)] = []
    industries: Annotated[list[_Word], msgspec.Meta(max_length=50)] = []
    roles: Annotated[list[_Word], msgspec.Meta(max_length=20)] = []


def _require_deployment_key(principal: Principal) -> None:
    principal.require_deployment("The catalog is shared by every tenant")


def _safe_href(href: str) -> bool:
    if href.startswith("//"):
        return False  # protocol-relative: another host
    return href == "" or href.startswith(("https://", "http://", "/"))


@put(
    "/v1/catalog/items/{item_id:str}",
    status_code=200,
    opt=documented(
        "Create (201) or replace (200) a catalog item",
        ok=CatalogItem,
        also=(201,),
        body=CatalogItemBody,
        errors=(*KEYED, *WITH_BODY),
    ),
)
async def put_catalog_item(
    request: Req, principal: Caller, runtime: RuntimeDep, item_id: str
) -> Response[bytes]:
    _require_deployment_key(principal)
    if not _ITEM_ID.match(item_id):
        raise InvalidInputError(
            "invalid_request",
            "Item ids are 1 to 128 letters, digits and _ . : - (starting with a letter or digit).",
            "id",
        )
    try:
        body = msgspec.json.decode(await request.body(), type=CatalogItemBody)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or None
        if "unknown field" in message and "`" in message:
            field = message.split("`")[1]
        raise InvalidInputError("invalid_item", message.replace("`", "'") + ".", field) from None
    except msgspec.DecodeError:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from None
    if not _safe_href(body.href):
        raise InvalidInputError("invalid_item", "href must be an http(s) URL or a path.", "href")
    item = CatalogItem(
        id=item_id,
        kind=body.kind,
        title=body.title.strip(),
        description=body.description.strip(),
        href=body.href,
        tags=tuple(body.tags),
        industries=tuple(body.industries),
        roles=tuple(body.roles),
    )
    (created,) = await put_items(runtime.pool, [item], runtime.embedder.model_id)
    return Response(
        content=msgspec.json.encode(item),
        media_type=MediaType.JSON,
        status_code=201 if created else 200,
    )


@get(
    "/v1/catalog/items/{item_id:str}",
    opt=documented("One catalog item", ok=CatalogItem, errors=(*KEYED, 400)),
)
async def get_catalog_item(principal: Caller, runtime: RuntimeDep, item_id: str) -> Response[bytes]:
    _require_deployment_key(principal)
    item = await get_item(runtime.pool, item_id)
    if item is None:
        raise NotFoundError("not_found", f"No catalog item '{item_id}'.", "id")
    return Response(content=msgspec.json.encode(item), media_type=MediaType.JSON)


class ItemPage(msgspec.Struct):
    items: list[CatalogItem]
    next: str | None


@get(
    "/v1/catalog/items",
    opt=documented("The catalog, a page at a time", ok=ItemPage, errors=(*KEYED, 400)),
)
async def list_catalog_items(
    principal: Caller,
    runtime: RuntimeDep,
    kind: str | None = None,
    after: str = "",
    limit: int = 100,
) -> Response[bytes]:
    _require_deployment_key(principal)
    if kind is not None and kind not in ("template", "integration", "article", "lesson", "feature"):
        raise InvalidInputError("invalid_request", f"Unknown kind '{kind}'.", "kind")
    if not 1 <= limit <= 500:
        raise InvalidInputError("invalid_request", "limit must be from 1 to 500.", "limit")
    items = await list_items(runtime.pool, kind=kind, after=after, limit=limit)
    page = ItemPage(items=items, next=items[-1].id if len(items) == limit else None)
    return Response(content=msgspec.json.encode(page), media_type=MediaType.JSON)


ROUTES = [put_catalog_item, get_catalog_item, list_catalog_items]
