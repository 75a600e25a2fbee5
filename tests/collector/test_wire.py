"""Tests of the wire formats: request building, event decoding, error bodies."""

from __future__ import annotations

import json

import pytest

from collector.sse import SSEEvent, SSEParser
from collector.wire import (
    ANTHROPIC_VERSION,
    AnthropicDecoder,
    Content,
    Done,
    Malformed,
    OpenAIDecoder,
    StreamError,
    StreamEvent,
    Usage,
    build_request,
    decoder_for,
    parse_error_body,
)
from warehouse.models import Endpoint, WireFormat

KEY = "sk-test-0123456789abcdef"


def endpoint(wire: str, **kw: object) -> Endpoint:
    base = "https://api.anthropic.com/v1/" if wire == "anthropic" else "http://127.0.0.1:9/v1"
    return Endpoint(
        id=f"model-x@{wire}",
        base_url=base,
        wire_format=wire,
        price_in_per_mtok=1,
        price_out_per_mtok=2,
        context_window=1000,
        **kw,
    )


def decode_stream(raw: bytes, wire: WireFormat) -> list[StreamEvent]:
    parser = SSEParser()
    decoder = decoder_for(wire)
    out: list[StreamEvent] = []
    for sse in parser.feed(raw) + parser.close():
        out += decoder.decode(sse)
    return out


def oa(obj: object) -> SSEEvent:
    return SSEEvent(None, json.dumps(obj))


# --- requests ---------------------------------------------------------------------------


def test_openai_request() -> None:
    ep = endpoint("openai", model_name="served-name")
    req = build_request(
        ep, [{"role": "user", "content": "hi"}], max_tokens=16, api_key=KEY, temperature=0.0
    )
    assert req.url == "http://127.0.0.1:9/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in req.headers
    body = json.loads(req.body)
    assert body == {
        "model": "served-name",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    assert KEY not in repr(req)


def test_anthropic_request_moves_system_prompt() -> None:
    ep = endpoint("anthropic")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    req = build_request(ep, messages, max_tokens=8, api_key=KEY, extra={"top_k": 5})
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "Authorization" not in req.headers
    body = json.loads(req.body)
    assert body["model"] == "model-x"
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["stream"] is True and body["max_tokens"] == 8 and body["top_k"] == 5
    assert "stream_options" not in body


def test_no_key_means_no_auth_header_and_bad_max_tokens_rejected() -> None:
    req = build_request(endpoint("openai"), [{"role": "user", "content": "x"}], max_tokens=1,
                        api_key=None)
    assert not {"Authorization", "x-api-key"} & set(req.headers)
    with pytest.raises(ValueError):
        build_request(endpoint("openai"), [], max_tokens=0, api_key=None)


# --- OpenAI decoding --------------------------------------------------------------------


def test_openai_role_only_chunk_is_not_content() -> None:
    d = OpenAIDecoder()
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
             "usage": None}
    assert d.decode(oa(chunk)) == []


def test_openai_content_reasoning_finish_and_usage() -> None:
    d = OpenAIDecoder()
    assert d.decode(oa({"choices": [{"delta": {"content": "Hello, world"}}]})) == [
        Content("Hello, world")
    ]
    assert d.decode(oa({"choices": [{"delta": {"reasoning_content": "hmm"}}]})) == [
        Content("hmm", "reasoning")
    ]
    assert d.decode(oa({"choices": [{"delta": {"reasoning": "so"}}]})) == [
        Content("so", "reasoning")
    ]
    assert d.decode(oa({"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None})) == []
    usage = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7}}
    assert d.decode(oa(usage)) == [Usage(12, 7)]
    assert d.decode(SSEEvent(None, "[DONE]")) == [Done()]


def test_openai_tool_call_arguments_count_as_content() -> None:
    call = {"index": 0, "function": {"arguments": '{"a'}}
    chunk = {"choices": [{"delta": {"tool_calls": [call]}}]}
    assert OpenAIDecoder().decode(oa(chunk)) == [Content('{"a')]


def test_openai_errors_and_malformed() -> None:
    d = OpenAIDecoder()
    err = {"error": {"message": "server overloaded", "type": "server_error"}}
    assert d.decode(oa(err)) == [StreamError("server overloaded", "server_error")]
    assert d.decode(oa({"error": "plain"})) == [StreamError("plain", "error")]
    [bad] = d.decode(SSEEvent(None, '{"choices": [}'))
    assert isinstance(bad, Malformed) and "invalid JSON" in bad.reason
    [arr] = d.decode(SSEEvent(None, "[1, 2]"))
    assert isinstance(arr, Malformed)
    assert d.decode(SSEEvent(None, "")) == []


def test_openai_bad_usage_values_are_dropped() -> None:
    chunk = {"choices": [], "usage": {"prompt_tokens": -1, "completion_tokens": True}}
    assert OpenAIDecoder().decode(oa(chunk)) == [Usage(None, None)]


def test_openai_full_stream_with_odd_framing() -> None:
    raw = (
        b": PROCESSING\r\n\r\n"
        b'data:{"choices":[{"delta":{"role":"assistant","content":""}}],"usage":null}\n\n'
        b'data: {"choices":[{"delta":{"content":"Hel"}}],"usage":null}\r\r'
        b'data: {"choices":[{"delta":{"content":"lo"}}],\ndata: "usage":null}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    assert decode_stream(raw, WireFormat.OPENAI) == [
        Content("Hel"),
        Content("lo"),
        Usage(5, 2),
        Done(),
    ]


# --- Anthropic decoding -----------------------------------------------------------------


def an(kind: str, **fields: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def delta(index: int, **fields: str) -> bytes:
    return an("content_block_delta", index=index, delta=fields)


ANTHROPIC_STREAM = b"".join([
    an("message_start", message={"id": "msg_1", "role": "assistant", "content": [],
                                 "usage": {"input_tokens": 25, "cache_read_input_tokens": 3,
                                           "output_tokens": 1}}),
    b'event: ping\ndata: {"type": "ping"}\n\n',
    an("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
    delta(0, type="thinking_delta", thinking="Let me"),
    delta(0, type="signature_delta", signature="abc"),
    an("content_block_stop", index=0),
    an("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    delta(1, type="text_delta", text="Hi"),
    delta(1, type="input_json_delta", partial_json='{"q"'),
    an("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 9}),
    an("message_delta", delta={}, usage={"output_tokens": 15}),
    an("message_stop"),
])


def test_anthropic_full_stream() -> None:
    assert decode_stream(ANTHROPIC_STREAM, WireFormat.ANTHROPIC) == [
        Usage(28, None),
        Content("Let me", "reasoning"),
        Content("Hi"),
        Content('{"q"'),
        Usage(None, 9),
        Usage(None, 15),
        Done(),
    ]


def test_anthropic_error_event_and_malformed() -> None:
    d = AnthropicDecoder()
    err = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert d.decode(SSEEvent("error", err)) == [StreamError("Overloaded", "overloaded_error")]
    [bad] = d.decode(SSEEvent("content_block_delta", "{nope"))
    assert isinstance(bad, Malformed)
    assert d.decode(SSEEvent("ping", '{"type":"ping"}')) == []
    assert d.decode(SSEEvent("brand_new_event", '{"type":"brand_new_event"}')) == []


# --- error bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error":{"message":"Invalid key","type":"invalid_request_error","code":"x"}}',
         "invalid_request_error: Invalid key"),
        (b'{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}',
         "rate_limit_error: Slow down"),
        (b'{"detail":"Not Found"}', "Not Found"),
        (b'{"error":"bad gateway"}', "bad gateway"),
        (b"<html>\n  502   Bad Gateway\n</html>", "<html> 502 Bad Gateway </html>"),
        (b"\xff\xfe oops", "\ufffd\ufffd oops"),
        (b"", ""),
    ],
)
def test_parse_error_body(body: bytes, expected: str) -> None:
    assert parse_error_body(body) == expected


def test_parse_error_body_is_short() -> None:
    detail = parse_error_body(b"x" * 5000, limit=50)
    assert len(detail) == 50 and detail.endswith("...")
