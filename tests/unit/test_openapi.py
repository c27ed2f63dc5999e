"""The OpenAPI document says what the API does: every operation has its contract (request body,
answers, errors, who may call), from the types the handlers decode and encode."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from app.http.contract import openapi_document, routes_documented
from app.main import create_app
from app.settings import Settings

SETTINGS = Settings(
    secret_key="sk_unit",
    publishable_key="pk_unit",
    identity_secret="whsec_unit",
    database_url="postgresql://127.0.0.1:1/none",  # never connected: the document needs none
)


@functools.cache
def document() -> dict[str, Any]:
    """The document the server serves at /schema/openapi.json (as JSON)."""
    doc = openapi_document(create_app(SETTINGS))
    body: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))
    return body


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    doc = document()
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_every_route_states_its_contract() -> None:
    app = create_app(SETTINGS)
    missing = [(m, p) for m, p, d in routes_documented(app) if d is None]
    assert missing == []
    assert len(operations()) >= 40


def test_errors_are_the_error_envelope_and_keys_are_security_schemes() -> None:
    doc = document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["secretKey"] == {**schemes["secretKey"], "type": "http", "scheme": "bearer"}
    assert schemes["userHash"]["name"] == "X-Cairn-User-Hash"
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    for method, path, op in operations():
        for status, answer in op["responses"].items():
            if status.startswith("4") and not path.startswith("/ofrep"):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path)
        keyed = {"401", "403"} <= set(op["responses"])
        assert keyed == bool(op["security"]), (method, path)


def test_bodies_and_answers_are_described_by_their_types() -> None:
    paths = document()["paths"]
    events = paths["/v1/events"]["post"]
    assert set(events["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert events["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IngestAnswer"
    }
    assert {"409", "413", "415", "503"} <= set(events["responses"])
    layout = paths["/v1/layouts/{screen}"]["get"]
    assert "304" in layout["responses"] and "404" in layout["responses"]
    assert layout["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LayoutDescriptor"
    }
    put_item = paths["/v1/catalog/items/{item_id}"]["put"]
    assert {"200", "201"} <= set(put_item["responses"])
    item_schema = document()["components"]["schemas"]["CatalogItemBody"]
    assert item_schema["additionalProperties"] is False and "kind" in item_schema["required"]
    prefs = paths["/v1/preferences"]["put"]["requestBody"]["content"]["application/json"]
    assert prefs["schema"] == {"$ref": "#/components/schemas/Preferences"}
    # no JSON answer is declared as a bare string (Litestar's guess for Response[bytes])
    for method, path, op in operations():
        for answer in op["responses"].values():
            json_body = answer.get("content", {}).get("application/json")
            if json_body is not None:
                assert json_body["schema"] != {"type": "string"}, (method, path)
