"""Retention: deleting old raw rows leaves probe_minutes equal to the all-raw aggregation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from warehouse.config import WarehouseConfig
from warehouse.models import Outcome, ProbeResult, Source
from warehouse.schema import MINUTE_COLUMNS
from warehouse.store import Warehouse

NOW = datetime(2025, 3, 10, 12, 0, 30, tzinfo=UTC)
OUTCOMES = [Outcome.OK] * 6 + [Outcome.HTTP_429, Outcome.TIMEOUT, Outcome.HTTP_5XX]


def synthetic(seed: int, n: int = 3000) -> list[ProbeResult]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        outcome = rng.choice(OUTCOMES)
        ok = outcome is Outcome.OK
        rows.append(
            ProbeResult(
                endpoint_id=rng.choice(["a@p", "b@p", "c@q"]),
                # three days back from NOW, within a few hours so minutes hold several rows
                started_at=NOW
                - timedelta(days=rng.randrange(3), seconds=rng.randrange(0, 4 * 3600, 7)),
                source=rng.choice([Source.PROBE, Source.PROBE, Source.TRAFFIC]),
                outcome=outcome,
                ttft_ms=rng.uniform(50, 2000) if ok or rng.random() < 0.2 else None,
                itl_ms_p50=rng.uniform(2, 60) if ok else None,
                tpot_ms=rng.choice([0.0, rng.uniform(4, 40)]) if ok else None,
            )
        )
    return rows


ORDER = "ORDER BY endpoint_id, source, minute"


def minutes(wh: Warehouse) -> list[tuple[object, ...]]:
    return wh.query(f"SELECT {', '.join(MINUTE_COLUMNS)} FROM probe_minutes {ORDER}")


def assert_same(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> None:
    assert len(got) == len(want)
    sum_at = MINUTE_COLUMNS.index("ttft_ms_sum")
    for g, w in zip(got, want, strict=True):
        assert g[:sum_at] == w[:sum_at]  # keys, counts and percentiles: exactly equal
        if w[sum_at] is None:
            assert g[sum_at] is None
        else:
            assert g[sum_at] == pytest.approx(w[sum_at], rel=1e-12)
        assert g[sum_at + 1 :] == w[sum_at + 1 :]


@pytest.fixture
def wh(tmp_path: Path):
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb", retention_days=2)
    w = Warehouse(cfg, now=lambda: NOW, lake=False)
    w.open()
    yield w
    w.close()


@pytest.mark.parametrize("days", [0.05, 1.0, 1.1, 2.05])
def test_retention_boundary_keeps_every_analysis_equal(wh: Warehouse, days: float) -> None:
    wh.add_probes(synthetic(seed=int(days * 1000)))
    exact = NOW - timedelta(days=days)  # hh:mm:30: one minute straddles the cutoff
    wh.add_probes(
        ProbeResult(endpoint_id="a@p", started_at=exact + timedelta(seconds=s),
                    outcome=Outcome.OK, ttft_ms=100.0 + s)
        for s in (-5, 5)
    )
    wh.flush()
    raw_minutes = minutes(wh)  # before anything is deleted: every row raw (or rolled up)
    raw_hourly = wh.query("SELECT * FROM v_hourly ORDER BY endpoint_id, hour")
    raw_rows = wh.query("SELECT count(*) FROM probes")[0][0]

    deleted = wh.rollup(older_than_days=days)

    cutoff = NOW - timedelta(days=days)
    cutoff = cutoff.replace(second=0, microsecond=0)  # floored to the whole minute
    [(left, oldest_raw)] = wh.query("SELECT count(*), min(started_at) FROM probes")
    [(newest_minute,)] = wh.query("SELECT max(minute) FROM probes_minute")
    status = wh.rollup_status()
    assert deleted > 0
    assert left + deleted == raw_rows
    assert oldest_raw >= cutoff  # the straddling minute kept its newer raw row
    assert status["raw_from"] == cutoff
    assert status["rolled_to"] is not None and status["rolled_to"] > newest_minute >= cutoff
    assert_same(minutes(wh), raw_minutes)
    hourly = wh.query("SELECT * FROM v_hourly ORDER BY endpoint_id, hour")
    assert len(hourly) == len(raw_hourly)
    for h, r in zip(hourly, raw_hourly, strict=True):
        for got, want in zip(h, r, strict=True):
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-12)
            else:
                assert got == want


def test_retention_is_idempotent_and_defaults_to_retention_days(wh: Warehouse) -> None:
    wh.add_probes(synthetic(seed=3))
    wh.flush()
    before = minutes(wh)
    deleted = wh.rollup()  # retention_days=2
    assert deleted > 0
    assert wh.rollup() == 0
    after = minutes(wh)
    assert_same(after, before)
    [(oldest,)] = wh.query("SELECT min(started_at) FROM probes")
    assert oldest >= NOW - timedelta(days=2, minutes=1)


def test_a_very_late_row_is_merged_into_its_minute(wh: Warehouse) -> None:
    """Rows for a minute whose raw rows retention deleted: counts exact, percentiles merged as
    an n_ok-weighted mean, and the late raw rows go too."""
    t = datetime(2025, 3, 5, 8, 30, 10, tzinfo=UTC)
    ok = [
        ProbeResult(endpoint_id="a@p", started_at=t + timedelta(seconds=i), outcome=Outcome.OK,
                    ttft_ms=100.0 * (i + 1))
        for i in range(3)
    ]
    wh.add_probes(ok)
    wh.flush()
    assert wh.rollup() == 3
    late = ProbeResult(endpoint_id="a@p", started_at=t + timedelta(seconds=40),
                       outcome=Outcome.HTTP_429)
    wh.add_probe(late)
    wh.flush()  # merged by the flush itself
    cols = "n, n_ok, n_429, n_error, n_ttft, ttft_ms_sum, ttft_ms_p50"
    assert wh.query(f"SELECT {cols} FROM probes_minute") == [(4, 3, 1, 1, 3, 600.0, 200.0)]
    assert wh.query(f"SELECT {cols} FROM probe_minutes") == [(4, 3, 1, 1, 3, 600.0, 200.0)]
    assert wh.query("SELECT count(*) FROM probes") == [(0,)]
    assert wh.rollup() == 0
    wh.add_probe(ProbeResult(endpoint_id="a@p", started_at=t + timedelta(seconds=45),
                             outcome=Outcome.OK, ttft_ms=1000.0))
    wh.flush()
    [(n, n_ok, p50, total)] = wh.query(
        "SELECT n, n_ok, ttft_ms_p50, ttft_ms_sum FROM probe_minutes")
    assert (n, n_ok, total) == (5, 4, 1600.0)
    assert p50 == pytest.approx((200.0 * 3 + 1000.0 * 1) / 4)  # not the exact 250: documented


def test_rows_arriving_during_retention_are_kept(wh: Warehouse) -> None:
    wh.add_probes(synthetic(seed=5))
    wh.flush()
    fresh = [ProbeResult(endpoint_id="z@p", started_at=NOW - timedelta(seconds=i),
                         outcome=Outcome.OK, ttft_ms=1.0) for i in range(50)]
    wh.add_probes(fresh)
    assert wh.rollup(older_than_days=1) > 0
    wh.flush()
    assert wh.query("SELECT count(*) FROM probes WHERE endpoint_id = 'z@p'") == [(50,)]


def test_rollup_rejects_negative_days(wh: Warehouse) -> None:
    with pytest.raises(ValueError):
        wh.rollup(older_than_days=-1)
