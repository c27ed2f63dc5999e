"""`/v1/experiments`: the experiments of experiments.yaml, their results, stops and resumes.

Secret keys of the whole deployment only: results span every tenant's units, and a stop changes
what every user gets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from app.errors import InvalidInputError, UnavailableError
from app.http.auth import Caller
from app.http.contract import KEYED, OBJECT, WITH_BODY, documented
from app.http.dependencies import RuntimeDep
from app.http.errors import json_response
from app.serving.experiments import (
    Results,
    cached_results,
    describe,
    holdout_results,
    resume,
    stop,
)

_ARM_VALUE = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "value": {"type": ["number", "null"]},
        "ci": {
            "anyOf": [{"type": "array", "items": {"type": ["number", "null"]}}, {"type": "null"}]
        },
    },
    "required": ["n", "value", "ci"],
}
HOLDOUT_RESULTS = {
    "type": "object",
    "properties": {
        "holdout_percent": {"type": "number"},
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metric": {"type": "string"},
                    "label": {"type": "string"},
                    "format": {"type": ["string", "null"]},
                    "holdout": _ARM_VALUE,
                    "personalized": _ARM_VALUE,
                    "lift": {"type": ["object", "null"]},
                },
                "required": ["metric", "label", "holdout", "personalized", "lift"],
            },
        },
    },
    "required": ["holdout_percent", "metrics"],
}
EXPERIMENT_STATUS = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "status": {"enum": ["stopped", "running"]}},
    "required": ["key", "status"],
}

Req = Request[Any, Any, Any]


class _StopBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""
    by: str = ""


@get("/v1/experiments", opt=documented("The experiments and the holdout", ok=OBJECT))
async def list_experiments(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    principal.require_deployment()
    layouts = runtime.layouts
    return json_response({
        "holdout": msgspec.to_builtins(layouts.experiments.holdout),
        "experiments": describe(layouts, runtime.experiment_states),
    })  # fmt: skip


@get(
    "/v1/experiments/holdout/results",
    opt=documented("The holdout's results against everyone else", ok=HOLDOUT_RESULTS),
)
async def get_holdout_results(principal: Caller, runtime: RuntimeDep) -> Response[bytes]:
    principal.require_deployment()
    return json_response(await holdout_results(runtime.pool, runtime.layouts, datetime.now(UTC)))


@get(
    "/v1/experiments/{key:str}/results",
    opt=documented("An experiment's results", ok=Results, errors=(*KEYED, 400)),
)
async def get_results(principal: Caller, runtime: RuntimeDep, key: str) -> Response[bytes]:
    principal.require_deployment()
    layouts = runtime.layouts
    try:
        cached = await cached_results(
            runtime.pool, layouts, key, runtime.experiment_states.get(key), datetime.now(UTC),
            runtime.experiment_results,
        )  # fmt: skip
    except TimeoutError as exc:
        raise UnavailableError(
            "results_timeout", "The results took too long to compute; try again in a minute."
        ) from exc
    return json_response(cached)


async def _body(request: Req) -> _StopBody:
    raw = await request.body()
    if not raw.strip():
        return _StopBody()
    try:
        return msgspec.json.decode(raw, type=_StopBody)
    except msgspec.ValidationError as exc:
        raise InvalidInputError("invalid_request", f"The body is not valid: {exc}.") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError("invalid_json", "The body is not valid JSON.") from exc


# stop and resume: an optional {by, reason} body, the new status back
_STATUS_CHANGE: dict[str, Any] = {
    "ok": EXPERIMENT_STATUS, "body": _StopBody, "body_required": False,
    "errors": (*KEYED, *WITH_BODY),
}  # fmt: skip


@post(
    "/v1/experiments/{key:str}/stop",
    status_code=200,
    opt=documented(
        "Stop an experiment: every process serves control from its next decision", **_STATUS_CHANGE
    ),
)
async def stop_experiment(
    request: Req, principal: Caller, runtime: RuntimeDep, key: str
) -> Response[bytes]:
    """Every process serves control from its next decision; only a resume starts it again."""
    principal.require_deployment()
    body = await _body(request)
    await stop(runtime.pool, runtime.layouts, key, body.by or "api", body.reason)
    await runtime.reload_experiment_states()  # this process at once; the others by NOTIFY
    return json_response({"key": key, "status": "stopped"})


@post(
    "/v1/experiments/{key:str}/resume",
    status_code=200,
    opt=documented("Resume a stopped experiment", **_STATUS_CHANGE),
)
async def resume_experiment(
    request: Req, principal: Caller, runtime: RuntimeDep, key: str
) -> Response[bytes]:
    principal.require_deployment()
    body = await _body(request)
    await resume(runtime.pool, runtime.layouts, key, body.by or "api")
    await runtime.reload_experiment_states()
    return json_response({"key": key, "status": "running"})


ROUTES = [list_experiments, get_holdout_results, get_results, stop_experiment, resume_experiment]
