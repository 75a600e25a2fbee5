"""The HTTP routes: one table (:data:`ROUTES`) that the app registers and the OpenAPI document
describes, so the two cannot drift apart.

The ``/v1/route`` handler is kept lean: validate, one ``router.route`` call (VW predict on
precomputed features), a non-blocking enqueue of the decision, and a JSON answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import pydantic_core
from aiohttp import web
from pydantic import BaseModel, ValidationError

from serving.auth import Access
from serving.errors import (
    BadRequest,
    Conflict,
    NotFound,
    NotReady,
    Unprocessable,
    format_validation_error,
)
from serving.metrics import CONTENT_TYPE
from serving.router import RouteQuery
from serving.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    CheckpointResponse,
    EndpointsResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    OutcomeReport,
    OutcomeResponse,
    ReadyResponse,
    RouteRequest,
    RouteResponse,
    estimate_tokens,
)
from serving.state import METRICS, OPENAPI, PROXY, RECENT, ROUTER, RUN, WAREHOUSE
from warehouse.models import Decision, Endpoint, ProbeResult, Source, utcnow

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(obj: object, status: int = 200) -> web.Response:
    """A compact JSON answer, as every route of the table sends (pydantic-core's encoder:
    the same JSON as ``json.dumps``, ~30 us less per ``/v1/route`` answer)."""
    return web.Response(
        body=pydantic_core.to_json(obj),
        status=status,
        content_type="application/json",
    )


async def read_json(request: web.Request, model: type[M]) -> M:
    """The body validated into ``model``: 400 for unreadable JSON, 422 naming the field."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("the request body is empty: send a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise BadRequest(f"the request body is not valid JSON: {errors[0]['msg']}") from None
        raise Unprocessable(format_validation_error(exc)) from None


MAX_ENDPOINT_REFS = 4096
# endpoint id -> (the Endpoint, its reference): kept while the catalog's object for that id
# stays the same. A cache keyed by the frozen Endpoint itself hashed all its fields on every
# look-up, four look-ups per /v1/route answer.
_endpoint_refs: dict[str, tuple[Endpoint, dict[str, str]]] = {}


def endpoint_ref(endpoint: Endpoint) -> dict[str, str]:
    """The endpoint as answers name it (shared between answers: never mutate it)."""
    kept = _endpoint_refs.get(endpoint.id)
    if kept is not None and kept[0] is endpoint:
        return kept[1]
    ref = {
        "id": endpoint.id,
        "base_url": endpoint.base_url,
        "wire_format": endpoint.wire_format.value,
        "model": endpoint.api_model,
    }
    if len(_endpoint_refs) >= MAX_ENDPOINT_REFS:
        _endpoint_refs.clear()
    _endpoint_refs[endpoint.id] = (endpoint, ref)
    return ref


async def find_decision(app: web.Application, event_id: str) -> Decision:
    decision = app[RECENT].get(event_id)
    if decision is None:
        decision = await app[WAREHOUSE].aget_decision(event_id)
    if decision is None:
        raise NotFound(f"unknown event id {event_id!r}")
    return decision




# --- handlers -----------------------------------------------------------------------------


async def route(request: web.Request) -> web.StreamResponse:
    req = await read_json(request, RouteRequest)
    app = request.app
    router = app[ROUTER]
    messages = req.message_dicts()
    plan = await router.route(
        RouteQuery(
            router=req.router_string(),
            messages=messages,
            weights=req.weights.model_dump() if req.weights is not None else None,
            max_tokens=req.max_tokens,
            metadata=req.metadata,
            prompt_tokens=estimate_tokens(messages),
            shadow_endpoint=req.shadow_endpoint,
        )
    )
    d = plan.decision  # the router logged it (a non-blocking enqueue)
    app[RECENT].add(d)
    app[METRICS].observe_decision(d.chosen)
    endpoints = router.endpoints
    expected = plan.expected.get(d.chosen)
    return json_response(
        {
            "ok": True,
            "event_id": d.event_id,
            "router": d.router,
            "endpoint": endpoint_ref(endpoints[d.chosen]),
            "fallbacks": [endpoint_ref(endpoints[e]) for e in d.fallbacks],
            "probabilities": dict(zip(d.candidates, d.probabilities, strict=True)),
            "expected": {
                "ttft_ms": expected.ttft_ms if expected else None,
                "itl_ms": expected.itl_ms if expected else None,
                "cost_usd": expected.cost_usd if expected else None,
            },
            "model_version": d.policy_version,
            "shadow": d.shadow,
            "served": d.served,
        }
    )


async def outcome(request: web.Request) -> web.StreamResponse:
    rep = await read_json(request, OutcomeReport)
    app = request.app
    decision = await find_decision(app, rep.event_id)
    endpoint_id = rep.endpoint_id or decision.served or decision.chosen
    if endpoint_id not in decision.candidates and endpoint_id != decision.served:
        raise Unprocessable(
            f"endpoint_id: {endpoint_id!r} was not a candidate of event {rep.event_id!r}"
        )
    now = utcnow()
    started_at = rep.started_at or now - timedelta(milliseconds=rep.e2e_ms or 0.0)
    tpot = None
    tokens = rep.output_tokens or 0
    if rep.ttft_ms is not None and rep.e2e_ms is not None and tokens > 1:
        tpot = max(0.0, rep.e2e_ms - rep.ttft_ms) / (tokens - 1)
    result = ProbeResult(
        endpoint_id=endpoint_id,
        started_at=started_at,
        source=Source.TRAFFIC,
        outcome=rep.outcome,
        status_code=rep.status_code,
        detail=rep.detail,
        prompt_name="outcome",
        event_id=rep.event_id,
        ttft_ms=rep.ttft_ms,
        itl_ms_mean=rep.itl_ms,
        itl_ms_p50=rep.itl_ms,
        tpot_ms=tpot,
        e2e_ms=rep.e2e_ms,
        input_tokens=rep.input_tokens,
        output_tokens=rep.output_tokens,
        usage_reported=rep.output_tokens is not None,
        retry_after_s=rep.retry_after_s,
    )
    app[WAREHOUSE].add_probe(result)
    app[METRICS].observe_probe(result)
    await app[ROUTER].record_outcome(decision, result)
    return json_response(
        {"ok": True, "event_id": rep.event_id, "endpoint_id": endpoint_id,
         "outcome": result.outcome.value}
    )  # fmt: skip


async def feedback(request: web.Request) -> web.StreamResponse:
    req = await read_json(request, FeedbackRequest)
    app = request.app
    fb = req.to_feedback()
    run = app[RUN]
    if fb.event_id in run.feedback_in_flight:
        raise Conflict(f"feedback for event {fb.event_id!r} is being recorded; retry")
    run.feedback_in_flight.add(fb.event_id)
    try:
        accepted = await app[ROUTER].record_feedback(fb)  # 404 unknown, 409 past the window
        score = fb.score
        if not accepted:
            earlier = await app[WAREHOUSE].afeedback_for(fb.event_id)
            score = earlier[0].score if earlier else fb.score
    finally:
        run.feedback_in_flight.discard(fb.event_id)
    kind = (req.thumbs or "score") if accepted else "duplicate"
    app[METRICS].feedback.labels(kind).inc()
    return json_response(
        {"ok": True, "event_id": fb.event_id, "score": score, "duplicate": not accepted}
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await request.app[PROXY].handle(request)


async def endpoints(request: web.Request) -> web.StreamResponse:
    app = request.app
    router = app[ROUTER]
    live = app[WAREHOUSE].live
    cooldowns = app[PROXY].cooldowns.snapshot()
    views = []
    for eid in sorted(router.endpoints):
        ep = router.endpoints[eid]
        stat = live.get(eid)
        views.append(
            {
                **endpoint_ref(ep),
                "price_in_per_mtok": ep.price_in_per_mtok,
                "price_out_per_mtok": ep.price_out_per_mtok,
                "context_window": ep.context_window,
                "tags": list(ep.tags),
                "live": stat.model_dump(mode="json") if stat is not None else None,
                "cooldown_s": cooldowns.get(eid),
            }
        )
    return json_response({"ok": True, "endpoints": views, "model_version": router.model_version})


async def healthz(request: web.Request) -> web.StreamResponse:
    return json_response({"ok": True, "uptime_s": time.monotonic() - request.app[RUN].started_at})


async def readyz(request: web.Request) -> web.StreamResponse:
    app = request.app
    run = app[RUN]
    if not run.ready:
        raise NotReady(f"not ready: {run.not_ready_reason}", headers={"Retry-After": "1"})
    return json_response(
        {
            "ok": True,
            "ready": True,
            "endpoints": len(app[ROUTER].endpoints),
            "live_endpoints": len(app[WAREHOUSE].live.all()),
            "model_version": app[ROUTER].model_version,
        }
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


async def checkpoint(request: web.Request) -> web.StreamResponse:
    app = request.app
    await app[ROUTER].checkpoint()
    await app[WAREHOUSE].aflush()
    return json_response({"ok": True, "model_version": app[ROUTER].model_version})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route: how it is served, who may call it and how the document describes it."""

    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    content_type: str = "application/json"
    errors: tuple[int, ...] = ()
    examples: tuple[dict[str, object], ...] = field(default=())
    streams: bool = False


_AUTH_ERRORS = (401, 403, 429)
_BODY_ERRORS = (400, 413, 422)
EVENT_ID_EXAMPLE = "0123456789abcdef0123456789abcdef"

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST", "/v1/route", route, Access.ROUTE,
        "Choose an endpoint for a prompt (decision only; the caller makes the call).",
        RouteRequest, RouteResponse, errors=(*_AUTH_ERRORS, *_BODY_ERRORS),
        examples=(
            {"prompt": "Summarise this paragraph.", "max_tokens": 200},
            {
                "messages": [{"role": "user", "content": "Hello"}],
                "router": "router@q:1|c:0.005|t:0.0001",
                "constraints": {"providers": ["openai", "groq"], "max_ttft_ms": 800},
                "metadata": {"team": "search"},
            },
            {"prompt": "Hi", "weights": {"t": 1.0}},
        ),
    ),
    RouteSpec(
        "POST", "/v1/outcome", outcome, Access.ROUTE,
        "Report how a call made after /v1/route went (TTFT, ITL, tokens, status).",
        OutcomeReport, OutcomeResponse, errors=(*_AUTH_ERRORS, *_BODY_ERRORS, 404),
        examples=(
            {"event_id": EVENT_ID_EXAMPLE, "ttft_ms": 312.5, "itl_ms": 21.0, "e2e_ms": 2400,
             "input_tokens": 120, "output_tokens": 96},
            {"event_id": EVENT_ID_EXAMPLE, "status": 429, "retry_after_s": 2},
        ),
    ),
    RouteSpec(
        "POST", "/v1/feedback", feedback, Access.FEEDBACK,
        "Thumbs up/down or a score for one event; idempotent per event.",
        FeedbackRequest, FeedbackResponse, errors=(*_AUTH_ERRORS, *_BODY_ERRORS, 404, 409),
        examples=(
            {"event_id": EVENT_ID_EXAMPLE, "thumbs": "up"},
            {"event_id": EVENT_ID_EXAMPLE, "score": 0.25, "comment": "too long"},
        ),
    ),
    RouteSpec(
        "POST", "/v1/chat/completions", chat_completions, Access.ROUTE,
        "OpenAI-compatible chat completions, routed, with failover; streams with stream=true.",
        ChatCompletionRequest, ChatCompletion,
        errors=(*_AUTH_ERRORS, *_BODY_ERRORS, 502, 503, 504), streams=True,
        examples=(
            {"model": "router@q:1|c:0.005", "messages": [{"role": "user", "content": "Hi"}],
             "stream": True},
            {"model": "gpt-4o-mini@openai", "messages": [{"role": "user", "content": "Hi"}],
             "max_tokens": 64},
        ),
    ),
    RouteSpec(
        "GET", "/v1/endpoints", endpoints, Access.READ,
        "The catalog with live figures and cooldowns.", None, EndpointsResponse,
        errors=_AUTH_ERRORS,
    ),
    RouteSpec(
        "POST", "/v1/admin/checkpoint", checkpoint, Access.ADMIN,
        "Checkpoint the router model and flush the warehouse now.", None, CheckpointResponse,
        errors=_AUTH_ERRORS,
    ),
    RouteSpec("GET", "/healthz", healthz, Access.PUBLIC, "Liveness.", None, HealthResponse),
    RouteSpec(
        "GET", "/readyz", readyz, Access.PUBLIC,
        "Readiness: live stats loaded and model restored; 503 while starting or draining.",
        None, ReadyResponse, errors=(503,),
    ),
    RouteSpec(
        "GET", "/metrics", metrics, Access.PUBLIC, "Prometheus metrics.",
        content_type="text/plain",
    ),
    RouteSpec(
        "GET", "/openapi.json", openapi, Access.PUBLIC, "This document (OpenAPI 3.1).",
    ),
)  # fmt: skip

ACCESS_BY_HANDLER: dict[Handler, Access] = {spec.handler: spec.access for spec in ROUTES}


def access_table(specs: tuple[RouteSpec, ...]) -> Callable[[web.Request], Access]:
    """``access_of`` for a table of routes (the auth middleware's look-up)."""
    table = {spec.handler: spec.access for spec in specs}

    def access(request: web.Request) -> Access:
        return table.get(request.match_info.handler, Access.PUBLIC)

    return access


def access_of(request: web.Request) -> Access:
    """The access level of the matched route (unmatched paths are public: they 404/405)."""
    return ACCESS_BY_HANDLER.get(request.match_info.handler, Access.PUBLIC)
