"""Fidelity of the collector's measurements: measured vs injected TTFT and inter-token gaps.

The provider simulator runs in its own process and records what it injected for every request
(time to first content chunk, gaps between content chunks). This process runs the collector's
real probe (``collector.probe.probe_endpoint`` over one ``make_session`` session) with 1, 50 and
200 probes in flight, each worker looping probes back to back after a random initial offset
(as the scheduler spreads probes), and compares:

- TTFT: |p50 of measured ``ttft_ms`` - p50 of injected TTFT| over the same requests;
- gap:  |p50 of measured per-probe ``itl_ms_p50`` - p50 of injected per-request gap medians|.

Usage: python tests/bench/collector_fidelity.py [--probes-per-worker N]
Last stdout line: {"ttft_err_ms_1": ..., "ttft_err_ms_50": ..., "ttft_err_ms_200": ...,
                   "gap_err_ms_1": ..., "gap_err_ms_50": ..., "gap_err_ms_200": ..., ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collector.http import make_session  # noqa: E402
from collector.probe import ProbePrompt, ProbeTimeouts, probe_endpoint  # noqa: E402
from collector.simulator import SimConfig, SimProfile, SimulatorProcess  # noqa: E402
from warehouse.models import Endpoint, Outcome, ProbeResult  # noqa: E402

LEVELS = (1, 50, 200)
TTFT_MS = 250.0
GAP_MS = 20.0
TOKENS = 24


def profiles(n: int) -> list[SimProfile]:
    return [
        SimProfile(
            endpoint_id=f"fid-{i}@sim{i % 4}",
            ttft_ms_median=TTFT_MS,
            ttft_sigma=0.3,
            gap_ms_median=GAP_MS,
            gap_sigma=0.3,
            tokens_per_chunk=(1, 1),
            output_tokens=(TOKENS, TOKENS),
            price_in_per_mtok=0.0,
            price_out_per_mtok=0.0,
        )
        for i in range(n)
    ]


async def injected_since(url: str, since: int) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{url}/_sim/injected", params={"since": str(since)}) as r:
                data = await r.json()
            items.extend(data["items"])
            if not data["items"] or data["last_seq"] >= data["total"]:
                return items
            since = data["last_seq"]


async def last_seq(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/_sim/injected?limit=0") as r:
        return int((await r.json())["total"])


async def run_level(url: str, endpoints: list[Endpoint], in_flight: int, per_worker: int,
                    seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    prompt = ProbePrompt(name="fidelity", messages=[{"role": "user", "content": "Count."}])
    timeouts = ProbeTimeouts(connect_s=10, ttft_s=30, total_s=60)
    results: list[ProbeResult] = []
    cycle_s = (TTFT_MS + GAP_MS * (TOKENS - 1)) / 1000
    since = await last_seq(url)
    async with make_session(limit=0) as session:
        # Warm the pool so that connection set-up is not part of any measured probe.
        async def worker(i: int) -> None:
            await asyncio.sleep(rng.random() * cycle_s if in_flight > 1 else 0)
            ep = endpoints[i % len(endpoints)]
            for _ in range(per_worker):
                r = await probe_endpoint(session, ep, prompt, max_tokens=TOKENS, api_key=None,
                                         timeouts=timeouts, rng=rng)
                results.append(r)

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
    injected = [i for i in await injected_since(url, since) if i["outcome"] == "ok"]
    ok = [r for r in results if r.outcome is Outcome.OK]
    if len(ok) != len(results) or len(injected) != len(results):
        raise SystemExit(f"{len(results) - len(ok)} probes failed at {in_flight} in flight")
    m_ttft = statistics.median(r.ttft_ms for r in ok if r.ttft_ms is not None)
    i_ttft = statistics.median(float(i["injected_ttft_ms"]) for i in injected)  # type: ignore[arg-type]
    m_gap = statistics.median(r.itl_ms_p50 for r in ok if r.itl_ms_p50 is not None)
    i_gap = statistics.median(
        statistics.median(i["injected_gaps_ms"]) for i in injected  # type: ignore[arg-type]
    )
    late = statistics.median(
        float(i["sent_ms"][0]) - float(i["injected_ttft_ms"]) for i in injected  # type: ignore[index,arg-type]
    )
    return {
        "server_first_chunk_late_p50_ms": late,
        "ttft_err_ms": abs(m_ttft - i_ttft),
        "gap_err_ms": abs(m_gap - i_gap),
        "measured_ttft_p50_ms": m_ttft,
        "injected_ttft_p50_ms": i_ttft,
        "measured_gap_p50_ms": m_gap,
        "injected_gap_p50_ms": i_gap,
        "probes": len(ok),
    }


async def main_async(per_worker: int) -> dict[str, object]:
    out: dict[str, object] = {}
    config = SimConfig(profiles=profiles(200), seed=11)
    with SimulatorProcess(config) as sim:
        endpoints = sim.catalog()
        await run_level(sim.url, endpoints, 4, 2, seed=0)  # warm-up, not reported
        for level in LEVELS:
            t0 = time.perf_counter()
            stats = await run_level(sim.url, endpoints, level, per_worker if level > 1 else
                                    max(per_worker, 30), seed=level)
            out[f"ttft_err_ms_{level}"] = round(stats["ttft_err_ms"], 3)
            out[f"gap_err_ms_{level}"] = round(stats["gap_err_ms"], 3)
            detail = {k: round(v, 3) for k, v in stats.items()}
            print(f"in flight {level}: {detail} ({time.perf_counter() - t0:.1f}s)",
                  file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes-per-worker", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.probes_per_worker))))


if __name__ == "__main__":
    main()
