"""Operations: liveness, readiness, the process's metrics for Prometheus, and the web SDK served
with caching that outlives outages."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from typing import Any

from litestar import MediaType, Response, get

from app.http.auth import Caller
from app.http.contract import OBJECT, PUBLIC, TEXT, documented
from app.http.dependencies import RuntimeDep
from app.serving.ops_metrics import CONTENT_TYPE
from app.storage.db import ping

# The built web SDK (web_sdk/dist, committed and checked against a fresh build), packaged with
# Cairn as `app/http/sdk`, so that an installed Cairn serves it too; its hand-written declarations
# (web_sdk/src/cairn.d.ts) as `app/http/cairn.d.ts`.
SDK_ASSETS: Traversable = resources.files("app.http") / "sdk"
# Browsers may keep using a cached SDK for a week while Cairn is unreachable.
SDK_CACHE = "public, max-age=3600, stale-while-revalidate=86400, stale-if-error=604800"
SCRIPT: dict[str, Any] = {"ok": TEXT, "ok_media": "text/javascript", "errors": (), "auth": PUBLIC}
HEALTH = {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}
READY = {
    "type": "object",
    "properties": {"ready": {"type": "boolean"}, "checks": OBJECT},
    "required": ["ready", "checks"],
}


@get("/healthz", opt=documented("Liveness", ok=HEALTH, errors=(), auth=PUBLIC))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/metrics",
    opt=documented(
        "This process's operational metrics, Prometheus's text format",
        ok=TEXT,
        ok_media="text/plain",
        errors=(401, 403, 429),
    ),
)
async def metrics(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    """This process's operational metrics in Prometheus's text format (the deployment's secret
    key: a scraper's bearer token)."""
    principal.require_deployment("Metrics cover every tenant")
    return Response(
        runtime.ops.exposition(),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


@get(
    "/readyz",
    opt=documented(
        "Readiness: database, notifications, layouts, catalog index, peer model",
        ok=READY,
        statuses={503: READY},
        errors=(),
        auth=PUBLIC,
    ),
)
async def readyz(runtime: RuntimeDep) -> Response[dict[str, object]]:
    rt = runtime
    checks: dict[str, object] = {
        "layouts": rt.layouts.version,
        "screens": sorted(rt.layouts.screens),
    }
    ok = rt.ready
    try:
        await ping(rt.pool, within_s=2)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
        ok = False
    checks["notifications"] = "ok" if rt.listening else "reconnecting"
    if not rt.listening:
        ok = False  # another process's changes (keys revoked, profiles) would go unseen
    if rt.catalog is not None:
        status = rt.catalog.status
        checks["catalog"] = {
            "items": status.items,
            "pending": status.pending,
            "indexed": len(rt.catalog.index),
            "model": rt.catalog.model_id,
            "error": status.last_error,
        }
        if rt.settings.recommender and not rt.catalog.ready:
            ok = False  # the catalog index is not built yet
    if rt.recommender is not None and rt.recommender.enabled:
        model = rt.recommender.model
        checks["peers"] = {
            "status": rt.recommender.status,
            **(model.size if model is not None else {}),
            "built_at": model.built_at.isoformat() if model is not None else None,
            "error": rt.recommender.last_error,
        }
        if model is None:
            ok = False
    if rt.layout_error:
        checks["layout_error"] = rt.layout_error
    return Response({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@get(
    ["/sdk/cairn.js", "/sdk/v1/cairn.js", "/sdk/cairn.min.js", "/sdk/v1/cairn.min.js"],
    opt=documented("The web SDK, full build", **SCRIPT),
)
async def sdk_script() -> Response[bytes]:
    """The full bundle (live updates and the default stylesheet included)."""
    return _script("cairn.min.js")


@get(
    ["/sdk/cairn.core.js", "/sdk/v1/cairn.core.js", "/sdk/cairn.core.min.js"],
    opt=documented("The web SDK, core build", **SCRIPT),
)
async def sdk_core_script() -> Response[bytes]:
    """The core bundle: fetch, cache, render, events."""
    return _script("cairn.core.min.js")


@get(
    ["/sdk/cairn.preferences.js", "/sdk/v1/cairn.preferences.js", "/sdk/cairn.preferences.min.js"],
    opt=documented("The preference center's bundle", **SCRIPT),
)
async def sdk_preferences_script() -> Response[bytes]:
    """The preference center (`Cairn.preferences`), loaded after the full or the core bundle."""
    return _script("cairn.preferences.min.js")


@get(
    ["/sdk/cairn.css", "/sdk/v1/cairn.css"],
    opt=documented("The default stylesheet", ok=TEXT, ok_media="text/css", errors=(), auth=PUBLIC),
)
async def sdk_stylesheet() -> Response[bytes]:
    """The default stylesheet, for pages using the core bundle."""
    return Response(
        content=(SDK_ASSETS / "cairn.css").read_bytes(),
        media_type="text/css",
        headers={"Cache-Control": SDK_CACHE},
    )


def _script(name: str) -> Response[bytes]:
    return Response(
        content=(SDK_ASSETS / name).read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": SDK_CACHE},
    )


@get(
    "/sdk/cairn.d.ts",
    opt=documented(
        "The web SDK's TypeScript declarations",
        ok=TEXT,
        ok_media="text/plain",
        errors=(),
        auth=PUBLIC,
    ),
)
async def sdk_types() -> Response[bytes]:
    return Response(
        content=(resources.files("app.http") / "cairn.d.ts").read_bytes(),
        media_type=MediaType.TEXT,
        headers={"Cache-Control": SDK_CACHE},
    )


ROUTES = [
    healthz,
    readyz,
    metrics,
    sdk_script,
    sdk_core_script,
    sdk_preferences_script,
    sdk_stylesheet,
    sdk_types,
]
