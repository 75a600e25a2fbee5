"""Live stats: incremental figures equal a brute-force recomputation; expiry; rebuild on open."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.config import WarehouseConfig
from warehouse.live import LiveStats, quantile
from warehouse.models import LiveStat, Outcome, ProbeResult, Source
from warehouse.store import Warehouse

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = 300.0
HALF_LIFE = 60.0


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def brute(rows: list[ProbeResult], now: datetime, endpoint: str) -> dict[str, object]:
    """Every LiveStat figure recomputed from scratch."""
    mine = [r for r in rows if r.endpoint_id == endpoint]
    cutoff = now.timestamp() - WINDOW
    win = [r for r in mine if r.started_at.timestamp() >= cutoff]
    ok = [r for r in win if r.outcome is Outcome.OK]

    def q(values: list[float], p: float) -> float | None:
        values = sorted(values)
        if not values:
            return None
        pos = (len(values) - 1) * p
        lo, hi = math.floor(pos), math.ceil(pos)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    def decayed(pairs: list[tuple[float, float]]) -> float | None:
        if not pairs:
            return None
        newest = max(t for t, _ in pairs)
        weights = [2 ** ((t - newest) / HALF_LIFE) for t, _ in pairs]
        return sum(w * x for w, (_, x) in zip(weights, pairs)) / sum(weights)

    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    itl = [r.itl_ms_p50 for r in ok if r.itl_ms_p50 is not None]
    tps = [1000 / r.tpot_ms for r in ok if r.tpot_ms]
    all_ok = [r for r in mine if r.outcome is Outcome.OK]
    n = len(win)
    return {
        "samples": n,
        "samples_traffic": sum(r.source is Source.TRAFFIC for r in win),
        "ttft_ms_p50": q(ttft, 0.5),
        "ttft_ms_p90": q(ttft, 0.9),
        "itl_ms_p50": q(itl, 0.5),
        "itl_ms_p90": q(itl, 0.9),
        "tokens_per_s": q(tps, 0.5),
        "error_rate": sum(r.outcome is not Outcome.OK for r in win) / n if n else 0.0,
        "rate_429": sum(r.outcome is Outcome.HTTP_429 for r in win) / n if n else 0.0,
        "ttft_ms_ewma": decayed(
            [(r.started_at.timestamp(), r.ttft_ms) for r in all_ok if r.ttft_ms is not None]
        ),
        "itl_ms_ewma": decayed(
            [(r.started_at.timestamp(), r.itl_ms_p50) for r in all_ok if r.itl_ms_p50 is not None]
        ),
        "tokens_per_s_ewma": decayed(
            [(r.started_at.timestamp(), 1000 / r.tpot_ms) for r in all_ok if r.tpot_ms]
        ),
        "error_rate_ewma": decayed(
            [(r.started_at.timestamp(), float(r.outcome is not Outcome.OK)) for r in mine]
        ),
        "newest_at": max(r.started_at for r in mine),
    }


def assert_matches(stat: LiveStat, expected: dict[str, object]) -> None:
    for name, want in expected.items():
        got = getattr(stat, name)
        if want is None or isinstance(want, int | datetime):
            assert got == want, name
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), name


values = st.one_of(st.none(), st.floats(min_value=0.5, max_value=5000, allow_nan=False))
rows_strategy = st.lists(
    st.builds(
        lambda e, dt, src, outcome, ttft, itl, tpot: ProbeResult(
            endpoint_id=e,
            started_at=T0 - timedelta(seconds=dt),
            source=src,
            outcome=outcome,
            ttft_ms=ttft,
            itl_ms_p50=itl,
            tpot_ms=tpot,
        ),
        st.sampled_from(["a@p", "b@p"]),
        st.floats(min_value=-30, max_value=2 * WINDOW, allow_nan=False),
        st.sampled_from(list(Source)),
        st.sampled_from([Outcome.OK, Outcome.OK, Outcome.HTTP_429, Outcome.TIMEOUT]),
        values,
        values,
        st.one_of(st.none(), st.just(0.0), st.floats(min_value=1, max_value=200)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(rows=rows_strategy, split=st.integers(min_value=0, max_value=60))
def test_incremental_equals_brute_force(rows: list[ProbeResult], split: int) -> None:
    live = LiveStats(window_s=WINDOW, half_life_s=HALF_LIFE, now=lambda: T0)
    for r in rows[:split]:
        live.add(r)
    live.add_many(rows[split:])
    for endpoint in {r.endpoint_id for r in rows}:
        stat = live.get(endpoint)
        assert stat is not None
        assert_matches(stat, brute(rows, T0, endpoint))


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, later=st.floats(min_value=0, max_value=3 * WINDOW))
def test_tick_expires_like_a_fresh_recount(rows: list[ProbeResult], later: float) -> None:
    clock = Clock(T0)
    live = LiveStats(window_s=WINDOW, half_life_s=HALF_LIFE, now=clock)
    live.add_many(rows)
    clock.at = T0 + timedelta(seconds=later)
    live.tick()
    for endpoint in {r.endpoint_id for r in rows}:
        stat = live.get(endpoint)
        assert stat is not None
        assert_matches(stat, brute(rows, clock.at, endpoint))


def test_reads_do_not_recompute_and_tick_refreshes_only_on_expiry() -> None:
    clock = Clock(T0)
    live = LiveStats(window_s=60, half_life_s=30, now=clock)
    live.add(ProbeResult(endpoint_id="a@p", started_at=T0, outcome=Outcome.OK, ttft_ms=100))
    first = live.get("a@p")
    assert first is live.get("a@p")  # a precomputed object, not built on read
    clock.at = T0 + timedelta(seconds=30)
    live.tick()
    assert live.get("a@p") is first  # nothing expired: untouched
    clock.at = T0 + timedelta(seconds=61)
    live.tick()
    after = live.get("a@p")
    assert after is not first and after is not None
    assert after.samples == 0 and after.ttft_ms_p50 is None
    assert after.ttft_ms_ewma == 100  # decayed figures outlive the window
    assert after.age_s(clock.at) == pytest.approx(61)
    assert live.all() == {"a@p": after}
    assert live.get("unknown@p") is None


def test_published_stats_are_complete_valid_models() -> None:
    live = LiveStats(window_s=60, half_life_s=30, now=lambda: T0)
    live.add_many([
        ProbeResult(endpoint_id="a@p", started_at=T0 - timedelta(seconds=i), outcome=Outcome.OK,
                    ttft_ms=100.0 + i, itl_ms_p50=5.0, tpot_ms=10.0)
        for i in range(5)
    ])
    stat = live.get("a@p")
    assert stat is not None
    assert list(stat.__dict__) == list(LiveStat.model_fields)  # every field, in order
    assert stat == LiveStat.model_validate(stat.model_dump())  # and valid
    assert stat.model_fields_set == set(LiveStat.model_fields)


def test_traffic_rows_feed_the_same_stats() -> None:
    live = LiveStats(window_s=60, half_life_s=30, now=lambda: T0)
    live.add(ProbeResult(endpoint_id="a@p", started_at=T0, outcome=Outcome.OK, ttft_ms=100))
    live.add(
        ProbeResult(
            endpoint_id="a@p", started_at=T0, source=Source.TRAFFIC, outcome=Outcome.OK, ttft_ms=300
        )
    )
    stat = live.get("a@p")
    assert stat is not None
    assert (stat.samples, stat.samples_traffic, stat.ttft_ms_p50) == (2, 1, 200)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        LiveStats(window_s=0, half_life_s=1)
    with pytest.raises(ValueError):
        LiveStats(window_s=1, half_life_s=-1)


def test_quantile_matches_linear_interpolation() -> None:
    assert quantile([], 0.5) is None
    assert quantile([3.0], 0.9) == 3.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([0.0, 10.0], 0.9) == pytest.approx(9.0)


def test_rebuilt_on_open_from_the_last_window(tmp_path: Path) -> None:
    now = T0 + timedelta(hours=1)
    cfg = WarehouseConfig(path=tmp_path / "w.duckdb", live_window_s=600, live_half_life_s=120)
    rows = [
        ProbeResult(
            endpoint_id=f"e{i % 3}@p",
            started_at=now - timedelta(seconds=15 * i),
            source=Source.TRAFFIC if i % 4 == 0 else Source.PROBE,
            outcome=Outcome.HTTP_429 if i % 7 == 0 else Outcome.OK,
            ttft_ms=100 + (i * 37) % 250,
            itl_ms_p50=5 + i % 11,
            tpot_ms=10 + i % 13,
        )
        for i in range(120)  # 30 minutes: two thirds fall outside the 10-minute window
    ]
    with Warehouse(cfg, now=lambda: now, lake=False) as wh:
        wh.add_probes(rows)
        before = wh.live.all()
    with Warehouse(cfg, now=lambda: now, lake=False) as wh:
        after = wh.live.all()
    assert set(after) == set(before) == {"e0@p", "e1@p", "e2@p"}
    for endpoint, b in before.items():
        a = after[endpoint]
        assert (a.samples, a.samples_traffic) == (b.samples, b.samples_traffic)
        assert a.newest_at == b.newest_at
        assert a.samples in (13, 14)
        for name in ("ttft_ms_p50", "ttft_ms_p90", "itl_ms_p50", "tokens_per_s", "error_rate"):
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-6), name
        # the decayed figures are rebuilt from the window's rows only: close, not equal
        assert a.ttft_ms_ewma == pytest.approx(b.ttft_ms_ewma, rel=0.1)
