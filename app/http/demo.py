"""The demo host app at `/demo/`: a small SaaS page embedding the web SDK, with a persona switcher.

It plays the part of a customer's own server: it knows the identity secret and computes each
persona's X-Cairn-User-Hash, as a real host app would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get

from app.http.auth import user_hash
from app.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "demo.html"
SCREENS = ("home", "editor", "settings", "billing")

Req = Request[Any, Any, Any]


class Persona(msgspec.Struct, frozen=True):
    tenant_id: str
    user_id: str
    label: str
    description: str = ""


def personas_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-personas.json"


def load_personas(settings: Settings) -> list[Persona]:
    path = personas_file(settings)
    if not path.exists():
        return []
    return msgspec.json.decode(path.read_bytes(), type=list[Persona])


@get("/demo/", include_in_schema=False)
async def demo_page(request: Req, persona: int = 0, screen: str = "home") -> Response[str]:
    import jinja2

    settings: Settings = request.app.state.settings
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


ROUTES = [demo_page]
