"""OpenAI chat completions <-> Anthropic Messages, both ways, for the proxy.

:func:`anthropic_request` turns an OpenAI ``/chat/completions`` body into an Anthropic
``/messages`` body: system and developer messages move to ``system``, ``tool`` messages become
``tool_result`` blocks, assistant ``tool_calls`` become ``tool_use`` blocks, consecutive
messages of one role merge (Anthropic wants alternating roles), ``image_url`` parts become
image blocks, ``stop`` becomes ``stop_sequences`` and tools and ``tool_choice`` are mapped.
OpenAI-only parameters without an Anthropic counterpart are dropped.

:class:`AnthropicToOpenAI` turns the events of an Anthropic stream into OpenAI
``chat.completion.chunk`` objects: text, thinking (as ``reasoning_content``) and tool-use
deltas, the finish reason, and a usage chunk when asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from collector.sse import SSEEvent

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
_INPUT_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _image_block(part: Mapping[str, object]) -> dict[str, object] | None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        return None
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: object) -> list[dict[str, object]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, object]] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                out.append({"type": "text", "text": part["text"]})
            elif part.get("type") == "image_url":
                block = _image_block(part)
                if block is not None:
                    out.append(block)
    return out


def _tool_use_blocks(tool_calls: object) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if not isinstance(tool_calls, list):
        return out
    for call in tool_calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        if not isinstance(fn, dict):
            continue
        args = fn.get("arguments") or "{}"
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            parsed = {"_raw": args}
        out.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{len(out)}",
                "name": fn.get("name", ""),
                "input": parsed if isinstance(parsed, dict) else {"value": parsed},
            }
        )
    return out


def _tool_choice(choice: object) -> dict[str, object] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "tool", "name": fn["name"]}
    return None


def anthropic_request(
    body: Mapping[str, object], *, model: str, default_max_tokens: int
) -> dict[str, object]:
    """The Anthropic ``/messages`` streaming body for an OpenAI chat-completions ``body``."""
    system: list[str] = []
    messages: list[dict[str, object]] = []

    def append(role: str, blocks: list[dict[str, object]]) -> None:
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # type: ignore[attr-defined]
        else:
            messages.append({"role": role, "content": blocks})

    raw_messages = body.get("messages")
    for m in raw_messages if isinstance(raw_messages, list) else []:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role in ("system", "developer"):
            text = _text_of(m.get("content"))
            if text:
                system.append(text)
        elif role == "tool":
            append(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": str(m.get("tool_call_id", "")),
                        "content": _text_of(m.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            append("assistant", _blocks(m.get("content")) + _tool_use_blocks(m.get("tool_calls")))
        else:
            append("user", _blocks(m.get("content")))
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    out: dict[str, object] = {"model": model, "max_tokens": cap, "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [
            {
                "name": t["function"].get("name", ""),
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in tools
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    out["stream"] = True
    return out


class AnthropicToOpenAI:
    """Translates one Anthropic stream's events into OpenAI chunk objects.

    ``feed`` returns the chunks one event produces (often none); ``done`` turns True at
    ``message_stop``; an ``error`` event becomes ``{"error": {...}}``.
    """

    def __init__(self, *, completion_id: str, model: str, created: int, include_usage: bool):
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def usage(self) -> dict[str, int]:
        prompt, completion = self.input_tokens or 0, self.output_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def feed(self, sse: SSEEvent) -> list[dict[str, object]]:
        try:
            obj = json.loads(sse.data)
        except ValueError:
            return []
        if not isinstance(obj, dict):
            return []
        kind = obj.get("type") or sse.event
        if kind == "message_start":
            message = obj.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self.input_tokens = sum(int(usage.get(k) or 0) for k in _INPUT_KEYS)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = obj.get("content_block")
            index = obj.get("index")
            if not isinstance(block, dict) or not isinstance(index, int):
                return []
            if block.get("type") == "tool_use":
                k = self._tool_index.setdefault(index, len(self._tool_index))
                call = {
                    "index": k,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return []
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if dtype == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            if dtype == "input_json_delta" and isinstance(obj.get("index"), int):
                k = self._tool_index.setdefault(obj["index"], len(self._tool_index))
                args = delta.get("partial_json", "")
                call = {"index": k, "function": {"arguments": args}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            delta = obj.get("delta")
            usage = obj.get("usage")
            if isinstance(usage, dict) and usage.get("output_tokens") is not None:
                self.output_tokens = int(usage["output_tokens"])
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.finish_reason = FINISH_REASONS.get(str(delta["stop_reason"]), "stop")
                return [self._chunk({}, self.finish_reason)]
            return []
        if kind == "message_stop":
            self.done = True
            out = []
            if self.finish_reason is None:
                self.finish_reason = "stop"
                out.append(self._chunk({}, "stop"))
            if self.include_usage:
                out.append({**self._chunk({}), "choices": [], "usage": self.usage()})
            return out
        if kind == "error":
            err = obj.get("error")
            if not isinstance(err, dict):
                err = {"message": str(err)}
            return [
                {
                    "error": {
                        "message": str(err.get("message", "upstream error")),
                        "type": str(err.get("type", "upstream_error")),
                        "code": None,
                    }
                }
            ]
        return []


def passthrough_body(
    body: Mapping[str, object], *, model: str, include_usage: bool
) -> dict[str, object]:
    """The OpenAI-format upstream body: the client's, with ``model`` set and streaming on."""
    out = dict(body)
    out["model"] = model
    out["stream"] = True
    if include_usage:
        options = out.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                 "include_usage": True}  # fmt: skip
    return out

