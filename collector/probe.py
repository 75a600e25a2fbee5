"""Measuring one streamed call to an LLM endpoint.

:class:`StreamMeter` is the measuring core, shared by the collector's probes and the sidecar's
proxy: feed it each network read as ``(timestamp_ns, bytes)`` and it parses the events, keeps
the running figures and finally builds a :class:`~warehouse.models.ProbeResult`. A proxy
forwards the same bytes to its client and inspects the returned events as they pass.
:func:`probe_endpoint` is a thin loop around it that sends a probe and never raises provider
failures: every ending is an :class:`~warehouse.models.Outcome`.

Definitions (all times from one monotonic ``clock``, in ns, reported in ms):

- *sent*: just before the request goes to the socket, after connection set-up (timed apart
  as ``connect_ms``): aiohttp's ``on_request_chunk_sent`` for the first body chunk, which it
  writes together with the buffered headers (``on_request_headers_sent`` as a fallback; it
  fires earlier, and under load several ms earlier, because on Python 3.11 the body is written
  from a separate task);
- *read time*: ``clock()`` taken as soon as ``readany()`` returns, before parsing; every event
  parsed from that read carries it;
- ``ttft_ms``: sent -> read time of the first event with answer text; ``reasoning_ttft_ms``:
  sent -> first reasoning text;
- a *content chunk* is an SSE event carrying generated text of either kind; ``chunks`` counts
  them and ``itl_ms_*`` describe the gaps between consecutive ones (0 when two arrive in the
  same read);
- ``tpot_ms``: (last content - first content) / (output tokens - 1), tokens from the provider's
  usage when reported, otherwise the chunk count (``usage_reported=False``; that count is then
  also ``output_tokens``, and ``tokens_per_chunk`` stays None);
- ``e2e_ms``: sent -> the terminal event (or the end of the call when there is none).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from collector.http import RequestTrace, read_body_limited, retry_after_s
from collector.sse import SSEEvent, SSEParser
from collector.wire import (
    Content,
    Done,
    Malformed,
    StreamError,
    StreamEvent,
    Usage,
    WireRequest,
    build_request,
    decoder_for,
    parse_error_body,
)
from warehouse.models import Endpoint, Outcome, ProbeResult, Source, WireFormat, utcnow

DRAIN_TIMEOUT_S = 0.5
DETAIL_MAX_CHARS = 500  # of a result's detail
SSE_CONTENT_TYPE = "text/event-stream"


class StreamMeter:
    """Parses and measures one response stream fed as timestamped network reads.

    >>> meter = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    >>> _ = meter.feed(5_000_000, b'data: {"choices":[{"delta":{"content":"Hi"}}]}\\n\\n')
    >>> _ = meter.feed(9_000_000, b"data: [DONE]\\n\\n")
    >>> meter.outcome, meter.result(endpoint_id="m@p", started_at=utcnow()).ttft_ms
    (<Outcome.OK: 'ok'>, 5.0)
    """

    def __init__(
        self, wire_format: WireFormat, *, sent_ns: int | None = None, keep_text: bool = False
    ) -> None:
        self.sent_ns = sent_ns
        self._parser = SSEParser()
        self._decoder = decoder_for(wire_format)
        self._keep_text = keep_text
        self._text: list[str] = []
        self.bytes_in = 0
        self.sse_events = 0
        self.last_read_ns: int | None = None
        self.first_answer_ns: int | None = None
        self.first_reasoning_ns: int | None = None
        self.first_content_ns: int | None = None
        self.last_content_ns: int | None = None
        self.chunks = 0
        self.gaps_ns: list[int] = []
        self.input_tokens: int | None = None
        self.reported_output_tokens: int | None = None
        self.outcome: Outcome | None = None  # set by the terminal event or by close()
        self.detail = ""
        self.end_ns: int | None = None
        self.closed = False

    @property
    def finished(self) -> bool:
        """A terminal event (done, error, malformed) was seen or the stream was closed."""
        return self.outcome is not None

    @property
    def answer_text(self) -> str:
        """The answer text so far (only with ``keep_text=True``)."""
        return "".join(self._text)

    def feed(self, t_ns: int, data: bytes) -> list[StreamEvent]:
        """Account one network read taken at ``t_ns``; return the stream events it completed."""
        self.bytes_in += len(data)
        self.last_read_ns = t_ns
        return self._consume(t_ns, self._parser.feed(data))

    def close(self, t_ns: int) -> list[StreamEvent]:
        """End of stream at ``t_ns``: flush, and mark it truncated if it never finished."""
        if self.closed:
            return []
        self.closed = True
        events = self._consume(t_ns, self._parser.close())
        if self.outcome is None:
            if self.sse_events == 0 and self.bytes_in > 0:
                self._terminal(t_ns, Outcome.MALFORMED, f"no SSE event in {self.bytes_in} bytes")
            else:
                self._terminal(t_ns, Outcome.TRUNCATED, "stream ended before its terminal event")
        return events

    def _consume(self, t_ns: int, sse_events: list[SSEEvent]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for sse in sse_events:
            self.sse_events += 1
            events = self._decoder.decode(sse)
            if not events:
                continue
            out.extend(events)
            if self.outcome is not None:
                continue  # measurements are frozen after the terminal event
            has_content = False
            for event in events:
                if isinstance(event, Content):
                    has_content = True
                    if event.kind == "answer":
                        if self.first_answer_ns is None:
                            self.first_answer_ns = t_ns
                        if self._keep_text:
                            self._text.append(event.text)
                    elif self.first_reasoning_ns is None:
                        self.first_reasoning_ns = t_ns
                elif isinstance(event, Usage):
                    if event.input_tokens is not None:
                        self.input_tokens = event.input_tokens
                    if event.output_tokens is not None:
                        self.reported_output_tokens = event.output_tokens
                elif isinstance(event, Done):
                    self._terminal(t_ns, Outcome.OK, "")
                elif isinstance(event, StreamError):
                    self._terminal(t_ns, Outcome.STREAM_ERROR, f"{event.type}: {event.message}")
                elif isinstance(event, Malformed):
                    self._terminal(t_ns, Outcome.MALFORMED, event.reason)
            if has_content:
                self.chunks += 1
                if self.last_content_ns is None:
                    self.first_content_ns = t_ns
                else:
                    self.gaps_ns.append(t_ns - self.last_content_ns)
                self.last_content_ns = t_ns
        return out

    def _terminal(self, t_ns: int, outcome: Outcome, detail: str) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.detail = detail
            self.end_ns = t_ns

    def _since_sent_ms(self, t_ns: int | None) -> float | None:
        if t_ns is None or self.sent_ns is None:
            return None
        return max(0, t_ns - self.sent_ns) / 1e6

    def result(
        self,
        *,
        endpoint_id: str,
        started_at: datetime,
        source: Source = Source.PROBE,
        prompt_name: str = "",
        event_id: str | None = None,
        status_code: int | None = 200,
        conn_reused: bool | None = None,
        connect_ms: float | None = None,
        outcome: Outcome | None = None,
        detail: str | None = None,
        end_ns: int | None = None,
        retry_after_s: float | None = None,
    ) -> ProbeResult:
        """The :class:`ProbeResult` of this stream.

        ``outcome``/``detail`` override the stream's own (for a timeout or a dropped
        connection seen by the caller); ``end_ns`` is used for ``e2e_ms`` when no terminal
        event was seen. Without any outcome the stream counts as truncated.
        """
        final = outcome or self.outcome or Outcome.TRUNCATED
        if detail is None:
            detail = self.detail if outcome is None or outcome is self.outcome else ""
        end = self.end_ns if self.end_ns is not None else end_ns
        if end is None:
            end = self.last_read_ns
        reported = self.reported_output_tokens
        output_tokens = reported if reported is not None else (self.chunks or None)
        tpot_ms = None
        first, last = self.first_content_ns, self.last_content_ns
        if output_tokens and output_tokens > 1 and first is not None and last is not None:
            if last > first:
                tpot_ms = (last - first) / (output_tokens - 1) / 1e6
        gaps = sorted(self.gaps_ns)
        per_chunk = reported / self.chunks if reported is not None and self.chunks else None
        return ProbeResult(
            endpoint_id=endpoint_id,
            started_at=started_at,
            source=source,
            outcome=final,
            status_code=status_code,
            detail=detail,
            prompt_name=prompt_name,
            event_id=event_id,
            conn_reused=conn_reused,
            connect_ms=connect_ms,
            ttft_ms=self._since_sent_ms(self.first_answer_ns),
            reasoning_ttft_ms=self._since_sent_ms(self.first_reasoning_ns),
            itl_ms_mean=sum(gaps) / len(gaps) / 1e6 if gaps else None,
            itl_ms_p50=_quantile(gaps, 0.5),
            itl_ms_p90=_quantile(gaps, 0.9),
            itl_ms_max=gaps[-1] / 1e6 if gaps else None,
            tpot_ms=tpot_ms,
            e2e_ms=self._since_sent_ms(end),
            chunks=self.chunks,
            tokens_per_chunk=per_chunk,
            input_tokens=self.input_tokens,
            output_tokens=output_tokens,
            usage_reported=reported is not None,
            retry_after_s=retry_after_s,
        )


def _quantile(sorted_ns: Sequence[int], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default) of sorted ns values, in ms."""
    if not sorted_ns:
        return None
    pos = q * (len(sorted_ns) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_ns) - 1)
    return (sorted_ns[lo] + (sorted_ns[hi] - sorted_ns[lo]) * (pos - lo)) / 1e6


@dataclass(frozen=True, slots=True)
class ProbePrompt:
    """A named probe prompt: OpenAI-style messages, sent with a fresh nonce prefix each time.

    >>> ProbePrompt("hi", [{"role": "user", "content": "Say hi."}]).render("8f3a")
    [{'role': 'user', 'content': '[probe 8f3a] Say hi.'}]
    """

    name: str
    messages: Sequence[Mapping[str, object]]
    temperature: float | None = None
    nonce: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ProbePrompt.name must not be empty")
        if not self.messages:
            raise ValueError(f"ProbePrompt {self.name!r} has no messages")
        for message in self.messages:
            if "role" not in message or "content" not in message:
                raise ValueError(f"ProbePrompt {self.name!r}: every message needs role and content")
        object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))

    def render(self, nonce: str | None) -> list[dict[str, object]]:
        """The messages with ``[probe NONCE] `` before the first message's text.

        The first message is where prompt caches start matching, so a unique prefix there
        makes every probe a cache miss.
        """
        messages = [dict(m) for m in self.messages]
        if nonce is None or not self.nonce:
            return messages
        prefix = f"[probe {nonce}] "
        content = messages[0]["content"]
        if isinstance(content, str):
            messages[0]["content"] = prefix + content
        elif isinstance(content, list):
            messages[0]["content"] = [{"type": "text", "text": prefix}, *content]
        return messages


@dataclass(frozen=True, slots=True)
class ProbeTimeouts:
    """Deadlines of one probe, in seconds.

    ``connect_s`` bounds the TCP/TLS connect; ``ttft_s`` runs from the start of the call to the
    first generated text of any kind (reasoning counts: a thinking model is alive);
    ``total_s`` bounds the whole call.
    """

    connect_s: float = 10.0
    ttft_s: float = 30.0
    total_s: float = 120.0

    def __post_init__(self) -> None:
        if min(self.connect_s, self.ttft_s, self.total_s) <= 0:
            raise ValueError("ProbeTimeouts values must be > 0")
        if self.ttft_s > self.total_s:
            raise ValueError(f"ttft_s ({self.ttft_s}) must not exceed total_s ({self.total_s})")


def _status_outcome(status: int) -> Outcome:
    if status == 429:
        return Outcome.HTTP_429
    if status >= 500:
        return Outcome.HTTP_5XX
    return Outcome.HTTP_4XX


def _redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4 and secret in text:
        text = text.replace(secret, "[redacted]")
    return text[:DETAIL_MAX_CHARS]


async def probe_endpoint(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    prompt: ProbePrompt,
    *,
    max_tokens: int,
    api_key: str | None,
    timeouts: ProbeTimeouts,
    clock: Callable[[], int] = time.perf_counter_ns,
    now: Callable[[], datetime] = utcnow,
    source: Source = Source.PROBE,
    rng: random.Random | None = None,
) -> ProbeResult:
    """Send ``prompt`` to ``endpoint`` as a streaming request and measure the answer.

    Never raises for provider or network failures: they are the result's ``outcome``
    (cancellation still propagates). ``started_at`` is ``now()`` as the call starts, before
    connection set-up. ``max_tokens`` is capped by ``endpoint.max_tokens_per_probe``. The
    nonce comes from ``rng`` when given, else from ``uuid4``. The API key is sent and then
    forgotten: it appears nowhere in the result (error details are redacted).

    Outcomes: ``ok`` (terminal event seen); ``timeout`` (``timeouts.ttft_s`` without any
    generated text, or ``total_s`` overall); ``connect_error`` (refused, reset, DNS/TLS,
    connect timeout, disconnected before a response); ``http_429`` (with ``retry_after_s``),
    ``http_5xx``, ``http_4xx`` (any other non-2xx, redirects are not followed);
    ``malformed_stream`` (bad JSON, a 2xx that is not ``text/event-stream``, an invalid HTTP
    response); ``stream_error`` (error event in a 2xx stream); ``truncated`` (the stream
    ended or broke before its terminal event).
    """
    if endpoint.max_tokens_per_probe is not None:
        max_tokens = min(max_tokens, endpoint.max_tokens_per_probe)
    nonce = f"{rng.getrandbits(32):08x}" if rng is not None else uuid.uuid4().hex[:8]
    request = build_request(
        endpoint,
        prompt.render(nonce),
        max_tokens=max_tokens,
        api_key=api_key,
        temperature=prompt.temperature,
    )
    call = MeteredCall(endpoint, request, timeouts=timeouts, clock=clock, now=now)
    await call.run(session)
    return call.result(source=source, prompt_name=prompt.name, api_key=api_key)


OnData = Callable[[bytes], Awaitable[None]]
OnEnd = Callable[[bool], Awaitable[None]]


class MeteredCall:
    """One streaming call to an endpoint over a traced session, measured by a StreamMeter.

    The one piece of code that talks to providers: the collector's probes and the sidecar's
    proxy both run it. :meth:`run` sends the request, classifies the response and reads the
    stream into :attr:`meter`; provider and network failures end as :attr:`outcome` and
    :attr:`detail` (see :func:`probe_endpoint`), never as exceptions. The proxy relays the
    stream through ``on_data`` (each network read, after the meter saw it) and ``on_end``
    (``True`` at EOF, ``False`` when the terminal event arrived first); exceptions these raise,
    other than the ones classified here, propagate after the call's state is settled.

        call = MeteredCall(endpoint, build_request(...), timeouts=ProbeTimeouts())
        await call.run(session)
        result = call.result(source=Source.PROBE, prompt_name="short", api_key=key)
    """

    def __init__(
        self,
        endpoint: Endpoint,
        request: WireRequest,
        *,
        timeouts: ProbeTimeouts,
        clock: Callable[[], int] = time.perf_counter_ns,
        now: Callable[[], datetime] = utcnow,
        timeout_names: tuple[str, str] = ("ttft_s", "total_s"),
    ) -> None:
        self.endpoint = endpoint
        self.timeout_names = timeout_names  # the caller's setting names, for timeout details
        self.request = request
        self.timeouts = timeouts
        self.clock = clock
        self.now = now
        self.trace = RequestTrace(clock=clock)
        self.meter = StreamMeter(endpoint.wire_format)
        self.started_at: datetime | None = None
        self.status: int | None = None
        self.outcome: Outcome | None = None
        self.detail: str | None = None
        self.retry_after: float | None = None
        self.first_text = False  # generated text (or a clean empty answer) has arrived
        self.end_ns: int | None = None

    async def run(
        self,
        session: aiohttp.ClientSession,
        *,
        on_data: OnData | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        """Send, read and classify; afterwards ``outcome`` is set (unless cancelled)."""
        timeouts, meter, trace, clock = self.timeouts, self.meter, self.trace, self.clock
        client_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeouts.connect_s, sock_read=None
        )
        t_start = asyncio.get_running_loop().time()
        self.started_at = self.now()
        t0 = clock()
        try:
            async with asyncio.timeout_at(t_start + timeouts.ttft_s) as deadline:
                async with session.post(
                    self.request.url,
                    data=self.request.body,
                    headers=self.request.headers,
                    timeout=client_timeout,
                    allow_redirects=False,
                    trace_request_ctx=trace,
                ) as resp:
                    self.status = status = resp.status
                    meter.sent_ns = trace.sent_ns if trace.sent_ns is not None else t0
                    if not 200 <= status < 300:
                        deadline.reschedule(None)
                        self.outcome = _status_outcome(status)
                        self.detail = parse_error_body(await read_body_limited(resp))
                        if status == 429:
                            self.retry_after = retry_after_s(resp.headers, now=self.now())
                    elif resp.content_type != SSE_CONTENT_TYPE:
                        deadline.reschedule(None)
                        self.outcome = Outcome.MALFORMED
                        body = parse_error_body(await read_body_limited(resp))
                        self.detail = (
                            f"content-type {resp.content_type}, not {SSE_CONTENT_TYPE}: {body}"
                        )
                    else:
                        content = resp.content
                        eof = False
                        while True:
                            data = await content.readany()
                            t = clock()
                            if not data:
                                meter.close(t)
                                eof = True
                                break
                            meter.feed(t, data)
                            if not self.first_text and (
                                meter.chunks or meter.outcome is Outcome.OK
                            ):
                                self.first_text = True
                                deadline.reschedule(t_start + timeouts.total_s)
                            if on_data is not None:
                                await on_data(data)
                            if meter.finished:
                                break
                        if meter.outcome is Outcome.OK:
                            deadline.reschedule(None)
                        if on_end is not None:
                            await on_end(eof)
                        if meter.outcome is Outcome.OK and not content.at_eof():
                            await _drain(content)
        except aiohttp.ConnectionTimeoutError as exc:
            self.outcome, self.detail = Outcome.CONNECT_ERROR, f"connect timeout: {exc}"
        except TimeoutError:
            self.outcome = Outcome.TIMEOUT
            ttft_name, total_name = self.timeout_names
            if not self.first_text:
                self.detail = f"no generated text within {ttft_name}={timeouts.ttft_s:g}"
            else:
                self.detail = f"stream not complete within {total_name}={timeouts.total_s:g}"
        except aiohttp.ClientPayloadError as exc:
            self.outcome, self.detail = Outcome.TRUNCATED, f"payload error: {exc}"
        except aiohttp.ClientResponseError as exc:
            self.outcome = Outcome.MALFORMED
            self.detail = f"invalid HTTP response: {exc.message}"
        except aiohttp.ClientError as exc:
            name = type(exc).__name__
            if self.status is None:
                self.outcome, self.detail = Outcome.CONNECT_ERROR, f"{name}: {exc}"
            else:
                self.outcome, self.detail = Outcome.TRUNCATED, f"connection lost: {name}: {exc}"
        except ValueError as exc:
            if self.status is None:
                self.outcome, self.detail = Outcome.CONNECT_ERROR, f"request not sent: {exc}"
            else:
                self.outcome, self.detail = Outcome.MALFORMED, f"unreadable stream: {exc}"
        finally:
            self.end_ns = clock()
            if meter.sent_ns is None and trace.sent_ns is not None:
                meter.sent_ns = trace.sent_ns
            if self.outcome is None:
                self.outcome = meter.outcome or Outcome.TRUNCATED
                self.detail = meter.detail

    def redacted_detail(self, api_key: str | None) -> str:
        """``detail`` with the API key removed, at most ``DETAIL_MAX_CHARS`` long."""
        return _redact(self.detail or "", api_key)

    def result(
        self,
        *,
        source: Source,
        prompt_name: str,
        api_key: str | None,
        event_id: str | None = None,
    ) -> ProbeResult:
        """The call as a measurement row (the key appears nowhere in it)."""
        if self.started_at is None:
            raise RuntimeError("MeteredCall.result() before run()")
        return self.meter.result(
            endpoint_id=self.endpoint.id,
            started_at=self.started_at,
            source=source,
            prompt_name=prompt_name,
            event_id=event_id,
            status_code=self.status,
            conn_reused=self.trace.conn_reused,
            connect_ms=self.trace.connect_ms,
            outcome=self.outcome,
            detail=self.redacted_detail(api_key),
            end_ns=self.end_ns,
            retry_after_s=self.retry_after,
        )


async def _drain(content: aiohttp.StreamReader) -> None:
    """Read what follows the terminal event so the connection can go back to the pool."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            for _ in range(64):
                if not await content.readany():
                    break
    except (aiohttp.ClientError, TimeoutError):
        pass
