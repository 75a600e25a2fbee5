"""The sidecar's aiohttp application: state in typed keys, lifecycles in ``cleanup_ctx``.

``create_app`` wires the given parts (warehouse, router, session, optional collector) into
one application. Started (``AppRunner`` or ``aiohttp_client``), it opens the warehouse if
needed (live stats are rebuilt on open), restores the router model (``recover()``), starts
the collector, and only then reports ready. On shutdown it reports not ready at once, lets
requests in flight finish (the runner's ``shutdown_timeout``), then stops the collector,
checkpoints the model and flushes the warehouse (closing it if it opened it).

Middlewares, outermost first: metrics (every request counted and timed), errors (every
exception becomes ``{"ok": false, "error", "status"}``), auth (tokens, scopes, rate limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from collector.schedule import Collector
from serving.auth import Authenticator, RateLimiter, auth_middleware
from serving.errors import error_middleware
from serving.metrics import Metrics, metrics_middleware
from serving.openapi import openapi_json
from serving.proxy import Cooldowns, Proxy
from serving.router import RouterService
from serving.models_admin import MODEL_ROUTES, SWITCHER
from serving.models_admin import install as install_models
from serving.routes import ROUTES, access_table
from serving.settings import ServingSettings
from serving.state import (
    AUTH,
    COLLECTOR,
    LIMITER,
    METRICS,
    OPENAPI,
    PROXY,
    RECENT,
    ROUTER,
    RUN,
    SESSION,
    SETTINGS,
    TRADEOFF,
    UI_CACHES,
    WAREHOUSE,
    RecentDecisions,
    RunState,
)
from serving.ui import UI_ROUTES
from serving.ui_data import UiCaches
from warehouse.models import ProbeResult
from warehouse.store import Warehouse

log = logging.getLogger(__name__)

LIVE_TICK_S = 5.0


def create_app(
    settings: ServingSettings,
    *,
    warehouse: Warehouse,
    router_service: RouterService,
    session: aiohttp.ClientSession,
    collector: Collector | None = None,
    metrics: Metrics | None = None,
    api_keys: Mapping[str, str] | None = None,
    cooldowns: Cooldowns | None = None,
) -> web.Application:
    """The sidecar application (see the module docstring). ``api_keys`` maps environment
    variable names to provider keys from a secrets file (the environment is read too).
    ``cooldowns`` is shared with the router so that cooling endpoints are not chosen."""
    metrics = metrics or Metrics(live=warehouse.live.all)
    authenticator = Authenticator(settings.tokens, insecure_no_auth=settings.insecure_no_auth)
    limiter = RateLimiter(settings.rate_limit)
    app = web.Application(
        middlewares=[
            metrics_middleware(metrics),
            error_middleware,
            auth_middleware(authenticator, limiter, access_table((*ROUTES, *MODEL_ROUTES))),
        ],
        client_max_size=settings.body_limit_bytes,
    )
    app[SETTINGS] = settings
    app[WAREHOUSE] = warehouse
    app[ROUTER] = router_service
    app[SESSION] = session
    app[METRICS] = metrics
    app[AUTH] = authenticator
    app[LIMITER] = limiter
    app[RUN] = RunState()
    app[RECENT] = RecentDecisions()
    if collector is not None:
        app[COLLECTOR] = collector

    def record_probe(result: ProbeResult) -> None:
        warehouse.add_probe(result)
        metrics.observe_probe(result)

    app[PROXY] = Proxy(
        session=session,
        router=router_service,
        config=settings.proxy,
        record_probe=record_probe,
        log_decision=warehouse.add_decision,
        remember_decision=app[RECENT].add,
        metrics=metrics,
        api_keys=api_keys,
        cooldowns=cooldowns,
    )
    for spec in (*ROUTES, *MODEL_ROUTES, *UI_ROUTES):
        app.router.add_route(spec.method, spec.path, spec.handler)
    app[UI_CACHES] = UiCaches.default()
    app[OPENAPI] = openapi_json((*ROUTES, *MODEL_ROUTES, *UI_ROUTES))
    app.cleanup_ctx.append(_warehouse_ctx)
    app.cleanup_ctx.append(_router_ctx)
    install_models(app)  # after the router is restored: route with the active trained model
    app[TRADEOFF] = app[SWITCHER].tradeoff
    app.cleanup_ctx.append(_collector_ctx)
    app.cleanup_ctx.append(_ready_ctx)
    app.on_shutdown.append(_draining)
    return app


async def _warehouse_ctx(app: web.Application) -> AsyncIterator[None]:
    warehouse = app[WAREHOUSE]
    owned = not warehouse.is_open
    app[RUN].not_ready_reason = "opening the warehouse and loading live stats"
    if owned:
        await warehouse.start()
    warehouse.upsert_endpoints(list(app[ROUTER].endpoints.values()))
    ticker = asyncio.create_task(_tick_live(warehouse))
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if owned:
            await warehouse.aclose()
        elif warehouse.is_open:
            await warehouse.aflush()


async def _tick_live(warehouse: Warehouse) -> None:
    while True:
        await asyncio.sleep(LIVE_TICK_S)
        warehouse.live.tick()


async def _router_ctx(app: web.Application) -> AsyncIterator[None]:
    router = app[ROUTER]
    app[RUN].not_ready_reason = "restoring the router model"
    await router.start()
    try:
        yield
    finally:
        await app[PROXY].drain()
        await router.aclose()


async def _collector_ctx(app: web.Application) -> AsyncIterator[None]:
    collector = app.get(COLLECTOR)
    if collector is None:
        yield
        return
    app[RUN].not_ready_reason = "starting the collector"
    await collector.start()
    try:
        yield
    finally:
        await collector.stop()


async def _ready_ctx(app: web.Application) -> AsyncIterator[None]:
    run = app[RUN]
    run.ready = True
    run.not_ready_reason = ""
    try:
        yield
    finally:
        run.ready = False
        run.not_ready_reason = "stopped"


async def _draining(app: web.Application) -> None:
    run = app[RUN]
    run.ready = False
    run.draining = True
    run.not_ready_reason = "draining: shutting down"
