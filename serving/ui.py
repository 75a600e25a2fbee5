"""The live dashboard at ``/ui``: one page, its static assets and read-only JSON under
``/ui/api/...``, plus a server-sent-events feed.

Routes (:data:`UI_ROUTES`, registered by ``serving.app`` next to ``ROUTES``):

    GET /ui                        the page (HTML; everything it loads is served from here)
    GET /ui/static/{name}          app.js, app.css (ETag, Cache-Control, gzip when accepted)
    GET /ui/api/now                endpoints now: live figures, state, last-hour sparklines
    GET /ui/api/traffic?window=60  where decisions went, decisions/s, exploration, feedback
    GET /ui/api/tod?metric=ttft&tz=UTC&days=14&source=probe   hour-of-day heatmap
    GET /ui/api/tradeoff           quality / cost / latency of endpoints and routers
    GET /ui/api/event/{event_id}   one decision explained
    GET /ui/api/stream             server-sent events: ``now`` and ``spark`` when they change

**Access.** With tokens configured every route needs a token with the ``admin`` scope; with
none configured it is open like the other read routes (the sidecar binds loopback by
default). A browser cannot attach a bearer header to a page load, so besides
``Authorization: Bearer <token>`` these routes accept HTTP Basic with the token as password
(any user name): a 401 carries a ``Basic`` challenge and the browser asks for it once, then
sends it with every request of the page, the event stream included. The shared auth
middleware knows only bearer tokens, so these handlers check access themselves (same
:class:`~serving.auth.Authenticator`, same rate limiter) and must stay out of
``serving.routes.ACCESS_BY_HANDLER`` (there they would be public, which is what lets Basic
through to this check).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import gzip
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiohttp import web

from serving.auth import PRINCIPAL_KEY, Access, enforce_rate_limit
from serving.errors import BadRequest, Unauthorized
from serving.routes import RouteSpec, find_decision
from serving.state import (
    AUTH,
    LIMITER,
    PROXY,
    ROUTER,
    RUN,
    SETTINGS,
    TRADEOFF,
    UI_CACHES,
    WAREHOUSE,
)
from serving.ui_data import (
    IDLE_INTERVALS,
    IDLE_MIN_S,
    JSON,
    NowInputs,
    UiCaches,
    now_payload,
    sparklines,
    traffic_payload,
)
from serving.ui_reports import event_payload, tod_payload, tradeoff_payload
from warehouse.models import utcnow

STATIC_DIR = Path(__file__).with_name("ui_static")
STATIC_MAX_AGE_S = 3600  # assets are versioned by content hash in the page's URLs
COMPRESS_MIN_BYTES = 1024  # JSON answers above this are gzipped when the client accepts it
STREAM_TICK_S = 2.0
STREAM_HEARTBEAT_S = 10.0  # a quiet stream still sends a (row-less) `now` this often
STREAM_MAX_S = 600.0  # a stream ends after this; EventSource reconnects (bounded handlers)
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{16,128}$")
REALM = 'Basic realm="Switchyard dashboard", charset="UTF-8"'
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                  ".svg": "image/svg+xml"}
_VERSION_RE = re.compile(r"\{\{v:([A-Za-z0-9_.-]+)\}\}")


# --- access -------------------------------------------------------------------------------


def _bearer_header(header: str | None) -> str | None:
    """The Authorization header as the authenticator reads it: Basic becomes Bearer with the
    password (or the user name when the password is empty, as ``curl -u TOKEN:`` sends)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return header
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("the Basic credentials are not valid base64 UTF-8",
                           headers={"WWW-Authenticate": REALM}) from None
    user, _, password = decoded.partition(":")
    return f"Bearer {password or user}"


def guard(request: web.Request) -> None:
    """Admin scope when tokens are configured, open otherwise; then the rate limit."""
    app = request.app
    authenticator = app[AUTH]
    access = Access.ADMIN if authenticator.configured else Access.READ
    try:
        principal = authenticator.authenticate(
            _bearer_header(request.headers.get("Authorization")), access,
            request.remote or "unknown",
        )
    except Unauthorized as exc:
        raise Unauthorized(str(exc), headers={"WWW-Authenticate": REALM}) from None
    assert principal is not None  # noqa: S101 - non-public access always yields one
    enforce_rate_limit(app[LIMITER], principal.name)
    request[PRINCIPAL_KEY] = principal


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler) -> Handler:
    """``handler`` behind :func:`guard`."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        guard(request)
        return await handler(request)

    return wrapper


# --- static assets ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, loaded once: its bytes, gzipped bytes, ETag and type."""

    body: bytes
    gzipped: bytes
    etag: str
    content_type: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, gzip.compress(body, 9, mtime=0), f'"{digest}"', content_type)


@lru_cache(maxsize=1)
def assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file of the static folder; the page's ``{{v:name}}`` placeholders become the
    named asset's hash, so a changed asset gets a new URL."""
    found: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        kind = _CONTENT_TYPES.get(path.suffix)
        if path.is_file() and kind is not None:
            found[path.name] = Asset.of(path.read_bytes(), f"{kind}; charset=utf-8")
    page = found.get("index.html")
    if page is not None:
        text = _VERSION_RE.sub(lambda m: found[m.group(1)].etag.strip('"'), page.body.decode())
        found["index.html"] = Asset.of(text.encode(), page.content_type)
    return found


def _asset_response(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control,
               "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


async def page(request: web.Request) -> web.StreamResponse:
    """The dashboard page."""
    response = _asset_response(request, assets()["index.html"], "private, no-cache")
    response.headers.update({"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer",
                             "X-Frame-Options": "DENY"})
    return response


async def static(request: web.Request) -> web.StreamResponse:
    """A static asset of the page."""
    name = request.match_info["name"]
    asset = assets().get(name)
    if asset is None or name == "index.html":
        raise web.HTTPNotFound(text=f"no dashboard asset {name!r}")
    return _asset_response(request, asset, f"private, max-age={STATIC_MAX_AGE_S}")


# --- JSON APIs ----------------------------------------------------------------------------


def caches(app: web.Application) -> UiCaches:
    return app[UI_CACHES]


def _json(obj: object) -> web.Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    response = web.Response(body=body, content_type="application/json",
                            headers={"Cache-Control": "no-store"})
    if len(body) > COMPRESS_MIN_BYTES:
        response.enable_compression()
    return response


async def _spark(app: web.Application) -> JSON:
    return await caches(app).spark.get("spark", lambda: sparklines(app[WAREHOUSE], utcnow()))


async def _now(app: web.Application) -> JSON:
    async def build() -> JSON:
        now = utcnow()
        wh = app[WAREHOUSE]
        settings = app[SETTINGS]
        idle = max(IDLE_MIN_S, IDLE_INTERVALS * settings.collector.interval_s)
        inputs = NowInputs(
            endpoints=app[ROUTER].endpoints, live=wh.live.all(),
            cooldowns=app[PROXY].cooldowns.snapshot(), model_version=app[ROUTER].model_version,
            ready=app[RUN].ready, idle_after_s=idle,
        )
        return now_payload(inputs, now)

    return await caches(app).now.get("now", build)


async def api_now(request: web.Request) -> web.StreamResponse:
    return _json({**await _now(request.app), "spark": await _spark(request.app)})


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {raw!r}") from None


async def api_traffic(request: web.Request) -> web.StreamResponse:
    window = _int_param(request, "window", 60)
    app = request.app
    try:
        payload = await caches(app).traffic.get(
            window, lambda: traffic_payload(app[WAREHOUSE], utcnow(), window))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _json(payload)


async def api_tod(request: web.Request) -> web.StreamResponse:
    q = request.query
    metric, tz, source = q.get("metric", "ttft"), q.get("tz", "UTC"), q.get("source", "probe")
    days = _int_param(request, "days", 14)
    app = request.app
    try:
        payload = await caches(app).tod.get(
            (metric, tz, days, source),
            lambda: tod_payload(app[WAREHOUSE], utcnow(), metric, tz, days, source))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return _json(payload)


async def api_tradeoff(request: web.Request) -> web.StreamResponse:
    app = request.app

    def build() -> Awaitable[JSON]:
        return tradeoff_payload(
            app[WAREHOUSE], utcnow(), trained=app.get(TRADEOFF), endpoints=app[ROUTER].endpoints,
            live=app[WAREHOUSE].live.all(), default_router=app[SETTINGS].bandit.default_router,
        )

    return _json(await caches(app).tradeoff.get("tradeoff", build))


async def api_event(request: web.Request) -> web.StreamResponse:
    event_id = request.match_info["event_id"]
    if not EVENT_ID_RE.match(event_id):
        raise BadRequest(
            "an event id is 16 to 128 letters, digits or '_.:-' (the x-switchyard-event-id "
            f"header or the event_id of /v1/route), got {event_id[:140]!r}"
        )
    app = request.app
    decision = await find_decision(app, event_id)  # 404 when unknown
    wh = app[WAREHOUSE]
    feedback = await wh.afeedback_for(event_id)
    return _json(await event_payload(wh, decision, feedback, wh.live.all(), utcnow()))


async def api_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events until shutdown or 10 minutes: ``spark`` (the sparklines) at once and
    whenever they changed; ``now`` at once with every row, then, checked every 2 s, with the
    rows that changed (:class:`NowDeltas`). The page ticks the ages itself from ``newest_at``."""
    app = request.app
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    run = app[RUN]
    loop = asyncio.get_running_loop()
    end = loop.time() + STREAM_MAX_S
    await response.write(f"retry: {int(STREAM_TICK_S * 1000)}\n\n".encode())
    sent_spark = ""
    deltas = NowDeltas()
    with contextlib.suppress(ConnectionResetError):
        while not run.draining and loop.time() < end:
            spark = json.dumps(await _spark(app), separators=(",", ":"))
            if spark != sent_spark:
                sent_spark = spark
                await response.write(f"event: spark\ndata: {spark}\n\n".encode())
            delta = deltas.delta(await _now(app), loop.time())
            if delta is not None:
                data = json.dumps(delta, separators=(",", ":"))
                await response.write(f"event: now\ndata: {data}\n\n".encode())
            await asyncio.sleep(STREAM_TICK_S)
    return response


class NowDeltas:
    """What one stream has sent, to send only what changed.

    ``delta(now, t)`` is the ``now`` payload with ``endpoints`` cut to the rows that changed
    (ages apart: they move by themselves), ``removed`` listing rows gone and ``partial`` true;
    the first one is whole (``partial`` false). None when nothing changed, unless
    ``heartbeat_s`` passed since the last one (then it carries no rows, only the time).
    """

    def __init__(self, heartbeat_s: float = STREAM_HEARTBEAT_S) -> None:
        self.heartbeat_s = heartbeat_s
        self.rows: dict[str, str] = {}
        self.head = ""
        self.sent_at: float | None = None

    @staticmethod
    def _row_key(row: dict[str, object]) -> str:
        live = row.get("live")
        if isinstance(live, dict):
            row = {**row, "live": {**live, "age_s": None}}
        return json.dumps(row, sort_keys=True)

    def delta(self, now: JSON, t: float) -> JSON | None:
        raw = now.get("endpoints")
        rows = [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
        keys = {str(r.get("id")): self._row_key(r) for r in rows}
        changed = [r for r in rows if self.rows.get(str(r.get("id"))) != keys[str(r.get("id"))]]
        removed = sorted(set(self.rows) - set(keys))
        head = json.dumps([now.get("model_version"), now.get("ready"), now.get("status_counts")])
        first = self.sent_at is None
        quiet = not changed and not removed and head == self.head
        if not first and quiet and t - (self.sent_at or 0.0) < self.heartbeat_s:
            return None
        self.rows, self.head, self.sent_at = keys, head, t
        return {**now, "endpoints": changed, "removed": removed, "partial": not first}


# --- the table ----------------------------------------------------------------------------

_ERRORS = (401, 403, 429)

UI_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/ui", guarded(page), Access.ADMIN,
              "The live dashboard (HTML page).", content_type="text/html", errors=_ERRORS),
    RouteSpec("GET", "/ui/static/{name}", guarded(static), Access.ADMIN,
              "A static asset of the dashboard (JS, CSS).", content_type="text/plain",
              errors=(*_ERRORS, 404)),
    RouteSpec("GET", "/ui/api/now", guarded(api_now), Access.ADMIN,
              "Dashboard: every endpoint now (live figures, state, last-hour sparklines).",
              errors=_ERRORS),
    RouteSpec("GET", "/ui/api/traffic", guarded(api_traffic), Access.ADMIN,
              "Dashboard: traffic shares over time, decisions/s, exploration, feedback.",
              errors=(*_ERRORS, 400)),
    RouteSpec("GET", "/ui/api/tod", guarded(api_tod), Access.ADMIN,
              "Dashboard: hour-of-day heatmap and the best endpoint per hour.",
              errors=(*_ERRORS, 400)),
    RouteSpec("GET", "/ui/api/tradeoff", guarded(api_tradeoff), Access.ADMIN,
              "Dashboard: quality / cost / latency of endpoints and routers.", errors=_ERRORS),
    RouteSpec("GET", "/ui/api/event/{event_id}", guarded(api_event), Access.ADMIN,
              "Dashboard: one decision explained.", errors=(*_ERRORS, 400, 404)),
    RouteSpec("GET", "/ui/api/stream", guarded(api_stream), Access.ADMIN,
              "Dashboard: server-sent events with the live figures.",
              content_type="text/event-stream", errors=_ERRORS),
)  # fmt: skip
