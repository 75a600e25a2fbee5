"""The sidecar's application state: typed ``web.AppKey``s and the small mutable run state."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from collector.schedule import Collector
from serving.auth import Authenticator, RateLimiter
from serving.metrics import Metrics
from serving.proxy import Proxy
from serving.router import RouterService
from serving.settings import ServingSettings
from serving.ui_data import UiCaches
from warehouse.models import Decision
from warehouse.store import Warehouse

RECENT_DECISIONS = 10_000


class RecentDecisions:
    """The last decisions made here, by event id: outcome and feedback look-ups without I/O."""

    def __init__(self, capacity: int = RECENT_DECISIONS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._items: OrderedDict[str, Decision] = OrderedDict()

    def add(self, decision: Decision) -> None:
        self._items[decision.event_id] = decision
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, event_id: str) -> Decision | None:
        return self._items.get(event_id)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class RunState:
    """Readiness and bookkeeping of one running app."""

    started_at: float = field(default_factory=time.monotonic)
    ready: bool = False
    draining: bool = False
    not_ready_reason: str = "starting"
    feedback_in_flight: set[str] = field(default_factory=set)


SETTINGS = web.AppKey("settings", ServingSettings)
WAREHOUSE = web.AppKey("warehouse", Warehouse)
ROUTER = web.AppKey("router", RouterService)
COLLECTOR = web.AppKey("collector", Collector)
SESSION = web.AppKey("session", aiohttp.ClientSession)
METRICS = web.AppKey("metrics", Metrics)
AUTH = web.AppKey("authenticator", Authenticator)
LIMITER = web.AppKey("rate_limiter", RateLimiter)
PROXY = web.AppKey("proxy", Proxy)
RUN = web.AppKey("run_state", RunState)
RECENT = web.AppKey("recent_decisions", RecentDecisions)
OPENAPI = web.AppKey("openapi_json", bytes)
UI_CACHES = web.AppKey("ui_caches", UiCaches)

#: The active trained router's trade-off JSON (``bandit.tradeoff.Tradeoff.to_json`` shape), or
#: None without one. Unset: the dashboard treats it as None.
TradeoffSource = Callable[[], dict[str, object] | None]
TRADEOFF: web.AppKey[TradeoffSource] = web.AppKey("tradeoff")
