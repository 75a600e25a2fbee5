"""The collector: probes every endpoint on a schedule and measures its streams.

    from collector import Collector, CollectorConfig, load_catalog, make_session
"""

from __future__ import annotations

from collector.catalog import Catalog, ProbePromptSpec, load_catalog, parse_catalog
from collector.config import CollectorConfig
from collector.cost import EndpointCost, probing_cost, render_cost
from collector.errors import CatalogError, CollectorError
from collector.http import make_session
from collector.manners import Manners
from collector.probe import ProbePrompt, ProbeTimeouts, StreamMeter, probe_endpoint
from collector.schedule import Collector
from collector.sse import SSEEvent, SSEParser

__all__ = [
    "Catalog",
    "CatalogError",
    "Collector",
    "CollectorConfig",
    "CollectorError",
    "EndpointCost",
    "Manners",
    "ProbePrompt",
    "ProbePromptSpec",
    "ProbeTimeouts",
    "SSEEvent",
    "SSEParser",
    "StreamMeter",
    "load_catalog",
    "make_session",
    "parse_catalog",
    "probe_endpoint",
    "probing_cost",
    "render_cost",
]
