"""Load benchmark of ``POST /v1/route``: 20 endpoints, 1,000 requests/s for 60 s.

    python tests/bench/route_load.py [--rate 1000] [--duration 60] [--endpoints 20]

The sidecar runs as it is deployed, ``switchyard up`` in its own process, with a catalog of 20
endpoints served by the provider simulator (another process) and the collector probing them in
the background. This process is the load generator, a lean keep-alive HTTP/1.1 client on
uvloop that leaves the sidecar as much of the two cores as it can (~90 us of CPU a request: it
waits for each due time on a kernel timer, ``Ticker``, and keeps no task per request). It is
open-loop: request ``i`` is due at ``t0 + i / rate`` and its latency runs from that due time to
the end of its response, so a stall on either side is counted, never hidden (the generator's
own garbage collector is off while it measures, so that it stalls less itself). Requests vary
over a few prompts and routers.

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
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
from collections import deque
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


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight.

    The generator shares the machine's two cores with the sidecar, so it must be cheap and must
    not add delays of its own to what it measures. It keeps no task, future or timer per
    request: a request is written the moment it is due (``Generator.fire``) and its latency is
    taken when the last byte of its response is read (``data_received``), a few microseconds of
    Python each. With aiohttp's client the generator took ~330 us of CPU per request here; with
    a task, a future and a timer per request 170-390 us (and its own event loop's delays in
    resuming the task counted as the sidecar's latency)."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self.due: float | None = None  # the due time of the request in flight, if any
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.due is None:
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
            self.fail()
            return
        if length is None:
            self.fail()
            return
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        self.gen.answered(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail()

    def fail(self) -> None:
        """Close the connection; the request in flight, if any, counts as an error."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self.due is not None:
            self.gen.answered(self, None)


class Generator:
    """Open-loop requests over a pool of keep-alive connections to ``host:port``, one request
    per connection at a time (as an HTTP/1.1 client without pipelining sends them).

    ``fire(i, due)`` writes request ``i`` now on an idle connection (or on a new one, as soon
    as it is connected); its latency runs from ``due`` to the end of its answer. A request
    without a whole answer within ``timeout_s`` of being written is an error (``sweep``)."""

    def __init__(
        self, host: str, port: int, payloads: list[bytes], timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self.host, self.port, self.payloads, self.timeout_s = host, port, payloads, timeout_s
        self.idle: list[_Connection] = []
        self.busy: set[_Connection] = set()
        self.all: list[_Connection] = []
        self.waiting: deque[tuple[int, float]] = deque()  # requests waiting for a connection
        self.connecting = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.latencies: list[float] = []
        self.errors = 0

    @property
    def outstanding(self) -> int:
        """Requests fired and not yet answered (or failed)."""
        return len(self.busy) + len(self.waiting)

    def fire(self, i: int, due: float) -> None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:  # (the sidecar may close an idle connection)
                self._send(conn, i, due)
                return
        self.waiting.append((i, due))
        if self.connecting < len(self.waiting):
            self.connecting += 1
            task = asyncio.get_running_loop().create_task(self._connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _send(self, conn: _Connection, i: int, due: float) -> None:
        conn.due, conn.sent = due, time.perf_counter()
        self.busy.add(conn)
        assert conn.transport is not None
        conn.transport.write(self.payloads[i % len(self.payloads)])

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError:
            if self.waiting:
                _, due = self.waiting.popleft()
                self.errors += 1
                self.latencies.append(time.perf_counter() - due)
            return
        finally:
            self.connecting -= 1
        self.all.append(conn)
        self._reuse(conn)

    def answered(self, conn: _Connection, status: int | None) -> None:
        """``conn``'s request ended: with an HTTP ``status``, or ``None`` when it failed."""
        due, conn.due = conn.due, None
        assert due is not None
        self.latencies.append(time.perf_counter() - due)
        if status != 200:
            self.errors += 1
        self.busy.discard(conn)
        if not conn.closed:
            self._reuse(conn)

    def _reuse(self, conn: _Connection) -> None:
        if self.waiting:
            i, due = self.waiting.popleft()
            self._send(conn, i, due)
        else:
            self.idle.append(conn)

    def sweep(self) -> None:
        """Fail the requests in flight for longer than ``timeout_s``."""
        late = time.perf_counter() - self.timeout_s
        for conn in [c for c in self.busy if c.sent < late]:
            conn.fail()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Ticker:
    """A periodic Linux timer (``timerfd``, through ctypes: ``os.timerfd_create`` needs
    Python 3.13) that first expires at ``start`` (``time.perf_counter()`` seconds, which count
    CLOCK_MONOTONIC on Linux) and then every ``period`` seconds; its ``fd`` turns readable.

    The generator waits on it between requests. ``asyncio.sleep`` cannot wait for the next
    request, due in under a millisecond: uvloop's timers count whole milliseconds, so a sleep
    of 0.4 ms ends at once and the generator spun, ~19 wake-ups per request and 170-390 us of
    CPU a request, taken from the sidecar's two cores (and varying from run to run, as the
    sidecar's p99 did with it); the default loop's selector rounds the wait up to a whole
    millisecond, and requests would go out late."""

    _CLOCK_MONOTONIC = 1
    _TFD_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC  # TFD_* share the O_* values
    _TFD_TIMER_ABSTIME = 1

    def __init__(self, start: float, period: float) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.timerfd_create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")

        def spec(seconds: float) -> _Timespec:
            ns = round(seconds * 1e9)
            return _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)

        value = _Itimerspec(spec(period), spec(start))  # every period, first at start
        if libc.timerfd_settime(self.fd, self._TFD_TIMER_ABSTIME, ctypes.byref(value), None):
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def __enter__(self) -> Ticker:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


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


async def _drain(gen: Generator) -> None:
    """Wait until every fired request is answered or has failed."""
    while gen.outstanding:
        gen.sweep()
        await asyncio.sleep(0.001)


async def load(url: str, token: str, rate: float, duration_s: float) -> dict[str, float | int]:
    """Open-loop load at ``rate`` for ``duration_s``; latencies from each request's due time."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
    gen = Generator(host, port, requests_bytes(host, port, token))
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    try:
        # warm-up (not measured): connections, caches, VW pages
        for b in range(WARMUP_REQUESTS // WARMUP_BATCH):
            now = clock()
            for j in range(WARMUP_BATCH):
                gen.fire(b * WARMUP_BATCH + j, now)
            await _drain(gen)
        gen.latencies.clear()
        gen.errors = 0
        # The generator must not stall on its own garbage: a stall here counts as sidecar
        # latency. With its collector on (and every finished task kept, as this file did
        # until 2026-11-23), its full collections walked up to 60,000 tasks and added pauses
        # of tens to hundreds of ms to p99. A minute of requests makes little cyclic garbage.
        gc.collect()
        gc.freeze()
        gc.disable()

        n = int(rate * duration_s)
        t0 = clock() + 0.05
        fired = loop.create_future()
        i = 0
        next_sweep = t0 + 0.1

        def tick() -> None:  # the timer expired: fire every request now due
            nonlocal i, next_sweep
            try:
                os.read(ticker.fd, 8)
            except BlockingIOError:
                return
            now = clock()
            while i < n and t0 + i / rate <= now:
                due = t0 + i / rate
                lags.append(now - due)
                gen.fire(i, due)
                i += 1
            if now >= next_sweep:
                gen.sweep()
                next_sweep = now + 0.1
            if i >= n and not fired.done():
                fired.set_result(None)

        with Ticker(t0, 1.0 / rate) as ticker:
            loop.add_reader(ticker.fd, tick)
            try:
                await fired
            finally:
                loop.remove_reader(ticker.fd)
        await _drain(gen)
        elapsed = clock() - t0
        gc.enable()
        gc.unfreeze()
    finally:
        gen.close()
    lat = sorted(gen.latencies)
    lags.sort()
    return {
        "rate_rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(quantile(lat, 0.50) * 1000, 3),
        "p99_ms": round(quantile(lat, 0.99) * 1000, 3),
        "p999_ms": round(quantile(lat, 0.999) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else None,  # type: ignore[dict-item]
        "errors": gen.errors,
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
    result["sidecar_cpu_us_per_request"] = round(
        cpu_s / (result["requests"] + WARMUP_REQUESTS) * 1e6
    )
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
