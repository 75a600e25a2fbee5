"""Every route answers errors in one shape: ``{"ok": false, "error": str, "status": int}``."""

from __future__ import annotations

import io
import json

import pytest
from aiohttp import ClientResponse
from pydantic import BaseModel, ValidationError

from serving.auth import Access
from serving.errors import TooManyRequests, exception_response
from serving.routes import ROUTES
from serving.settings import RateLimitConfig
from serving.state import RUN
from tests.serving.conftest import ADMIN_TOKEN, FEEDBACK_TOKEN, ROUTE_TOKEN, MakeStack, Stack, auth

OTHER_METHOD = {"GET": "POST", "POST": "GET"}
WRONG_SCOPE = {
    Access.ROUTE: FEEDBACK_TOKEN,
    Access.FEEDBACK: ROUTE_TOKEN,
    Access.ADMIN: ROUTE_TOKEN,
}
RIGHT_TOKEN = {
    Access.ROUTE: ROUTE_TOKEN,
    Access.FEEDBACK: FEEDBACK_TOKEN,
    Access.ADMIN: ADMIN_TOKEN,
    Access.READ: ROUTE_TOKEN,
}


async def assert_shape(resp: ClientResponse, status: int) -> dict[str, object]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = json.loads(await resp.read())
    assert set(body) == {"ok", "error", "status"}, body
    assert body["ok"] is False and body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize("spec", ROUTES, ids=lambda s: f"{s.method} {s.path}")
async def test_every_route_maps_errors_to_the_shape(spec: object, stack: Stack) -> None:
    from serving.routes import RouteSpec

    assert isinstance(spec, RouteSpec)
    c = stack.client
    # wrong method: 405 with Allow
    r = await c.request(OTHER_METHOD[spec.method], spec.path)
    await assert_shape(r, 405)
    assert spec.method in r.headers["Allow"]
    if spec.access is not Access.PUBLIC:
        r = await c.request(spec.method, spec.path)
        await assert_shape(r, 401)
        assert r.headers["WWW-Authenticate"] == "Bearer"
        r = await c.request(spec.method, spec.path, headers=auth("not-a-configured-token-xyz"))
        await assert_shape(r, 401)
        if spec.access in WRONG_SCOPE:
            r = await c.request(spec.method, spec.path, headers=auth(WRONG_SCOPE[spec.access]))
            body = await assert_shape(r, 403)
            assert spec.access.value in str(body["error"])
    if spec.request is not None:
        headers = auth(RIGHT_TOKEN[spec.access])
        r = await c.request(spec.method, spec.path, data=b"{not json", headers=headers)
        await assert_shape(r, 400)
        r = await c.request(spec.method, spec.path, data=b"", headers=headers)
        await assert_shape(r, 400)
        r = await c.request(spec.method, spec.path, json={"unexpected_field": 1}, headers=headers)
        body = await assert_shape(r, 422)
        assert ":" in str(body["error"])  # a field path, then the message
        big = b'{"prompt": "' + b"x" * (stack.settings.body_limit_bytes + 10) + b'"}'
        r = await c.request(spec.method, spec.path, data=io.BytesIO(big), headers=headers)
        await assert_shape(r, 413)
    if spec.path == "/readyz":
        stack.app[RUN].ready = False
        r = await c.get("/readyz")
        await assert_shape(r, 503)
        stack.app[RUN].ready = True


async def test_unknown_path_and_unknown_event(stack: Stack) -> None:
    body = await assert_shape(await stack.client.get("/v1/nothing-here"), 404)
    assert "route" in str(body["error"])
    r = await stack.client.post(
        "/v1/feedback", json={"event_id": "a" * 32, "thumbs": "up"}, headers=auth(FEEDBACK_TOKEN)
    )
    await assert_shape(r, 404)


async def test_rate_limit_answers_429_with_retry_after(sim: object, make_stack: MakeStack) -> None:
    stack = await make_stack(
        sim.catalog(),  # type: ignore[attr-defined]
        rate_limit=RateLimitConfig(requests_per_s=0.5, burst=2),
    )
    statuses = []
    for _ in range(3):
        r = await stack.client.get("/v1/endpoints", headers=auth(ROUTE_TOKEN))
        statuses.append(r.status)
    assert statuses[:2] == [200, 200]
    body = await assert_shape(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert "router" in str(body["error"])  # names the token, never its value
    assert ROUTE_TOKEN not in str(body["error"])
    # another token has its own bucket; public routes are not limited
    r = await stack.client.get("/v1/endpoints", headers=auth(ADMIN_TOKEN))
    assert r.status == 200
    assert (await stack.client.get("/healthz")).status == 200


def test_exception_mapping_covers_foreign_and_unknown_errors() -> None:
    class Model(BaseModel):
        n: int

    try:
        Model.model_validate({"n": "x"})
    except ValidationError as exc:
        resp = exception_response(exc)
    assert resp.status == 422 and b"n: Input should be a valid integer" in resp.body  # type: ignore[operator]
    resp = exception_response(RuntimeError("secret detail"))
    assert resp.status == 500 and b"secret detail" not in resp.body  # type: ignore[operator]
    assert json.loads(resp.body)["status"] == 500  # type: ignore[arg-type]
    resp = exception_response(TooManyRequests("slow down", retry_after_s=2.2))
    assert resp.status == 429 and resp.headers["Retry-After"] == "3"
