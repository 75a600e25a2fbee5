"""The records that cross package boundaries.

Every part of Switchyard speaks these frozen pydantic models: the collector produces
``ProbeResult`` rows, the bandit produces ``Decision`` rows, the sidecar accepts ``Feedback``.
Units live in field names (``ttft_ms``, ``price_in_per_mtok``); datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENDPOINT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*@[A-Za-z0-9][A-Za-z0-9._\-]*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WireFormat(StrEnum):
    """The streaming API an endpoint speaks."""

    OPENAI = "openai"  # OpenAI-compatible /chat/completions
    ANTHROPIC = "anthropic"  # Anthropic /v1/messages


class Outcome(StrEnum):
    """How one call to an endpoint ended. Failures are data, never exceptions."""

    OK = "ok"
    TIMEOUT = "timeout"  # no first token / no completion within the deadline
    CONNECT_ERROR = "connect_error"  # DNS, TCP or TLS failure, connection refused or reset
    HTTP_429 = "http_429"  # rate limited
    HTTP_5XX = "http_5xx"  # server error status before streaming
    HTTP_4XX = "http_4xx"  # other non-success status (bad key, bad request, ...)
    MALFORMED = "malformed_stream"  # bytes that are not the wire format
    STREAM_ERROR = "stream_error"  # an error event inside a 200 stream (e.g. overloaded)
    TRUNCATED = "truncated"  # the stream ended before its terminal event

    @property
    def is_failure(self) -> bool:
        return self is not Outcome.OK


class Source(StrEnum):
    """Where a measurement came from."""

    PROBE = "probe"  # the collector's synthetic probes
    TRAFFIC = "traffic"  # real calls: proxied by the sidecar or reported via /v1/outcome


class Endpoint(_Frozen):
    """One model at one provider, as listed in the catalog.

    >>> Endpoint(id="gpt-4o@openai", base_url="https://api.openai.com/v1",
    ...          wire_format="openai", api_key_env="OPENAI_API_KEY",
    ...          price_in_per_mtok=2.5, price_out_per_mtok=10, context_window=128000).provider
    'openai'
    """

    id: str = Field(description="Endpoint id, written model@provider.")
    base_url: str = Field(description="API base URL, e.g. https://api.openai.com/v1.")
    wire_format: WireFormat = Field(description="openai or anthropic.")
    model_name: str | None = Field(
        default=None, description="Model name sent to the API; defaults to the part before @."
    )
    api_key_env: str | None = Field(
        default=None, description="Environment variable holding the API key (never the key)."
    )
    price_in_per_mtok: float = Field(ge=0, description="USD per million input tokens.")
    price_out_per_mtok: float = Field(ge=0, description="USD per million output tokens.")
    context_window: int = Field(gt=0, description="Maximum prompt plus output tokens.")
    tags: tuple[str, ...] = Field(default=(), description="Free-form labels.")
    probes_per_hour: float | None = Field(
        default=None, gt=0, description="Budget: at most this many probes per hour."
    )
    max_tokens_per_probe: int | None = Field(
        default=None, gt=0, description="Budget: cap on output tokens per probe."
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ENDPOINT_ID_RE.match(value):
            raise ValueError(f"endpoint id {value!r} must look like model@provider")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                f"api_key_env {value!r} must be the NAME of an environment variable, not a key"
            )
        return value

    @property
    def model(self) -> str:
        return self.id.rsplit("@", 1)[0]

    @property
    def provider(self) -> str:
        return self.id.rsplit("@", 1)[1]

    @property
    def api_model(self) -> str:
        """The model name sent on the wire."""
        return self.model_name or self.model

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.price_in_per_mtok + output_tokens * self.price_out_per_mtok
        ) / 1e6


class ProbeResult(_Frozen):
    """One measured call to an endpoint: a probe or a real (traffic) call.

    Latencies are in milliseconds, measured with a monotonic clock. ``ttft_ms`` runs from the
    request being sent to the first chunk carrying answer text; connection set-up is timed apart
    in ``connect_ms`` (``None`` when a pooled connection was reused).
    """

    endpoint_id: str
    started_at: datetime
    source: Source = Source.PROBE
    outcome: Outcome
    status_code: int | None = None
    detail: str = ""
    prompt_name: str = ""
    event_id: str | None = None
    conn_reused: bool | None = None
    connect_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    reasoning_ttft_ms: float | None = Field(default=None, ge=0)
    itl_ms_mean: float | None = Field(default=None, ge=0)
    itl_ms_p50: float | None = Field(default=None, ge=0)
    itl_ms_p90: float | None = Field(default=None, ge=0)
    itl_ms_max: float | None = Field(default=None, ge=0)
    tpot_ms: float | None = Field(default=None, ge=0)
    e2e_ms: float | None = Field(default=None, ge=0)
    chunks: int = Field(default=0, ge=0)
    tokens_per_chunk: float | None = Field(default=None, ge=0)
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    usage_reported: bool = False
    retry_after_s: float | None = Field(default=None, ge=0)

    @field_validator("started_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("started_at must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @property
    def tokens_per_s(self) -> float | None:
        if self.tpot_ms and self.tpot_ms > 0:
            return 1000.0 / self.tpot_ms
        return None


class Decision(_Frozen):
    """One routing decision, with everything off-policy learning needs."""

    event_id: str = Field(min_length=16)
    created_at: datetime
    router: str = Field(description="The router string the objective came from.")
    context: dict[str, float | str] = Field(default_factory=dict)
    candidates: tuple[str, ...] = Field(min_length=1)
    probabilities: tuple[float, ...]
    chosen: str
    chosen_prob: float = Field(gt=0, le=1)
    fallbacks: tuple[str, ...] = ()
    policy_version: str
    shadow: bool = False
    served: str | None = Field(default=None, description="Endpoint that served (shadow mode).")
    prompt_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] = Field(
        default_factory=dict,
        description="The caller's labels for the request (team, feature, ...), stored as given.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if len(self.probabilities) != len(self.candidates):
            raise ValueError("probabilities must align with candidates")
        if self.chosen not in self.candidates:
            raise ValueError(f"chosen {self.chosen!r} is not among the candidates")
        if abs(sum(self.probabilities) - 1.0) > 1e-3:
            raise ValueError("probabilities must sum to 1")
        return self


class Feedback(_Frozen):
    """The caller's verdict on one decision: a thumb (1 or 0) or a score in [0, 1]."""

    event_id: str = Field(min_length=1)
    score: float = Field(ge=0, le=1)
    comment: str | None = Field(default=None, max_length=4000)
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LiveStat(_Frozen):
    """Live figures of one endpoint, precomputed so that reading them does no I/O.

    Window figures cover the last ``WarehouseConfig.live_window_s``; ``*_ewma`` figures are
    exponentially decayed estimates with half-life ``WarehouseConfig.live_half_life_s``.
    Rates are fractions in [0, 1]. ``None`` means no sample yet.
    """

    endpoint_id: str
    samples: int = 0
    samples_traffic: int = 0
    ttft_ms_p50: float | None = None
    ttft_ms_p90: float | None = None
    itl_ms_p50: float | None = None
    itl_ms_p90: float | None = None
    tokens_per_s: float | None = None
    error_rate: float = 0.0
    rate_429: float = 0.0
    ttft_ms_ewma: float | None = None
    itl_ms_ewma: float | None = None
    tokens_per_s_ewma: float | None = None
    error_rate_ewma: float | None = None
    newest_at: datetime | None = None

    def age_s(self, now: datetime) -> float | None:
        """Seconds since the newest sample, or None without one."""
        if self.newest_at is None:
            return None
        return max(0.0, (now - self.newest_at).total_seconds())


def utcnow() -> datetime:
    return datetime.now(UTC)
