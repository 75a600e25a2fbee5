"""The OpenAPI document stays true: routes <-> paths both ways, refs resolve, examples are
accepted by the models and by the running app, responses match the documented models."""

from __future__ import annotations

import json

from serving.auth import Access
from serving.models_admin import MODEL_ROUTES
from serving.routes import ROUTES
from serving.ui import UI_ROUTES
from tests.serving.conftest import ADMIN_TOKEN, BOTH_TOKEN, Stack, auth


ALL_ROUTES = (*ROUTES, *MODEL_ROUTES, *UI_ROUTES)


def refs(node: object) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(refs(item))
    return found


async def test_every_app_route_is_documented_and_vice_versa(stack: Stack) -> None:
    r = await stack.client.get("/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    served = {
        (route.method, route.resource.canonical)
        for route in stack.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == documented
    assert len(documented) == len(ALL_ROUTES)
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["summary"] and op["operationId"]
            assert "200" in op["responses"] and "default" in op["responses"]
            spec = next(s for s in ALL_ROUTES if s.path == path)
            assert ("security" in op) == (spec.access is not Access.PUBLIC)


async def test_examples_validate_and_are_accepted_by_the_app(stack: Stack) -> None:
    doc = json.loads(await (await stack.client.get("/openapi.json")).read())
    checked = 0
    for spec in ROUTES:
        if spec.request is None:
            continue
        media = doc["paths"][spec.path][spec.method.lower()]["requestBody"]["content"]
        examples = media["application/json"]["examples"]
        assert len(examples) == len(spec.examples) >= 1
        for example in examples.values():
            spec.request.model_validate(example["value"])  # the model accepts it
            body = dict(example["value"])
            if body.get("model") == "gpt-4o-mini@openai":
                body["model"] = "fast-a@alpha"  # an endpoint of this test's catalog
            if "router" in body or str(body.get("model", "")).startswith("router@"):
                continue  # the example names providers this catalog does not have
            r = await stack.client.request(spec.method, spec.path, json=body, headers=auth())
            # unknown example event ids answer 404; nothing is a schema error
            assert r.status in (200, 404), (spec.path, r.status, await r.text())
            if r.status == 200 and spec.response is not None and not body.get("stream"):
                spec.response.model_validate(await r.json())
            await r.read()
            checked += 1
    assert checked >= 5


async def test_get_responses_match_their_documented_models(stack: Stack) -> None:
    for spec in ROUTES:
        if spec.method != "GET" or spec.response is None:
            continue
        token = ADMIN_TOKEN if spec.access is Access.ADMIN else BOTH_TOKEN
        r = await stack.client.get(spec.path, headers=auth(token))
        assert r.status == 200, spec.path
        spec.response.model_validate(await r.json())
