"""Asking endpoints for training answers through the proxy's own client code, politely.

:class:`EndpointCaller` sends one prompt to one endpoint exactly as the proxy sends a
non-streaming request: :func:`serving.upstream.build_upstream_request` builds the streaming
upstream request (translated for Anthropic endpoints), :class:`collector.probe.MeteredCall`
sends, classifies and measures it, and the proxy's :class:`serving.upstream.Collect` relay
folds the stream into one completion. API keys come from the given mapping (the secrets
file) or the environment variable the catalog names, as the proxy gets them.

Manners: at most ``concurrency`` calls in flight; an endpoint that answers 429 pauses for
its ``Retry-After``, other failures back off exponentially (``collector.manners.Manners``);
retryable failures are tried again up to ``max_attempts`` times. A 4xx other than 429 (a
request the endpoint refuses) is not retried.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from collector.config import CollectorConfig
from collector.manners import Manners
from collector.probe import MeteredCall, ProbeTimeouts
from serving.relay import CompletionBuilder
from serving.upstream import CallSpec, Collect, build_upstream_request
from warehouse.models import Endpoint, Outcome, ProbeResult, Source, utcnow

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_MAX_TOKENS = 512
DEFAULT_BACKOFF_BASE_S = 1.0
DEFAULT_BACKOFF_MAX_S = 60.0
#: Longest single wait for an endpoint's pause (a longer Retry-After is waited in steps).
MAX_WAIT_S = 300.0
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reply:
    """The last attempt's answer (``text`` is None unless it ended ``ok``) and measurement."""

    endpoint_id: str
    text: str | None
    result: ProbeResult
    attempts: int

    @property
    def ok(self) -> bool:
        return self.result.outcome is Outcome.OK


class EndpointCaller:
    """Sends prompts to catalog endpoints (see the module docstring).

        caller = EndpointCaller(session, catalog, concurrency=8)
        reply = await caller.ask("gpt-4o-mini@openai", "What is 17 * 23?")
        reply.text, reply.result.ttft_ms, caller.sent
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoints: Sequence[Endpoint],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeouts: ProbeTimeouts | None = None,
        api_keys: Mapping[str, str] | None = None,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        clock: Callable[[], int] = time.perf_counter_ns,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.session = session
        self.endpoints = {e.id: e for e in endpoints}
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.timeouts = timeouts or ProbeTimeouts(connect_s=10.0, ttft_s=60.0, total_s=300.0)
        self.api_keys = dict(api_keys or {})
        self.clock = clock
        self.now = now
        self.sleep = sleep
        self.manners = Manners(
            CollectorConfig(backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s),
            clock=monotonic,
        )
        self._slots = asyncio.Semaphore(concurrency)
        self.sent = 0  # requests that went out (every attempt)
        self.retried = 0

    def _api_key(self, endpoint: Endpoint) -> str | None:
        if endpoint.api_key_env is None:
            return None
        return self.api_keys.get(endpoint.api_key_env) or os.environ.get(endpoint.api_key_env)

    async def ask(self, endpoint_id: str, prompt: str) -> Reply:
        """Send ``prompt`` until it is answered or ``max_attempts`` are spent; never raises
        for provider failures (cancellation propagates)."""
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise KeyError(f"unknown endpoint {endpoint_id!r}")
        attempt = 0
        while True:
            attempt += 1
            await self._wait_turn(endpoint_id)
            async with self._slots:
                text, result = await self._once(endpoint, prompt)
            self.manners.record(result)
            if result.outcome is Outcome.OK or attempt >= self.max_attempts or (
                result.outcome is Outcome.HTTP_4XX
            ):
                return Reply(endpoint_id, text if result.outcome is Outcome.OK else None,
                             result, attempt)  # fmt: skip
            self.retried += 1

    async def ask_text(self, endpoint_id: str, prompt: str) -> str | None:
        """The answer text, or None when the call failed (``serving.scoring.Ask``)."""
        return (await self.ask(endpoint_id, prompt)).text

    async def _wait_turn(self, endpoint_id: str) -> None:
        while (wait := self.manners.paused().get(endpoint_id, 0.0)) > 0:
            await self.sleep(min(wait, MAX_WAIT_S))

    async def _once(self, endpoint: Endpoint, prompt: str) -> tuple[str, ProbeResult]:
        """One call as the proxy makes it for a non-streaming client."""
        api_key = self._api_key(endpoint)
        event_id = uuid.uuid4().hex
        created = int(self.now().timestamp())
        spec = CallSpec(
            body={"messages": [{"role": "user", "content": prompt}],
                  "max_tokens": self.max_tokens},
            stream=False, include_usage=True, event_id=event_id, created=created,
            ttft_timeout_s=self.timeouts.ttft_s, total_timeout_s=self.timeouts.total_s,
            connect_timeout_s=self.timeouts.connect_s, default_max_tokens=self.max_tokens,
            response_headers={},
        )  # fmt: skip
        wire, translator = build_upstream_request(endpoint, spec, api_key)
        builder = CompletionBuilder(completion_id=f"chatcmpl-{event_id}", model=endpoint.id,
                                    created=created)  # fmt: skip
        relay = Collect(builder, translator)
        call = MeteredCall(endpoint, wire, timeouts=self.timeouts, clock=self.clock, now=self.now)

        async def on_data(data: bytes) -> None:
            relay.feed(data)

        async def on_end(eof: bool) -> None:
            relay.close()

        self.sent += 1
        await call.run(self.session, on_data=on_data, on_end=on_end)
        result = call.result(source=Source.TRAFFIC, prompt_name="train", api_key=api_key,
                             event_id=event_id)  # fmt: skip
        return "".join(builder.content), result
