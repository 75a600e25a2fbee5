"""The load generator of ``tests/bench/route_load.py`` measures what it claims to.

The benchmark's figures are only as honest as its generator: open-loop (a request goes out when
it is due, whether or not earlier ones were answered), latency from the due time, every non-200
answer and every answer that never comes counted as an error. These tests run it against a
small aiohttp server on loopback whose answers and stalls they control.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

from route_load import WARMUP_REQUESTS, Generator, Ticker, load, requests_bytes  # noqa: E402

TOKEN = "t0ken-for-the-generator-test"  # noqa: S105 - a test token


class Server:
    """``POST /v1/route`` answering 200, with knobs: every ``fail_every``-th request gets a
    500; ``delay_s`` before each answer; ``stall_s`` blocks the whole loop once, at request
    ``stall_at``; ``hang`` answers only at teardown."""

    def __init__(self) -> None:
        self.seen = 0
        self.fail_every = 0
        self.delay_s = 0.0
        self.stall_at = -1
        self.stall_s = 0.0
        self.hang = False
        self.release = asyncio.Event()  # ends the hanging requests (at teardown)
        self.measured_after = 0  # requests before this many are the warm-up
        self.failures = 0  # 500s sent after the warm-up
        self.arrivals: list[float] = []

    async def route(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert "prompt" in body
        self.seen += 1
        self.arrivals.append(time.perf_counter())
        if self.hang:
            await self.release.wait()
        if self.seen == self.stall_at:
            time.sleep(self.stall_s)  # noqa: ASYNC251 - a stall of the whole server, on purpose
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_every and self.seen % self.fail_every == 0:
            if self.seen > self.measured_after:
                self.failures += 1
            return web.json_response({"ok": False}, status=500)
        return web.json_response({"ok": True})


@pytest.fixture
async def server(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[Server, str]]:
    srv = Server()
    app = web.Application()
    app.router.add_post("/v1/route", srv.route)
    test_server = await aiohttp_server(app)
    try:
        yield srv, str(test_server.make_url("")).rstrip("/")
    finally:
        srv.release.set()  # before the server's own teardown waits for its handlers


async def test_open_loop_rate_errors_and_latency_from_the_due_time(
    server: tuple[Server, str],
) -> None:
    srv, url = server
    srv.fail_every = 10
    srv.delay_s = 0.02
    srv.measured_after = WARMUP_REQUESTS
    result = await load(url, TOKEN, rate=400.0, duration_s=1.0)
    assert result["requests"] == 400
    assert 380 <= result["rate_rps"] <= 401
    # every tenth answer was a 500, each counted once (the warm-up's are not)
    assert result["errors"] == srv.failures and 35 <= srv.failures <= 45
    assert result["p50_ms"] >= 20.0  # the server's 20 ms count, from the due time on
    # requests went out at the rate while earlier ones waited their 20 ms: ~8 in flight
    measured = srv.arrivals[-400:]
    assert measured[-1] - measured[0] == pytest.approx(399 / 400.0, abs=0.1)


async def test_a_stall_counts_for_every_request_due_during_it(server: tuple[Server, str]) -> None:
    srv, url = server
    srv.stall_at = WARMUP_REQUESTS + 100  # warm-up, then the 100th measured request
    srv.stall_s = 0.2
    result = await load(url, TOKEN, rate=500.0, duration_s=1.0)
    assert result["errors"] == 0 and result["requests"] == 500
    # open loop: the ~100 requests due during the 200-ms stall waited for it, each from its
    # own due time, so the slowest took the stall whole and over 5% took more than 50 ms
    assert result["max_ms"] >= 190.0
    assert result["p99_ms"] >= 50.0
    assert result["p50_ms"] < 50.0


async def test_an_answer_that_never_comes_is_an_error(server: tuple[Server, str]) -> None:
    srv, url = server
    srv.hang = True
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    gen = Generator(host, port, requests_bytes(host, port, TOKEN), timeout_s=0.3)
    try:
        start = time.perf_counter()
        for i in range(3):
            gen.fire(i, start)
        while gen.outstanding:
            gen.sweep()
            await asyncio.sleep(0.01)
            assert time.perf_counter() - start < 5.0
    finally:
        gen.close()
    assert gen.errors == 3
    assert all(0.3 <= lat < 2.0 for lat in gen.latencies)


async def test_the_ticker_expires_on_schedule() -> None:
    loop = asyncio.get_running_loop()
    start = time.perf_counter() + 0.05
    fired: list[float] = []
    done = loop.create_future()
    with Ticker(start, 0.002) as ticker:

        def tick() -> None:
            os.read(ticker.fd, 8)
            fired.append(time.perf_counter())
            if len(fired) == 50 and not done.done():
                done.set_result(None)

        loop.add_reader(ticker.fd, tick)
        try:
            await asyncio.wait_for(done, 5.0)
        finally:
            loop.remove_reader(ticker.fd)
    assert fired[0] >= start
    # 50 expiries, 2 ms apart, from start: the 50th is due at start + 98 ms
    assert fired[-1] - start == pytest.approx(0.098, abs=0.03)
