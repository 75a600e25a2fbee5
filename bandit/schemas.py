"""The service's request and answer shapes, and what it needs of the warehouse.

``RouteRequest`` and ``RouteResult`` are what the sidecar sends and gets back;
``FeedbackStatus`` and ``OutcomeStatus`` answer the join; ``WarehouseLike`` is the part of
``warehouse.store.Warehouse`` the service uses (a seam for tests and other stores).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from bandit.constraints import LiveStatsSource
from warehouse.models import Decision, Feedback, ProbeResult


class WarehouseLike(Protocol):
    """What the service needs of ``warehouse.store.Warehouse``."""

    @property
    def live(self) -> LiveStatsSource: ...

    def add_decision(self, d: Decision) -> None: ...

    def add_feedback(self, f: Feedback) -> None: ...

    def add_probe(self, r: ProbeResult) -> None: ...

    def mark_learned(self, event_ids: list[str]) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def get_decision(self, event_id: str) -> Decision | None: ...

    def decisions_between(self, start: datetime, end: datetime) -> list[Decision]: ...

    def feedback_for(self, event_id: str) -> list[Feedback]: ...

    def decisions_since(self, ts: datetime, *, unlearned_only: bool = True) -> list[Decision]: ...

    def query(self, sql: str, params: object = None) -> list[tuple[object, ...]]: ...


class RouteRequest(BaseModel):
    """One request to route."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str = Field(description="The prompt text (messages joined).")
    router: str | None = Field(default=None, description="Router string; default if absent.")
    max_tokens: int | None = Field(default=None, ge=1, description="Output token limit.")
    prompt_tokens: int | None = Field(
        default=None, ge=0, description="Prompt tokens if known (else estimated)."
    )
    allow: tuple[str, ...] | None = Field(default=None, description="Only these endpoint ids.")
    deny: tuple[str, ...] = Field(default=(), description="Never these endpoint ids.")
    max_price_per_mtok: float | None = Field(
        default=None, ge=0, description="Maximum blended price, USD per million tokens."
    )
    default_endpoint: str | None = Field(
        default=None, description="The caller's default endpoint (serves in shadow mode)."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="The caller's labels, stored with the decision."
    )


class RouteResult(BaseModel):
    """A decision and what the caller needs to act on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision: Decision
    endpoint: str = Field(description="The endpoint to call (the default one in shadow mode).")
    fallbacks: tuple[str, ...] = Field(description="Endpoints to try next, best first.")
    expected_ttft_ms: float = Field(description="Live TTFT p50 of the endpoint (or the default).")
    expected_itl_ms: float = Field(description="Live ITL p50 of the endpoint (or the default).")
    expected_cost_usd: float = Field(description="Price of the call at max_tokens output.")
    rejected: dict[str, str] = Field(default_factory=dict, description="Screened out, why.")


class FeedbackStatus(StrEnum):
    """Answer to feedback (unknown events and late feedback raise instead)."""

    ACCEPTED = "accepted"  # stored; the event is learned now if it waited for it
    DUPLICATE = "duplicate"  # the event already had feedback: ignored


class OutcomeStatus(StrEnum):
    """Answer to a measured outcome."""

    ACCEPTED = "accepted"  # joined; learned now if the objective has no quality weight
    DUPLICATE = "duplicate"  # the event already had an outcome: ignored for learning
    ALREADY_LEARNED = "already_learned"  # stored, but the event was learned without it


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What ``RouterService.recover`` did."""

    restored: bool  # a checkpoint was loaded
    replayed: int  # unlearned decisions read back from the warehouse
    relearned: int  # of which learned (or settled) now
    pending: int  # events still waiting for feedback or their window
