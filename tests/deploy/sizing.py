"""Sizing measurements behind docs/operations.md ("Sizing"). Not a test: run it by hand.

    python tests/deploy/sizing.py [--probe-rows 1000000] [--rate 300] [--duration 60]
                                  [--decisions 1000000] [--env ROUTER_X=VALUE ...]

1. Disk per million probe rows: ``collector.seed.seed_history`` (the simulator's default
   profiles, one probe per endpoint per minute) through a real ``warehouse.store.Warehouse``
   with its Parquet lake on, closed (checkpointed), then the DuckDB file, the lake and the
   read-only catalog measured on disk; an empty warehouse is measured too.
2. The process: ``switchyard up`` (tests/bench/sidecar_proc.py) with 20 simulated endpoints
   probed every 5 s; its resident memory idle, then ``POST /v1/route`` at ``--rate`` for
   ``--duration`` seconds (tests/bench/route_load.py's open-loop generator, in this process);
   CPU seconds of the sidecar process from /proc (all threads), idle and under load; peak RSS
   (VmHWM) and RSS every 5 s; CPU per request counts the generator's warm-up requests too.
3. Disk per million decisions: ``--decisions`` rows copied from the decisions the sidecar
   logged in step 2 (new uuid4-like ids, 1 ms apart), committed 500 at a time as the writer
   would at 1,000 requests/s, through a real ``Warehouse`` with its lake; sizes as in step 1;
   then the memory of a fresh process that opens that warehouse.

Prints progress, then as its LAST line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

import duckdb  # noqa: E402

from collector.catalog import Catalog  # noqa: E402
from collector.seed import seed_history  # noqa: E402
from collector.simulator import SimConfig, SimulatorProcess, default_profiles  # noqa: E402
from warehouse.config import WarehouseConfig  # noqa: E402
from warehouse.store import Warehouse  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
RSS_EVERY_S = 5.0
COMMIT_ROWS = 500
REOPEN = """
import sys
from pathlib import Path
from warehouse.config import WarehouseConfig
from warehouse.store import Warehouse
with Warehouse(WarehouseConfig(path=Path(sys.argv[1]))) as wh:
    wh.query("SELECT count(*) FROM decisions")
    status = Path("/proc/self/status").read_text().splitlines()
    kib = {l.split(":")[0]: l.split()[1] for l in status if l.startswith(("VmRSS", "VmHWM"))}
    print(kib["VmRSS"], kib["VmHWM"])
"""


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def measure_disk(work: Path, rows_wanted: int) -> dict[str, float]:
    empty = work / "empty.duckdb"
    with Warehouse(WarehouseConfig(path=empty)):
        pass
    empty_bytes = tree_bytes(empty)
    profiles = default_profiles()
    interval_s = 60.0
    days = rows_wanted / len(profiles) * interval_s / 86_400
    db = work / "probes.duckdb"
    config = WarehouseConfig(path=db, retention_days=10_000)
    t0 = time.perf_counter()
    with Warehouse(config) as wh:
        rows = seed_history(profiles, wh.add_probes, days=days, interval_s=interval_s, seed=1,
                            now=datetime(2026, 6, 1, tzinfo=UTC))  # fmt: skip
        wh.flush()
        wh.snapshot()
    seconds = time.perf_counter() - t0
    db_bytes = tree_bytes(db)
    lake_bytes = tree_bytes(work / "probes-lake")
    read_bytes = tree_bytes(work / "probes-read.duckdb")
    per_m = 1_000_000 / rows
    print(f"disk: {rows} probe rows over {days:.1f} days in {seconds:.1f} s", file=sys.stderr)
    return {
        "probe_rows": rows,
        "seed_seconds": round(seconds, 1),
        "empty_warehouse_mib": round(empty_bytes / MIB, 2),
        "duckdb_mib_per_million_probes": round((db_bytes - empty_bytes) * per_m / MIB, 1),
        "lake_mib_per_million_probes": round(lake_bytes * per_m / MIB, 1),
        "read_catalog_mib": round(read_bytes / MIB, 2),
    }


def measure_process(
    work: Path, rate: float, duration_s: float, extra_env: dict[str, str]
) -> dict[str, float]:
    from route_load import WARMUP_REQUESTS, load, profiles  # tests/bench
    from sidecar_proc import SidecarProcess  # tests/bench

    empty = work / "empty.duckdb"
    with Warehouse(WarehouseConfig(path=empty)):
        pass
    empty_bytes = tree_bytes(empty)

    sim_config = SimConfig(profiles=profiles(20), seed=1)  # type: ignore[arg-type]
    with SimulatorProcess(sim_config) as sim:
        catalog = work / "catalog.toml"
        catalog.write_text(Catalog(endpoints=tuple(sim.catalog())).dump_toml())
        env = {"ROUTER_COLLECTOR__INTERVAL_S": "5", "ROUTER_COLLECTOR__JITTER_S": "1", **extra_env}
        with SidecarProcess(catalog, work, env=env) as sidecar:
            assert sidecar.proc is not None
            pid = sidecar.proc.pid
            time.sleep(3.0)
            rss_idle = status_kib(pid, "VmRSS")
            c0 = cpu_seconds(pid)
            time.sleep(duration_s)
            idle_cpu = cpu_seconds(pid) - c0
            print(f"idle: rss {rss_idle / 1024:.0f} MiB, cpu {idle_cpu:.2f} s over "
                  f"{duration_s:g} s", file=sys.stderr)  # fmt: skip
            c1 = cpu_seconds(pid)
            t1 = time.monotonic()
            samples: list[int] = []
            done = threading.Event()

            def sample() -> None:  # RSS every RSS_EVERY_S while the load runs
                while not done.wait(RSS_EVERY_S):
                    samples.append(round(status_kib(pid, "VmRSS") / 1024))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            result = asyncio.run(load(sidecar.url, sidecar.token, rate, duration_s))
            wall = time.monotonic() - t1
            done.set()
            sampler.join()
            load_cpu = cpu_seconds(pid) - c1
            rss_after = status_kib(pid, "VmRSS")
            hwm = status_kib(pid, "VmHWM")
            print(f"load: {result}; cpu {load_cpu:.2f} s over {wall:.1f} s", file=sys.stderr)
    db = work / "bench.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    try:
        decisions = con.execute("SELECT count(*) FROM decisions").fetchone()[0]  # type: ignore[index]
        probes = con.execute("SELECT count(*) FROM probes").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    db_bytes = tree_bytes(db) - empty_bytes
    lake_bytes = tree_bytes(work / "bench-lake")
    # load() also sends an unmeasured warm-up: CPU is divided by every request sent
    sent = int(result["requests"]) + WARMUP_REQUESTS
    cpu_per_request_s = (load_cpu - idle_cpu * wall / duration_s) / sent
    return {
        "rate_rps": result["rate_rps"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "rss_idle_mib": round(rss_idle / 1024),
        "rss_after_load_mib": round(rss_after / 1024),
        "rss_peak_mib": round(hwm / 1024),
        "rss_mib_every_5s": samples,
        "idle_cores": round(idle_cpu / duration_s, 3),
        "cores_under_load": round(load_cpu / wall, 3),
        "requests_sent": sent,
        "cpu_ms_per_request": round(cpu_per_request_s * 1000, 3),
        "cores_per_1000_rps": round(cpu_per_request_s * 1000, 3),
        "rss_growth_kib_per_decision": round((rss_after - rss_idle) / decisions, 2),
        "decisions": decisions,
        "probe_rows": probes,
        "duckdb_bytes_per_decision": round(db_bytes / decisions, 1),
        "lake_bytes_per_decision": round(lake_bytes / decisions, 1),
    }


def measure_decisions(work: Path, template_db: Path, n: int) -> dict[str, float]:
    """``n`` decisions shaped like the sidecar's own (copied from ``template_db`` with new ids
    and times, 1,000 per simulated second), committed 500 at a time: what the writer does at
    1,000 requests/s with its 0.5 s flush interval."""
    from datetime import timedelta

    with Warehouse(WarehouseConfig(path=template_db), lake=False) as wh:
        templates = wh.decisions_since(datetime(2000, 1, 1, tzinfo=UTC), unlearned_only=False)
    db = work / "decisions.duckdb"
    empty = work / "empty.duckdb"
    with Warehouse(WarehouseConfig(path=empty)):
        pass
    start = datetime(2026, 6, 1, tzinfo=UTC)
    rng = random.Random(7)  # event ids shaped like the sidecar's (uuid4 hex)
    t0 = time.perf_counter()
    with Warehouse(WarehouseConfig(path=db)) as wh:
        for i in range(n):
            d = templates[i % len(templates)]
            update = {
                "event_id": f"{rng.getrandbits(128):032x}",
                "created_at": start + timedelta(milliseconds=i),
            }
            wh.add_decision(d.model_copy(update=update))
            if i % COMMIT_ROWS == COMMIT_ROWS - 1:
                wh.flush()
        wh.flush()
        wh.snapshot()
    seconds = time.perf_counter() - t0
    per_m = 1_000_000 / n
    print(f"decisions: {n} in {seconds:.1f} s ({len(templates)} templates)", file=sys.stderr)
    reopen = subprocess.run(  # a fresh process opening that warehouse: its memory
        [sys.executable, "-c", REOPEN, str(db)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    rss_open, hwm_open = (int(v) for v in reopen.stdout.split())
    return {
        "decision_rows": n,
        "reopen_rss_mib": round(rss_open / 1024),
        "reopen_peak_rss_mib": round(hwm_open / 1024),
        "candidates_per_decision": round(
            sum(len(t.candidates) for t in templates) / len(templates), 1
        ),
        "duckdb_mib_per_million_decisions": round(
            (tree_bytes(db) - tree_bytes(empty)) * per_m / MIB, 1
        ),
        "lake_mib_per_million_decisions": round(
            tree_bytes(work / "decisions-lake") * per_m / MIB, 1
        ),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probe-rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument(
        "--decisions",
        type=int,
        default=1_000_000,
        help="decision rows for the disk figure (needs the process run)",
    )
    parser.add_argument("--skip-disk", action="store_true")
    parser.add_argument("--skip-process", action="store_true")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="ROUTER_X=VALUE",
        help="extra setting of the sidecar (repeatable)",
    )
    args = parser.parse_args()
    out: dict[str, object] = {"cores": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="switchyard-sizing-") as tmp:
        if not args.skip_disk:
            (Path(tmp) / "disk").mkdir()
            out["disk"] = measure_disk(Path(tmp) / "disk", args.probe_rows)
        if not args.skip_process:
            (Path(tmp) / "proc").mkdir()
            extra = dict(item.split("=", 1) for item in args.env)
            out["process"] = measure_process(Path(tmp) / "proc", args.rate, args.duration, extra)
            out["process_env"] = extra
            if args.decisions:
                (Path(tmp) / "dec").mkdir()
                out["decisions_disk"] = measure_decisions(
                    Path(tmp) / "dec", Path(tmp) / "proc" / "bench.duckdb", args.decisions
                )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
