"""The collector's HTTP client session, traced so connection set-up is timed apart.

One :func:`make_session` per process, injected into whatever makes calls (the probe scheduler,
the sidecar's proxy). Its :class:`aiohttp.TraceConfig` writes timestamps into a
:class:`RequestTrace` passed per request as ``trace_request_ctx``::

    trace = RequestTrace(clock=time.perf_counter_ns)
    async with session.post(url, data=body, trace_request_ctx=trace) as resp:
        ...
    trace.conn_reused, trace.connect_ms, trace.sent_ns

Requests made without a ``trace_request_ctx`` are not traced (the hooks return at once).
A session of your own can get the same hooks from :func:`connection_trace_config`.
Two small response helpers live here too: :func:`retry_after_s` (``Retry-After`` as seconds
or an HTTP-date, or ``retry-after-ms``) and :func:`read_body_limited` (a bounded error body).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import aiohttp

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 15.0
ERROR_BODY_MAX_BYTES = 65536
ERROR_BODY_TIMEOUT_S = 2.0


@dataclass(slots=True)
class RequestTrace:
    """Timestamps (``clock()`` nanoseconds) of one request's connection set-up and send.

    ``connect_*`` spans DNS, TCP and TLS of a new connection. ``headers_sent_ns`` is taken when
    aiohttp serialises the request headers and ``body_sent_ns`` just before the first body chunk
    (with the buffered headers) is written to the socket; :attr:`sent_ns` is the request's send
    time. ``conn_reused`` is True for a pooled connection, False for a new one, None when
    neither happened (the request failed before).
    """

    clock: Callable[[], int] = time.perf_counter_ns
    queued_start_ns: int | None = None
    queued_end_ns: int | None = None
    dns_start_ns: int | None = None
    dns_end_ns: int | None = None
    connect_start_ns: int | None = None
    connect_end_ns: int | None = None
    headers_sent_ns: int | None = None
    body_sent_ns: int | None = None
    conn_reused: bool | None = None

    @property
    def sent_ns(self) -> int | None:
        """When the request went out: its first body chunk, else its headers.

        aiohttp buffers the headers and writes them together with the first body chunk (from a
        separate task on Python < 3.12), so the body hook is the closer of the two to the
        socket write.
        """
        return self.body_sent_ns if self.body_sent_ns is not None else self.headers_sent_ns

    @property
    def connect_ms(self) -> float | None:
        """New-connection set-up time (DNS + TCP + TLS); None when reused or not finished."""
        return _span_ms(self.connect_start_ns, self.connect_end_ns)

    @property
    def dns_ms(self) -> float | None:
        """DNS resolution time; None on a DNS cache hit or a reused connection."""
        return _span_ms(self.dns_start_ns, self.dns_end_ns)

    @property
    def queued_ms(self) -> float | None:
        """Time spent waiting for a free slot in the connection pool (``limit`` reached)."""
        return _span_ms(self.queued_start_ns, self.queued_end_ns)


def _span_ms(start: int | None, end: int | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0, end - start) / 1e6


def _trace_of(ctx: SimpleNamespace) -> RequestTrace | None:
    trace = getattr(ctx, "trace_request_ctx", None)
    return trace if isinstance(trace, RequestTrace) else None


async def _on_queued_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.queued_start_ns = trace.clock()


async def _on_queued_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.queued_end_ns = trace.clock()


async def _on_create_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.connect_start_ns = trace.clock()


async def _on_create_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.connect_end_ns = trace.clock()
        trace.conn_reused = False


async def _on_reuse(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.conn_reused = True


async def _on_dns_start(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.dns_start_ns = trace.clock()


async def _on_dns_end(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None:
        trace.dns_end_ns = trace.clock()


async def _on_headers_sent(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None and trace.headers_sent_ns is None:
        trace.headers_sent_ns = trace.clock()


async def _on_chunk_sent(_s: aiohttp.ClientSession, ctx: SimpleNamespace, _p: object) -> None:
    if (trace := _trace_of(ctx)) is not None and trace.body_sent_ns is None:
        trace.body_sent_ns = trace.clock()


def connection_trace_config() -> aiohttp.TraceConfig:
    """A TraceConfig that fills the :class:`RequestTrace` given as ``trace_request_ctx``."""
    config = aiohttp.TraceConfig()
    config.on_connection_queued_start.append(_on_queued_start)
    config.on_connection_queued_end.append(_on_queued_end)
    config.on_connection_create_start.append(_on_create_start)
    config.on_connection_create_end.append(_on_create_end)
    config.on_connection_reuseconn.append(_on_reuse)
    config.on_dns_resolvehost_start.append(_on_dns_start)
    config.on_dns_resolvehost_end.append(_on_dns_end)
    config.on_request_headers_sent.append(_on_headers_sent)
    config.on_request_chunk_sent.append(_on_chunk_sent)
    config.freeze()
    return config


def make_session(
    *,
    limit: int = 0,
    limit_per_host: int = 0,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> aiohttp.ClientSession:
    """The process's client session: traced, pooled, with explicit timeouts.

    ``limit`` caps open connections (0: no cap). The session timeout only bounds connection
    set-up (``sock_connect``); each call sets its own read deadlines, since a stream may rightly
    run for minutes. Responses are decompressed transparently (requests built by
    :mod:`collector.wire` ask for ``identity`` anyway). Call from inside a running event loop
    and close it with ``await session.close()``.
    """
    if limit < 0 or limit_per_host < 0:
        raise ValueError("limit and limit_per_host must be >= 0")
    if connect_timeout_s <= 0:
        raise ValueError(f"connect_timeout_s must be > 0, got {connect_timeout_s}")
    if keepalive_timeout_s <= 0:
        raise ValueError(f"keepalive_timeout_s must be > 0, got {keepalive_timeout_s}")
    connector = aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=limit_per_host,
        keepalive_timeout=keepalive_timeout_s,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=None, sock_connect=connect_timeout_s, sock_read=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trace_configs=[connection_trace_config(), *trace_configs],
        raise_for_status=False,
        auto_decompress=True,
    )


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def retry_after_s(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Seconds to wait from a response's ``retry-after-ms`` or ``Retry-After`` header.

    ``headers`` should be case-insensitive (aiohttp's are).
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    return parse_retry_after(headers.get("Retry-After"), now=now)


async def read_body_limited(
    resp: aiohttp.ClientResponse,
    *,
    max_bytes: int = ERROR_BODY_MAX_BYTES,
    timeout_s: float = ERROR_BODY_TIMEOUT_S,
) -> bytes:
    """Up to ``max_bytes`` of a (typically error) body; what arrived if it fails or stalls."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while size < max_bytes:
                data = await resp.content.read(max_bytes - size)
                if not data:
                    break
                parts.append(data)
                size += len(data)
    except (aiohttp.ClientError, TimeoutError):
        pass
    return b"".join(parts)
