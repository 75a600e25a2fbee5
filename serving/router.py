"""What the HTTP layer needs from the router: a small Protocol and the values it passes.

The sidecar's handlers are written against :class:`RouterService`, so the HTTP layer does not
depend on how decisions are made. ``serving.bandit_router`` adapts the real VW bandit to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from warehouse.models import Decision, Endpoint, Feedback, ProbeResult


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """One routing request, already validated.

    ``router`` is a router string (``""``: the configured default), constraints included as
    its filter parts. ``weights`` override its weights (keys ``q``, ``c``, ``t``, ``i``).
    ``messages`` are OpenAI-style chat messages (a bare prompt arrives as one user message).
    """

    router: str = ""
    messages: tuple[Mapping[str, object], ...] = ()
    prompt_tokens: int | None = None
    weights: Mapping[str, float] | None = None
    max_tokens: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    shadow_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Expected:
    """What the router expects of one endpoint for this request."""

    ttft_ms: float | None = None
    itl_ms: float | None = None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A decision plus the router's expectations (``expected`` has at least the chosen one).

    ``pinned`` marks a decision the caller made (it named one endpoint): logged, measured,
    but not a choice of the policy, so there is nothing for the router to learn from it.
    """

    decision: Decision
    expected: Mapping[str, Expected] = field(default_factory=dict)
    pinned: bool = False

    @property
    def attempts(self) -> tuple[str, ...]:
        """Endpoints in the order a proxy tries them: the chosen one, then the fallbacks."""
        d = self.decision
        first = d.served or d.chosen
        return (first, *(e for e in d.fallbacks if e != first))


@runtime_checkable
class RouterService(Protocol):
    """The router as the sidecar uses it.

    ``route`` is on the request path: it must be cheap (model work off the event loop) and
    logs its decision to the warehouse itself (a non-blocking enqueue). ``record_outcome``
    ``record_feedback`` validates, stores and learns: it returns False for a duplicate and
    raises an error with ``status`` 404 for an unknown event, 409 past the feedback window.
    ``start`` restores the model (and starts any periodic work); ``aclose`` checkpoints.
    """

    @property
    def endpoints(self) -> Mapping[str, Endpoint]: ...

    @property
    def model_version(self) -> str: ...

    async def route(self, query: RouteQuery) -> RoutePlan: ...

    async def record_outcome(self, decision: Decision, result: ProbeResult) -> None: ...

    async def record_outcomes(self, outcomes: Sequence[tuple[Decision, ProbeResult]]) -> int: ...

    async def record_feedback(self, feedback: Feedback) -> bool: ...

    async def start(self) -> None: ...

    async def checkpoint(self) -> None: ...

    async def aclose(self) -> None: ...
