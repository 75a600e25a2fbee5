"""Tests of the time-of-day report: statistics, local-time bucketing, best-by-hour, renderers.

Every test writes a real ``probe_minutes`` table into a DuckDB file under tmp_path, with the
columns of the view contract, and runs the report on it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from warehouse.analysis import (
    TodReport,
    best_by_hour,
    chi2_by_hour,
    kruskal_wallis,
)
from warehouse.heatmap import render_html, render_png, render_text
from warehouse.tod import (
    local_hour_dow,
    local_week_hour,
    run_tod_report,
    tod_report,
    utc_offset_segments,
    week_hour_sql,
)

T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, no DST change in the week after
MINUTE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "endpoint_id": pl.String, "source": pl.String, "minute": pl.Datetime("us", "UTC"),
    "n": pl.Int64, "n_ok": pl.Int64, "n_429": pl.Int64, "n_error": pl.Int64,
    "ttft_ms_p50": pl.Float64, "ttft_ms_p90": pl.Float64, "itl_ms_p50": pl.Float64,
    "itl_ms_p90": pl.Float64, "tps_p50": pl.Float64, "tps_p90": pl.Float64,
    "ttft_ms_sum": pl.Float64, "n_ttft": pl.Int64,
}


def minutes_frame(
    endpoint: str, start: datetime, values: Sequence[float | None], *, source: str = "probe",
    n: Sequence[int] | None = None, n_error: Sequence[int] | None = None,
    n_429: Sequence[int] | None = None, step_min: int = 1,
) -> pl.DataFrame:
    """probe_minutes rows of one endpoint: one per minute from ``start``, ttft/itl/tps alike."""
    count = len(values)
    calls = list(n) if n is not None else [1] * count
    errors = list(n_error) if n_error is not None else [0] * count
    limited = list(n_429) if n_429 is not None else [0] * count
    vals = [None if v is None else float(v) for v in values]
    return pl.DataFrame({
        "endpoint_id": [endpoint] * count, "source": [source] * count,
        "minute": [start + timedelta(minutes=i * step_min) for i in range(count)],
        "n": calls, "n_ok": [c - e for c, e in zip(calls, errors, strict=True)],
        "n_429": limited, "n_error": errors, "ttft_ms_p50": vals,
        "ttft_ms_p90": [None if v is None else v * 1.3 for v in vals], "itl_ms_p50": vals,
        "itl_ms_p90": vals, "tps_p50": vals, "tps_p90": vals,
        "ttft_ms_sum": vals, "n_ttft": [1] * count,
    }, schema=MINUTE_SCHEMA)


def write_db(path: Path, *frames: pl.DataFrame) -> duckdb.DuckDBPyConnection:
    """A DuckDB file whose probe_minutes table holds the frames (the view's column types)."""
    data = pl.concat(frames) if frames else pl.DataFrame(schema=MINUTE_SCHEMA)
    con = duckdb.connect(str(path))
    con.execute("""CREATE OR REPLACE TABLE probe_minutes (
        endpoint_id VARCHAR, source VARCHAR, minute TIMESTAMPTZ, n BIGINT, n_ok BIGINT,
        n_429 BIGINT, n_error BIGINT, ttft_ms_p50 DOUBLE, ttft_ms_p90 DOUBLE,
        itl_ms_p50 DOUBLE, itl_ms_p90 DOUBLE, tps_p50 DOUBLE, tps_p90 DOUBLE,
        ttft_ms_sum DOUBLE, n_ttft BIGINT)""")
    con.register("incoming", data)
    con.execute("INSERT INTO probe_minutes SELECT * FROM incoming")
    con.unregister("incoming")
    return con


def daily_wave(days: int, amplitude: float, seed: int, *, base: float = 300.0,
               tz: str = "UTC", start: datetime = T0) -> list[float]:
    """Per-minute values with a sinusoidal local-hour effect and lognormal noise."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tz)
    hours = np.array([(start + timedelta(minutes=i)).astimezone(zone).hour
                      for i in range(days * 1440)])
    shape = 1.0 + amplitude * np.sin(2 * np.pi * hours / 24)
    return (base * shape * rng.lognormal(0.0, 0.3, hours.size)).tolist()


# -- statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_kruskal_equals_scipy_including_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 24, 600)
    values = np.round(rng.lognormal(5, 0.4, 600) + groups * 3, -1)  # rounding makes many ties
    ours = kruskal_wallis(groups, values)
    ref = stats.kruskal(*[values[groups == g] for g in np.unique(groups)])
    assert ours[0] == pytest.approx(ref.statistic, rel=1e-9)
    assert ours[1] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def test_kruskal_of_equal_values_is_zero() -> None:
    h, p = kruskal_wallis(np.array([0, 0, 1, 1, 2]), np.full(5, 7.0))
    assert (h, p) == (0.0, 1.0)


def test_chi2_equals_scipy_contingency() -> None:
    rng = np.random.default_rng(3)
    calls = rng.integers(50, 200, (3, 24)).astype(float)
    errors = np.floor(calls * rng.uniform(0.01, 0.2, (3, 24)))
    chi2, p, v, k, n = chi2_by_hour(calls, errors)
    for i in range(3):
        ref = stats.chi2_contingency(np.vstack([errors[i], calls[i] - errors[i]]),
                                     correction=False)
        assert chi2[i] == pytest.approx(ref.statistic, rel=1e-9)
        assert p[i] == pytest.approx(ref.pvalue, rel=1e-6)
        assert v[i] == pytest.approx(math.sqrt(ref.statistic / calls[i].sum()))
        assert (k[i], n[i]) == (24, calls[i].sum())


def test_hour_effect_is_significant_and_matches_scipy(tmp_path: Path) -> None:
    tz = "Europe/London"
    wave = daily_wave(3, 0.25, seed=1, tz=tz)
    flat = daily_wave(3, 0.0, seed=2, tz=tz)
    con = write_db(tmp_path / "w.duckdb", minutes_frame("wave@a", T0, wave),
                   minutes_frame("flat@b", T0, flat))
    report = tod_report(con, metric="ttft", tz=tz)
    sig = {r["endpoint_id"]: r for r in report.significance.iter_rows(named=True)}
    assert sig["wave@a"]["verdict"].startswith("significant")
    assert sig["wave@a"]["effect_size"] > 0.14  # a 25% daily swing is a large effect
    assert sig["flat@b"]["verdict"] == "not significant"
    hours = np.array([(T0 + timedelta(minutes=i)).astimezone(ZoneInfo(tz)).hour
                      for i in range(len(wave))])
    ref = stats.kruskal(*[np.array(wave)[hours == h] for h in range(24)])
    assert sig["wave@a"]["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert sig["wave@a"]["dof"] == 23
    eps = (ref.statistic - 24 + 1) / (len(wave) - 24)
    assert sig["wave@a"]["effect_size"] == pytest.approx(eps, rel=1e-9)
    # peak near 06h (sin maximum), trough near 18h
    assert sig["wave@a"]["peak_hour"] in {4, 5, 6, 7, 8}
    assert sig["wave@a"]["trough_hour"] in {16, 17, 18, 19, 20}
    assert sig["wave@a"]["peak_trough_ratio"] > 1.4


def test_no_effect_gives_few_false_positives(tmp_path: Path) -> None:
    frames = [minutes_frame(f"m{seed}@p", T0, daily_wave(2, 0.0, seed=100 + seed))
              for seed in range(20)]
    report = tod_report(write_db(tmp_path / "n.duckdb", *frames), metric="ttft")
    verdicts = report.significance["verdict"].to_list()
    assert len(verdicts) == 20
    assert sum(v.startswith("significant") for v in verdicts) <= 2
    assert all(v in {"not significant", "significant, negligible"} for v in verdicts)


def test_insufficient_data_and_requested_endpoint_without_data(tmp_path: Path) -> None:
    con = write_db(tmp_path / "i.duckdb", minutes_frame("few@a", T0, [100.0, 120.0, 90.0]),
                   minutes_frame("ok@b", T0, daily_wave(1, 0.0, seed=4)))
    report = tod_report(con, metric="ttft", endpoints=["few@a", "ok@b", "ghost@c"])
    verdict = dict(report.significance.select("endpoint_id", "verdict").iter_rows())
    assert verdict == {"few@a": "insufficient data", "ok@b": "not significant",
                       "ghost@c": "insufficient data"}
    assert report.endpoints == ("few@a", "ghost@c", "ok@b")
    assert "ghost@c" not in report.hourly["endpoint_id"].to_list()


# -- local-time bucketing ---------------------------------------------------------------------

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
ANCHORS = [  # DST transitions (UTC) the instants cluster around
    datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC),
    datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC),
    datetime(2024, 4, 6, 15, tzinfo=UTC), datetime(2024, 10, 5, 15, 30, tzinfo=UTC),
    datetime(2031, 11, 2, 6, tzinfo=UTC), datetime(2019, 4, 6, 15, tzinfo=UTC),
]
EPOCH_MIN_LO = int(datetime(2018, 1, 1, tzinfo=UTC).timestamp()) // 60
EPOCH_MIN_HI = int(datetime(2033, 1, 1, tzinfo=UTC).timestamp()) // 60

near_anchor = st.builds(
    lambda anchor, delta: int(anchor.timestamp()) // 60 + delta,
    st.sampled_from(ANCHORS), st.integers(-26 * 60, 26 * 60))
anywhere = st.integers(EPOCH_MIN_LO, EPOCH_MIN_HI)
instants = st.lists(st.one_of(near_anchor, anywhere), min_size=1, max_size=60, unique=True)


def reference(epoch_minutes: Sequence[int], tz: str) -> tuple[Counter[int], Counter[int]]:
    zone = ZoneInfo(tz)
    local = [datetime.fromtimestamp(m * 60, zone) for m in epoch_minutes]
    return Counter(d.hour for d in local), Counter(d.weekday() for d in local)


@settings(max_examples=150, deadline=None)
@given(tz=st.sampled_from(ZONES), minutes=instants)
def test_local_hour_dow_matches_zoneinfo(tz: str, minutes: list[int]) -> None:
    arr = np.array(minutes, dtype=np.int64)
    segments = utc_offset_segments(ZoneInfo(tz), int(arr.min()) * 60, int(arr.max() + 1) * 60)
    hours, days = local_hour_dow(arr, segments)
    zone = ZoneInfo(tz)
    expected = [datetime.fromtimestamp(m * 60, zone) for m in minutes]
    assert hours.tolist() == [d.hour for d in expected]
    assert days.tolist() == [d.weekday() for d in expected]


@pytest.fixture(scope="module")
def scratch_db(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    return write_db(tmp_path_factory.mktemp("tod") / "scratch.duckdb")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tz=st.sampled_from(ZONES), minutes=instants)
def test_report_bucketing_matches_zoneinfo(
    scratch_db: duckdb.DuckDBPyConnection, tz: str, minutes: list[int]
) -> None:
    frame = pl.concat([
        minutes_frame("x@p", datetime.fromtimestamp(m * 60, UTC), [1.0], n=[2], n_error=[1])
        for m in minutes])
    scratch_db.execute("DELETE FROM probe_minutes")
    scratch_db.register("incoming", frame)
    scratch_db.execute("INSERT INTO probe_minutes SELECT * FROM incoming")
    scratch_db.unregister("incoming")
    by_hour, by_dow = reference(minutes, tz)
    latency = tod_report(scratch_db, metric="ttft", tz=tz)
    assert dict(latency.hourly.select("hour", "count").iter_rows()) == dict(by_hour)
    assert dict(latency.dow.select("dow", "count").iter_rows()) == dict(by_dow)
    errors = tod_report(scratch_db, metric="errors", tz=tz)
    assert dict(errors.hourly.select("hour", "minutes").iter_rows()) == dict(by_hour)
    assert dict(errors.hourly.select("hour", "n").iter_rows()) == {
        h: 2 * c for h, c in by_hour.items()}
    assert dict(errors.dow.select("dow", "n_error").iter_rows()) == dict(by_dow)


def hour_counts(report: TodReport, column: str = "count") -> dict[int, int]:
    return dict(report.hourly.select("hour", column).iter_rows())


@pytest.mark.parametrize(("tz", "local_day", "expected"), [
    ("America/New_York", datetime(2024, 11, 3), {1: 120}),  # fall back: 01h twice
    ("America/New_York", datetime(2024, 3, 10), {2: None, 3: 60}),  # spring forward: no 02h
    ("Europe/London", datetime(2024, 10, 27), {1: 120}),
    ("Australia/Lord_Howe", datetime(2024, 4, 7), {1: 90, 2: 60}),  # 01:30-02:00 twice
    ("Australia/Lord_Howe", datetime(2024, 10, 6), {2: 30}),  # 02:00-02:30 skipped
    ("Asia/Kolkata", datetime(2024, 6, 1), {5: 60, 0: 60}),
])
def test_dst_days(tmp_path: Path, tz: str, local_day: datetime,
                  expected: dict[int, int | None]) -> None:
    zone = ZoneInfo(tz)
    start = local_day.replace(tzinfo=zone).astimezone(UTC)
    end = (local_day + timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    count = int((end - start).total_seconds()) // 60
    con = write_db(tmp_path / "d.duckdb", minutes_frame("x@p", start, [1.0] * count))
    counts = hour_counts(tod_report(con, metric="ttft", tz=tz))
    assert sum(counts.values()) == count
    for hour, minutes in expected.items():
        assert counts.get(hour) == minutes
    errors = hour_counts(tod_report(con, metric="errors", tz=tz), "minutes")
    assert errors == counts


def test_offsets_in_seconds_fall_back_to_minute_buckets(tmp_path: Path) -> None:
    tz = "Europe/Amsterdam"  # +00:19:32 in 1930
    start = datetime(1930, 5, 14, 21, 0, tzinfo=UTC)
    con = write_db(tmp_path / "lmt.duckdb", minutes_frame("x@p", start, [1.0] * 300))
    by_hour, _ = reference([int(start.timestamp()) // 60 + i for i in range(300)], tz)
    assert hour_counts(tod_report(con, metric="ttft", tz=tz)) == dict(by_hour)
    assert hour_counts(tod_report(con, metric="errors", tz=tz), "minutes") == dict(by_hour)


# -- best by hour, errors, filters ------------------------------------------------------------


def test_best_by_hour_picks_the_right_endpoint(tmp_path: Path) -> None:
    day = 1440
    a = [100.0 if (i // 60) % 24 < 12 else 300.0 for i in range(2 * day)]
    con = write_db(tmp_path / "b.duckdb", minutes_frame("a@x", T0, a),
                   minutes_frame("b@y", T0, [200.0] * 2 * day),
                   minutes_frame("c@z", T0, [250.0] * 2 * day),
                   minutes_frame("lucky@w", T0 + timedelta(hours=5), [1.0, 1.0]))
    best = tod_report(con, metric="ttft").best_by_hour
    assert best.height == 24
    rows = {r["hour"]: r for r in best.iter_rows(named=True)}
    for h in range(12):
        assert (rows[h]["best_endpoint"], rows[h]["runner_up"]) == ("a@x", "b@y")
        assert rows[h]["margin"] == pytest.approx(100.0)
        assert rows[h]["margin_pct"] == pytest.approx(100.0)
    for h in range(12, 24):
        assert (rows[h]["best_endpoint"], rows[h]["runner_up"]) == ("b@y", "c@z")
        assert rows[h]["margin_pct"] == pytest.approx(25.0)
    assert rows[5]["candidates"] == 3  # lucky@w has 2 minutes < min_count
    tps = {r["hour"]: r["best_endpoint"]
           for r in tod_report(con, metric="tps").best_by_hour.iter_rows(named=True)}
    assert tps[3] == "c@z" and tps[15] == "a@x"  # highest tokens/s wins


def test_best_by_hour_empty_hours_and_ties() -> None:
    hourly = pl.DataFrame({"endpoint_id": ["b", "a", "c"], "hour": [3, 3, 4],
                           "p50": [5.0, 5.0, 9.0], "count": [10, 10, 10]},
                          schema_overrides={"hour": pl.Int32})
    best = best_by_hour(hourly, "p50", "count", higher_is_better=False, min_count=5)
    rows = {r["hour"]: r for r in best.iter_rows(named=True)}
    assert rows[3]["best_endpoint"] == "a" and rows[3]["margin"] == 0.0
    assert rows[4]["runner_up"] is None and rows[4]["margin"] is None
    assert rows[0]["best_endpoint"] is None and rows[0]["candidates"] == 0


def test_errors_metric(tmp_path: Path) -> None:
    days = 2
    minutes = days * 1440
    busy = [9 <= (i // 60) % 24 < 17 for i in range(minutes)]
    n = [10] * minutes
    err_a = [5 if b else 0 for b in busy]
    lim_a = [3 if b else 0 for b in busy]
    rng = np.random.default_rng(9)
    err_b = rng.binomial(10, 0.02, minutes).tolist()
    con = write_db(tmp_path / "e.duckdb",
                   minutes_frame("a@x", T0, [1.0] * minutes, n=n, n_error=err_a, n_429=lim_a),
                   minutes_frame("b@y", T0, [1.0] * minutes, n=n, n_error=err_b))
    report = tod_report(con, metric="errors")
    rows = {(r["endpoint_id"], r["hour"]): r for r in report.hourly.iter_rows(named=True)}
    assert rows[("a@x", 10)]["error_rate"] == pytest.approx(0.5)
    assert rows[("a@x", 10)]["rate_429"] == pytest.approx(0.3)
    assert rows[("a@x", 3)]["error_rate"] == 0.0
    assert rows[("a@x", 3)]["n"] == 1200 and rows[("a@x", 3)]["minutes"] == 120
    sig = {r["endpoint_id"]: r for r in report.significance.iter_rows(named=True)}
    assert sig["a@x"]["test"] == "chi2" and sig["a@x"]["verdict"] == "significant, large"
    assert sig["b@y"]["verdict"] in {"not significant", "significant, negligible"}
    assert sig["a@x"]["peak_trough_ratio"] is None  # trough rate is 0
    calls = np.array([[rows[("b@y", h)]["n"] for h in range(24)]], dtype=float)
    errs = np.array([[rows[("b@y", h)]["n_error"] for h in range(24)]], dtype=float)
    ref = stats.chi2_contingency(np.vstack([errs[0], calls[0] - errs[0]]), correction=False)
    assert sig["b@y"]["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    best = {r["hour"]: r["best_endpoint"] for r in report.best_by_hour.iter_rows(named=True)}
    assert best[12] == "b@y" and best[2] == "a@x"


def test_date_range_source_and_query_fn(tmp_path: Path) -> None:
    values = [float(i) for i in range(3 * 1440)]
    con = write_db(tmp_path / "r.duckdb", minutes_frame("a@x", T0, values),
                   minutes_frame("a@x", T0, values, source="traffic"))
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    report = tod_report(con, metric="ttft", since=since, until=until)
    assert report.hourly["count"].sum() == 1440
    assert report.hourly.filter(pl.col("hour") == 0)["p50"][0] == pytest.approx(1440 + 29.5)
    assert report.data_from == since and report.data_to == until - timedelta(minutes=1)
    both = tod_report(con, metric="ttft", source=None, since=since)
    assert both.hourly["count"].sum() == 2 * 2 * 1440

    def query(sql: str, params: Sequence[object]) -> pl.DataFrame:
        return con.cursor().sql(sql, params=list(params)).pl()

    via_fn = tod_report(query, metric="ttft", since=since, until=until)
    assert via_fn.hourly.equals(report.hourly)
    assert via_fn.significance.equals(report.significance)


def test_empty_database_renders(tmp_path: Path) -> None:
    con = write_db(tmp_path / "empty.duckdb")
    for metric in ("ttft", "errors"):
        report = tod_report(con, metric=metric, tz="Asia/Kolkata")
        assert report.endpoints == () and report.hourly.height == 0
        assert report.best_by_hour["best_endpoint"].null_count() == 24
        assert "no data" in render_text(report)
        assert render_png(report, tmp_path / f"{metric}.png").stat().st_size > 1000
        assert "No data" in render_html(report, tmp_path / f"{metric}.html").read_text()


# -- arguments --------------------------------------------------------------------------------

BAD: list[tuple[dict[str, object], str]] = [
    ({"metric": "latency"}, "unknown metric 'latency'"),
    ({"metric": "ttft", "tz": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
    ({"metric": "ttft", "since": T0, "until": T0}, "must be before until"),
    ({"metric": "ttft", "since": T0 + timedelta(days=1), "until": T0}, "must be before"),
    ({"metric": "ttft", "since": datetime(2025, 1, 1)}, "since must be timezone-aware"),
    ({"metric": "ttft", "endpoints": []}, "non-empty"),
    ({"metric": "ttft", "source": "synthetic"}, "unknown source"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_arguments_raise_value_error(tmp_path: Path, kwargs: dict[str, object],
                                         message: str) -> None:
    con = write_db(tmp_path / "bad.duckdb", minutes_frame("a@x", T0, [1.0]))
    call: Callable[..., object] = tod_report
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call(con, **kwargs)
    run_kwargs = {("endpoint" if k == "endpoints" else k): v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run_tod_report(con, out_dir=tmp_path / "out", **run_kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_missing_database_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no DuckDB database"):
        run_tod_report(tmp_path / "nope.duckdb", metric="ttft", out_dir=tmp_path)


# -- rendering --------------------------------------------------------------------------------


@pytest.fixture
def wave_report_files(tmp_path: Path) -> tuple[TodReport, Path, Path]:
    db = tmp_path / "render.duckdb"
    con = write_db(db, minutes_frame("fast-model@prov-a", T0, daily_wave(2, 0.3, seed=5)),
                   minutes_frame("slow-model@prov-b", T0, daily_wave(2, 0.0, seed=6, base=350)),
                   minutes_frame("odd.name_1@prov<c>", T0, daily_wave(2, 0.1, seed=7)))
    con.close()
    return run_tod_report(str(db), metric="ttft", tz="America/New_York",
                          out_dir=tmp_path / "out")


def test_png_is_a_real_png(wave_report_files: tuple[TodReport, Path, Path]) -> None:
    _, png, _ = wave_report_files
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert png.name == "tod-ttft-america-new-york.png"


def test_html_is_self_contained(wave_report_files: tuple[TodReport, Path, Path]) -> None:
    report, _, page = wave_report_files
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text
    assert "data:image/png;base64," in text
    for endpoint in ("fast-model@prov-a", "slow-model@prov-b", "odd.name_1@prov&lt;c&gt;"):
        assert endpoint in text
    assert "prov<c>" not in text  # escaped
    assert "Time to first token p50 (ms) by local hour, America/New_York" in text
    assert text.count("data-tip=") == 3 * (24 + 7)
    assert report.significance.height == 3


def test_text_rendering(wave_report_files: tuple[TodReport, Path, Path]) -> None:
    report, _, _ = wave_report_files
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0] == "Time to first token p50 (ms) by local hour, America/New_York"
    header = next(line for line in lines if line.startswith("hour  "))
    assert "fast-model@prov-a" in header and "slow-model@prov-b" in header
    for h in range(24):
        assert any(line.startswith(f"{h:02d}  ") for line in lines)
    assert "Best endpoint per hour" in text and "By day of week" in text
    assert "fast-model@prov-a: Kruskal-Wallis H=" in text
    assert "significant, large" in text
    narrow = render_text(report, max_endpoints=1)
    assert "2 more endpoints not shown" in narrow


def test_non_finite_minute_values_are_ignored(tmp_path: Path) -> None:
    values = [100.0] * 120 + [math.inf, math.nan, -math.inf]
    con = write_db(tmp_path / "nf.duckdb", minutes_frame("a@x", T0, values))
    report = tod_report(con, metric="tps")
    assert report.hourly["count"].sum() == 120
    assert report.hourly["p90"].to_list() == [100.0, 100.0]


@pytest.mark.parametrize("tz", [*ZONES, "Europe/Amsterdam", "UTC"])
def test_week_hour_sql_equals_local_week_hour(tz: str) -> None:
    """The report computes local week hours in DuckDB: the same as numpy and zoneinfo, over
    decades of offset changes (Amsterdam: seconds offsets before 1937), before 1970 too."""
    rng = np.random.default_rng(5)
    lo = int(datetime(1925, 1, 1, tzinfo=UTC).timestamp()) // 60
    hi = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp()) // 60
    minutes = np.sort(rng.integers(lo, hi, 3000))
    segments = utc_offset_segments(ZoneInfo(tz), int(minutes.min()) * 60,
                                   int(minutes.max() + 1) * 60)
    con = duckdb.connect()
    try:
        got = con.execute(
            f"SELECT {week_hour_sql(segments)} FROM (SELECT unnest(?::BIGINT[]) AS m)",
            [minutes.tolist()]).fetchall()
    finally:
        con.close()
    assert [g for (g,) in got] == local_week_hour(minutes, segments).tolist()
    hours, days = local_hour_dow(minutes[:200], segments)
    zone = ZoneInfo(tz)
    local = [datetime.fromtimestamp(int(m) * 60, zone) for m in minutes[:200]]
    assert hours.tolist() == [d.hour for d in local]
    assert days.tolist() == [d.weekday() for d in local]
