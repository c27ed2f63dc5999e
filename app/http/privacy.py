"""Erasure and export: one user's data, or a whole tenant's (offboarding), each put on the audit
log before the answer.

    DELETE /v1/users/{user_id}?tenant_id=      erase the user; their later events are dropped
    GET    /v1/users/{user_id}/export?tenant_id=   everything held about the user, as JSON
    DELETE /v1/tenants/{tenant_id}             erase the tenant, its users and its keys
    GET    /v1/tenants/{tenant_id}/export      everything of the tenant, as JSON lines
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, delete, get
from litestar.response import Stream

from app.errors import RateLimitedError
from app.http.auth import Caller, caller_name, check_id
from app.http.contract import KEYED, OBJECT, TEXT, documented
from app.http.dependencies import RuntimeDep
from app.http.errors import json_response
from app.storage.privacy import erase_tenant, erase_user, export_tenant, export_user

_ROWS = {"type": "object", "additionalProperties": {"type": "integer"}}
ERASED = {
    "type": "object",
    "properties": {
        "tenant_id": {"type": "string"},
        "user_id": {"type": "string"},
        "erased": _ROWS,
        "suppressed": {"type": "boolean"},
    },
    "required": ["tenant_id", "erased", "suppressed"],
}
EXPORTED = {
    "type": "object",
    "properties": {
        "tenant_id": {"type": "string"},
        "user_id": {"type": "string"},
        "exported_at": {"type": "string", "format": "date-time"},
        "tables": {"type": "object", "additionalProperties": {"type": "array", "items": OBJECT}},
    },
    "required": ["tenant_id", "user_id", "exported_at", "tables"],
}

Req = Request[Any, Any, Any]


@delete(
    "/v1/users/{user_id:str}",
    status_code=200,
    opt=documented(
        "Erase one user and suppress their later events", ok=ERASED, errors=(*KEYED, 400)
    ),
)
async def delete_user(
    request: Req, principal: Caller, runtime: RuntimeDep, user_id: str, tenant_id: str
) -> Response[bytes]:
    """Erase one user: events, aggregates, preferences, assignments, metric rows, and what
    every process cached of them; later events for them are dropped (counted, not stored)."""
    principal.require_secret()
    check_id("tenant_id", tenant_id)
    check_id("user_id", user_id)
    principal.require_tenant(tenant_id)
    rows = await erase_user(runtime.pool, tenant_id, user_id)
    runtime.forget({(tenant_id, user_id)})
    runtime.audit.record(
        "user.erased", caller_name(request), {"rows": rows, "suppressed": True},
        tenant_id=tenant_id, subject=runtime.audit.subject(tenant_id, user_id),
    )  # fmt: skip
    await runtime.audit.flush(runtime.pool)
    return json_response(
        {"tenant_id": tenant_id, "user_id": user_id, "erased": rows, "suppressed": True}
    )


@get(
    "/v1/users/{user_id:str}/export",
    opt=documented("Everything held about one user, by table", ok=EXPORTED, errors=(*KEYED, 400)),
)
async def get_user_export(
    request: Req, principal: Caller, runtime: RuntimeDep, user_id: str, tenant_id: str
) -> Response[bytes]:
    """Everything Cairn holds about one user, by table."""
    principal.require_secret()
    check_id("tenant_id", tenant_id)
    check_id("user_id", user_id)
    principal.require_tenant(tenant_id)
    tables = await export_user(runtime.pool, tenant_id, user_id)
    runtime.audit.record(
        "user.exported", caller_name(request), {"rows": {t: len(r) for t, r in tables.items()}},
        tenant_id=tenant_id, subject=runtime.audit.subject(tenant_id, user_id),
    )  # fmt: skip
    await runtime.audit.flush(runtime.pool)
    return json_response({
        "tenant_id": tenant_id, "user_id": user_id,
        "exported_at": datetime.now(UTC), "tables": tables,
    })  # fmt: skip


@delete(
    "/v1/tenants/{tenant_id:str}",
    status_code=200,
    opt=documented(
        "Erase a tenant, its users and its keys; suppress its later events",
        ok=ERASED,
        errors=(*KEYED, 400),
    ),
)
async def delete_tenant(
    request: Req, principal: Caller, runtime: RuntimeDep, tenant_id: str
) -> Response[bytes]:
    """Offboarding: erase the tenant, every user's data and its API keys; later events dropped."""
    principal.require_deployment()
    check_id("tenant_id", tenant_id)
    rows = await erase_tenant(runtime.pool, tenant_id)
    runtime.forget(set(), [tenant_id])
    runtime.audit.record("tenant.erased", caller_name(request),
                         {"rows": rows, "suppressed": True}, tenant_id=tenant_id)  # fmt: skip
    await runtime.audit.flush(runtime.pool)
    return json_response({"tenant_id": tenant_id, "erased": rows, "suppressed": True})


@get(
    "/v1/tenants/{tenant_id:str}/export",
    opt=documented(
        'Everything of one tenant as JSON lines, `{"table", "row"}`',
        ok=TEXT,
        ok_media="application/x-ndjson",
        errors=(*KEYED, 400),
    ),
)
async def get_tenant_export(
    request: Req, principal: Caller, runtime: RuntimeDep, tenant_id: str
) -> Stream:
    """Everything of one tenant as JSON lines, `{"table": ..., "row": {...}}`, table by table."""
    principal.require_secret()
    check_id("tenant_id", tenant_id)
    principal.require_tenant(tenant_id)
    if runtime.exports.locked():
        raise RateLimitedError(
            "export_running",
            "As many tenant exports as this server streams at once are running; retry shortly.",
            retry_after=30,
        )
    runtime.audit.record("tenant.exported", caller_name(request), {}, tenant_id=tenant_id)
    await runtime.audit.flush(runtime.pool)
    pool = runtime.pool

    async def lines() -> AsyncIterator[bytes]:
        encode = msgspec.json.encode
        async with (
            runtime.exports,
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for table, row in export_tenant(conn, tenant_id):
                yield encode({"table": table, "row": row}) + b"\n"

    return Stream(lines(), media_type="application/x-ndjson")


ROUTES = [delete_user, get_user_export, delete_tenant, get_tenant_export]
