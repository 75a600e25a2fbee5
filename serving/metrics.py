"""Prometheus metrics of one sidecar, in its own registry (never the global one).

Request counts and latency histograms per route, decisions per endpoint, feedback counts,
probe and traffic outcomes, proxy failovers and TTFT, and live TTFT/ITL gauges read from the
warehouse's in-memory live stats at scrape time (no I/O).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from warehouse.models import LiveStat, ProbeResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
TTFT_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
UNMATCHED = "unmatched"


class _LiveCollector(Collector):
    """Gauges of the live per-endpoint figures, built at each scrape."""

    def __init__(self, live: Callable[[], Mapping[str, LiveStat]]) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        stats = self._live()
        ttft = GaugeMetricFamily(
            "switchyard_live_ttft_ms", "Live TTFT of each endpoint (ms).", labels=["endpoint", "q"]
        )
        itl = GaugeMetricFamily(
            "switchyard_live_itl_ms", "Live inter-token latency (ms).", labels=["endpoint", "q"]
        )
        err = GaugeMetricFamily(
            "switchyard_live_error_rate", "Live share of failed calls.", labels=["endpoint"]
        )
        samples = GaugeMetricFamily(
            "switchyard_live_samples", "Samples in the live window.", labels=["endpoint"]
        )
        for eid in sorted(stats):
            s = stats[eid]
            for q, value in (("p50", s.ttft_ms_p50), ("p90", s.ttft_ms_p90)):
                if value is not None:
                    ttft.add_metric([eid, q], value)
            for q, value in (("p50", s.itl_ms_p50), ("p90", s.itl_ms_p90)):
                if value is not None:
                    itl.add_metric([eid, q], value)
            err.add_metric([eid], s.error_rate)
            samples.add_metric([eid], s.samples)
        yield from (ttft, itl, err, samples)

    def describe(self) -> list[Metric]:
        return []


class Metrics:
    """The sidecar's metrics. ``live`` supplies the live stats for the gauges."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        live: Callable[[], Mapping[str, LiveStat]] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "switchyard_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "switchyard_http_request_duration_seconds",
            "Time to handle a request (whole stream for the proxy).",
            ["route"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.decisions = Counter(
            "switchyard_decisions", "Routing decisions by chosen endpoint.", ["endpoint"],
            registry=r,
        )  # fmt: skip
        self.feedback = Counter(
            "switchyard_feedback", "Feedback received, by kind.", ["kind"], registry=r
        )
        self.probes = Counter(
            "switchyard_probe_outcomes",
            "Measured calls by endpoint, source (probe/traffic) and outcome.",
            ["endpoint", "source", "outcome"],
            registry=r,
        )
        self.failovers = Counter(
            "switchyard_proxy_failovers",
            "Proxy attempts that failed over to the next endpoint, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.proxy_ttft = Histogram(
            "switchyard_proxy_ttft_seconds",
            "TTFT of proxied calls as measured by the proxy.",
            ["endpoint"],
            buckets=TTFT_BUCKETS_S,
            registry=r,
        )
        if live is not None:
            r.register(_LiveCollector(live))
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._decision_children: dict[str, Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        hist = self._latency_children.get(route)
        if hist is None:
            hist = self._latency_children[route] = self.latency.labels(route)
        hist.observe(seconds)

    def observe_decision(self, endpoint_id: str) -> None:
        child = self._decision_children.get(endpoint_id)
        if child is None:
            child = self._decision_children[endpoint_id] = self.decisions.labels(endpoint_id)
        child.inc()

    def observe_probe(self, result: ProbeResult) -> None:
        self.probes.labels(result.endpoint_id, result.source.value, result.outcome.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_label(request: web.Request) -> str:
    """The route's path template (``/v1/route``), never the raw path (bounded cardinality)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def metrics_middleware(metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> Handler:
    """The outermost middleware: counts every request and times it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.observe_request(route_label(request), request.method, status, clock() - start)

    return middleware  # type: ignore[return-value]
