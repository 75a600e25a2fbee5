"""The warehouse's background threads at idle CPU priority (``idle_threads=True``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from warehouse.config import WarehouseConfig
from warehouse.models import Outcome, ProbeResult
from warehouse.priority import Foreground
from warehouse.store import Warehouse

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's (elsewhere nothing changes)"
)


def probe(i: int) -> ProbeResult:
    return ProbeResult(endpoint_id="m@p", started_at=T0 + timedelta(seconds=i),
                       outcome=Outcome.OK, ttft_ms=100.0 + i, chunks=5)


def threads_named(prefix: str) -> dict[str, int]:
    return {
        t.name: t.native_id
        for t in threading.enumerate()
        if t.name.startswith(prefix) and t.native_id is not None
    }


def config(tmp_path: Path, **kw: object) -> WarehouseConfig:
    return WarehouseConfig(path=tmp_path / "w.duckdb", **kw)  # type: ignore[arg-type]


def wait_for(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_writer_and_lake_run_idle_and_the_foreground_thread_does_not(tmp_path: Path) -> None:
    cfg = config(tmp_path, flush_interval_s=0.05, snapshot_interval_s=0.2)
    with Warehouse(cfg, idle_threads=True) as wh:
        wait_for(lambda: wh.writer_stats()["lake_cycles"] >= 1)  # the lake thread is set up
        tids = threads_named("warehouse-")
        assert set(tids) == {"warehouse-writer", "warehouse-lake", "warehouse-foreground"}
        assert os.sched_getscheduler(tids["warehouse-writer"]) == os.SCHED_IDLE
        assert os.sched_getscheduler(tids["warehouse-lake"]) == os.SCHED_IDLE
        assert os.sched_getscheduler(tids["warehouse-foreground"]) == os.SCHED_OTHER
        # the caller is untouched
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
        wh.add_probes([probe(i) for i in range(30)])
        wait_for(lambda: wh.backlog == 0)
        assert wh.query("SELECT count(*) FROM probes") == [(30,)]
    assert not threads_named("warehouse-")  # close() ended all three


def test_without_idle_threads_there_is_no_foreground_thread(tmp_path: Path) -> None:
    with Warehouse(config(tmp_path), lake=False) as wh:
        tids = threads_named("warehouse-")
        assert set(tids) == {"warehouse-writer"}
        assert os.sched_getscheduler(tids["warehouse-writer"]) == os.SCHED_OTHER
        wh.add_probes([probe(0)])
        wh.flush()
        assert wh.writer_stats()["foreground_runs"] == 0


def test_a_flush_does_not_wait_for_the_idle_writer(tmp_path: Path) -> None:
    # flush_interval_s at its maximum: the writer's own round is a second away
    with Warehouse(config(tmp_path, flush_interval_s=1.0), idle_threads=True, lake=False) as wh:
        time.sleep(0.1)  # the first (empty) round is over
        wh.add_probes([probe(i) for i in range(10)])
        wh.flush()
        assert wh.query("SELECT count(*) FROM probes") == [(10,)]
        assert wh.writer_stats()["foreground_runs"] >= 1


@pytest.mark.slow
def test_a_starved_idle_writer_hands_its_rounds_to_the_foreground(tmp_path: Path) -> None:
    """A busy process on the idle writer's only CPU leaves it almost no time: rows keep
    reaching the file, the rounds left behind through the foreground thread, though nobody
    calls flush()."""
    cpu = min(os.sched_getaffinity(0))
    hog = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c",
         f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.monotonic() + 60\n"
         "while time.monotonic() < end: pass"],
    )
    try:
        cfg = config(tmp_path, flush_interval_s=0.05)
        with Warehouse(cfg, idle_threads=True, lake=False) as wh:
            os.sched_setaffinity(threads_named("warehouse-writer")["warehouse-writer"], {cpu})
            time.sleep(0.3)  # the hog is running
            before = wh.writer_stats()["foreground_runs"]
            for i in range(40):  # 2 s of rows, 40 flush intervals
                wh.add_probes([probe(10 * i + k) for k in range(10)])
                time.sleep(0.05)
            wait_for(lambda: wh.backlog == 0, timeout=30.0)
            assert wh.writer_stats()["foreground_runs"] > before
            assert wh.query("SELECT count(*) FROM probes") == [(400,)]
    finally:
        hog.kill()
        hog.wait(timeout=10)


def test_foreground_runs_work_in_order_and_passes_errors_back() -> None:
    fg = Foreground("test-foreground")
    try:
        seen: list[int] = []
        assert [fg.run(lambda i=i: seen.append(i) or i * 2) for i in range(5)] == [0, 2, 4, 6, 8]
        assert seen == [0, 1, 2, 3, 4]

        def fail() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            fg.run(fail)
        assert fg.run(threading.get_native_id) == threads_named("test-")["test-foreground"]
        assert fg.runs == 7
    finally:
        fg.close()
    fg.close()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        fg.run(lambda: None)
