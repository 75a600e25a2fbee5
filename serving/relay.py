"""Pieces that reshape an upstream stream on its way to the client.

- :class:`EventFramer` cuts an OpenAI-format byte stream at event boundaries (blank lines)
  and rewrites each event's top-level ``"model"`` so the client sees the endpoint id. Bytes
  are forwarded as soon as an event is complete: no added wait.
- :class:`CompletionBuilder` folds OpenAI chunk objects into one ``chat.completion`` object,
  for clients that did not ask for a stream (upstream calls always stream, so TTFT and ITL
  are measured on every call).
- :func:`sse_data`, :func:`error_event` and :data:`DONE` encode what the proxy writes itself.
"""

from __future__ import annotations

import json
import re

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_MODEL = re.compile(rb'("model"\s*:\s*)"(?:[^"\\]|\\.)*"')
DONE = b"data: [DONE]\n\n"


def sse_data(obj: object) -> bytes:
    """One SSE event carrying ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def error_event(message: str, *, kind: str = "upstream_error", code: str | None = None) -> bytes:
    """An OpenAI-style in-stream error (the official SDK raises ``APIError`` on it)."""
    return sse_data({"error": {"message": message, "type": kind, "code": code}})


class EventFramer:
    """Splits bytes into complete SSE events and renames the model in each.

    The first ``"model": "..."`` literal seen is learnt and replaced with ``bytes.replace``
    afterwards (one server writes it the same way in every chunk); other spellings go through
    the regular expression. Events end at a blank line (``\\n\\n``, ``\\r\\n\\r\\n``
    or ``\\r\\r``).

    >>> f = EventFramer("gpt-4o@openai")
    >>> f.feed(b'data: {"model":"gpt-4o","x":1}\\n\\ndata: {"mod')
    b'data: {"model":"gpt-4o@openai","x":1}\\n\\n'
    >>> f.feed(b'el": "gpt-4o"}\\n\\n')
    b'data: {"model": "gpt-4o@openai"}\\n\\n'
    """

    __slots__ = ("_buf", "_model", "_replacement", "_learnt", "_learnt_new")

    def __init__(self, model: str) -> None:
        self._buf = b""
        self._model = json.dumps(model).encode()
        self._replacement = b'\\1' + _escape_for_sub(self._model)
        self._learnt: bytes | None = None
        self._learnt_new = b""

    def feed(self, data: bytes) -> bytes:
        """The complete events now available (possibly ``b""``), model renamed."""
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            last = None
            for last in _BOUNDARY.finditer(buf):  # noqa: B007 - we want the last match
                pass
            end = last.end() if last is not None else -1
        else:
            cut = buf.rfind(b"\n\n")
            end = cut + 2 if cut >= 0 else -1
        if end < 0:
            self._buf = buf
            return b""
        self._buf = buf[end:]
        return self._rewrite(buf[:end])

    def close(self) -> bytes:
        """What is left at end of stream (an unterminated last event), model renamed."""
        rest, self._buf = self._buf, b""
        return self._rewrite(rest) if rest.strip() else b""

    def _rewrite(self, events: bytes) -> bytes:
        count = events.count(b'"model"')
        if not count:
            return events
        learnt = self._learnt
        if learnt is not None and events.count(learnt) == count:
            return events.replace(learnt, self._learnt_new)
        if learnt is None:
            match = _MODEL.search(events)
            if match is not None:
                self._learnt = match.group(0)
                self._learnt_new = match.group(1) + self._model
        parts = _BOUNDARY.split(events)
        seps = _BOUNDARY.findall(events)
        out = []
        for i, part in enumerate(parts):
            out.append(_MODEL.sub(self._replacement, part, count=1))
            if i < len(seps):
                out.append(seps[i])
        return b"".join(out)


def _escape_for_sub(text: bytes) -> bytes:
    return text.replace(b"\\", b"\\\\")


class CompletionBuilder:
    """Folds OpenAI chunk objects into one non-streaming ``chat.completion``."""

    def __init__(self, *, completion_id: str, model: str, created: int) -> None:
        self.id = completion_id
        self.model = model
        self.created = created
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, object]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, object] | None = None
        self.system_fingerprint: object = None

    def add(self, chunk: dict[str, object]) -> None:
        if isinstance(chunk.get("id"), str) and chunk["id"]:
            self.id = str(chunk["id"])
        if isinstance(chunk.get("created"), int):
            self.created = int(chunk["created"])  # type: ignore[call-overload]
        if chunk.get("system_fingerprint") is not None:
            self.system_fingerprint = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                self.reasoning.append(reasoning)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._add_tool_call(call)

    def _add_tool_call(self, call: dict[str, object]) -> None:
        index = call.get("index", len(self.tool_calls))
        slot = self.tool_calls.setdefault(
            int(index),  # type: ignore[call-overload]
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        fn = call.get("function")
        if isinstance(fn, dict):
            target = slot["function"]
            assert isinstance(target, dict)  # noqa: S101
            if fn.get("name"):
                target["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str):
                target["arguments"] = str(target["arguments"]) + fn["arguments"]

    def result(self, *, usage_fallback: dict[str, int] | None = None) -> dict[str, object]:
        message: dict[str, object] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[k] for k in sorted(self.tool_calls)]
            if not self.content:
                message["content"] = None
        out: dict[str, object] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
            "usage": self.usage or usage_fallback,
        }
        if self.system_fingerprint is not None:
            out["system_fingerprint"] = self.system_fingerprint
        return out
