"""The demo host app at `/demo/`: a small SaaS page embedding the web SDK, with a persona switcher.

It plays the part of a customer's own server: it knows the identity secret and computes each
persona's X-Cairn-User-Hash, as a real host app would.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post

from app.errors import InvalidInputError
from app.http.dependencies import RuntimeDep, SettingsDep
from app.ingest.segment import parse_batch, pii_key
from app.ingest.service import accept
from app.serving.identity import user_hash

TEMPLATE = Path(__file__).resolve().parent / "templates" / "demo.html"
SCREENS = ("home", "editor", "settings", "billing")

Req = Request[Any, Any, Any]


class Persona(msgspec.Struct, frozen=True):
    tenant_id: str
    user_id: str
    label: str
    description: str = ""


def personas_file(settings: SettingsDep) -> Path:
    return settings.data_dir / "demo-personas.json"


def load_personas(settings: SettingsDep) -> list[Persona]:
    path = personas_file(settings)
    if not path.exists():
        return []
    return msgspec.json.decode(path.read_bytes(), type=list[Persona])


@get("/demo/", include_in_schema=False)
async def demo_page(
    request: Req, settings: SettingsDep, persona: int = 0, screen: str = "home"
) -> Response[str]:
    import jinja2

    personas = load_personas(settings)
    current = personas[persona] if 0 <= persona < len(personas) else None
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    config = {
        "host": str(request.base_url).rstrip("/"),
        "key": settings.publishable_key,
        "tenantId": current.tenant_id if current else "",
        "userId": current.user_id if current else "",
        "userHash": user_hash(settings.identity_secret, current.tenant_id, current.user_id)
        if current
        else "",
    }
    html = template.render(
        personas=list(enumerate(personas)),
        current=current,
        persona_index=persona,
        screen=screen if screen in SCREENS else "home",
        screens=SCREENS,
        config_json=json.dumps(config).replace("<", "\\u003c"),
    )
    return Response(content=html, media_type=MediaType.HTML)


class DemoAction(msgspec.Struct, forbid_unknown_fields=True):
    """What the demo page asks its own server to report, as the product's backend would."""

    persona: int
    event: str
    properties: dict[str, object] = {}
    times: int = 1


@post("/demo/act", include_in_schema=False, status_code=200)
async def demo_act(request: Req, runtime: RuntimeDep, settings: SettingsDep) -> dict[str, int]:
    """The demo's backend: product events (an integration connected, a limit hit...) are sent
    server to server with the secret key, as in a real integration; the browser never can."""
    try:
        action = msgspec.json.decode(await request.body(), type=DemoAction)
    except msgspec.ValidationError as exc:
        raise InvalidInputError("invalid_request", str(exc)) from None
    except msgspec.DecodeError:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from None
    personas = load_personas(settings)
    if not 0 <= action.persona < len(personas) or not 1 <= action.times <= 10:
        raise InvalidInputError(
            "invalid_request", "Unknown persona or too many repeats.", "persona"
        )
    who = personas[action.persona]
    now = datetime.now(UTC)
    batch = {
        "batch": [
            {
                "type": "track",
                "messageId": f"demo-{uuid.uuid4().hex}",
                "tenantId": who.tenant_id,
                "userId": who.user_id,
                "event": action.event,
                "properties": action.properties,
                "timestamp": now.isoformat(),
            }
            for _ in range(action.times)
        ]
    }
    parsed = parse_batch(
        msgspec.json.encode(batch),
        received_at=now,
        pii_mode=settings.pii_mode,
        pii_key=pii_key(settings.identity_secret),
    )
    answer = await accept(runtime, parsed)
    return {"accepted": answer.accepted}


ROUTES = [demo_page, demo_act]
