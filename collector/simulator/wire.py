"""The bytes a simulated endpoint sends: OpenAI and Anthropic SSE streams, JSON bodies, errors.

Everything is rendered before the first deadline, so the server's per-chunk work is one
``write``. A ``StreamBytes`` holds what goes out at request start (``head``), one blob per
content chunk, what follows the last chunk (``tail``) and the in-stream error event.

    >>> from collector.simulator.profiles import SampledCall, SimOutcome
    >>> call = SampledCall(SimOutcome.OK, 100.0, (), (2,), 2, False, None, None, 10.0, 1.0)
    >>> b = render_stream(WireFormat.OPENAI, call, ["Hi", "there"], model="m", request_id="r1",
    ...                   created=0, input_tokens=3, include_usage=False)
    >>> b.tail.endswith(b"data: [DONE]\\n\\n")
    True
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from warehouse.models import WireFormat

from .profiles import SampledCall

FILLER_WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an which have "
    "not but all they more can one has been their if will about would there when so other "
    "signal route model token stream latency probe window answer measure quiet river stone "
    "light field north green paper small clear early value"
).split()

KEEP_ALIVE = b": keep-alive\n\n"
P_KEEP_ALIVE = 0.1  # with quirks: share of content chunks preceded by a comment line
P_NO_SPACE = 0.3  # with quirks: share of events written 'data:{...}' without the space


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def filler_words(rng: random.Random, n: int) -> list[str]:
    """``n`` deterministic filler words: one word per output token."""
    return rng.choices(FILLER_WORDS, k=n)


def chunk_texts(words: list[str], tokens_per_chunk: tuple[int, ...]) -> list[str]:
    """Split words into chunk texts; every word after the first keeps its leading space."""
    texts, i = [], 0
    for n in tokens_per_chunk:
        part = words[i : i + n]
        texts.append("".join(w if i + k == 0 else " " + w for k, w in enumerate(part)))
        i += n
    return texts


@dataclass(frozen=True, slots=True)
class StreamBytes:
    """A pre-rendered stream: ``head`` at once, ``chunks[i]`` at its deadline, then ``tail``."""

    head: bytes
    chunks: tuple[bytes, ...]
    tail: bytes
    error: bytes


class _Data:
    """Writes one SSE event, optionally with the wire quirks some servers show."""

    def __init__(self, quirk_rng: random.Random | None) -> None:
        self._rng = quirk_rng

    def chance(self, p: float) -> bool:
        return self._rng is not None and self._rng.random() < p

    def event(self, payload: str, name: str | None = None, *, chunk: bool = False) -> bytes:
        prefix = ""
        data = "data: "
        if chunk and self.chance(P_KEEP_ALIVE):
            prefix = KEEP_ALIVE.decode()
        if self.chance(P_NO_SPACE):
            data = "data:"
        head = f"event: {name}\n" if name else ""
        return f"{prefix}{head}{data}{payload}\n\n".encode()


def render_stream(
    wire_format: WireFormat,
    call: SampledCall,
    words: list[str],
    *,
    model: str,
    request_id: str,
    created: int,
    input_tokens: int,
    include_usage: bool,
    quirk_rng: random.Random | None = None,
) -> StreamBytes:
    """Render the whole stream of ``call`` in ``wire_format``."""
    texts = chunk_texts(words, call.tokens_per_chunk)
    out = _Data(quirk_rng)
    if wire_format is WireFormat.ANTHROPIC:
        return _anthropic(call, texts, out, model, request_id, input_tokens)
    return _openai(call, texts, out, model, request_id, created, input_tokens, include_usage)


def _openai(
    call: SampledCall,
    texts: list[str],
    out: _Data,
    model: str,
    request_id: str,
    created: int,
    input_tokens: int,
    include_usage: bool,
) -> StreamBytes:
    base = (
        f'{{"id":"chatcmpl-{request_id}","object":"chat.completion.chunk","created":{created},'
        f'"model":{_dumps(model)},"system_fingerprint":"fp_sim","choices":'
    )
    usage_null = ',"usage":null}' if include_usage else "}"

    def choice(delta: str, finish: str = "null") -> str:
        return f'[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]'

    head = out.event(base + choice('{"role":"assistant","content":"","refusal":null}') + usage_null)
    chunks = tuple(
        out.event(base + choice(f'{{"content":{_dumps(t)}}}') + usage_null, chunk=True)
        for t in texts
    )
    finish = '"length"' if call.hit_max_tokens else '"stop"'
    tail = out.event(base + choice("{}", finish) + usage_null)
    if include_usage:
        usage = {
            "prompt_tokens": input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": input_tokens + call.output_tokens,
        }
        tail += out.event(base + '[],"usage":' + _dumps(usage) + "}")
    tail += b"data: [DONE]\n\n"
    error = out.event(_dumps({"error": openai_error_body("overloaded")["error"]}))
    return StreamBytes(head=head, chunks=chunks, tail=tail, error=error)


def _anthropic(
    call: SampledCall,
    texts: list[str],
    out: _Data,
    model: str,
    request_id: str,
    input_tokens: int,
) -> StreamBytes:
    message = {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    head = (
        out.event(_dumps({"type": "message_start", "message": message}), "message_start")
        + out.event(
            '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
            "content_block_start",
        )
        + out.event('{"type": "ping"}', "ping")
    )
    chunks = []
    for text in texts:
        blob = out.event(
            '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
            + _dumps(text)
            + "}}",
            "content_block_delta",
        )
        if out.chance(P_KEEP_ALIVE):
            blob = out.event('{"type": "ping"}', "ping") + blob
        chunks.append(blob)
    stop = "max_tokens" if call.hit_max_tokens else "end_turn"
    tail = (
        out.event('{"type":"content_block_stop","index":0}', "content_block_stop")
        + out.event(
            _dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": call.output_tokens},
                }
            ),
            "message_delta",
        )
        + out.event('{"type":"message_stop"}', "message_stop")
    )
    error = out.event(_dumps(anthropic_error_body("overloaded")), "error")
    return StreamBytes(head=head, chunks=tuple(chunks), tail=tail, error=error)


def completion_body(
    wire_format: WireFormat,
    call: SampledCall,
    words: list[str],
    *,
    model: str,
    request_id: str,
    created: int,
    input_tokens: int,
) -> dict[str, object]:
    """The non-streaming JSON answer of ``call``."""
    text = "".join(chunk_texts(words, call.tokens_per_chunk))
    if wire_format is WireFormat.ANTHROPIC:
        return {
            "id": f"msg_{request_id}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if call.hit_max_tokens else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": call.output_tokens},
        }
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_sim",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "length" if call.hit_max_tokens else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": input_tokens + call.output_tokens,
        },
    }


# Error kinds -> (HTTP status, OpenAI type, OpenAI code, Anthropic type, message).
ERRORS: dict[str, tuple[int, str, str | None, str, str]] = {
    "bad_request": (400, "invalid_request_error", None, "invalid_request_error", "Bad request"),
    "auth": (
        401, "invalid_request_error", "invalid_api_key", "authentication_error",
        "Incorrect API key provided",
    ),
    "not_found": (404, "invalid_request_error", "model_not_found", "not_found_error", "Not found"),
    "rate_limit": (
        429, "requests", "rate_limit_exceeded", "rate_limit_error",
        "Rate limit reached for requests",
    ),
    "server": (
        500, "server_error", None, "api_error",
        "The server had an error while processing your request",
    ),
    "overloaded": (503, "server_error", "overloaded", "overloaded_error", "Overloaded"),
}


def openai_error_body(kind: str, message: str | None = None) -> dict[str, dict[str, object]]:
    _, etype, code, _, default = ERRORS[kind]
    return {"error": {"message": message or default, "type": etype, "param": None, "code": code}}


def anthropic_error_body(kind: str, message: str | None = None) -> dict[str, object]:
    _, _, _, etype, default = ERRORS[kind]
    return {"type": "error", "error": {"type": etype, "message": message or default}}


def error_response(
    wire_format: WireFormat, kind: str, message: str | None = None
) -> tuple[int, dict[str, object]]:
    """HTTP status and JSON body of an error in the provider's shape.

    Anthropic answers "overloaded" with its own status 529, OpenAI with 503.
    """
    status = ERRORS[kind][0]
    if wire_format is WireFormat.ANTHROPIC:
        return (529 if kind == "overloaded" else status), anthropic_error_body(kind, message)
    return status, dict(openai_error_body(kind, message))
