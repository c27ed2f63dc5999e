"""The composition root: `create_app()` wires settings, storage, layouts and routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from app.http import (
    admin,
    catalog,
    dashboards,
    events,
    experiments,
    flags,
    layouts,
    metrics,
    ops,
    preferences,
    privacy,
)
from app.http.bodyguard import BodyGuard
from app.http.contract import ContractJson
from app.http.dependencies import dependencies
from app.http.errors import EXCEPTION_HANDLERS
from app.http.ratelimit import RateLimits
from app.serving.runtime import Runtime
from app.settings import Settings

log = logging.getLogger("cairn")


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, demo: bool = False
) -> Litestar:
    """The Cairn API. `runtime` may be passed in (tests); otherwise it starts in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings)
        owned = runtime is None
        if owned:
            await rt.start()
        app.state.runtime = rt
        try:
            yield
        finally:
            if owned:
                await rt.stop()

    route_handlers: list[object] = [
        *ops.ROUTES,
        *events.ROUTES,
        *layouts.ROUTES,
        *preferences.ROUTES,
        *admin.ROUTES,
        *catalog.ROUTES,
        *metrics.ROUTES,
        *dashboards.ROUTES,
        *flags.ROUTES,
        *experiments.ROUTES,
        *privacy.ROUTES,
    ]
    if demo:
        from app.demo import routes as demo_pages

        route_handlers.extend(demo_pages.ROUTES)
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_headers=[
                "authorization",
                "content-type",
                "x-cairn-user-hash",
                "x-cairn-client",
                "if-none-match",
            ],
            expose_headers=["etag", "retry-after"],
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
        )
        if settings.cors_origins
        else None
    )
    plugins = []
    if settings.tracing != "off":
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        from app.telemetry import install_console_exporter

        if settings.tracing == "console":
            install_console_exporter()
        plugins.append(OpenTelemetryPlugin(OpenTelemetryConfig(exclude=["/healthz", "/readyz"])))
    return Litestar(
        route_handlers=route_handlers,  # type: ignore[arg-type]
        middleware=[DefineMiddleware(BodyGuard, stall_s=settings.body_timeout_s)],
        state=State({"rate_limits": RateLimits(settings)}),
        plugins=plugins,
        lifespan=[lifespan],
        dependencies=dependencies(settings),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="Cairn", version="1.0.0", path="/schema", render_plugins=[ContractJson()]
        ),
        request_max_body_size=2 * 1024 * 1024,
        debug=False,
    )
