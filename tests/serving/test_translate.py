"""OpenAI <-> Anthropic translation and the relay pieces (pure code; hypothesis on splits)."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.simulator import SimConfig, SimOutcome, render_stream
from collector.simulator.profiles import SampledCall
from collector.sse import SSEEvent, SSEParser
from serving.relay import CompletionBuilder, EventFramer
from serving.translate import AnthropicToOpenAI, anthropic_request, passthrough_body
from tests.serving.conftest import profile
from warehouse.models import WireFormat


def test_anthropic_request_maps_roles_tools_and_parameters() -> None:
    body = {
        "model": "router@t:1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "user", "content": [
                {"type": "text", "text": "And this:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        "max_completion_tokens": 77,
        "temperature": 0.2,
        "stop": "END",
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "d", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "user": "u1",
        "frequency_penalty": 0.5,
    }  # fmt: skip
    out = anthropic_request(body, model="claude-x", default_max_tokens=1000)
    assert out["model"] == "claude-x" and out["max_tokens"] == 77 and out["stream"] is True
    assert out["system"] == "Be brief.\n\nNo emojis."
    roles = [m["role"] for m in out["messages"]]  # type: ignore[index,union-attr]
    assert roles == ["user", "assistant", "user"]  # consecutive users merged
    user = out["messages"][0]["content"]  # type: ignore[index]
    assert user[0] == {"type": "text", "text": "Weather in Paris?"}
    assert user[2]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    tool_use = out["messages"][1]["content"][0]  # type: ignore[index]
    assert tool_use == {"type": "tool_use", "id": "call_1", "name": "weather",
                        "input": {"city": "Paris"}}  # fmt: skip
    result = out["messages"][2]["content"][0]  # type: ignore[index]
    assert result == {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}
    assert out["stop_sequences"] == ["END"] and out["temperature"] == 0.2
    assert out["tool_choice"] == {"type": "any"}
    assert out["tools"][0]["input_schema"] == {"type": "object"}  # type: ignore[index]
    assert out["metadata"] == {"user_id": "u1"}
    assert "frequency_penalty" not in out
    assert anthropic_request({"messages": []}, model="m", default_max_tokens=9)["max_tokens"] == 9


def _events(blob: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(blob) + parser.close()


def test_anthropic_stream_becomes_openai_chunks_with_tools() -> None:
    stream = [
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 11}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"c":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '"P"}'}}),
        ("ping", {"type": "ping"}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    t = AnthropicToOpenAI(completion_id="c1", model="m@p", created=5, include_usage=True)
    builder = CompletionBuilder(completion_id="c1", model="m@p", created=5)
    chunks = []
    for name, data in stream:
        for chunk in t.feed(SSEEvent(name, json.dumps(data))):
            chunks.append(chunk)
            builder.add(chunk)
    assert t.done and t.finish_reason == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}
    result = builder.result()
    message = result["choices"][0]["message"]  # type: ignore[index]
    assert message["content"] == "Hi"
    call = {"id": "toolu_1", "type": "function",
            "function": {"name": "weather", "arguments": '{"c":"P"}'}}  # fmt: skip
    assert message["tool_calls"] == [call]
    assert result["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]
    err = t.feed(SSEEvent("error", '{"type":"error","error":{"type":"overloaded_error",'
                                   '"message":"busy"}}'))  # fmt: skip
    assert err == [{"error": {"message": "busy", "type": "overloaded_error", "code": None}}]


def _sim_stream(fmt: WireFormat, seed: int) -> bytes:
    config = SimConfig(profiles=(profile("m@p", wire_format=fmt),), seed=seed)
    rng = random.Random(seed)
    call = config.profiles[0].sample(rng, 12.0, 0.0, 12, force=SimOutcome.OK)
    assert isinstance(call, SampledCall)
    words = ["w"] * call.output_tokens
    blobs = render_stream(fmt, call, words, model="m", request_id="r1", created=1,
                          input_tokens=3, include_usage=True, quirk_rng=None)  # fmt: skip
    return blobs.head + b"".join(blobs.chunks) + blobs.tail


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_framer_output_is_independent_of_chunking(data: st.DataObject) -> None:
    blob = _sim_stream(WireFormat.OPENAI, 1)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(blob) - 1), max_size=30)))
    framer = EventFramer("m@p")
    out = b""
    for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True):
        out += framer.feed(blob[a:b])
    out += framer.close()
    whole = EventFramer("m@p")
    assert out == whole.feed(blob) + whole.close()
    events = [e.data for e in _events(out)]
    assert events[-1] == "[DONE]"
    assert all(json.loads(d)["model"] == "m@p" for d in events[:-1])
    assert _events(blob)[1].data.replace('"model":"m"', '"model":"m@p"') == events[1]


def test_passthrough_body_keeps_client_fields() -> None:
    body = {"model": "x", "messages": [], "stream": False, "seed": 3,
            "stream_options": {"other": 1}}  # fmt: skip
    out = passthrough_body(body, model="real", include_usage=True)
    assert out["model"] == "real" and out["stream"] is True and out["seed"] == 3
    assert out["stream_options"] == {"other": 1, "include_usage": True}
    assert body["model"] == "x"  # the caller's dict is untouched
