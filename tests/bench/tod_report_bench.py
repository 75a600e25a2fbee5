"""Benchmark: the time-of-day report (report + PNG + HTML) over 10 M raw probe rows.

Builds a temporary DuckDB file with a ``probes`` table (the ``ProbeResult`` columns, one probe
per endpoint per minute, 1000 endpoints x 7 days, generated in SQL, every third endpoint with a
real hour-of-day effect) and times ``run_tod_report`` twice:

- ``tod_report_s``: ``probe_minutes`` is a view aggregating ALL raw rows per minute (what the
  report costs while every row is still raw);
- ``tod_report_rolled_up_s``: closed minutes are pre-aggregated in ``probes_minute`` and the view
  only aggregates raw rows past the rollup watermark (the shape recommended for speed).

The last stdout line is one JSON object. ``time_tod_report(db_path)`` is what the lead's scale
benchmark calls on its own database.

    python tests/bench/tod_report_bench.py [--endpoints 1000] [--days 7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from warehouse.models import ProbeResult
from warehouse.tod import run_tod_report

METRIC = "ttft"
TZ = "America/New_York"

_PROBES_SQL = """
CREATE TABLE probes AS
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

_MINUTE_AGG = """
SELECT endpoint_id, source,
    make_timestamptz((epoch_us(started_at) // 60000000) * 60000000) AS minute,
    count(*)::INTEGER AS n,
    count(*) FILTER (WHERE outcome = 'ok')::INTEGER AS n_ok,
    count(*) FILTER (WHERE outcome = 'http_429')::INTEGER AS n_429,
    count(*) FILTER (WHERE outcome <> 'ok')::INTEGER AS n_error,
    quantile_cont(ttft_ms, 0.5) FILTER (WHERE outcome = 'ok')::FLOAT AS ttft_ms_p50,
    quantile_cont(ttft_ms, 0.9) FILTER (WHERE outcome = 'ok')::FLOAT AS ttft_ms_p90,
    quantile_cont(itl_ms_p50, 0.5) FILTER (WHERE outcome = 'ok')::FLOAT AS itl_ms_p50,
    quantile_cont(itl_ms_p50, 0.9) FILTER (WHERE outcome = 'ok')::FLOAT AS itl_ms_p90,
    quantile_cont(1000.0 / tpot_ms, 0.5) FILTER (WHERE outcome = 'ok' AND tpot_ms > 0)::FLOAT
        AS tps_p50,
    quantile_cont(1000.0 / tpot_ms, 0.9) FILTER (WHERE outcome = 'ok' AND tpot_ms > 0)::FLOAT
        AS tps_p90,
    sum(ttft_ms) FILTER (WHERE outcome = 'ok')::DOUBLE AS ttft_ms_sum,
    count(ttft_ms) FILTER (WHERE outcome = 'ok')::INTEGER AS n_ttft
FROM probes WHERE {where}
GROUP BY endpoint_id, source, minute
"""


def generate(db_path: str | Path, *, endpoints: int = 1000, days: int = 7, seed: float = 0.25,
             rolled_up: bool = False) -> int:
    """Write ``probes`` and ``probe_minutes`` into a new DuckDB file; return the raw row count.

    With ``rolled_up`` every closed minute is also pre-aggregated into ``probes_minute`` and
    ``probe_minutes`` unions it with the raw rows past the watermark (none here).
    """
    con = duckdb.connect(str(db_path))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SELECT setseed(?)", [seed])
        con.execute(_PROBES_SQL.format(endpoints=int(endpoints), minutes=int(days) * 1440))
        columns = [r[0] for r in con.execute("DESCRIBE probes").fetchall()]
        assert columns == list(ProbeResult.model_fields), "probes must mirror ProbeResult"
        if rolled_up:
            con.execute(f"CREATE TABLE probes_minute AS {_MINUTE_AGG.format(where='TRUE')}")
            con.execute("CREATE TABLE rollup_watermark AS "
                        "SELECT max(minute) + INTERVAL 1 MINUTE AS w FROM probes_minute")
            raw = _MINUTE_AGG.format(
                where="started_at >= (SELECT w FROM rollup_watermark)")
            con.execute(f"CREATE VIEW probe_minutes AS SELECT * FROM probes_minute "
                        f"UNION ALL {raw}")
        else:
            con.execute(f"CREATE VIEW probe_minutes AS {_MINUTE_AGG.format(where='TRUE')}")
        count = con.execute("SELECT count(*) FROM probes").fetchone()
        return int(count[0]) if count else 0
    finally:
        con.close()


def time_tod_report(db_path: str) -> float:
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
        raw_db = str(Path(tmp) / "raw.duckdb")
        rows = generate(raw_db, endpoints=args.endpoints, days=args.days)
        raw_s = time_tod_report(raw_db)
        Path(raw_db).unlink()
        rolled_db = str(Path(tmp) / "rolled.duckdb")
        generate(rolled_db, endpoints=args.endpoints, days=args.days, rolled_up=True)
        rolled_s = time_tod_report(rolled_db)
    print(json.dumps({
        "tod_report_s": round(raw_s, 3), "tod_report_rolled_up_s": round(rolled_s, 3),
        "rows": rows, "endpoints": args.endpoints, "days": args.days, "metric": METRIC, "tz": TZ,
    }))


if __name__ == "__main__":
    main()
