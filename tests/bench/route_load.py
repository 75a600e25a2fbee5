"""Load benchmark of ``POST /v1/route``: 20 endpoints, 1,000 requests/s for 60 s.

    python tests/bench/route_load.py [--rate 1000] [--duration 60] [--endpoints 20]

The sidecar runs as it is deployed, ``switchyard up`` in its own process, with a catalog of 20
endpoints served by the provider simulator (another process) and the collector probing them in
the background. This process is the load generator: open-loop, request ``i`` is due at
``t0 + i / rate`` and its latency runs from that due time to the end of its response (so a
stall on either side is counted, never hidden; the generator's own garbage collector is off
while it measures, so it stalls less itself). Requests vary over a few prompts and routers.

Prints progress, then as its LAST line one JSON object: ``rate_rps`` (responses per second
achieved), ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms``, ``errors``, ``requests``,
``duration_s``, ``endpoints``, ``client_lag_p99_ms`` (how late the generator itself fired),
``sidecar_cpu_us_per_request`` (CPU of the sidecar process, every thread, per request),
``sidecar_peak_rss_mb`` (its peak resident memory) and
``load_avg_1m`` before and after (other work on the machine shows up in every figure).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

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


async def load(url: str, token: str, rate: float, duration_s: float) -> dict[str, float | int]:
    """Open-loop load at ``rate`` for ``duration_s``; latencies from each request's due time."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payloads = bodies()
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=256, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                async with session.post(f"{url}/v1/route", data=payloads[i % len(payloads)],
                                        headers=headers) as r:  # fmt: skip
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except (aiohttp.ClientError, OSError):
                errors += 1
            latencies.append(loop.time() - due)

        # warm-up (not measured): connections, caches, VW pages
        for _ in range(WARMUP_REQUESTS // WARMUP_BATCH):
            await asyncio.gather(*(one(j, loop.time()) for j in range(WARMUP_BATCH)))
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
        t0 = loop.time() + 0.05
        i = 0
        while i < n:
            now = loop.time()
            while i < n and t0 + i / rate <= now:
                due = t0 + i / rate
                lags.append(now - due)
                task = asyncio.create_task(one(i, due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                i += 1
            if i < n:
                await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
        await asyncio.gather(*in_flight)
        elapsed = loop.time() - t0
        gc.enable()
        gc.unfreeze()
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
                result = asyncio.run(load(sidecar.url, sidecar.token, args.rate, args.duration))
                cpu_s = process_cpu_s(sidecar.proc.pid) - cpu_before
                peak_rss_mb = process_peak_rss_mb(sidecar.proc.pid)
    result["endpoints"] = args.endpoints
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    # all of the sidecar's threads, warm-up included: what one request costs the machine
    result["sidecar_cpu_us_per_request"] = round(cpu_s / (result["requests"] + WARMUP_REQUESTS) * 1e6)
    # what the sidecar held at its peak: decisions wait in memory for their feedback window
    result["sidecar_peak_rss_mb"] = peak_rss_mb
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
