"""Wire shapes of the HTTP API where they differ from ``warehouse.models``.

Requests validate into these models (``extra="forbid"``: a misspelt field is a 422 naming
it); responses are documented by them in the OpenAPI document, and tests validate real
responses against them. ``Feedback``, ``ProbeResult`` and ``LiveStat`` are built from or
embedded as the shared models themselves.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from warehouse.models import Feedback, LiveStat, Outcome, WireFormat

ROLES = ("system", "developer", "user", "assistant", "tool")
METADATA_MAX_KEYS = 32
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
#: The caller's labels of a request, stored with its decision (``decisions.metadata``).
Metadata = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=METADATA_KEY_MAX_CHARS)],
        Annotated[str, StringConstraints(max_length=METADATA_VALUE_MAX_CHARS)],
    ],
    Field(
        max_length=METADATA_MAX_KEYS,
        description=f"Up to {METADATA_MAX_KEYS} string labels (keys up to "
        f"{METADATA_KEY_MAX_CHARS} characters, values up to {METADATA_VALUE_MAX_CHARS}), "
        "stored with the decision: decisions.metadata in the warehouse.",
    ),
]
Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChatMessage(BaseModel):
    """One OpenAI-style chat message. Unknown fields (``name``, ``tool_calls``...) pass through."""

    model_config = ConfigDict(frozen=True, extra="allow")

    role: Role
    content: str | list[dict[str, object]] | None = None


class RouteConstraints(_Strict):
    """Which endpoints may be chosen. Combined with the router string's own filters."""

    endpoints: list[str] | None = Field(default=None, description="Allow only these endpoints.")
    providers: list[str] | None = Field(default=None, description="Allow only these providers.")
    models: list[str] | None = Field(default=None, description="Allow only these models.")
    skip_endpoints: list[str] | None = Field(default=None, description="Never these endpoints.")
    skip_providers: list[str] | None = Field(default=None, description="Never these providers.")
    skip_models: list[str] | None = Field(default=None, description="Never these models.")
    max_price_per_mtok: float | None = Field(
        default=None, gt=0, description="Blended price below this (USD per million tokens)."
    )
    max_ttft_ms: float | None = Field(default=None, gt=0, description="Live TTFT p50 below this.")
    max_itl_ms: float | None = Field(default=None, gt=0, description="Live ITL p50 below this.")
    max_error_rate: float | None = Field(
        default=None, gt=0, le=1, description="Live error rate below this."
    )

    def router_parts(self) -> list[str]:
        """The constraints as router-string parts (``providers:a,b``, ``ttft<500``...)."""
        parts = []
        for key in (
            "endpoints",
            "providers",
            "models",
            "skip_endpoints",
            "skip_providers",
            "skip_models",
        ):
            names = getattr(self, key)
            if names:
                parts.append(f"{key}:{','.join(names)}")
        for key, name in (
            ("max_price_per_mtok", "c"),
            ("max_ttft_ms", "ttft"),
            ("max_itl_ms", "itl"),
            ("max_error_rate", "err"),
        ):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{name}<{value!r}")
        return parts


class Weights(_Strict):
    """Objective weights: quality, price (per USD/Mtok), TTFT and ITL (per ms)."""

    q: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    c: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    t: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    i: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some(self) -> Weights:
        if not any(v > 0 for v in (self.q, self.c, self.t, self.i)):
            raise ValueError("at least one weight must be > 0")
        return self


class RouteRequest(_Strict):
    """``POST /v1/route``: what to route. Give ``messages`` or ``prompt``."""

    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    router: str = Field(
        default="",
        max_length=2000,
        description="Router string, e.g. router@q:1|c:0.005|providers:openai; empty = default.",
    )
    weights: Weights | None = Field(default=None, description="Override the router's weights.")
    constraints: RouteConstraints | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    metadata: Metadata = Field(default_factory=dict)
    shadow_endpoint: str | None = Field(
        default=None, description="Shadow mode: the endpoint that will actually serve."
    )

    @model_validator(mode="after")
    def _one_input(self) -> RouteRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        return self

    def message_dicts(self) -> tuple[dict[str, object], ...]:
        if self.messages is not None:
            return tuple(m.model_dump(exclude_none=True) for m in self.messages)
        return ({"role": "user", "content": self.prompt},)

    def router_string(self) -> str:
        """The router string with the constraints appended as filter parts."""
        if self.constraints is None:
            return self.router
        parts = self.constraints.router_parts()
        if not parts:
            return self.router
        base = self.router.strip() or "router@"
        sep = "" if base.endswith("@") else "|"
        return base + sep + "|".join(parts)


class EndpointRef(_Strict):
    """Where to send a call."""

    id: str
    base_url: str
    wire_format: WireFormat
    model: str = Field(description="Model name to send on the wire.")


class Expectation(_Strict):
    ttft_ms: float | None = None
    itl_ms: float | None = None
    cost_usd: float | None = None


class RouteResponse(_Strict):
    """``POST /v1/route``'s answer: the decision, ready to act on."""

    ok: Literal[True] = True
    event_id: str
    router: str
    endpoint: EndpointRef
    fallbacks: list[EndpointRef]
    probabilities: dict[str, float]
    expected: Expectation
    model_version: str
    shadow: bool = False
    served: str | None = None


class OutcomeReport(_Strict):
    """``POST /v1/outcome``: what happened on a call the caller made itself."""

    event_id: str = Field(min_length=16, max_length=128)
    endpoint_id: str | None = Field(
        default=None, description="Endpoint called; default: the decision's chosen endpoint."
    )
    status: Outcome | int = Field(
        default=Outcome.OK, description="An outcome name, or the HTTP status code received."
    )
    ttft_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    itl_ms: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="Mean inter-token latency."
    )
    e2e_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    retry_after_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    started_at: datetime | None = Field(
        default=None, description="When the call started (UTC); default: now minus e2e_ms."
    )
    detail: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _check(self) -> OutcomeReport:
        if isinstance(self.status, int) and not 100 <= self.status <= 599:
            raise ValueError("status: an HTTP status code is between 100 and 599")
        if self.started_at is not None and self.started_at.tzinfo is None:
            raise ValueError("started_at must carry a timezone (UTC)")
        return self

    @property
    def outcome(self) -> Outcome:
        if isinstance(self.status, Outcome):
            return self.status
        if self.status == 429:
            return Outcome.HTTP_429
        if self.status >= 500:
            return Outcome.HTTP_5XX
        if self.status >= 400:
            return Outcome.HTTP_4XX
        return Outcome.OK

    @property
    def status_code(self) -> int | None:
        return self.status if isinstance(self.status, int) else None


class OutcomeResponse(_Strict):
    ok: Literal[True] = True
    event_id: str
    endpoint_id: str
    outcome: Outcome


class FeedbackRequest(_Strict):
    """``POST /v1/feedback``: thumbs up/down or a score in [0, 1] for one event."""

    event_id: str = Field(min_length=16, max_length=128)
    thumbs: Literal["up", "down"] | None = None
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _one(self) -> FeedbackRequest:
        if (self.thumbs is None) == (self.score is None):
            raise ValueError("give exactly one of thumbs or score")
        return self

    def to_feedback(self) -> Feedback:
        score = self.score if self.score is not None else (1.0 if self.thumbs == "up" else 0.0)
        return Feedback(event_id=self.event_id, score=score, comment=self.comment)


class FeedbackResponse(_Strict):
    ok: Literal[True] = True
    event_id: str
    score: float
    duplicate: bool = Field(description="True when feedback for this event was already taken.")


class EndpointView(_Strict):
    """One catalog endpoint with its live figures (never its key)."""

    id: str
    base_url: str
    wire_format: WireFormat
    model: str
    price_in_per_mtok: float
    price_out_per_mtok: float
    context_window: int
    tags: list[str]
    live: LiveStat | None
    cooldown_s: float | None = Field(description="Seconds until the proxy tries it again.")


class EndpointsResponse(_Strict):
    ok: Literal[True] = True
    endpoints: list[EndpointView]
    model_version: str


class HealthResponse(_Strict):
    ok: Literal[True] = True
    uptime_s: float


class ReadyResponse(_Strict):
    ok: Literal[True] = True
    ready: Literal[True] = True
    endpoints: int
    live_endpoints: int
    model_version: str


class CheckpointResponse(_Strict):
    ok: Literal[True] = True
    model_version: str


class ErrorResponse(_Strict):
    """The one error shape of every route."""

    ok: Literal[False] = False
    error: str
    status: int


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` (OpenAI-compatible). ``model`` is a router string or an
    endpoint id; other OpenAI parameters pass through to the endpoint."""

    model_config = ConfigDict(frozen=True, extra="allow")

    model: str = Field(min_length=1, description="A router string or an endpoint id.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is supported.")
    metadata: Metadata = Field(default_factory=dict)

    @property
    def output_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatChoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    index: int
    message: dict[str, object]
    finish_reason: str | None


class ChatUsage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """A non-streaming answer; ``model`` is the endpoint that served. Streaming answers are
    ``text/event-stream`` chunks of the same shape (``object: chat.completion.chunk``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage | None = None


def estimate_tokens(messages: tuple[dict[str, object], ...] | list[dict[str, object]]) -> int:
    """A rough prompt size: ceil(characters / 4) over text content."""
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
    return max(1, math.ceil(chars / 4))
