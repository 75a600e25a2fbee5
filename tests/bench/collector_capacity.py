"""Capacity of the collector: 1,000 endpoints on a 60 s schedule, into a real DuckDB file.

The provider simulator runs in its own process with 1,000 endpoints streaming 64-token answers.
This process runs the real scheduler (``collector.schedule.Collector``: APScheduler, manners,
one aiohttp session) writing every result through the real ``warehouse.store.Warehouse``.
After ``--duration`` seconds (default 185) it stops, flushes and counts the rows in DuckDB.

Usage: python tests/bench/collector_capacity.py [--duration 185] [--endpoints 1000]
Last stdout line: {"lag_p99_s", "probes_fired", "rows", "endpoints", "duration_s",
                   "cpu_s_per_probe", ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collector.catalog import ProbePromptSpec  # noqa: E402
from collector.config import CollectorConfig  # noqa: E402
from collector.http import make_session  # noqa: E402
from collector.schedule import Collector  # noqa: E402
from collector.simulator import SimConfig, SimProfile, SimulatorProcess  # noqa: E402
from warehouse.config import WarehouseConfig  # noqa: E402
from warehouse.store import Warehouse  # noqa: E402

INTERVAL_S = 60.0
TOKENS = 64


def profiles(n: int) -> list[SimProfile]:
    return [
        SimProfile(
            endpoint_id=f"model-{i}@host{i % 50}",
            ttft_ms_median=200.0,
            ttft_sigma=0.4,
            gap_ms_median=15.0,
            gap_sigma=0.3,
            tokens_per_chunk=(1, 3),
            output_tokens=(TOKENS, TOKENS),
            price_in_per_mtok=0.5,
            price_out_per_mtok=1.5,
        )
        for i in range(n)
    ]


async def run(duration_s: float, n: int, db: Path) -> dict[str, object]:
    prompts = [ProbePromptSpec(name="short", text="Count from one to forty in words.")]
    config = CollectorConfig(interval_s=INTERVAL_S, jitter_s=1.0, max_tokens=TOKENS,
                             max_concurrency=256)
    with SimulatorProcess(SimConfig(profiles=profiles(n), seed=5)) as sim:
        endpoints = sim.catalog()
        warehouse = Warehouse(WarehouseConfig(path=db))
        await warehouse.start()
        warehouse.upsert_endpoints(endpoints)
        async with make_session(limit=0) as session:
            collector = Collector(endpoints, prompts, config=config, session=session,
                                  sink=warehouse.add_probe, seed=1)
            cpu0, t0 = time.process_time(), time.perf_counter()
            await collector.start()
            await asyncio.sleep(duration_s)
            await collector.stop(timeout_s=30)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
        await warehouse.aclose()
    check = Warehouse(WarehouseConfig(path=db))
    check.open()
    rows = int(check.query("SELECT count(*) FROM probes")[0][0])
    by_outcome = dict(check.query("SELECT outcome, count(*) FROM probes GROUP BY ALL"))
    check.close()
    lag = collector.lag_p99_s()
    return {
        "lag_p99_s": None if lag is None else round(lag, 4),
        "probes_fired": collector.fired,
        "rows": rows,
        "endpoints": n,
        "duration_s": round(elapsed, 1),
        "cpu_s_per_probe": round(cpu / max(1, collector.fired), 5),
        "probes_per_s": round(collector.fired / elapsed, 2),
        "outcomes": {str(k): int(v) for k, v in by_outcome.items()},
        "skipped": dict(collector.skipped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=185.0)
    parser.add_argument("--endpoints", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchyard-capacity-") as tmp:
        result = asyncio.run(run(args.duration, args.endpoints, Path(tmp) / "capacity.duckdb"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
