"""Configuration of the collector's probing (plain pydantic; the process settings compose it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_INTERVAL_S = 60.0
DEFAULT_JITTER_S = 5.0
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_TOKENS = 64
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_TTFT_TIMEOUT_S = 30.0
DEFAULT_TOTAL_TIMEOUT_S = 120.0
DEFAULT_BACKOFF_BASE_S = 30.0
DEFAULT_BACKOFF_MAX_S = 1800.0
DEFAULT_MISFIRE_GRACE_S = 30.0


class CollectorConfig(BaseModel):
    """How often, how much and how politely endpoints are probed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(
        default=DEFAULT_INTERVAL_S, gt=0, description="Seconds between probes of one endpoint."
    )
    jitter_s: float = Field(
        default=DEFAULT_JITTER_S,
        ge=0,
        description="Random delay up to this many seconds added to each probe's start.",
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY, gt=0, description="Probes in flight at once, overall."
    )
    max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS, gt=0, description="Output-token cap of each probe."
    )
    connect_timeout_s: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT_S, gt=0, description="Connection set-up deadline."
    )
    ttft_timeout_s: float = Field(
        default=DEFAULT_TTFT_TIMEOUT_S, gt=0, description="Deadline for the first token."
    )
    total_timeout_s: float = Field(
        default=DEFAULT_TOTAL_TIMEOUT_S, gt=0, description="Deadline for the whole probe."
    )
    backoff_base_s: float = Field(
        default=DEFAULT_BACKOFF_BASE_S,
        gt=0,
        description="Pause after the first failure; doubles with each further failure.",
    )
    backoff_max_s: float = Field(
        default=DEFAULT_BACKOFF_MAX_S, gt=0, description="Longest pause after failures."
    )
    misfire_grace_s: float = Field(
        default=DEFAULT_MISFIRE_GRACE_S,
        gt=0,
        description="A probe that could not start within this many seconds is skipped.",
    )

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")
        if self.total_timeout_s < self.ttft_timeout_s:
            raise ValueError("total_timeout_s must be at least ttft_timeout_s")
        return self
