"""One proxied call to one endpoint: send, measure, relay to the client or report a failure.

:func:`call_endpoint` sends the client's request to one endpoint (always streaming upstream,
so TTFT and ITL are measured on every call, with the collector's :class:`StreamMeter` and
traced session) and relays what comes back:

- nothing reaches the client until the first generated text (or a clean empty answer);
  until then every failure -- 429, 5xx, 401/403/404, connect error, no first text within
  ``ttft_timeout_s``, an error event or a cut stream -- is returned as a failover-able
  :class:`Attempt` and the caller tries the next endpoint;
- once the first text is out, failures end the stream with a clean SSE error event
  (streaming) or become a 502 (non-streaming): there is no failover after that point;
- 4xx answers that are about the request itself (400, 413, 422...) are not failed over.

Each call yields a ``ProbeResult(source=traffic)`` built by the same meter as the probes,
except when the client went away first (nothing fair to record about the endpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import aiohttp
from aiohttp import web

from collector.probe import SSE_CONTENT_TYPE, MeteredCall, ProbeTimeouts
from collector.sse import SSEParser
from collector.wire import ANTHROPIC_VERSION, WireRequest
from serving.relay import DONE, CompletionBuilder, EventFramer, error_event, sse_data
from serving.translate import AnthropicToOpenAI, anthropic_request, passthrough_body
from warehouse.models import Endpoint, Outcome, ProbeResult, Source, WireFormat

FAILOVER_STATUSES = frozenset({401, 403, 404, 408, 409, 429})


class Relay(Protocol):
    """Turns upstream bytes into what the client gets (bytes to write, or an aggregate)."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


class OpenAIStream:
    """OpenAI endpoint, streaming client: forward events as they complete, model renamed."""

    def __init__(self, endpoint_id: str) -> None:
        self._framer = EventFramer(endpoint_id)

    def feed(self, data: bytes) -> bytes:
        return self._framer.feed(data)

    def close(self) -> bytes:
        return self._framer.close()


class AnthropicStream:
    """Anthropic endpoint, streaming client: translate every event into OpenAI chunks."""

    def __init__(self, translator: AnthropicToOpenAI) -> None:
        self._parser = SSEParser()
        self.translator = translator

    def _encode(self, events: list[object]) -> bytes:
        out = []
        for sse in events:
            for chunk in self.translator.feed(sse):  # type: ignore[arg-type]
                out.append(sse_data(chunk))
            if self.translator.done:
                out.append(DONE)
                break
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        if self.translator.done:
            return b""
        return self._encode(self._parser.feed(data))  # type: ignore[arg-type]

    def close(self) -> bytes:
        if self.translator.done:
            return b""
        return self._encode(self._parser.close())  # type: ignore[arg-type]


class Collect:
    """Non-streaming client: fold the stream (either format) into one completion."""

    def __init__(self, builder: CompletionBuilder, translator: AnthropicToOpenAI | None) -> None:
        self.builder = builder
        self.translator = translator
        self._parser = SSEParser()

    def _add(self, events: list[object]) -> None:
        for sse in events:
            if self.translator is not None:
                for chunk in self.translator.feed(sse):  # type: ignore[arg-type]
                    self.builder.add(chunk)
                continue
            data = sse.data  # type: ignore[attr-defined]
            if data.strip() == "[DONE]":
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if isinstance(obj, dict):
                self.builder.add(obj)

    def feed(self, data: bytes) -> bytes:
        self._add(self._parser.feed(data))  # type: ignore[arg-type]
        return b""

    def close(self) -> bytes:
        self._add(self._parser.close())  # type: ignore[arg-type]
        return b""


@dataclass(slots=True)
class Attempt:
    """How one call ended. ``response`` is set when the client got an answer (or part)."""

    endpoint_id: str
    result: ProbeResult | None
    response: web.StreamResponse | None = None
    failover: bool = False
    client_gone: bool = False
    completion: dict[str, object] | None = None
    status_code: int | None = None
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome | None:
        return self.result.outcome if self.result is not None else None


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything one attempt needs besides the endpoint."""

    body: Mapping[str, object]
    stream: bool
    include_usage: bool
    event_id: str
    created: int
    ttft_timeout_s: float
    total_timeout_s: float
    connect_timeout_s: float
    default_max_tokens: int
    response_headers: Mapping[str, str]


class _ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


def build_upstream_request(
    endpoint: Endpoint, spec: CallSpec, api_key: str | None
) -> tuple[WireRequest, AnthropicToOpenAI | None]:
    """The streaming request for ``endpoint`` (translated for Anthropic) and its translator."""
    headers = {
        "Content-Type": "application/json",
        "Accept": SSE_CONTENT_TYPE,
        "Accept-Encoding": "identity",
    }
    if endpoint.wire_format is WireFormat.OPENAI:
        payload = passthrough_body(
            spec.body, model=endpoint.api_model, include_usage=not spec.stream
        )
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        url, translator = endpoint.base_url + "/chat/completions", None
    else:
        payload = anthropic_request(
            spec.body, model=endpoint.api_model, default_max_tokens=spec.default_max_tokens
        )
        if api_key is not None:
            headers["x-api-key"] = api_key
        headers["anthropic-version"] = ANTHROPIC_VERSION
        url = endpoint.base_url + "/messages"
        translator = AnthropicToOpenAI(
            completion_id=f"chatcmpl-{spec.event_id}",
            model=endpoint.id,
            created=spec.created,
            include_usage=spec.include_usage or not spec.stream,
        )
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return WireRequest(url=url, headers=headers, body=body), translator




async def call_endpoint(
    request: web.Request,
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    spec: CallSpec,
    *,
    api_key: str | None,
    clock: Callable[[], int] = time.perf_counter_ns,
    now: Callable[[], datetime],
) -> Attempt:
    """Call ``endpoint`` for ``request`` (see the module docstring). Never raises for
    provider or network failures; cancellation propagates."""
    wire, translator = build_upstream_request(endpoint, spec, api_key)
    if spec.stream:
        relay: Relay = (
            OpenAIStream(endpoint.id) if translator is None else AnthropicStream(translator)
        )
        builder = None
    else:
        builder = CompletionBuilder(
            completion_id=f"chatcmpl-{spec.event_id}", model=endpoint.id, created=spec.created
        )
        relay = Collect(builder, translator)
    timeouts = ProbeTimeouts(
        connect_s=spec.connect_timeout_s, ttft_s=spec.ttft_timeout_s,
        total_s=spec.total_timeout_s,
    )  # fmt: skip
    call = MeteredCall(
        endpoint, wire, timeouts=timeouts, clock=clock, now=now,
        timeout_names=("ttft_timeout_s", "total_timeout_s"),
    )  # fmt: skip
    meter = call.meter
    response: web.StreamResponse | None = None
    pending: list[bytes] = []
    started = False
    client_gone = False

    async def write(data: bytes) -> None:
        if data and response is not None:
            try:
                await response.write(data)
            except ConnectionResetError as exc:  # includes aiohttp's ClientConnectionResetError
                raise _ClientGone from exc

    async def on_data(data: bytes) -> None:
        """Hold the relayed bytes until the first text; then start the client's stream."""
        nonlocal started, response
        out = relay.feed(data)
        if started:
            await write(out)
            return
        pending.append(out)
        if call.first_text:
            started = True
            if spec.stream:
                response = await _start_stream(request, spec, endpoint)
                await write(b"".join(pending))
            pending.clear()

    async def on_end(eof: bool) -> None:
        if eof:
            out = relay.close()
            if started:
                await write(out)
        elif meter.outcome is Outcome.OK and response is not None:
            await write(relay.close())
            await _end(response)

    try:
        await call.run(session, on_data=on_data, on_end=on_end)
    except _ClientGone:
        client_gone = True
    outcome = call.outcome or Outcome.TRUNCATED  # run() always settles it
    status, retry_after = call.status, call.retry_after
    detail = call.redacted_detail(api_key)
    result = None
    if not client_gone:
        result = call.result(
            source=Source.TRAFFIC, prompt_name="proxy", api_key=api_key, event_id=spec.event_id
        )
    attempt = Attempt(
        endpoint_id=endpoint.id,
        result=result,
        client_gone=client_gone,
        status_code=status,
        detail=detail,
    )
    if retry_after is not None:
        attempt.headers["Retry-After"] = f"{retry_after:g}"
    if not started:
        attempt.failover = not (
            outcome is Outcome.HTTP_4XX and status is not None and status not in FAILOVER_STATUSES
        )
        return attempt
    if spec.stream:
        if response is None:  # pragma: no cover - started implies prepared when streaming
            raise RuntimeError("stream started without a response")
        attempt.response = response
        if not client_gone:
            await _finish_stream(response, outcome, detail)
        return attempt
    if outcome is Outcome.OK:
        assert builder is not None  # noqa: S101
        attempt.completion = builder.result(
            usage_fallback={
                "prompt_tokens": meter.input_tokens or 0,
                "completion_tokens": meter.reported_output_tokens or meter.chunks,
                "total_tokens": (meter.input_tokens or 0)
                + (meter.reported_output_tokens or meter.chunks),
            }
        )
    return attempt


async def _start_stream(
    request: web.Request, spec: CallSpec, endpoint: Endpoint
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **spec.response_headers,
            "x-switchyard-endpoint": endpoint.id,
        }
    )
    try:
        await response.prepare(request)
    except ConnectionResetError as exc:
        raise _ClientGone from exc
    return response


async def _finish_stream(response: web.StreamResponse, outcome: Outcome, detail: str) -> None:
    """End a started stream: as is when it ended well, with a clean error event otherwise
    (an upstream error event was already relayed as such)."""
    try:
        if outcome is not Outcome.OK and outcome is not Outcome.STREAM_ERROR:
            await response.write(
                error_event(f"upstream {outcome.value}: {detail}", code=outcome.value)
            )
        await response.write_eof()
    except ConnectionResetError:
        pass


async def _end(response: web.StreamResponse) -> None:
    try:
        await response.write_eof()
    except ConnectionResetError as exc:
        raise _ClientGone from exc

