"""Load benchmark of ``POST /v1/route``: 20 endpoints, 1,000 requests/s for 60 s.

    python tests/bench/route_load.py [--rate 1000] [--duration 60] [--endpoints 20]

The sidecar runs as it is deployed, ``switchyard up`` in its own process, with a catalog of 20
endpoints served by the provider simulator (another process) and the collector probing them in
the background. This process is the load generator, a lean keep-alive HTTP/1.1 client on
uvloop that leaves the sidecar as much of the two cores as it can. It is open-loop: request
``i`` is due at ``t0 + i / rate`` and its latency runs from that due time to the end of its
response, so a stall on either side is counted, never hidden (the generator's own garbage
collector is off while it measures, so that it stalls less itself). Requests vary over a few
prompts and routers.

Prints progress, then as its LAST line one JSON object: ``rate_rps`` (responses per second
achieved), ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``, ``errors``, ``requests``,
``duration_s``, ``endpoints``, ``client_lag_p99_ms`` (how late the generator itself fired),
``sidecar_cpu_us_per_request`` (CPU of the sidecar process, every thread, per request),
``sidecar_peak_rss_mb`` (its peak resident memory), ``generator_cpu_us_per_request`` (this
process's, warm-up included) and ``load_avg_1m`` before and after (other work on the machine
shows up in every figure).
Targets: p99 <= 5 ms, no errors, rate >= 990.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from collector.catalog import Catalog  # noqa: E402
from collector.simulator import SimConfig, SimulatorProcess, default_profiles  # noqa: E402
from sidecar_proc import SidecarProcess  # noqa: E402

PROMPTS = (
    "What is the capital of France?",
    "Write a Python function that merges two sorted lists and explain its complexity.",
    "Summarise the causes of the French Revolution in three bullet points. " * 4,
    "Translate 'good morning, how are you?' into German and Spanish.",
    "Solve for x: 3x + 7 = 22. Show each step.",
)
ROUTERS = ("", "router@t:1", "router@q:1|c:0.01", "router@t:1|i:0.1|c<20")
WARMUP_REQUESTS = 2048
WARMUP_BATCH = 64
REQUEST_TIMEOUT_S = 30.0  # a request without an answer by then counts as an error
T = TypeVar("T")


def profiles(n: int) -> list[object]:
    base = default_profiles()
    out = []
    for k in range(n):
        p = base[k % len(base)]
        model, provider = p.endpoint_id.split("@")
        eid = p.endpoint_id if k < len(base) else f"{model}@{provider}-{k // len(base)}"
        out.append(p.model_copy(update={"endpoint_id": eid}))
    return out


def bodies() -> list[bytes]:
    out = []
    for i in range(len(PROMPTS) * len(ROUTERS)):
        body: dict[str, object] = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 256}
        router = ROUTERS[i % len(ROUTERS)]
        if router:
            body["router"] = router
        out.append(json.dumps(body).encode())
    return out


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process in MiB (Linux /proc: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class HttpError(Exception):
    """The sidecar's answer could not be read as one HTTP/1.1 response."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight.

    The generator shares the machine's two cores with the sidecar, so it must be cheap: this
    reads a response (status line, headers, ``Content-Length`` body) in a few microseconds of
    Python. With aiohttp's client the generator took ~330 us of CPU per request here, with
    this one 150-250 (``generator_cpu_us_per_request``)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        length = None
        try:
            status = int(head[0].split(" ", 2)[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    self.closed = True
        except (IndexError, ValueError):
            self._fail(HttpError(f"unreadable response head {head[0]!r}"))
            return
        if length is None:
            self._fail(HttpError(f"no Content-Length in {head[0]!r}"))
            return
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or HttpError("connection closed before the response ended"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Client:
    """A pool of keep-alive connections to ``host:port`` (one request per connection at a
    time, as an HTTP/1.1 client without pipelining sends them)."""

    def __init__(self, host: str, port: int, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.idle: list[_Connection] = []
        self.all: list[_Connection] = []

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; its status and body. ``HttpError`` when no whole answer comes
        within ``timeout_s`` (the connection is then closed)."""
        loop = asyncio.get_running_loop()
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
            self.all.append(conn)
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(raw)
        timer = loop.call_later(
            self.timeout_s, conn._fail, HttpError(f"no answer within {self.timeout_s:g} s")
        )
        try:
            answer = await conn.waiter
        except BaseException:
            conn._fail(HttpError("request abandoned"))
            raise
        finally:
            timer.cancel()
        if not conn.closed:
            self.idle.append(conn)
        return answer

    def close(self) -> None:
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()


def requests_bytes(host: str, port: int, token: str) -> list[bytes]:
    """Each payload as a complete ``POST /v1/route`` request."""
    out = []
    for body in bodies():
        head = (
            f"POST /v1/route HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def load(url: str, token: str, rate: float, duration_s: float) -> dict[str, float | int]:
    """Open-loop load at ``rate`` for ``duration_s``; latencies from each request's due time."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    payloads = requests_bytes(host, port, token)
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
    client = Client(host, port)
    try:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                status, _ = await client.request(payloads[i % len(payloads)])
                if status != 200:
                    errors += 1
            except (HttpError, OSError, ValueError):
                errors += 1
            latencies.append(clock() - due)

        # warm-up (not measured): connections, caches, VW pages
        for _ in range(WARMUP_REQUESTS // WARMUP_BATCH):
            await asyncio.gather(*(one(j, clock()) for j in range(WARMUP_BATCH)))
        latencies.clear()
        errors = 0
        # The generator must not stall on its own garbage: a stall here counts as sidecar
        # latency. With its collector on (and every finished task kept, as this file did
        # until 2026-11-23), its full collections walked up to 60,000 tasks and added pauses
        # of tens to hundreds of ms to p99. A minute of requests makes little cyclic garbage.
        gc.collect()
        gc.freeze()
        gc.disable()

        n = int(rate * duration_s)
        in_flight: set[asyncio.Task[None]] = set()
        t0 = clock() + 0.05
        i = 0
        while i < n:
            now = clock()
            while i < n and t0 + i / rate <= now:
                due = t0 + i / rate
                lags.append(now - due)
                task = asyncio.create_task(one(i, due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - clock()))
        await asyncio.gather(*in_flight)
        elapsed = clock() - t0
        gc.enable()
        gc.unfreeze()
    finally:
        client.close()
    lat = sorted(latencies)
    lags.sort()
    return {
        "rate_rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(quantile(lat, 0.50) * 1000, 3),
        "p99_ms": round(quantile(lat, 0.99) * 1000, 3),
        "p999_ms": round(quantile(lat, 0.999) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else None,  # type: ignore[dict-item]
        "errors": errors,
        "requests": len(lat),
        "duration_s": round(elapsed, 2),
        "client_lag_p99_ms": round(quantile(lags, 0.99) * 1000, 3),
    }


def run_loop(coro: Coroutine[object, object, T]) -> T:
    """Run the generator on uvloop (a dependency of the sidecar) when it is installed: it
    costs the generator less CPU per request, CPU that the sidecar shares on two cores."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--gil-switch-interval", help="override the sidecar's setting (s)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # the machine's load when we started (other work counts)
    with tempfile.TemporaryDirectory(prefix="switchyard-route-load-") as tmp:
        work = Path(tmp)
        sim_config = SimConfig(profiles=profiles(args.endpoints), seed=1)  # type: ignore[arg-type]
        with SimulatorProcess(sim_config) as sim:
            catalog = work / "catalog.toml"
            catalog.write_text(Catalog(endpoints=tuple(sim.catalog())).dump_toml())
            env = {"ROUTER_COLLECTOR__INTERVAL_S": "5", "ROUTER_COLLECTOR__JITTER_S": "1",
                   **({"ROUTER_GIL_SWITCH_INTERVAL_S": args.gil_switch_interval}
                      if args.gil_switch_interval else {})}  # fmt: skip
            with SidecarProcess(catalog, work, env=env) as sidecar:
                print(f"sidecar {sidecar.url}, {args.endpoints} endpoints; "
                      f"load {args.rate:g}/s for {args.duration:g} s", file=sys.stderr)  # fmt: skip
                time.sleep(2.0)  # a first round of probes, so live stats exist
                assert sidecar.proc is not None
                cpu_before = process_cpu_s(sidecar.proc.pid)
                gen_before = time.process_time()
                result = run_loop(load(sidecar.url, sidecar.token, args.rate, args.duration))
                gen_cpu_s = time.process_time() - gen_before
                cpu_s = process_cpu_s(sidecar.proc.pid) - cpu_before
                peak_rss_mb = process_peak_rss_mb(sidecar.proc.pid)
    result["endpoints"] = args.endpoints
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    # all of the sidecar's threads, warm-up included: what one request costs the machine
    result["sidecar_cpu_us_per_request"] = round(cpu_s / (result["requests"] + WARMUP_REQUESTS) * 1e6)
    # what the sidecar held at its peak: decisions wait in memory for their feedback window
    result["sidecar_peak_rss_mb"] = peak_rss_mb
    # the generator shares the two cores: what it takes is not available to the sidecar
    result["generator_cpu_us_per_request"] = round(
        gen_cpu_s / (result["requests"] + WARMUP_REQUESTS) * 1e6
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
