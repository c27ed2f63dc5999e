"""The API's contract as the OpenAPI document at `/schema/openapi.json` tells it.

Each route states what it reads and answers beside its handler (`opt=documented(...)`): its
request body, its success answers (type and media type), the errors it can give and who may
call it. `openapi_document` lays that over what Litestar derives from the handlers' signatures
(paths, parameters): request and response schemas come from the same msgspec types the handlers
decode and encode, every error from the one error body (`{"error": {"code", "message",
"field"}}`), and the security schemes from how keys are checked (`app.http.auth`). A test holds
every route to having a contract, and schemathesis holds the server to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute

from app.http.errors import ErrorEnvelope

CONTRACT = "cairn.contract"

OBJECT: dict[str, Any] = {"type": "object"}
TEXT: dict[str, Any] = {"type": "string"}

# Who may call: the secret key (the deployment's or a tenant's), or a browser's publishable key
# with the user's hash; an empty tuple is public.
SECRET = ("secret",)
BROWSER = ("secret", "browser")
PUBLIC: tuple[str, ...] = ()

# Errors every route with a key can give: no or an unknown key (401), a key that may not do this
# (403), a tenant the key cannot see (404), over a rate limit (429), the database unavailable
# (503). Routes with a body add 400, 408 (stalled), 413 and 415.
KEYED = (401, 403, 404, 429, 503)
WITH_BODY = (400, 408, 413, 415)

_ERRORS: dict[int, str] = {
    400: "Invalid input: `field` names what to fix.",
    401: "No key, or a key Cairn does not know.",
    403: "This key (or the user hash) may not do this.",
    404: "No such thing, or one this key may not see.",
    408: "The request body stopped arriving before it was whole.",
    409: "The data is kept in another region, or the user was erased.",
    413: "The body is over its size limit.",
    415: "The body's Content-Encoding is not one Cairn reads.",
    429: "Over a rate limit: retry after `Retry-After` seconds.",
    503: "A dependency (the database) cannot answer now: retry later.",
}
_SUCCESS: dict[int, str] = {
    200: "OK",
    201: "Created",
    304: "Not modified: the `ETag` sent in `If-None-Match` is current.",
}


@dataclass(frozen=True, kw_only=True)
class Doc:
    """One route's contract. `ok`: the success body (a msgspec type, or a JSON Schema), `None`
    for none; `body`: the request body likewise."""

    summary: str
    ok: Any = field(default_factory=lambda: OBJECT)
    ok_media: str = "application/json"
    also: tuple[int, ...] = ()  # more success statuses: 201, 304
    alternatives: Mapping[str, Any] = field(default_factory=dict)  # more media types: schema
    body: Any = None
    body_media: tuple[str, ...] = ("application/json",)
    body_required: bool = True
    errors: tuple[int, ...] = KEYED
    auth: tuple[str, ...] = SECRET
    ok_status: int = 200
    statuses: Mapping[int, Any] = field(default_factory=dict)  # status → its own body's schema


def documented(summary: str, **fields: Any) -> dict[str, Doc]:
    """The `opt` of a route: its contract."""
    return {CONTRACT: Doc(summary=summary, **fields)}


_SECURITY_SCHEMES = {
    "secretKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The secret key (deployment-wide, or one tenant's): servers only.",
    },
    "publishableKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The publishable key: browsers and mobile apps, with the user's hash.",
    },
    "userHash": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Cairn-User-Hash",
        "description": "HMAC-SHA256 of `tenant_id:user_id` under the identity secret, computed "
        "by the product's server: proves which user a publishable-key caller acts for.",
    },
}
_REQUIREMENTS: dict[str, dict[str, list[str]]] = {
    "secret": {"secretKey": []},
    "browser": {"publishableKey": [], "userHash": []},
}
_PARAM = re.compile(r"\{(\w+):\w+\}")


def routes_documented(app: Litestar) -> Iterable[tuple[str, str, Doc | None]]:
    """(method, OpenAPI path, contract) of every route in the schema."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        if path == "/schema" or path.startswith("/schema/"):
            continue  # the document itself
        for handler in route.route_handlers:
            if not handler.include_in_schema:
                continue
            for method in sorted(handler.http_methods):
                if method in ("HEAD", "OPTIONS"):
                    continue
                yield method.lower(), path, handler.opt.get(CONTRACT)


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI document: Litestar's paths and parameters, with each route's contract."""
    doc = app.openapi_schema.to_schema()
    docs = [(m, p, d) for m, p, d in routes_documented(app) if d is not None]
    types: list[Any] = [ErrorEnvelope]
    for _, _, d in docs:
        types += [t for t in (d.ok, d.body) if t is not None and not isinstance(t, dict)]
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    doc["components"]["securitySchemes"] = _SECURITY_SCHEMES
    for method, path, d in docs:
        op = doc["paths"][path][method]
        op["summary"] = d.summary
        op["responses"] = _responses(d)
        if d.body is not None:
            op["requestBody"] = {
                "required": d.body_required,
                "content": {media: {"schema": _schema(d.body)} for media in d.body_media},
            }
        else:
            op.pop("requestBody", None)
        if d.auth:
            op["security"] = [_REQUIREMENTS[a] for a in d.auth]
        else:
            op["security"] = []
    return doc


def _responses(d: Doc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    content = {d.ok_media: {"schema": _schema(d.ok)}} if d.ok is not None else None
    if content is not None:
        content.update({media: {"schema": _schema(s)} for media, s in d.alternatives.items()})
    out[str(d.ok_status)] = {"description": _SUCCESS.get(d.ok_status, "OK")}
    if content is not None:
        out[str(d.ok_status)]["content"] = content
    for status in d.also:
        answer: dict[str, Any] = {"description": _SUCCESS[status]}
        if status != 304 and content is not None:
            answer["content"] = content
        out[str(status)] = answer
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for status in sorted(set(d.errors)):
        out[str(status)] = {"description": _ERRORS[status], "content": error}
    for status, schema in d.statuses.items():
        out[str(status)] = {
            "description": _ERRORS.get(status, "See the body."),
            "content": {"application/json": {"schema": _schema(schema)}},
        }
    return dict(sorted(out.items()))


def _schema(t: Any) -> dict[str, Any]:
    if isinstance(t, dict):
        return t
    schema, _ = msgspec.json.schema_components([t], ref_template="#/components/schemas/{name}")
    return dict(schema[0])


class ContractJson(JsonRenderPlugin):
    """`/schema` and `/schema/openapi.json`: the document with every route's contract, built
    once per app."""

    def __init__(self) -> None:
        super().__init__(path=["/openapi.json", "/"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        del openapi_schema  # Litestar's own, without the contracts
        state = request.app.state
        if "contract_json" not in state:
            state["contract_json"] = msgspec.json.encode(openapi_document(request.app))
        body: bytes = state["contract_json"]
        return body
