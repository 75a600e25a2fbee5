"""Benchmark: the time-of-day report (report + PNG + HTML) over 10 M probe rows.

Builds a temporary warehouse file whose ``probes`` hold one probe per endpoint per minute,
1000 endpoints x 7 days, generated in SQL, every third endpoint with a real hour-of-day effect,
and times ``run_tod_report`` (ttft, America/New_York, the file opened read-only as
``switchyard report tod`` does) twice:

- ``tod_report_raw_s``: before any rollup, when ``probe_minutes`` aggregates every raw row
  (what the report costs on a file no warehouse has opened since the rows were written);
- ``tod_report_s``: after ``Warehouse`` has opened the file and rolled every closed minute up
  into ``probes_minute`` (``rollup_s``), as the service keeps it: the view then reads the
  rolled-up minutes and only the raw rows past the watermark. Median of 3 runs.

The last stdout line is one JSON object. ``time_tod_report(db_path)`` times one report.

    python tests/bench/tod_report_bench.py [--endpoints 1000] [--days 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from warehouse.config import WarehouseConfig  # noqa: E402
from warehouse.migrations import migrate  # noqa: E402
from warehouse.models import ProbeResult  # noqa: E402
from warehouse.store import Warehouse, open_read_only  # noqa: E402
from warehouse.tod import run_tod_report  # noqa: E402

METRIC = "ttft"
TZ = "America/New_York"

_PROBES_SQL = """
INSERT INTO probes BY NAME
WITH e AS (
    SELECT i, 'model-' || lpad(i::VARCHAR, 4, '0') || '@provider-' || (i % 37)::VARCHAR AS id,
           150.0 + (i % 50) * 20.0 AS base, CASE WHEN i % 3 = 0 THEN 0.3 ELSE 0.0 END AS amp
    FROM range({endpoints}) t(i)),
m AS (SELECT j FROM range({minutes}) t(j)),
g AS (
    SELECT e.id, m.j, e.base, e.amp, random() AS u, random() AS w,
           1.0 + e.amp * sin(2 * pi() * ((m.j // 60) % 24) / 24.0) AS shape
    FROM m CROSS JOIN e)
SELECT
    id AS endpoint_id,
    TIMESTAMPTZ '2025-03-03 00:00:00+00' + to_seconds(j * 60 + (w * 59)::BIGINT) AS started_at,
    'probe' AS source,
    CASE WHEN u < 0.02 THEN 'http_429' WHEN u < 0.03 THEN 'timeout' ELSE 'ok' END AS outcome,
    CASE WHEN u < 0.02 THEN 429 WHEN u < 0.03 THEN NULL ELSE 200 END AS status_code,
    '' AS detail, 'bench' AS prompt_name, NULL::VARCHAR AS event_id, TRUE AS conn_reused,
    NULL::FLOAT AS connect_ms,
    CASE WHEN u >= 0.03 THEN (base * shape * exp(0.3 * (w - 0.5) * 2))::FLOAT END AS ttft_ms,
    NULL::FLOAT AS reasoning_ttft_ms,
    (20.0 * shape)::FLOAT AS itl_ms_mean, (20.0 * shape * (0.9 + 0.2 * w))::FLOAT AS itl_ms_p50,
    (26.0 * shape)::FLOAT AS itl_ms_p90, (60.0 * shape)::FLOAT AS itl_ms_max,
    (15.0 * (0.9 + 0.2 * u))::FLOAT AS tpot_ms, (base * shape + 1500.0)::FLOAT AS e2e_ms,
    40 AS chunks, 2.5::FLOAT AS tokens_per_chunk, 120 AS input_tokens, 100 AS output_tokens,
    TRUE AS usage_reported, NULL::FLOAT AS retry_after_s
FROM g ORDER BY j, id
"""


def generate(db_path: str | Path, *, endpoints: int = 1000, days: int = 7,
             seed: float = 0.25) -> int:
    """Write the raw probes into a new warehouse file (nothing rolled up); return the count."""
    con = duckdb.connect(str(db_path))
    try:
        con.execute("SET enable_progress_bar = false")
        migrate(con)
        con.execute("SELECT setseed(?)", [seed])
        con.execute(_PROBES_SQL.format(endpoints=int(endpoints), minutes=int(days) * 1440))
        columns = [r[0] for r in con.execute("DESCRIBE probes").fetchall()]
        assert columns == list(ProbeResult.model_fields), "probes must mirror ProbeResult"
        con.execute("CHECKPOINT")
        count = con.execute("SELECT count(*) FROM probes").fetchone()
        return int(count[0]) if count else 0
    finally:
        con.close()


def roll_up(db_path: str | Path) -> float:
    """Open the file with ``Warehouse`` (its clock at the newest row) and wait until the
    writer has rolled every closed minute up; returns the seconds that took."""
    con = open_read_only(db_path)
    try:
        row = con.execute("SELECT epoch_us(max(started_at)) FROM probes").fetchone()
    finally:
        con.close()
    assert row is not None
    newest = datetime.fromtimestamp(row[0] / 1e6, UTC)
    with Warehouse(WarehouseConfig(path=Path(db_path)), now=lambda: newest, lake=False) as wh:
        started = time.perf_counter()
        wh.catch_up()
        return time.perf_counter() - started


def time_tod_report(db_path: str | Path) -> float:
    """Wall seconds of ``run_tod_report`` (ttft, America/New_York, all data, PNG + HTML)."""
    with tempfile.TemporaryDirectory(prefix="tod-bench-out-") as out:
        start = time.perf_counter()
        run_tod_report(db_path, metric=METRIC, tz=TZ, out_dir=out)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tod-bench-") as tmp:
        db = Path(tmp) / "probes.duckdb"
        rows = generate(db, endpoints=args.endpoints, days=args.days)
        raw_s = time_tod_report(db)
        rollup_s = roll_up(db)
        runs = [time_tod_report(db) for _ in range(3)]
    print(json.dumps({
        "tod_report_s": round(statistics.median(runs), 3),
        "tod_report_s_runs": [round(r, 3) for r in runs],
        "tod_report_raw_s": round(raw_s, 3), "rollup_s": round(rollup_s, 3),
        "rows": rows, "endpoints": args.endpoints, "days": args.days, "metric": METRIC, "tz": TZ,
    }))


if __name__ == "__main__":
    main()
