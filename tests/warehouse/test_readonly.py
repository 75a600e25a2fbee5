"""Read-only access for other processes: the Parquet lake, its catalog, and Parquet export."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from warehouse.config import WarehouseConfig
from warehouse.migrations import LATEST_VERSION
from warehouse.models import Decision, Feedback, Outcome, ProbeResult
from warehouse.store import Warehouse

REPO = Path(__file__).resolve().parents[2]

READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import duckdb
    from warehouse.config import WarehouseConfig
    from warehouse.errors import WarehouseError
    from warehouse.store import Warehouse

    catalog, main, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    report = {}
    try:
        duckdb.connect(str(main), read_only=True).close()
        report["main_read_only"] = "opened"
    except duckdb.Error as exc:
        report["main_read_only"] = type(exc).__name__
    try:
        Warehouse(WarehouseConfig(path=main)).open()
        report["second_writer"] = "opened"
    except WarehouseError as exc:
        report["second_writer"] = str(exc)
    print(json.dumps(report), flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if catalog.exists():
            con = duckdb.connect(str(catalog), read_only=True)
            try:
                n, minutes_n, decisions = con.execute(
                    "SELECT (SELECT count(*) FROM probes), (SELECT sum(n) FROM probe_minutes),"
                    " (SELECT count(*) FROM v_decisions)"
                ).fetchone()
                line = {"t": time.time(), "n": n, "minutes_n": minutes_n, "decisions": decisions}
                for sql in ("CREATE TABLE x (a INTEGER)", "DROP VIEW probes"):
                    try:
                        con.execute(sql)
                        line[sql] = "ran"
                    except duckdb.Error as exc:
                        line[sql] = type(exc).__name__
                print(json.dumps(line), flush=True)
            finally:
                con.close()
        time.sleep(0.05)
    """
)

T_FIXED = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def probe(i: int, at: datetime) -> ProbeResult:
    return ProbeResult(
        endpoint_id=f"e{i % 3}@p",
        started_at=at + timedelta(milliseconds=i),
        outcome=Outcome.OK if i % 5 else Outcome.HTTP_429,
        ttft_ms=100.0 + i,
        tpot_ms=20.0,
    )


def lake_rows(wh: Warehouse, table: str) -> int:
    """Rows in the table's lake files; -1 while the lake replaces a file that was listed (its
    compaction swaps files in and out: polled again, as by ``wait_for``)."""
    files = [f for f in (wh.lake_dir / table).glob("date=*/part-*.parquet")]
    try:
        return sum(pq.read_metadata(f).num_rows for f in files)
    except FileNotFoundError:
        return -1


def wait_for(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_another_process_reads_fresh_data_and_cannot_write(tmp_path: Path) -> None:
    cfg = WarehouseConfig(path=tmp_path / "svc.duckdb", flush_interval_s=0.1,
                          snapshot_interval_s=0.5)
    lines: queue.Queue[dict[str, object]] = queue.Queue()
    with Warehouse(cfg) as wh:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(wh.read_path), str(wh.path), "20"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert reader.stdout is not None
        stdout = reader.stdout

        def pump() -> None:
            for raw in stdout:
                lines.put(json.loads(raw))

        threading.Thread(target=pump, daemon=True).start()
        try:
            report = lines.get(timeout=30)
            # the service's file is out of reach: no second reader or writer process
            assert report["main_read_only"] != "opened"
            assert "read-only" in str(report["second_writer"])
            assert str(wh.read_path) in str(report["second_writer"])

            def seen(n: int, timeout: float = 15) -> tuple[float, dict[str, object]]:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    line = lines.get(timeout=timeout)
                    if line["n"] == n:
                        return float(line["t"]), line  # type: ignore[arg-type]
                raise AssertionError(f"the reader never saw {n} rows")

            now = datetime.now(UTC)
            t_add = time.time()
            wh.add_probes(probe(i, now) for i in range(100))
            t_seen, line = seen(100)
            # fresh within one flush + one snapshot interval (plus a loaded machine's slack)
            assert t_seen - t_add <= cfg.flush_interval_s + cfg.snapshot_interval_s + 2.0
            assert line["minutes_n"] == 100
            assert line["CREATE TABLE x (a INTEGER)"] != "ran"
            assert line["DROP VIEW probes"] != "ran"

            wh.add_decision(
                Decision(event_id="evt-readonly-000001", created_at=now, router="fast",
                         candidates=("e0@p",), probabilities=(1.0,), chosen="e0@p",
                         chosen_prob=1.0, policy_version="v1")
            )
            wh.add_probes(probe(i, now) for i in range(100, 150))
            t_add = time.time()
            t_seen, line = seen(150)
            assert t_seen - t_add <= cfg.flush_interval_s + cfg.snapshot_interval_s + 2.0
            assert line["decisions"] == 1
        finally:
            reader.kill()
            reader.wait(timeout=10)
        assert wh.query("SELECT count(*) FROM probes") == [(150,)]


def test_catalog_views_equal_the_warehouse_views(tmp_path: Path) -> None:
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        wh.add_probes(probe(i * 997, T_FIXED - timedelta(hours=3)) for i in range(400))
        evt = "evt-catalog-0000001"
        wh.add_decision(
            Decision(event_id=evt, created_at=T_FIXED, router="r", candidates=("e0@p", "e1@p"),
                     probabilities=(0.5, 0.5), chosen="e1@p", chosen_prob=0.5,
                     policy_version="v1", context={"k": 1.0})
        )
        wh.add_feedback(Feedback(event_id=evt, score=1.0, received_at=T_FIXED))
        wh.add_probes(probe(i * 1009, T_FIXED - timedelta(seconds=90)) for i in range(60))
        wh.flush()
        rolled_to = wh.catch_up()  # most minutes rolled up, the newest still raw
        assert rolled_to == T_FIXED - timedelta(minutes=2)
        wh.snapshot()
        hourly = wh.query("SELECT * FROM v_hourly ORDER BY endpoint_id, hour")
        minutes = wh.query("SELECT * FROM probe_minutes ORDER BY ALL")
        assert wh.query("SELECT count(*) FROM probe_minutes WHERE minute >= ?",
                        [rolled_to]) == [(6,)]  # 3 endpoints x 2 open minutes
        decisions = wh.query("SELECT event_id, score, n_feedback FROM v_decisions")
        read_path = wh.read_path
        con = duckdb.connect(str(read_path), read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            table = con.sql("SELECT * FROM v_hourly ORDER BY endpoint_id, hour").to_arrow_table()
            assert list(zip(*(c.to_pylist() for c in table.columns))) == hourly
            table = con.sql("SELECT * FROM probe_minutes ORDER BY ALL").to_arrow_table()
            assert list(zip(*(c.to_pylist() for c in table.columns))) == minutes
            assert con.execute("SELECT rolled_to FROM rollup_watermark").fetchall()[0][0] \
                == rolled_to
            assert con.execute("SELECT event_id, score, n_feedback FROM v_decisions").fetchall() \
                == decisions
            lake_version = con.execute("SELECT schema_version FROM lake_info").fetchone()
            assert lake_version == (LATEST_VERSION,)
        finally:
            con.close()
        assert not list(wh.lake_dir.rglob("*.tmp"))  # no partial files left behind


def test_lake_catches_up_with_rows_it_missed(tmp_path: Path) -> None:
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    with Warehouse(cfg, now=lambda: T_FIXED, lake=False) as wh:  # e.g. killed before a snapshot
        wh.add_probes(probe(i * 61_000, T_FIXED - timedelta(days=2)) for i in range(3000))
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        wait_for(lambda: lake_rows(wh, "probes") == 3000)
        days = sorted(p.name for p in (wh.lake_dir / "probes").glob("date=*"))
        assert days == ["date=2025-03-08", "date=2025-03-09", "date=2025-03-10"]
        assert wh.rollup(older_than_days=1) > 0
        wh.snapshot()
        wait_for(lambda: lake_rows(wh, "probes") == wh.query("SELECT count(*) FROM probes")[0][0])
        rolled = wh.query("SELECT count(*) FROM probes_minute")[0][0]
        wait_for(lambda: lake_rows(wh, "probes_minute") == rolled)


def test_a_decision_logged_twice_keeps_one_row_in_the_table_and_the_lake(
    tmp_path: Path,
) -> None:
    def logged(evt: str, router: str) -> Decision:
        return Decision(event_id=evt, created_at=T_FIXED, router=router, candidates=("e0@p",),
                        probabilities=(1.0,), chosen="e0@p", chosen_prob=1.0,
                        policy_version="v1")

    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        wh.add_decision(logged("evt-twice-000001", "first"))
        wh.flush()
        # the same event id again, in a batch with a new decision and probes: the batch's
        # plain insert fails on the key, and the retry keeps every new row and the first one
        wh.add_decision(logged("evt-twice-000001", "second"))
        wh.add_decision(logged("evt-new-00000001", "second"))
        wh.add_probes(probe(i, T_FIXED) for i in range(5))
        wh.flush()  # nothing dropped, so nothing reported
        assert wh.query("SELECT event_id, router FROM decisions ORDER BY event_id") == [
            ("evt-new-00000001", "second"), ("evt-twice-000001", "first")]
        assert wh.query("SELECT count(*) FROM probes") == [(5,)]
        wh.snapshot()
        wait_for(lambda: lake_rows(wh, "decisions") == 2 and lake_rows(wh, "probes") == 5)
        time.sleep(0.3)
        assert lake_rows(wh, "decisions") == 2


def test_candidates_are_stored_once_in_the_table_and_the_lake(tmp_path: Path) -> None:
    def logged(n: int, ttft: float) -> Decision:
        context = {"p.tokens": 3.0, "a.e0@p.ttft_p50": 100.0, "a.e1@p.ttft_p50": ttft}
        return Decision(event_id=f"evt-arms-{n:08d}", created_at=T_FIXED, router="r",
                        context=context, candidates=("e0@p", "e1@p"), probabilities=(0.5, 0.5),
                        chosen="e0@p", chosen_prob=0.5, policy_version="v1")

    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        for n in range(50):
            wh.add_decision(logged(n, 200.0))
        wh.flush()
        rows = wh.writer_stats()["rows"]
        assert rows == 50 + 2
        for n in range(50, 100):  # the same two candidates, then e1 with new live stats
            wh.add_decision(logged(n, 200.0 if n < 75 else 250.0))
        wh.flush()
        # the second batch wrote its decisions and only the candidate new to the table
        assert wh.writer_stats()["rows"] - rows == 50 + 1
        assert wh.query("SELECT endpoint_id, features->>'ttft_p50' FROM decision_arms "
                        "ORDER BY 1, 2") == [("e0@p", "100.0"), ("e1@p", "200.0"),
                                             ("e1@p", "250.0")]
        assert wh.get_decision("evt-arms-00000080") == logged(80, 250.0)
        wh.snapshot()
        wait_for(lambda: lake_rows(wh, "decision_arms") == 3 and lake_rows(wh, "decisions") == 100)
        con = duckdb.connect(str(wh.read_path), read_only=True)
        try:  # the analysts' catalog joins them back
            got = con.execute("SELECT endpoint_id, features->>'ttft_p50', count(*) "
                              "FROM v_decision_arms GROUP BY ALL ORDER BY ALL").fetchall()
        finally:
            con.close()
        assert got == [("e0@p", "100.0", 100), ("e1@p", "200.0", 75), ("e1@p", "250.0", 25)]


def test_past_dates_are_compacted_into_one_part(tmp_path: Path) -> None:
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    yesterday = T_FIXED - timedelta(days=1)
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        for k in range(3):
            wh.add_probes(probe(i + 100 * k, yesterday) for i in range(100))
            wh.snapshot()
        folder = wh.lake_dir / "probes" / "date=2025-03-09"
        wait_for(lambda: len(list(folder.glob("part-*.parquet"))) == 1)
        assert lake_rows(wh, "probes") == 300


def test_export_parquet_partitions_by_utc_date(tmp_path: Path) -> None:
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb")
    with Warehouse(cfg, now=lambda: T_FIXED, lake=False) as wh:
        wh.add_probes(probe(i * 3_600_000, T_FIXED - timedelta(days=1)) for i in range(30))
        out = wh.export_parquet(tmp_path / "export")
        flat = wh.export_parquet(tmp_path / "flat", partition_by_date=False)
    dates = sorted(p.name for p in (out / "probes").iterdir())
    assert dates == ["date=2025-03-09", "date=2025-03-10"]
    total = sum(pq.read_metadata(f).num_rows for f in (out / "probes").rglob("*.parquet"))
    assert total == 30
    assert pq.read_metadata(flat / "probes.parquet").num_rows == 30
    assert pq.read_metadata(flat / "endpoints.parquet").num_rows == 0


def test_lake_stays_exact_while_rows_arrive_during_rewrites(tmp_path: Path) -> None:
    """Rows committed while the lake rewrites a date from its snapshot are neither lost nor
    doubled: every cycle covers exactly what was committed before its snapshot."""
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb", flush_interval_s=0.02,
                          snapshot_interval_s=0.05)
    yesterday = T_FIXED - timedelta(days=1)
    with Warehouse(cfg, now=lambda: T_FIXED) as wh:
        for k in range(40):  # a past date keeps being compacted while rows keep arriving
            wh.add_probes(probe(i + 100 * k, yesterday) for i in range(100))
            wh.add_probes(probe(i + 100 * k, T_FIXED - timedelta(minutes=30)) for i in range(20))
            time.sleep(0.01)
        wh.snapshot()
        wait_for(lambda: not wh.writer_stats()["lake_busy"])
        assert wh.writer_stats()["lake_rewrites"] >= 2
        for table in ("probes", "probes_minute"):
            [(n,)] = wh.query(f"SELECT count(*) FROM {table}")
            assert lake_rows(wh, table) == n, table
        assert wh.query("SELECT count(*) FROM probes") == [(4800,)]
