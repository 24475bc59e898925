"""Operations: health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import re

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.api.common import services
from bot.metrics import REGISTRY

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: models loaded and database reachable; lists the versions served."""
    svc = services(request)
    db_ok = await svc.db.ping()
    ready = db_ok and svc.runtime.ready and not svc.closing
    body = {
        "ready": ready,
        "database": db_ok,
        "models": {k: svc.runtime.models.versions.get(k) for k in ("intent", "index", "generator")},
        "policy": svc.settings.server.policy,
    }
    return web.json_response(body, status=200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def _security(path: str) -> list[dict[str, list[str]]]:
    if path.startswith(("/api/v1/agent", "/api/v1/admin")):
        return [{"apiKey": []}]
    if path.startswith(("/api/v1/conversations/", "/api/v1/messages/")):
        return [{"conversationToken": []}]
    return []


_TEXT = {"type": "string", "minLength": 1}
# Request bodies and query parameters the routes read, by operationId; a route not listed
# here is documented with a free-form JSON object and no query parameters.
BODIES: dict[str, dict[str, object]] = {
    "post_create_conversation": {"properties": {"meta": {"type": "object"}}},
    "post_post_message": {"required": ["text"], "properties": {"text": _TEXT}},
    "post_feedback": {
        "required": ["rating"],
        "properties": {
            "rating": {
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": 5},
                    {"enum": ["up", "down"]},
                ]
            },
            "comment": _TEXT,
        },
    },
    "post_write": {"required": ["text"], "properties": {"text": _TEXT}},
    "post_approve": {"properties": {"intent": {"type": "string"}}},
    "post_edit": {
        "required": ["text"],
        "properties": {"text": _TEXT, "intent": {"type": "string"}},
    },
    "post_reject": {"properties": {"reason": {"type": "string"}}},
    "post_label": {"required": ["intent"], "properties": {"intent": _TEXT}},
    "post_start_run": {
        "required": ["kind"],
        "properties": {"kind": {"type": "string"}, "params": {"type": "object"}},
    },
    "post_export_training_data": {"properties": {"since": {"type": "string"}}},
}
QUERIES: dict[str, dict[str, dict[str, object]]] = {
    "get_list_messages": {"after": {"type": "integer", "minimum": 0}},
    "get_models": {"kind": {"type": "string"}},
    "get_metrics_summary": {"days": {"type": "integer", "minimum": 1, "maximum": 366}},
    "get_uncertain": {"limit": {"type": "integer", "minimum": 1}},
    "get_outbox_dead_letters": {"limit": {"type": "integer", "minimum": 1}},
}


def _path_schema(name: str) -> dict[str, object]:
    # Row ids are positive integers; anything else in such a segment is a 404.
    if name.endswith("_id"):
        return {"type": "integer", "minimum": 1}
    return {"type": "string", "minLength": 1}


def build_openapi(app: web.Application) -> dict[str, object]:
    """An OpenAPI 3.1 document generated from the router, so no route is left out."""
    paths: dict[str, dict[str, object]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if not path or route.method in ("HEAD", "OPTIONS", "*"):
            continue
        doc = (route.handler.__doc__ or route.handler.__name__.replace("_", " ")).strip()
        params = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
            for name in re.findall(r"{(\w+)}", path)
        ]
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        op: dict[str, object] = {
            "summary": doc.splitlines()[0],
            "operationId": f"{route.method.lower()}_{route.handler.__name__}",
            "parameters": params,
            "responses": {
                "2XX": {"description": "success"},
                "4XX": {"description": "client error", "content": error},
                "503": {
                    "description": "busy or not ready (retry after Retry-After seconds)",
                    "content": error if route.handler.__name__ != "readyz" else {},
                },
            },
        }
        op_id = str(op["operationId"])
        params.extend(
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in QUERIES.get(op_id, {}).items()
        )
        security = _security(path)
        if security:
            op["security"] = security
        if route.method in ("POST", "PUT", "PATCH"):
            body = BODIES.get(op_id)
            op["requestBody"] = {
                "required": bool(body and body.get("required")),
                "content": {"application/json": {"schema": {"type": "object", **(body or {})}}},
            }
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "deskbot", "version": "1"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "agent/admin key"},
                "conversationToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This document."""
    return web.json_response(build_openapi(request.app))
