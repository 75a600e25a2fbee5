"""Continuous minute rollup: probe_minutes always equals an aggregation of every raw row.

The invariant: ``probe_minutes`` (rolled-up minutes before the watermark plus raw rows from it
on) gives the same rows, and therefore the same analyses, as ``MINUTE_AGG_SQL`` over all raw
rows, whatever was rolled up when, including rows that arrive late for rolled-up minutes.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.config import WarehouseConfig
from warehouse.migrations import migrate
from warehouse.models import Outcome, ProbeResult, Source
from warehouse.schema import MINUTE_COLUMNS, minute_agg_sql
from warehouse.store import Warehouse
from warehouse.tod import tod_report

NOW = datetime(2025, 3, 10, 12, 0, 30, tzinfo=UTC)
GRACE = timedelta(minutes=2)
OUTCOMES = [Outcome.OK] * 6 + [Outcome.HTTP_429, Outcome.TIMEOUT]
COLS = ", ".join(MINUTE_COLUMNS)
ORDER = "ORDER BY endpoint_id, source, minute"


class Clock:
    """A settable ``now`` for the warehouse."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.at

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.at += delta


def rows_between(seed: int, n: int, lo: datetime, hi: datetime,
                 endpoints: tuple[str, ...] = ("a@p", "b@p", "c@q")) -> list[ProbeResult]:
    """Random probe and traffic rows in [lo, hi), several per minute, values with ties."""
    rng = random.Random(seed)
    span = int((hi - lo).total_seconds() * 1000)
    out = []
    for _ in range(n):
        outcome = rng.choice(OUTCOMES)
        ok = outcome is Outcome.OK
        out.append(ProbeResult(
            endpoint_id=rng.choice(endpoints),
            started_at=lo + timedelta(milliseconds=rng.randrange(span)),
            source=rng.choice([Source.PROBE, Source.PROBE, Source.TRAFFIC]),
            outcome=outcome,
            ttft_ms=float(rng.randrange(50, 2000, 10)) if ok or rng.random() < 0.2 else None,
            itl_ms_p50=rng.uniform(2, 60) if ok else None,
            tpot_ms=rng.choice([0.0, rng.uniform(4, 40)]) if ok else None,
        ))
    return out


def view_minutes(wh: Warehouse) -> list[tuple[object, ...]]:
    return wh.query(f"SELECT {COLS} FROM probe_minutes {ORDER}")


def raw_minutes(wh: Warehouse) -> list[tuple[object, ...]]:
    """The reference: every raw row aggregated to minutes, ignoring the rollup."""
    return wh.query(f"SELECT {COLS} FROM ({minute_agg_sql()}) {ORDER}")


def assert_same(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    assert len(got) == len(want)
    sum_at = MINUTE_COLUMNS.index("ttft_ms_sum")
    for g, w in zip(got, want, strict=True):
        assert g[:sum_at] == w[:sum_at]  # keys, counts and percentiles: exactly equal
        assert (g[sum_at] is None) == (w[sum_at] is None)
        if w[sum_at] is not None:
            assert g[sum_at] == pytest.approx(w[sum_at], rel=1e-12)
        assert g[sum_at + 1:] == w[sum_at + 1:]


def rolled_to(wh: Warehouse) -> datetime | None:
    return wh.rollup_status()["rolled_to"]


def floor_min(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def wh(tmp_path: Path, clock: Clock):
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb", rollup_slice_rows=300, flush_interval_s=0.1)
    w = Warehouse(cfg, now=clock, lake=False)
    w.open()
    yield w
    w.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_probe_minutes_equals_all_raw_rows_through_rollups_and_late_rows(
    wh: Warehouse, clock: Clock, seed: int
) -> None:
    rows = rows_between(seed, 2400, NOW - timedelta(hours=6), NOW)
    random.Random(seed).shuffle(rows)
    first, late = rows[:1600], rows[1600:]
    wh.add_probes(first)
    wh.flush()
    assert wh.catch_up() == floor_min(NOW - GRACE)
    stats = wh.writer_stats()
    assert stats["rollup_steps"] >= 3  # 300-row slices
    # raw rows stay (retention is separate) and the rolled-up minutes are in probes_minute
    assert wh.query("SELECT count(*) FROM probes") == [(1600,)]
    [(in_table, newest)] = wh.query("SELECT sum(n), max(minute) FROM probes_minute")
    assert newest < floor_min(NOW - GRACE)
    [(open_rows,)] = wh.query(
        "SELECT count(*) FROM probes WHERE started_at >= ?", [floor_min(NOW - GRACE)])
    assert in_table + open_rows == 1600
    assert_same(view_minutes(wh), raw_minutes(wh))

    # late rows: most for rolled-up minutes, some for open ones; folded in at the flush
    steps = wh.writer_stats()["rollup_steps"]
    wh.add_probes(late)
    wh.flush()
    assert wh.writer_stats()["rollup_steps"] == steps  # no rollup ran: the flush did it
    assert_same(view_minutes(wh), raw_minutes(wh))

    # time passes: the open minutes close and roll up too
    clock.advance(timedelta(minutes=10))
    wh.add_probes(rows_between(seed + 10, 200, NOW, NOW + timedelta(minutes=10)))
    wh.flush()
    assert wh.catch_up() == floor_min(NOW + timedelta(minutes=10) - GRACE)
    assert_same(view_minutes(wh), raw_minutes(wh))


def test_tod_report_is_the_same_over_the_view_and_over_raw_rows(
    wh: Warehouse, tmp_path: Path
) -> None:
    rows = rows_between(7, 3000, NOW - timedelta(days=2), NOW)
    wh.add_probes(rows[:2000])
    wh.flush()
    wh.catch_up()
    wh.add_probes(rows[2000:])  # late for the most part
    wh.flush()
    reference = duckdb.connect()
    try:
        frame = wh.query_pl(f"SELECT {COLS} FROM ({minute_agg_sql()})")
        reference.register("raw_frame", frame)
        reference.execute("CREATE TABLE probe_minutes AS SELECT * FROM raw_frame")

        def query(sql: str, params: object) -> pl.DataFrame:
            return wh.query_pl(sql, params)  # type: ignore[arg-type]

        for metric in ("ttft", "errors"):
            got = tod_report(query, metric=metric, tz="Europe/Paris", source=None)
            want = tod_report(reference, metric=metric, tz="Europe/Paris", source=None)
            assert got.hourly.equals(want.hourly)
            assert got.significance.equals(want.significance)
            assert got.best_by_hour.equals(want.best_by_hour)
            assert got.hourly.height > 24
    finally:
        reference.close()


def test_a_minute_rolls_up_once_closed_and_grace_has_passed(
    tmp_path: Path, clock: Clock
) -> None:
    cfg = WarehouseConfig(path=tmp_path / "g.duckdb", flush_interval_s=0.05)
    with Warehouse(cfg, now=clock, lake=False) as w:
        minute = floor_min(NOW)
        w.add_probes(rows_between(3, 20, minute, minute + timedelta(seconds=59)))
        w.flush()
        time.sleep(0.3)  # several writer rounds
        assert w.query("SELECT count(*) FROM probes_minute") == [(0,)]
        assert rolled_to(w) is not None and rolled_to(w) <= minute
        clock.advance(timedelta(minutes=1) + GRACE)  # the minute ended grace ago
        deadline = time.monotonic() + 10
        while rolled_to(w) != minute + timedelta(minutes=1):
            assert time.monotonic() < deadline, "the writer never rolled the minute up"
            time.sleep(0.02)
        [(n,)] = w.query("SELECT sum(n) FROM probes_minute")
        assert n == 20
        assert_same(view_minutes(w), raw_minutes(w))


def test_busy_hours_are_cut_into_minute_slices(wh: Warehouse) -> None:
    busy = NOW - timedelta(hours=3)
    wh.add_probes(rows_between(5, 2000, busy, busy + timedelta(minutes=20)))  # one busy hour
    wh.add_probes(rows_between(6, 300, NOW - timedelta(hours=6), NOW))
    wh.flush()
    wh.catch_up()
    assert wh.writer_stats()["rollup_steps"] >= 2000 // 300
    assert wh.writer_stats()["max_step_seconds"] < 1.0
    assert_same(view_minutes(wh), raw_minutes(wh))


def test_bulk_history_after_live_rows_is_folded_in_one_flush(
    tmp_path: Path, clock: Clock
) -> None:
    cfg = WarehouseConfig(path=tmp_path / "b.duckdb")
    with Warehouse(cfg, now=clock, lake=False) as w:
        w.add_probes(rows_between(8, 500, NOW - timedelta(hours=2), NOW))
        w.flush()
        w.catch_up()
        history = rows_between(9, 20_000, NOW - timedelta(days=20), NOW - timedelta(minutes=5),
                               endpoints=tuple(f"m{i}@p" for i in range(8)) + ("a@p",))
        started = time.perf_counter()
        w.add_probes(history)
        w.flush()  # every row is late: one set-based fold per batch, inside its transaction
        took = time.perf_counter() - started
        assert took < 20  # about a second on the target; per-minute Python would be far slower
        assert_same(view_minutes(w), raw_minutes(w))
        assert w.query("SELECT sum(n) FROM probe_minutes") == [(20_500,)]
        [(rolled, lo)] = w.query("SELECT sum(n), min(minute) FROM probes_minute")
        assert rolled > 19_000 and lo < NOW - timedelta(days=19)  # in the rolled-up table


def make_big_file(path: Path, rows: int, days: float, end: datetime) -> None:
    """A warehouse file with ``rows`` raw probes over ``days``, none rolled up yet."""
    con = duckdb.connect(str(path))
    try:
        migrate(con)
        end_us = int(end.timestamp() * 1e6)
        span = int(days * 86_400e6)
        con.execute(f"""
        INSERT INTO probes BY NAME SELECT
          'model-' || (i % 50)::VARCHAR || '@p' AS endpoint_id,
          make_timestamptz({end_us - span} + i * {span // rows}) AS started_at,
          'probe' AS source, CASE WHEN i % 31 = 0 THEN 'http_429' ELSE 'ok' END AS outcome,
          '' AS detail, 'short' AS prompt_name, 40 AS chunks, true AS usage_reported,
          100 + (i * 7919) % 900 AS ttft_ms, 10 + (i * 104729) % 40 AS itl_ms_p50,
          5 + (i * 1299709) % 20 AS tpot_ms
        FROM range({rows}) AS t(i)""")
        con.execute("CHECKPOINT")
    finally:
        con.close()


@pytest.mark.slow
def test_rows_stay_durable_within_a_second_while_maintenance_runs(tmp_path: Path) -> None:
    path = tmp_path / "big.duckdb"
    make_big_file(path, 800_000, 1.5, NOW)
    # A short flush interval, so that a row's wait is the maintenance's and not the interval's,
    # and the ~1 s of maintenance on a fast machine still holds dozens of rows.
    cfg = WarehouseConfig(path=path, flush_interval_s=0.02, snapshot_interval_s=0.5,
                          rollup_slice_rows=100_000)
    latencies: list[float] = []
    with Warehouse(cfg, now=lambda: NOW) as w:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 30:
            busy = rolled_to(w) != floor_min(NOW - GRACE) or bool(w.writer_stats()["lake_busy"])
            if not busy and i >= 10:
                break
            row = ProbeResult(endpoint_id="live@p", started_at=NOW, outcome=Outcome.OK,
                              ttft_ms=float(i))
            t0 = time.monotonic()
            w.add_probe(row)
            while w.query("SELECT count(*) FROM probes WHERE endpoint_id = 'live@p'") != [
                    (i + 1,)]:
                assert time.monotonic() - t0 < 5, "a row was not written within 5 s"
                time.sleep(0.005)
            if busy:
                latencies.append(time.monotonic() - t0)
            i += 1
            time.sleep(0.01)
        stats = w.writer_stats()
        rewrites = stats["lake_rewrites"]
    assert len(latencies) >= 10  # the maintenance lasted a while: rollup and lake rewrites
    assert stats["rollup_steps"] >= 800_000 // 100_000
    assert rewrites >= 2
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert stats["max_step_seconds"] < 1.0
