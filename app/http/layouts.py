"""`GET /v1/layouts/{screen}` and its live stream, and the descriptor's JSON Schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.http.auth import Caller, verify_user
from app.http.contract import BROWSER, KEYED, PUBLIC, TEXT, documented
from app.http.dependencies import RuntimeDep, SettingsDep
from app.serving.decisions import decide_layout, parse_client, require_screen
from widgets.descriptor import LayoutDescriptor

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "widgets" / "layout.schema.json"
HEARTBEAT_S = 15.0

Req = Request[Any, Any, Any]


@get(
    "/v1/layouts/{screen:str}",
    opt=documented(
        "The layout descriptor for one user and screen",
        ok=LayoutDescriptor,
        also=(304,),
        errors=(*KEYED, 400, 409),
        auth=BROWSER,
    ),
)
async def get_layout(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    screen: str,
    tenant_id: str,
    user_id: str,
    view: str | None = None,
) -> Response[bytes]:
    verify_user(principal, request, settings, tenant_id, user_id)
    served = await decide_layout(
        runtime,
        screen,
        tenant_id,
        user_id,
        view=view,
        caps=parse_client(request.headers.get("x-cairn-client")),
    )
    headers = {
        "ETag": served.etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, X-Cairn-Client, X-Cairn-User-Hash",
    }
    if if_none_match(request.headers.get("if-none-match", ""), served.etag):
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=served.body, media_type=MediaType.JSON, headers=headers)


@get(
    "/v1/layouts/{screen:str}/stream",
    opt=documented(
        "Server-Sent Events: `event: layout` with a fresh descriptor whenever the decision changes",
        ok=TEXT,
        ok_media="text/event-stream",
        errors=(*KEYED, 400, 409),
        auth=BROWSER,
    ),
)
async def stream_layout(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    screen: str,
    tenant_id: str,
    user_id: str,
    view: str | None = None,
) -> ServerSentEvent:
    verify_user(principal, request, settings, tenant_id, user_id)
    rt = runtime
    caps = parse_client(request.headers.get("x-cairn-client"))
    require_screen(rt.layouts, screen)

    async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
        # Subscribe first, then decide: a change that lands in between is not lost.
        queue = rt.hub.subscribe(tenant_id, user_id)
        try:
            first = await decide_layout(rt, screen, tenant_id, user_id, view=view, caps=caps)
            last = first.etag
            yield ServerSentEventMessage(event="layout", data=first.body.decode(), id=first.etag)
            while True:
                try:
                    await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
                    continue
                served = await decide_layout(rt, screen, tenant_id, user_id, view=view, caps=caps)
                if served.etag != last:
                    last = served.etag
                    yield ServerSentEventMessage(
                        event="layout", data=served.body.decode(), id=served.etag
                    )
        finally:
            rt.hub.unsubscribe(tenant_id, user_id, queue)

    return ServerSentEvent(
        events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@get(
    "/v1/schema/layout.json",
    opt=documented("The descriptor's JSON Schema", errors=(), auth=PUBLIC),
)
async def layout_schema() -> Response[bytes]:
    return Response(
        content=SCHEMA_FILE.read_bytes(),
        media_type=MediaType.JSON,
        headers={"Cache-Control": "public, max-age=300"},
    )


def if_none_match(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: a list of (possibly weak) entity tags, or `*`."""
    for listed in if_none_match.split(","):
        tag = listed.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


ROUTES = [get_layout, stream_layout, layout_schema]
