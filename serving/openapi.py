"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Schemas come from the models' own JSON schemas (OpenAPI 3.1 uses JSON Schema 2020-12, which
is what pydantic emits), so a field added to a model is in the document at once. Each route
in :data:`serving.routes.ROUTES` becomes one operation with its request body, its examples,
its success response and its error responses (all in the one error shape).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.auth import Access
from serving.routes import ROUTES, RouteSpec
from serving.schemas import ErrorResponse

OPENAPI_VERSION = "3.1.0"
TITLE = "Switchyard sidecar"
REF = "#/components/schemas/{model}"
ERROR_DESCRIPTIONS = {
    400: "Unreadable JSON.",
    401: "No or unknown bearer token.",
    403: "The token lacks the scope.",
    404: "Unknown event id.",
    409: "Feedback past its window, or being recorded.",
    413: "Body over the size limit.",
    422: "Schema validation failed; the message names the field path.",
    429: "Rate limited (Retry-After).",
    502: "Every endpoint tried failed.",
    503: "Not ready, draining, or every candidate is cooling down.",
    504: "No endpoint produced a first token in time.",
}
Mode = Literal["validation", "serialization"]


def _operation_id(spec: RouteSpec) -> str:
    name = spec.path.strip("/").replace("/", "_").replace(".", "_").replace("-", "_")
    return f"{spec.method.lower()}_{name}"


def _schemas(routes: Sequence[RouteSpec]) -> tuple[dict[tuple[type[BaseModel], Mode], dict], dict]:
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorResponse, "serialization")]
    for spec in routes:
        if spec.request is not None:
            wanted.append((spec.request, "validation"))
        if spec.response is not None:
            wanted.append((spec.response, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, ref_template=REF)
    return refs, defs.get("$defs", {})


def build_openapi(
    routes: Sequence[RouteSpec] = ROUTES, *, version: str = "0.1.0"
) -> dict[str, object]:
    """The OpenAPI document for ``routes``."""
    refs, components = _schemas(routes)
    error_ref = refs[(ErrorResponse, "serialization")]
    paths: dict[str, dict[str, object]] = {}
    for spec in routes:
        op: dict[str, object] = {
            "operationId": _operation_id(spec),
            "summary": spec.summary,
            "tags": ["admin" if spec.access is Access.ADMIN else spec.path.split("/")[1]],
        }
        if spec.access is not Access.PUBLIC:
            op["security"] = [{"bearer": []}]
            op["x-switchyard-access"] = spec.access.value
        if spec.request is not None:
            media: dict[str, object] = {"schema": refs[(spec.request, "validation")]}
            if spec.examples:
                media["examples"] = {
                    f"example{i + 1}": {"value": ex} for i, ex in enumerate(spec.examples)
                }
            op["requestBody"] = {"required": True, "content": {"application/json": media}}
        if spec.response is not None:
            content: dict[str, object] = {
                spec.content_type: {"schema": refs[(spec.response, "serialization")]}
            }
        elif spec.content_type == "text/plain":
            content = {"text/plain": {"schema": {"type": "string"}}}
        else:
            content = {spec.content_type: {"schema": {"type": "object"}}}
        if spec.streams:
            content["text/event-stream"] = {
                "schema": {"type": "string", "description": "chat.completion.chunk events"}
            }
        responses: dict[str, object] = {"200": {"description": "OK", "content": content}}
        for status in sorted(set(spec.errors)):
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS.get(status, "Error."),
                "content": {"application/json": {"schema": error_ref}},
            }
        responses["default"] = {
            "description": "Any other error, in the same shape.",
            "content": {"application/json": {"schema": error_ref}},
        }
        op["responses"] = responses
        paths.setdefault(spec.path, {})[spec.method.lower()] = op
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": version,
            "description": "Routes LLM calls to the best endpoint, learns from outcomes and "
            "feedback. Every error is {ok: false, error, status}.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_json(routes: Sequence[RouteSpec] = ROUTES) -> bytes:
    return json.dumps(build_openapi(routes), indent=1).encode()
