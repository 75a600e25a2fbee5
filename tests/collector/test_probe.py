"""Tests of StreamMeter (synthetic reads) and probe_endpoint (real servers on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from collector.http import RequestTrace, make_session, parse_retry_after
from collector.probe import ProbePrompt, ProbeTimeouts, StreamMeter, probe_endpoint
from warehouse.models import Endpoint, Outcome, ProbeResult, Source, WireFormat

KEY = "sk-test-SECRET-4f9a2b7c"
MS = 1_000_000
PROMPT = ProbePrompt("hello", [{"role": "user", "content": "Say hello."}])
FAST = ProbeTimeouts(connect_s=2, ttft_s=2, total_s=4)


def oa_chunk(content: str | None = None, *, reasoning: str | None = None) -> bytes:
    delta: dict[str, str] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return b"data: " + json.dumps({"choices": [{"delta": delta}], "usage": None}).encode() + b"\n\n"


ROLE = b'data: {"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
FINISH = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
DONE = b"data: [DONE]\n\n"


def oa_usage(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"


def an_event(kind: str, **fields: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def an_text(text: str) -> bytes:
    return an_event("content_block_delta", index=0, delta={"type": "text_delta", "text": text})


# --- StreamMeter with synthetic timestamps ----------------------------------------------


def meter_result(meter: StreamMeter) -> ProbeResult:
    return meter.result(endpoint_id="m@p", started_at=datetime(2025, 1, 1, tzinfo=UTC))


def test_meter_openai_measurements_are_exact() -> None:
    meter = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    meter.feed(10 * MS, ROLE)
    assert meter.first_answer_ns is None
    meter.feed(50 * MS, oa_chunk("a"))
    meter.feed(70 * MS, oa_chunk("b") + oa_chunk("c"))  # two chunks in one read
    meter.feed(100 * MS, FINISH + oa_usage(11, 8))
    assert not meter.finished
    meter.feed(104 * MS, DONE)
    r = meter_result(meter)
    assert r.outcome is Outcome.OK and meter.finished
    assert r.ttft_ms == 50.0 and r.reasoning_ttft_ms is None
    assert r.chunks == 3
    assert (r.itl_ms_mean, r.itl_ms_p50, r.itl_ms_p90, r.itl_ms_max) == (10.0, 10.0, 18.0, 20.0)
    assert r.tpot_ms == pytest.approx(20 / 7)
    assert r.tokens_per_chunk == pytest.approx(8 / 3)
    assert (r.input_tokens, r.output_tokens, r.usage_reported) == (11, 8, True)
    assert r.e2e_ms == 104.0


def test_meter_without_usage_counts_chunks() -> None:
    meter = StreamMeter(WireFormat.OPENAI, sent_ns=5 * MS)
    for i, t in enumerate((20, 30, 45)):
        meter.feed(t * MS, oa_chunk(f"t{i}"))
    meter.feed(50 * MS, DONE)
    r = meter_result(meter)
    assert (r.output_tokens, r.usage_reported, r.tokens_per_chunk) == (3, False, None)
    assert r.ttft_ms == 15.0 and r.tpot_ms == 12.5 and r.e2e_ms == 45.0


def test_meter_reasoning_is_timed_apart_but_counts_as_content() -> None:
    meter = StreamMeter(WireFormat.OPENAI, sent_ns=0, keep_text=True)
    meter.feed(20 * MS, oa_chunk(reasoning="think"))
    meter.feed(60 * MS, oa_chunk("answer"))
    meter.feed(61 * MS, DONE)
    r = meter_result(meter)
    assert (r.reasoning_ttft_ms, r.ttft_ms, r.chunks) == (20.0, 60.0, 2)
    assert meter.answer_text == "answer"


def test_meter_anthropic_cumulative_usage() -> None:
    meter = StreamMeter(WireFormat.ANTHROPIC, sent_ns=0)
    start = an_event("message_start", message={"usage": {"input_tokens": 30, "output_tokens": 1}})
    meter.feed(1 * MS, start + an_event("ping"))
    meter.feed(2 * MS, an_event("content_block_start", index=0,
                                content_block={"type": "text", "text": ""}))
    meter.feed(40 * MS, an_text("Hi"))
    meter.feed(50 * MS, an_text(" there"))
    meter.feed(60 * MS, an_event("message_delta", delta={}, usage={"output_tokens": 6}))
    meter.feed(70 * MS, an_text("!"))
    meter.feed(80 * MS, an_event("message_delta", delta={}, usage={"output_tokens": 11}))
    meter.feed(81 * MS, an_event("message_stop"))
    r = meter_result(meter)
    assert (r.outcome, r.ttft_ms, r.chunks, r.input_tokens, r.output_tokens) == (
        Outcome.OK, 40.0, 3, 30, 11)
    assert r.tpot_ms == pytest.approx(30 / 10)


def test_meter_is_independent_of_read_boundaries() -> None:
    stream = ROLE + oa_chunk("x") + oa_chunk("y") + oa_usage(3, 2) + DONE
    whole = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    whole.feed(7 * MS, stream)
    split = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    for i in range(0, len(stream), 3):
        split.feed(7 * MS, stream[i : i + 3])
    assert meter_result(split) == meter_result(whole)


def test_meter_close_without_terminal_is_truncated() -> None:
    meter = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    meter.feed(10 * MS, oa_chunk("a"))
    meter.close(30 * MS)
    r = meter_result(meter)
    assert (r.outcome, r.ttft_ms, r.e2e_ms) == (Outcome.TRUNCATED, 10.0, 30.0)


def test_meter_freezes_after_terminal_event() -> None:
    meter = StreamMeter(WireFormat.OPENAI, sent_ns=0)
    meter.feed(10 * MS, oa_chunk("a") + b"data: {oops\n\n" + oa_chunk("b"))
    meter.feed(20 * MS, oa_chunk("c") + DONE)
    r = meter_result(meter)
    assert (r.outcome, r.chunks, r.e2e_ms) == (Outcome.MALFORMED, 1, 10.0)
    assert "invalid JSON" in r.detail


# --- small value types ------------------------------------------------------------------


def test_prompt_render_and_validation() -> None:
    prompt = ProbePrompt("sys", [{"role": "system", "content": [{"type": "text", "text": "S"}]},
                                 {"role": "user", "content": "U"}])
    first = prompt.render("abcd")[0]["content"]
    assert first == [{"type": "text", "text": "[probe abcd] "}, {"type": "text", "text": "S"}]
    assert ProbePrompt("n", [{"role": "user", "content": "x"}], nonce=False).render("z") == [
        {"role": "user", "content": "x"}]
    with pytest.raises(ValueError):
        ProbePrompt("", [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError):
        ProbePrompt("n", [{"content": "x"}])


def test_timeouts_validation() -> None:
    with pytest.raises(ValueError):
        ProbeTimeouts(connect_s=1, ttft_s=5, total_s=2)
    with pytest.raises(ValueError):
        ProbeTimeouts(connect_s=0, ttft_s=1, total_s=2)


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Tue, 31 Dec 2024 23:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


# --- real servers on 127.0.0.1 ----------------------------------------------------------


@dataclass
class Script:
    """What the test server does: status, headers, then timed writes, then the end."""

    steps: list[tuple[float, bytes]] = field(default_factory=list)
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a plain (non-streamed) response body
    delay_headers_s: float = 0.0
    end: str = "eof"  # "eof", "drop" (abort mid-stream) or "hang"
    seen: list[dict[str, object]] = field(default_factory=list)


def script_app(script: Script) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        script.seen.append({"headers": dict(request.headers), "json": await request.json()})
        if script.delay_headers_s:
            await asyncio.sleep(script.delay_headers_s)
        if script.body is not None:
            return web.Response(status=script.status, body=script.body,
                                content_type=script.content_type, headers=script.headers)
        resp = web.StreamResponse(status=script.status, headers=script.headers)
        resp.content_type = script.content_type
        await resp.prepare(request)
        for delay, data in script.steps:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(data)
        if script.end == "drop":
            assert request.transport is not None
            request.transport.abort()
            return resp
        if script.end == "hang":
            await asyncio.sleep(30)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/messages", handler)
    return app


def make_endpoint(base_url: str, wire: str = "openai", **kw: object) -> Endpoint:
    return Endpoint(id=f"m1@{wire}-test", base_url=base_url, wire_format=wire,
                    api_key_env="TEST_KEY", price_in_per_mtok=1, price_out_per_mtok=1,
                    context_window=4096, **kw)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = make_session(connect_timeout_s=2)
    yield s
    await s.close()


Run = Callable[..., Awaitable[ProbeResult]]


@pytest.fixture
def run(aiohttp_server: AiohttpServer, session: aiohttp.ClientSession) -> Run:
    async def go(script: Script, *, wire: str = "openai", timeouts: ProbeTimeouts = FAST,
                 **kw: object) -> ProbeResult:
        server = await aiohttp_server(script_app(script))
        ep = make_endpoint(str(server.make_url("/v1")), wire, **kw.pop("endpoint_kw", {}))
        result = await probe_endpoint(session, ep, PROMPT, max_tokens=32, api_key=KEY,
                                      timeouts=timeouts, **kw)
        assert KEY not in result.model_dump_json()
        return result

    return go


OPENAI_OK = [
    (0, b": PROCESSING\n\n" + ROLE[:20]),
    (0, ROLE[20:] + b'data:{"choices":[{"delta":{"content":"Hel'),
    (0.01, b'lo"}}],"usage":null}\r\n\r'),
    (0.01, b"\n" + oa_chunk(" world") + FINISH),
    (0, oa_usage(9, 4) + DONE),
]


async def test_openai_ok_and_key_in_bearer_header(run: Run) -> None:
    script = Script(steps=OPENAI_OK)
    r = await run(script, source=Source.TRAFFIC)
    assert r.outcome is Outcome.OK and r.status_code == 200 and r.detail == ""
    assert (r.chunks, r.input_tokens, r.output_tokens, r.usage_reported) == (2, 9, 4, True)
    assert r.tokens_per_chunk == 2.0 and r.source is Source.TRAFFIC and r.prompt_name == "hello"
    assert r.ttft_ms is not None and r.e2e_ms is not None and r.e2e_ms >= r.ttft_ms
    assert r.conn_reused is False and r.connect_ms is not None
    [seen] = script.seen
    headers = seen["headers"]
    assert isinstance(headers, dict) and headers["Authorization"] == f"Bearer {KEY}"
    body = seen["json"]
    assert isinstance(body, dict)
    assert body["model"] == "m1" and body["stream_options"] == {"include_usage": True}


async def test_anthropic_ok_with_ping_and_cumulative_usage(run: Run) -> None:
    start = an_event("message_start", message={"usage": {"input_tokens": 21, "output_tokens": 1}})
    steps = [
        (0, start + an_event("ping")),
        (0.005, an_event("content_block_start", index=0, content_block={"type": "text",
                                                                         "text": ""})),
        (0.005, an_text("Hello")),
        (0.005, an_text(" you") + an_event("ping")),
        (0, an_event("content_block_stop", index=0)),
        (0, an_event("message_delta", delta={"stop_reason": "end_turn"},
                     usage={"output_tokens": 7})),
        (0, an_event("message_stop")),
    ]
    script = Script(steps=steps)
    r = await run(script, wire="anthropic")
    assert r.outcome is Outcome.OK
    assert (r.chunks, r.input_tokens, r.output_tokens, r.usage_reported) == (2, 21, 7, True)
    headers = script.seen[0]["headers"]
    assert isinstance(headers, dict)
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers


async def test_timing_follows_the_server(run: Run) -> None:
    gap = 0.03
    steps = [(0.15, ROLE + oa_chunk(reasoning="hmm")), (0.1, oa_chunk("a"))]
    steps += [(gap, oa_chunk("b")) for _ in range(4)] + [(0, oa_usage(5, 10) + DONE)]
    r = await run(Script(steps=steps))
    assert r.outcome is Outcome.OK
    assert r.reasoning_ttft_ms is not None and r.ttft_ms is not None
    assert 150 <= r.reasoning_ttft_ms < 600 and 250 <= r.ttft_ms < 900
    assert r.itl_ms_p50 is not None and 25 <= r.itl_ms_p50 < 150
    assert r.itl_ms_max is not None and r.itl_ms_max >= 95  # reasoning -> answer
    # 6 content chunks over >= 220 ms, 10 tokens reported
    assert r.tpot_ms is not None and r.tpot_ms >= 220 / 9


async def test_pooled_connection_is_reused(aiohttp_server: AiohttpServer,
                                           session: aiohttp.ClientSession) -> None:
    server = await aiohttp_server(script_app(Script(steps=OPENAI_OK)))
    ep = make_endpoint(str(server.make_url("/v1")))
    results = [
        await probe_endpoint(session, ep, PROMPT, max_tokens=8, api_key=None, timeouts=FAST)
        for _ in range(2)
    ]
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    assert results[0].conn_reused is False and results[0].connect_ms is not None
    assert results[1].conn_reused is True and results[1].connect_ms is None


async def test_nonce_prefix_from_rng_and_max_tokens_cap(run: Run) -> None:
    scripts = [Script(steps=OPENAI_OK) for _ in range(3)]
    for script, seed in zip(scripts, (1, 1, 2), strict=True):
        await run(script, rng=random.Random(seed), endpoint_kw={"max_tokens_per_probe": 5})
    contents = []
    for script in scripts:
        body = script.seen[0]["json"]
        assert isinstance(body, dict) and body["max_tokens"] == 5
        contents.append(body["messages"][0]["content"])
    assert all(c.startswith("[probe ") and c.endswith("] Say hello.") for c in contents)
    assert contents[0] == contents[1] != contents[2]


async def test_429_with_retry_after_date(run: Run) -> None:
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    script = Script(status=429, content_type="application/json",
                    headers={"Retry-After": "Wed, 01 Jan 2025 00:00:42 GMT"},
                    body=b'{"error":{"message":"Rate limit reached","type":"requests"}}')
    r = await run(script, now=lambda: fixed)
    assert (r.outcome, r.status_code, r.retry_after_s) == (Outcome.HTTP_429, 429, 42.0)
    assert r.detail == "requests: Rate limit reached" and r.started_at == fixed


async def test_401_detail_never_echoes_the_key(run: Run) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}.",
                                 "type": "invalid_request_error"}}).encode()
    r = await run(Script(status=401, content_type="application/json", body=body))
    assert (r.outcome, r.status_code) == (Outcome.HTTP_4XX, 401)
    assert "[redacted]" in r.detail and KEY not in r.detail


async def test_hang_before_headers_is_a_timeout(run: Run) -> None:
    script = Script(steps=OPENAI_OK, delay_headers_s=5)
    r = await run(script, timeouts=ProbeTimeouts(connect_s=1, ttft_s=0.2, total_s=1))
    assert (r.outcome, r.status_code, r.ttft_ms) == (Outcome.TIMEOUT, None, None)
    assert "ttft_s" in r.detail and r.e2e_ms is not None and r.e2e_ms >= 180


async def test_hang_mid_stream_hits_the_total_deadline(run: Run) -> None:
    script = Script(steps=[(0, ROLE + oa_chunk("a"))], end="hang")
    r = await run(script, timeouts=ProbeTimeouts(connect_s=1, ttft_s=0.2, total_s=0.4))
    assert (r.outcome, r.status_code, r.chunks) == (Outcome.TIMEOUT, 200, 1)
    assert "total_s" in r.detail and r.ttft_ms is not None


async def test_refused_port_is_a_connect_error(session: aiohttp.ClientSession) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    ep = make_endpoint(f"http://127.0.0.1:{port}/v1")
    r = await probe_endpoint(session, ep, PROMPT, max_tokens=8, api_key=KEY, timeouts=FAST)
    assert (r.outcome, r.status_code, r.ttft_ms, r.conn_reused) == (
        Outcome.CONNECT_ERROR, None, None, None)
    assert r.detail and KEY not in r.model_dump_json()


async def test_trace_records_a_new_connection(aiohttp_server: AiohttpServer,
                                              session: aiohttp.ClientSession) -> None:
    server = await aiohttp_server(script_app(Script(steps=OPENAI_OK)))
    trace = RequestTrace()
    async with session.post(server.make_url("/v1/chat/completions"), json={},
                            trace_request_ctx=trace) as resp:
        await resp.read()
    assert trace.conn_reused is False
    assert trace.connect_start_ns is not None and trace.connect_end_ns is not None
    assert trace.headers_sent_ns is not None and trace.headers_sent_ns >= trace.connect_end_ns
    assert trace.body_sent_ns is not None and trace.sent_ns == trace.body_sent_ns
    assert trace.body_sent_ns >= trace.headers_sent_ns


ANTHROPIC_OVERLOADED = an_event("error", error={"type": "overloaded_error",
                                                "message": "Overloaded"})

SCENARIOS: dict[str, tuple[Script, str, Outcome, str]] = {
    "openai_done": (Script(steps=OPENAI_OK), "openai", Outcome.OK, ""),
    "server_500": (Script(status=500, content_type="application/json",
                          body=b'{"error":{"message":"boom","type":"server_error"}}'),
                   "openai", Outcome.HTTP_5XX, "server_error: boom"),
    "anthropic_529": (Script(status=529, content_type="application/json",
                             body=b'{"type":"error","error":{"type":"overloaded_error",'
                                  b'"message":"Overloaded"}}'),
                      "anthropic", Outcome.HTTP_5XX, "overloaded_error: Overloaded"),
    "rate_limited": (Script(status=429, headers={"Retry-After": "3"}, body=b"slow down",
                            content_type="text/plain"), "openai", Outcome.HTTP_429, "slow down"),
    "bad_request": (Script(status=400, body=b'{"detail":"max_tokens too large"}',
                           content_type="application/json"),
                    "openai", Outcome.HTTP_4XX, "max_tokens too large"),
    "bad_json": (Script(steps=[(0, ROLE + oa_chunk("a")), (0, b"data: {not json}\n\n")]),
                 "openai", Outcome.MALFORMED, "invalid JSON"),
    "json_not_sse": (Script(status=200, content_type="application/json",
                            body=b'{"choices":[]}'), "openai", Outcome.MALFORMED,
                     "content-type application/json"),
    "no_sse_events": (Script(steps=[(0, b"hello, not an event stream")]), "openai",
                      Outcome.MALFORMED, "no SSE event"),
    "openai_error_in_200": (Script(steps=[(0, oa_chunk("a")),
                                          (0, b'data: {"error":{"message":"overloaded",'
                                              b'"type":"server_error"}}\n\n')]),
                            "openai", Outcome.STREAM_ERROR, "server_error: overloaded"),
    "anthropic_error_in_200": (Script(steps=[(0, an_text("a")), (0, ANTHROPIC_OVERLOADED)]),
                               "anthropic", Outcome.STREAM_ERROR, "overloaded_error"),
    "dropped_mid_stream": (Script(steps=[(0, ROLE + oa_chunk("a"))], end="drop"), "openai",
                           Outcome.TRUNCATED, "payload error"),
    "eof_without_done": (Script(steps=[(0, ROLE + oa_chunk("a") + FINISH)]), "openai",
                         Outcome.TRUNCATED, "before its terminal event"),
    "anthropic_eof_without_stop": (Script(steps=[(0, an_text("a"))]), "anthropic",
                                   Outcome.TRUNCATED, "before its terminal event"),
    "hang": (Script(steps=[(0, ROLE)], end="hang"), "openai", Outcome.TIMEOUT, "ttft_s"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_outcomes(run: Run, name: str) -> None:
    script, wire, expected, detail = SCENARIOS[name]
    r = await run(script, wire=wire,
                  timeouts=ProbeTimeouts(connect_s=1, ttft_s=0.3, total_s=1))
    assert r.outcome is expected, r.detail
    assert detail in r.detail
    if expected is Outcome.HTTP_429:
        assert r.retry_after_s == 3.0
    if name in ("dropped_mid_stream", "openai_error_in_200", "eof_without_done"):
        assert r.ttft_ms is not None and r.chunks == 1


def test_every_outcome_is_exercised() -> None:
    covered = {expected for _, _, expected, _ in SCENARIOS.values()} | {Outcome.CONNECT_ERROR}
    assert covered == set(Outcome)
