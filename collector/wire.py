"""The two provider wire formats: building a streaming request and reading its events.

:func:`build_request` makes the HTTP request for an :class:`~warehouse.models.Endpoint`
(OpenAI-compatible ``/chat/completions`` or Anthropic ``/messages``). :func:`decoder_for`
returns a decoder that turns :class:`~collector.sse.SSEEvent` objects into typed stream
events:

- :class:`Content` -- generated text, ``kind="answer"`` or ``"reasoning"`` (OpenAI
  ``reasoning_content``/``reasoning``, Anthropic ``thinking_delta``). Tool-call arguments
  (OpenAI ``tool_calls``, Anthropic ``input_json_delta``) count as answer content. Chunks that
  carry no text (the role-only first chunk, the ``finish_reason`` chunk, ``ping``,
  ``content_block_start``/``stop``) produce nothing.
- :class:`Usage` -- token counts; a ``None`` field means "not in this event". Anthropic's
  ``output_tokens`` is cumulative, so the latest value is the total.
- :class:`StreamError` -- an error event inside a 200 stream.
- :class:`Done` -- the terminal event (OpenAI ``[DONE]``, Anthropic ``message_stop``).
- :class:`Malformed` -- data that is not the wire format (invalid JSON, not an object).

:func:`parse_error_body` turns a provider's non-200 error body into a short detail string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from collector.sse import SSEEvent
from warehouse.models import Endpoint, WireFormat

ANTHROPIC_VERSION = "2023-06-01"
DETAIL_MAX_CHARS = 200

ContentKind = Literal["answer", "reasoning"]


@dataclass(frozen=True, slots=True)
class Content:
    """Generated text: answer text or reasoning text."""

    text: str
    kind: ContentKind = "answer"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider; ``None`` means not given in this event."""

    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class StreamError:
    """An error reported inside a successful (200) stream."""

    message: str
    type: str


@dataclass(frozen=True, slots=True)
class Done:
    """The stream's terminal event."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """Bytes that are not the wire format; the reason says what was wrong."""

    reason: str


StreamEvent = Content | Usage | StreamError | Done | Malformed

_DONE = Done()
_ANTHROPIC_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class StreamDecoder(Protocol):
    """Turns SSE events of one stream into typed stream events (stateful, one per stream)."""

    def decode(self, sse: SSEEvent) -> list[StreamEvent]: ...


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A ready-to-send streaming request. ``repr`` hides the headers (they hold the key)."""

    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


def build_request(
    endpoint: Endpoint,
    messages: Sequence[Mapping[str, object]],
    *,
    max_tokens: int,
    api_key: str | None,
    temperature: float | None = None,
    extra: Mapping[str, object] | None = None,
) -> WireRequest:
    """Build the streaming request for ``endpoint`` in its wire format.

    ``messages`` are OpenAI-style ``{"role", "content"}`` dicts. For Anthropic, ``system``
    messages move to the top-level ``system`` field. ``extra`` keys are merged into the JSON
    body last (for provider-specific options). No auth header is sent when ``api_key`` is None.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",
    }
    payload: dict[str, object] = {"model": endpoint.api_model, "max_tokens": max_tokens}
    if endpoint.wire_format is WireFormat.OPENAI:
        path = "/chat/completions"
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        payload["messages"] = [dict(m) for m in messages]
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    else:
        path = "/messages"
        if api_key is not None:
            headers["x-api-key"] = api_key
        headers["anthropic-version"] = ANTHROPIC_VERSION
        system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
        if system:
            payload["system"] = "\n\n".join(system)
        payload["messages"] = [dict(m) for m in messages if m.get("role") != "system"]
        payload["stream"] = True
    if temperature is not None:
        payload["temperature"] = temperature
    if extra:
        payload.update(extra)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return WireRequest(url=endpoint.base_url + path, headers=headers, body=body)


def decoder_for(wire_format: WireFormat) -> StreamDecoder:
    """A fresh decoder for one stream in ``wire_format``."""
    if wire_format is WireFormat.OPENAI:
        return OpenAIDecoder()
    return AnthropicDecoder()


def _count(value: object) -> int | None:
    """A token count if ``value`` is a non-negative whole number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _load(data: str) -> dict[str, object] | Malformed:
    try:
        obj = json.loads(data)
    except ValueError as exc:  # json.JSONDecodeError, RecursionError is not expected here
        return Malformed(f"invalid JSON in data line: {exc.msg} at {exc.pos}"[:DETAIL_MAX_CHARS])
    if not isinstance(obj, dict):
        return Malformed(f"data line is JSON {type(obj).__name__}, not an object")
    return obj


def _error_event(err: object, fallback_type: str) -> StreamError:
    if isinstance(err, dict):
        message = err.get("message")
        kind = err.get("type") or err.get("code") or fallback_type
        return StreamError(
            message=_short(str(message) if message is not None else json.dumps(err)),
            type=str(kind),
        )
    return StreamError(message=_short(str(err)), type=fallback_type)


class OpenAIDecoder:
    """Decoder for OpenAI-compatible chat-completion chunks."""

    __slots__ = ()

    def decode(self, sse: SSEEvent) -> list[StreamEvent]:
        data = sse.data
        if data == "[DONE]" or data.strip() == "[DONE]":
            return [_DONE]
        if not data.strip():
            return []  # an empty keep-alive
        obj = _load(data)
        if isinstance(obj, Malformed):
            return [obj]
        if "error" in obj and obj["error"] is not None:
            return [_error_event(obj["error"], "error")]
        if sse.event == "error":
            return [_error_event(obj, "error")]
        out: list[StreamEvent] = []
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    continue
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    out.append(Content(reasoning, "reasoning"))
                text = delta.get("content")
                if isinstance(text, str) and text:
                    out.append(Content(text))
                tool_calls = delta.get("tool_calls")
                if isinstance(tool_calls, list):
                    args = "".join(_tool_arguments(tool_calls))
                    if args:
                        out.append(Content(args))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            out.append(
                Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
            )
        return out


def _tool_arguments(tool_calls: list[object]) -> list[str]:
    parts = []
    for call in tool_calls:
        if isinstance(call, dict):
            function = call.get("function")
            if isinstance(function, dict):
                args = function.get("arguments")
                if isinstance(args, str):
                    parts.append(args)
    return parts


class AnthropicDecoder:
    """Decoder for Anthropic Messages events (named events, cumulative output usage).

    Input tokens come from ``message_start`` and count cache reads and writes too, so they
    are the prompt's size, comparable with OpenAI's ``prompt_tokens``.
    """

    __slots__ = ()

    def decode(self, sse: SSEEvent) -> list[StreamEvent]:
        if not sse.data.strip():
            return []
        obj = _load(sse.data)
        if isinstance(obj, Malformed):
            return [obj]
        kind = obj.get("type")
        if not isinstance(kind, str):
            kind = sse.event or ""
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return []
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                return [Content(text)] if isinstance(text, str) and text else []
            if dtype == "thinking_delta":
                text = delta.get("thinking")
                return [Content(text, "reasoning")] if isinstance(text, str) and text else []
            if dtype == "input_json_delta":
                text = delta.get("partial_json")
                return [Content(text)] if isinstance(text, str) and text else []
            return []  # signature_delta, citations_delta, future types
        if kind == "message_delta":
            usage = obj.get("usage")
            if isinstance(usage, dict):
                return [
                    Usage(_count(usage.get("input_tokens")), _count(usage.get("output_tokens")))
                ]
            return []
        if kind == "message_start":
            message = obj.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                parts = [_count(usage.get(k)) for k in _ANTHROPIC_INPUT_KEYS]
                if parts[0] is not None:
                    return [Usage(sum(p or 0 for p in parts), None)]
            return []
        if kind == "message_stop":
            return [_DONE]
        if kind == "error":
            return [_error_event(obj.get("error", obj), "error")]
        if kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict):
                if block.get("type") == "text" and isinstance(block.get("text"), str):
                    return [Content(block["text"])] if block["text"] else []
                if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
                    return [Content(block["thinking"], "reasoning")] if block["thinking"] else []
            return []
        return []  # ping, content_block_stop, unknown future events


def parse_error_body(body: bytes, *, limit: int = DETAIL_MAX_CHARS) -> str:
    """A short detail string from a provider's error body (JSON or text).

    Understands OpenAI ``{"error": {"message", "type", "code"}}``, Anthropic
    ``{"type": "error", "error": {"type", "message"}}`` and the common ``{"detail": ...}`` /
    ``{"message": ...}`` shapes; anything else is the first ``limit`` characters of the text.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    detail: str | None = None
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            message = err.get("message")
            kind = err.get("type") or err.get("code")
            if message is not None:
                detail = f"{kind}: {message}" if kind else str(message)
        elif isinstance(err, str):
            detail = err
        if detail is None:
            for key in ("detail", "message", "msg"):
                if obj.get(key) is not None:
                    value = obj[key]
                    detail = value if isinstance(value, str) else json.dumps(value)
                    break
    if detail is None:
        detail = text
    return _short(detail, limit)


def _short(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
