"""The preference center: `GET` / `PUT /v1/preferences`."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from litestar import MediaType, Request, Response, get, put

from app.engine.profile import Preferences
from app.errors import ConflictError, InvalidInputError, wrong_region
from app.http.auth import Caller, verify_user
from app.http.dependencies import RuntimeDep, SettingsDep
from app.serving.runtime import Runtime
from app.storage.events import tenants_elsewhere
from app.storage.preferences import load_preferences, save_preferences
from app.storage.suppressions import is_suppressed

Req = Request[Any, Any, Any]


@get("/v1/preferences")
async def get_preferences(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    tenant_id: str,
    user_id: str,
) -> Response[bytes]:
    verify_user(principal, request, settings, tenant_id, user_id)
    await _require_here(runtime, tenant_id, user_id, writing=False)
    prefs = await load_preferences(runtime.pool, tenant_id, user_id)
    return Response(content=msgspec.json.encode(prefs), media_type=MediaType.JSON)


@put("/v1/preferences", status_code=200)
async def put_preferences(
    request: Req,
    principal: Caller,
    runtime: RuntimeDep,
    settings: SettingsDep,
    tenant_id: str,
    user_id: str,
) -> Response[bytes]:
    verify_user(principal, request, settings, tenant_id, user_id)
    await _require_here(runtime, tenant_id, user_id, writing=True)
    body = await request.body()
    try:
        prefs = msgspec.json.decode(body, type=Preferences)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `$")
        field = where.rstrip("`").lstrip(".") or None
        if "unknown field" in message:
            field = message.split("`")[1] if "`" in message else field
        raise InvalidInputError(
            "invalid_preferences", message.replace("`", "'") + ".", field
        ) from exc
    except msgspec.DecodeError as exc:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from exc
    purposes = runtime.vocabulary.signals.purposes
    for name, allowed in prefs.purposes.items():
        if name not in purposes:
            known = ", ".join(purposes) or "none"
            raise InvalidInputError(
                "invalid_preferences", f"Unknown purpose '{name}' (known: {known}).",
                f"purposes.{name}",
            )  # fmt: skip
        if purposes[name].required and not allowed:
            raise InvalidInputError(
                "invalid_preferences",
                f"'{name}' is needed to run the product and cannot be turned off.",
                f"purposes.{name}",
            )
    quiet = prefs.notifications.quiet_hours
    if quiet is not None and not _known_zone(quiet.time_zone):
        raise InvalidInputError(
            "invalid_preferences",
            f"Unknown time zone '{quiet.time_zone}': use an IANA name such as 'Europe/Berlin'.",
            "notifications.quiet_hours.time_zone",
        )
    await save_preferences(runtime.pool, tenant_id, user_id, prefs)
    runtime.profiles.invalidate(tenant_id, user_id)
    return Response(content=msgspec.json.encode(prefs), media_type=MediaType.JSON)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name no file can have
        return False
    return True


ROUTES = [get_preferences, put_preferences]


async def _require_here(runtime: Runtime, tenant_id: str, user_id: str, *, writing: bool) -> None:
    """409 for a tenant kept in another region; for a write, 409 for an erased user (nothing is
    kept of them again)."""
    pool = runtime.pool
    if runtime.region is not None:
        elsewhere = await tenants_elsewhere(pool, [tenant_id], runtime.region)
        if tenant_id in elsewhere:
            raise wrong_region(tenant_id, elsewhere[tenant_id], "tenant_id")
    if writing and await is_suppressed(pool, tenant_id, user_id):
        raise ConflictError(
            "user_erased",
            "This user was erased: Cairn keeps nothing of them, preferences included.",
            "user_id",
        )
