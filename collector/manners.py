"""Manners toward providers: Retry-After pauses, exponential backoff and probe budgets.

Pure bookkeeping with an injected monotonic clock, so the rules are testable without waiting:

- A 429 pauses the endpoint until its ``Retry-After`` (or, without one, like any failure).
- After ``n`` consecutive failures the endpoint pauses for
  ``min(backoff_base_s * 2 ** (n - 1), backoff_max_s)``; the first success resets ``n``.
- ``Endpoint.probes_per_hour`` caps probes in any sliding hour.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.config import CollectorConfig
from warehouse.models import Endpoint, Outcome, ProbeResult

HOUR_S = 3600.0


@dataclass
class EndpointState:
    """What the collector remembers about one endpoint between probes."""

    consecutive_failures: int = 0
    paused_until: float = 0.0  # monotonic seconds
    pause_reason: str = ""
    recent: deque[float] = field(default_factory=deque)  # monotonic start times, last hour


class Manners:
    """Decides whether an endpoint may be probed now, and learns from each result.

    The scheduler asks :meth:`skip_reason` before each probe, calls :meth:`started` when it
    sends one and :meth:`record` with its result.
    """

    def __init__(self, config: CollectorConfig, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self._states: dict[str, EndpointState] = {}

    def state(self, endpoint_id: str) -> EndpointState:
        st = self._states.get(endpoint_id)
        if st is None:
            st = self._states[endpoint_id] = EndpointState()
        return st

    def skip_reason(self, endpoint: Endpoint) -> str | None:
        """Why ``endpoint`` must not be probed now, or None when it may."""
        now = self.clock()
        st = self.state(endpoint.id)
        if now < st.paused_until:
            return f"paused {st.paused_until - now:.1f}s more ({st.pause_reason})"
        if endpoint.probes_per_hour is not None:
            while st.recent and st.recent[0] <= now - HOUR_S:
                st.recent.popleft()
            if len(st.recent) >= endpoint.probes_per_hour:
                return f"budget of {endpoint.probes_per_hour:g} probes per hour reached"
        return None

    def started(self, endpoint_id: str) -> None:
        """Count a probe against the endpoint's hourly budget."""
        self.state(endpoint_id).recent.append(self.clock())

    def record(self, result: ProbeResult) -> None:
        """Update pauses and backoff from one probe result."""
        now = self.clock()
        st = self.state(result.endpoint_id)
        if result.outcome is Outcome.OK:
            st.consecutive_failures = 0
            st.paused_until = 0.0
            st.pause_reason = ""
            return
        st.consecutive_failures += 1
        backoff = min(
            self.config.backoff_base_s * 2 ** (st.consecutive_failures - 1),
            self.config.backoff_max_s,
        )
        if result.outcome is Outcome.HTTP_429 and result.retry_after_s is not None:
            st.paused_until = now + result.retry_after_s
            st.pause_reason = f"429, Retry-After {result.retry_after_s:g}s"
        else:
            st.paused_until = now + backoff
            st.pause_reason = (
                f"{st.consecutive_failures} consecutive failures, last {result.outcome.value}"
            )

    def paused(self) -> dict[str, float]:
        """Endpoints paused now, with the seconds left."""
        now = self.clock()
        return {k: s.paused_until - now for k, s in self._states.items() if s.paused_until > now}

    def max_tokens_for(self, endpoint: Endpoint) -> int:
        if endpoint.max_tokens_per_probe is not None:
            return min(endpoint.max_tokens_per_probe, self.config.max_tokens)
        return self.config.max_tokens
