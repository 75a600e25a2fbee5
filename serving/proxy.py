"""``POST /v1/chat/completions``: the OpenAI-compatible proxy with failover.

``model`` names what to call: an endpoint id (``gpt-4o-mini@openai``: that endpoint only), a
model name served by catalog endpoints (``gpt-4o-mini``: the router picks among them), or a
router string (``router@q:1|c:0.005``). The decision is logged like any ``/v1/route`` one, and
the response carries ``x-switchyard-event-id`` (for ``/v1/feedback``) and
``x-switchyard-endpoint``; its ``model`` names the endpoint that served.

Failover: endpoints are tried in the decision's order (chosen, then fallbacks) while nothing
has reached the client (see :mod:`serving.upstream`). An endpoint in a cooldown is skipped: a
429 sets one from its ``Retry-After`` (capped), a connect error or TTFT timeout a short one.
When every attempt fails the client gets 429 (all rate limited, with ``Retry-After``), 504
(timeouts) or 502, in the one error shape, still with the event id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta

import aiohttp
from aiohttp import web

from bandit.errors import NoCandidateError
from serving.errors import (
    BadRequest,
    TooManyRequests,
    Unavailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from serving.metrics import Metrics
from serving.router import RoutePlan, RouteQuery, RouterService
from serving.schemas import ChatCompletionRequest, estimate_tokens
from serving.settings import ProxyConfig
from serving.upstream import Attempt, CallSpec, call_endpoint
from warehouse.models import Decision, Endpoint, Outcome, ProbeResult, utcnow

log = logging.getLogger(__name__)

EVENT_HEADER = "x-switchyard-event-id"
ENDPOINT_HEADER = "x-switchyard-endpoint"
LEARN_BATCH_S = 0.05
ProbeSink = Callable[[ProbeResult], None]
DecisionSink = Callable[[Decision], None]


class Cooldowns(Mapping[str, datetime]):
    """Per-endpoint "do not call before" times, as a read-only ``endpoint id -> until`` mapping
    (what ``bandit.constraints.screen`` reads to leave cooling endpoints out)."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self.now = now
        self._until: dict[str, datetime] = {}

    def __getitem__(self, endpoint_id: str) -> datetime:
        return self._until[endpoint_id]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._until))

    def __len__(self) -> int:
        return len(self._until)

    def remaining(self, endpoint_id: str) -> float:
        """Seconds left of the endpoint's cooldown (0 when none)."""
        until = self._until.get(endpoint_id)
        if until is None:
            return 0.0
        left = (until - self.now()).total_seconds()
        if left <= 0:
            self._until.pop(endpoint_id, None)
            return 0.0
        return left

    def start(self, endpoint_id: str, seconds: float) -> None:
        if seconds > 0:
            until = self.now() + timedelta(seconds=seconds)
            current = self._until.get(endpoint_id)
            self._until[endpoint_id] = until if current is None else max(until, current)

    def snapshot(self) -> dict[str, float]:
        return {eid: left for eid in list(self._until) if (left := self.remaining(eid)) > 0}


def new_event_id() -> str:
    return uuid.uuid4().hex


def pinned_plan(endpoint: Endpoint, *, model_version: str, now: datetime, prompt_tokens: int,
                max_tokens: int | None,
                metadata: Mapping[str, str] | None = None) -> RoutePlan:  # fmt: skip
    """The decision for a request that named one endpoint: it, with probability 1."""
    decision = Decision(
        event_id=new_event_id(),
        created_at=now,
        router=endpoint.id,
        candidates=(endpoint.id,),
        probabilities=(1.0,),
        chosen=endpoint.id,
        chosen_prob=1.0,
        policy_version=model_version,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        metadata=dict(metadata or {}),
    )
    return RoutePlan(decision=decision, pinned=True)


class Proxy:
    """The chat-completions proxy. One per app; every dependency is injected."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        router: RouterService,
        config: ProxyConfig,
        record_probe: ProbeSink,
        log_decision: DecisionSink,
        remember_decision: DecisionSink,
        metrics: Metrics,
        api_keys: Mapping[str, str] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
        now: Callable[[], datetime] = utcnow,
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.session = session
        self.router = router
        self.config = config
        self.record_probe = record_probe
        self.log_decision = log_decision
        self.remember_decision = remember_decision
        self._learn_queue: list[tuple[Decision, ProbeResult]] = []
        self._learner: asyncio.Task[None] | None = None
        self.metrics = metrics
        self.api_keys = dict(api_keys or {})
        self.clock = clock
        self.now = now
        self.cooldowns = cooldowns if cooldowns is not None else Cooldowns(now)
        self._by_model: dict[str, list[str]] = {}
        for ep in router.endpoints.values():
            self._by_model.setdefault(ep.model, []).append(ep.id)

    def _api_key(self, endpoint: Endpoint) -> str | None:
        if endpoint.api_key_env is None:
            return None
        return self.api_keys.get(endpoint.api_key_env) or os.environ.get(endpoint.api_key_env)

    async def plan(self, req: ChatCompletionRequest, messages: tuple[dict[str, object], ...]
                   ) -> RoutePlan:  # fmt: skip
        endpoints = self.router.endpoints
        model = req.model.strip()
        prompt_tokens = estimate_tokens(messages)
        if model in endpoints:
            plan = pinned_plan(
                endpoints[model],
                model_version=self.router.model_version,
                now=self.now(),
                prompt_tokens=prompt_tokens,
                max_tokens=req.output_cap,
                metadata=req.metadata,
            )
            self.log_decision(plan.decision)
            return plan
        router = f"router@models:{model}" if model in self._by_model else model
        query = RouteQuery(
            router=router, messages=messages, prompt_tokens=prompt_tokens,
            max_tokens=req.output_cap, metadata=req.metadata,
        )  # fmt: skip
        try:
            return await self.router.route(query)
        except NoCandidateError as exc:
            cooling = self.cooldowns.snapshot()
            if cooling:
                raise Unavailable(
                    str(exc), headers={"Retry-After": str(max(1, round(min(cooling.values()))))}
                ) from exc
            raise

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        req = ChatCompletionRequest.model_validate(body)
        messages = tuple(m.model_dump(exclude_none=True) for m in req.messages)
        plan = await self.plan(req, messages)
        decision = plan.decision
        self.remember_decision(decision)
        self.metrics.observe_decision(decision.chosen)
        headers = {EVENT_HEADER: decision.event_id}
        options = body.get("stream_options")
        spec = CallSpec(
            body=body,
            stream=req.stream,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            event_id=decision.event_id,
            created=int(self.now().timestamp()),
            ttft_timeout_s=self.config.ttft_timeout_s,
            total_timeout_s=self.config.total_timeout_s,
            connect_timeout_s=self.config.connect_timeout_s,
            default_max_tokens=self.config.default_max_tokens,
            response_headers=headers,
        )
        failures: list[Attempt] = []
        skipped: dict[str, float] = {}
        for eid in plan.attempts[: self.config.max_attempts]:
            endpoint = self.router.endpoints.get(eid)
            if endpoint is None:
                continue
            wait = self.cooldowns.remaining(eid)
            if wait > 0:
                skipped[eid] = wait
                continue
            attempt = await call_endpoint(
                request, self.session, endpoint, spec, api_key=self._api_key(endpoint),
                clock=self.clock, now=self.now,
            )  # fmt: skip
            self._record(plan, attempt)
            if attempt.response is not None:
                return attempt.response
            if attempt.completion is not None:
                return web.json_response(
                    attempt.completion, headers={**headers, ENDPOINT_HEADER: eid}
                )
            if attempt.client_gone:
                return web.Response(status=499, headers=headers)
            if not attempt.failover and attempt.result is not None:
                if attempt.result.outcome is Outcome.HTTP_4XX:
                    raise UpstreamRejected(
                        f"endpoint {eid} rejected the request: {attempt.detail}",
                        status=attempt.status_code or 400,
                        attempts=[eid],
                        headers={**headers, ENDPOINT_HEADER: eid},
                    )
                raise UpstreamError(
                    f"endpoint {eid} failed after the answer started: "
                    f"{attempt.result.outcome.value}: {attempt.detail}",
                    attempts=[eid],
                    headers={**headers, ENDPOINT_HEADER: eid},
                )
            failures.append(attempt)
            outcome = attempt.outcome.value if attempt.outcome else "none"
            self.metrics.failovers.labels(eid, outcome).inc()
        raise self._failure(failures, skipped, headers)

    def _record(self, plan: RoutePlan, attempt: Attempt) -> None:
        result = attempt.result
        if result is None:
            return
        if result.outcome is Outcome.HTTP_429:
            wait = result.retry_after_s
            if wait is None:
                wait = self.config.default_429_cooldown_s
            self.cooldowns.start(result.endpoint_id, min(wait, self.config.max_cooldown_s))
        elif attempt.failover and result.outcome in (Outcome.CONNECT_ERROR, Outcome.TIMEOUT):
            self.cooldowns.start(result.endpoint_id, self.config.failure_cooldown_s)
        self.record_probe(result)
        if result.ttft_ms is not None:
            self.metrics.proxy_ttft.labels(result.endpoint_id).observe(result.ttft_ms / 1000)
        if plan.pinned:
            return
        self._learn_queue.append((plan.decision, result))
        if self._learner is None or self._learner.done():
            self._learner = asyncio.create_task(self._learn_batches())

    async def _learn_batches(self) -> None:
        """Hand outcomes to the router in batches: one worker-thread hop per batch."""
        while self._learn_queue:
            await asyncio.sleep(LEARN_BATCH_S)
            batch, self._learn_queue = self._learn_queue, []
            try:
                await self.router.record_outcomes(batch)
            except Exception:  # noqa: BLE001 - learning must never break serving
                log.exception("learning a batch of %d outcomes failed", len(batch))

    async def drain(self) -> None:
        """Learn the outcomes still queued (at shutdown, before the final checkpoint)."""
        while self._learner is not None and not self._learner.done():
            await asyncio.shield(self._learner)

    def _failure(
        self, failures: list[Attempt], skipped: dict[str, float], headers: dict[str, str]
    ) -> Exception:
        tried = [
            f"{a.endpoint_id}: {a.outcome.value if a.outcome else 'failed'}"
            + (f" ({a.detail})" if a.detail else "")
            for a in failures
        ]
        tried += [f"{eid}: cooling down for {left:.1f} s" for eid, left in skipped.items()]
        message = "every endpoint failed: " + "; ".join(tried) if tried else "no endpoint to try"
        outcomes = {a.outcome for a in failures}
        if not failures and skipped:
            return Unavailable(
                "every candidate endpoint is cooling down: " + "; ".join(tried),
                headers={**headers, "Retry-After": str(max(1, round(min(skipped.values()))))},
            )
        if outcomes == {Outcome.HTTP_429}:
            waits = [
                a.result.retry_after_s for a in failures if a.result and a.result.retry_after_s
            ]
            waits += list(skipped.values())
            wait = min(waits) if waits else self.config.default_429_cooldown_s
            return TooManyRequests(message, retry_after_s=wait, headers=headers)
        attempts = [a.endpoint_id for a in failures]
        if Outcome.TIMEOUT in outcomes:
            return UpstreamTimeout(message, attempts=attempts, headers=headers)
        return UpstreamError(message, attempts=attempts, headers=headers)
