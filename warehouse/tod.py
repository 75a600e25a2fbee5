"""Time-of-day report: which endpoint is fastest at which local hour of the day.

``tod_report`` reads ONLY the ``probe_minutes`` view (one row per endpoint, source and UTC
minute), so an analysis that spans rolled-up and raw data equals the same analysis over raw data
at minute resolution. ``run_tod_report`` is what the CLI calls: report, PNG and HTML.

- **Observations.** For ``ttft``/``itl``/``tps`` one observation is one minute's p50
  (``ttft_ms_p50``, ``itl_ms_p50``, ``tps_p50``). The hourly p50/p90 are *unweighted* quantiles
  (linear interpolation, as DuckDB's ``quantile_cont``) over those minute values: every minute
  is one vote whatever the number of calls it held, so a burst of traffic in one minute cannot
  outvote the rest of the hour, and the figures describe exactly the sample the Kruskal-Wallis
  test sees. Probes run at a steady cadence, so for ``source="probe"`` weighting would change
  little. For ``errors`` the rates are pooled, i.e. weighted by calls:
  ``sum(n_error) / sum(n)`` and ``sum(n_429) / sum(n)``.
- **Local time.** A minute (a UTC instant) gets the wall-clock hour and weekday it has in ``tz``
  under ``zoneinfo``'s offsets: a wall-clock hour that occurs twice (fall back) collects both, the
  skipped hour (spring forward) collects nothing, 30- and 45-minute offsets are exact. Days of
  week are 0 = Monday ... 6 = Sunday.
- **Speed.** DuckDB reads the range of minutes, then hands the minute values over as one
  list per endpoint and local week hour, computing the week hour per row with a CASE over the
  zone's offset changes in that range; numpy then sorts each endpoint's values once and derives
  the hourly and daily quantiles and the Kruskal-Wallis rank sums (cache-sized work,
  single-threaded: threads over endpoints only added CPU time). Grouping into separate lists of
  minutes and values cost a third more, and flat columns grouped in numpy as much; SQL window
  ranks (``rank() OVER (ORDER BY ...)``) over 10 M rows took 1.4-2.5 s on the 2-core target,
  ``timezone()`` per row another 0.3-0.5 s, ``epoch_ms()`` of a TIMESTAMPTZ 0.4 s
  (``epoch_us()`` is a cheap cast, so minutes come from it). Errors are summed in DuckDB per
  endpoint and 15 UTC minutes (per minute when the zone has offsets that are not multiples of
  15 minutes in the range) and bucketed afterwards. See ``warehouse.analysis`` for the
  statistics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from warehouse.analysis import (
    DEFAULT_MIN_COUNT,
    METRICS,
    Metric,
    TodReport,
    average_ranks,
    best_by_hour,
    chi2_by_hour,
    group_quantiles,
    kruskal_arrays,
    long_frame,
    significance_frame,
)
from warehouse.heatmap import render_html, render_png
from warehouse.localtime import local_hour_dow, local_week_hour, utc_offset_segments
from warehouse.store import open_read_only

__all__ = [
    "QueryFn", "as_query_fn", "local_hour_dow", "local_week_hour", "run_tod_report",
    "tod_report", "utc_offset_segments", "validate_args", "week_hour_sql",
]

QueryFn = Callable[[str, Sequence[object]], pl.DataFrame]
"""Runs one SQL query with ``?`` parameters and returns its result as a polars frame."""

_ERROR_BUCKET_S = 900  # errors are pre-aggregated per 15 UTC minutes when the zone allows
# Epoch minute of the ``minute`` column, floored also before 1970 (DuckDB's // truncates):
# epoch_us is a cheap cast where epoch_ms on a TIMESTAMPTZ goes through the calendar.
_SHIFT_MIN = 120_000_000  # minutes (about 228 years, a multiple of 60) added, then removed
MINUTE_INDEX_SQL = f"((epoch_us(minute) + {_SHIFT_MIN * 60_000_000}) // 60000000 - {_SHIFT_MIN})"


def validate_args(
    metric: str,
    tz: str,
    since: datetime | None,
    until: datetime | None,
    endpoints: Sequence[str] | None,
    source: str | None,
) -> ZoneInfo:
    """Check the report arguments; return the zone. Raises ValueError naming the culprit."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')"
        ) from exc
    for name, value in (("since", since), ("until", until)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    if since is not None and until is not None and since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    if endpoints is not None:
        if isinstance(endpoints, str) or not endpoints:
            raise ValueError("endpoints must be a non-empty list of endpoint ids, or None for all")
        if not all(isinstance(e, str) and e for e in endpoints):
            raise ValueError("endpoints must contain non-empty endpoint id strings")
    if source not in (None, "probe", "traffic"):
        raise ValueError(f"unknown source {source!r}; expected 'probe', 'traffic' or None")
    return zone


def as_query_fn(con_or_query_fn: duckdb.DuckDBPyConnection | QueryFn) -> QueryFn:
    """Wrap a DuckDB connection as a ``QueryFn`` (each query on its own cursor)."""
    if isinstance(con_or_query_fn, duckdb.DuckDBPyConnection):
        con = con_or_query_fn

        def run(sql: str, params: Sequence[object]) -> pl.DataFrame:
            cur = con.cursor()
            try:
                cur.execute("SET enable_progress_bar = false")
                return cur.sql(sql, params=list(params)).pl()
            finally:
                cur.close()

        return run
    if callable(con_or_query_fn):
        return con_or_query_fn
    raise TypeError("tod_report needs a duckdb connection or a callable (sql, params) -> frame")


def _where(
    source: str | None, endpoints: Sequence[str] | None, since: datetime | None,
    until: datetime | None,
) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if source is not None:
        clauses.append("source = ?")
        params.append(source)
    if endpoints is not None:
        clauses.append(f"endpoint_id IN ({', '.join('?' for _ in endpoints)})")
        params.extend(endpoints)
    if since is not None:
        clauses.append("minute >= ?")
        params.append(since)
    if until is not None:
        clauses.append("minute < ?")
        params.append(until)
    return (" AND ".join(clauses) or "TRUE"), params


_WEEK_SHIFT_S = 168 * 3600 * 2_000_000  # whole weeks (~38,000 years): keeps // a floor


def week_hour_sql(segments: Sequence[tuple[int, int]], minute: str = "m") -> str:
    """SQL of ``local_week_hour`` (0 = Monday 00h ... 167) of the UTC epoch minute column
    ``minute``, for offsets ``segments`` (``utc_offset_segments``) covering its values."""
    off = str(segments[-1][1])
    if len(segments) > 1:  # the first segment whose successor starts later holds the offset
        whens = " ".join(f"WHEN {minute} * 60 < {start_s} THEN {before}"
                         for (start_s, _), (_, before) in zip(segments[1:], segments[:-1],
                                                              strict=True))
        off = f"CASE {whens} ELSE {off} END"
    local_s = f"{minute} * 60 + {off} + {_WEEK_SHIFT_S}"  # DuckDB's // truncates: stay > 0
    return f"CAST((({local_s}) // 3600 + 72) % 168 AS UTINYINT)"  # epoch hour 0: Thu 00h


def _latency_arrays(
    query: QueryFn, column: str, where: str, params: list[object], zone: ZoneInfo
) -> tuple[list[str], npt.NDArray[np.uint8], npt.NDArray[np.float64], npt.NDArray[np.int64],
           int | None, int | None]:
    """Endpoint ids (sorted), then the local week hour and value of their minutes grouped by
    endpoint (``values[offsets[i]:offsets[i + 1]]`` are endpoint ``i``'s, in no set order),
    and the first and last UTC epoch minute (None without data).

    Two queries: the range of all minutes in ``probe_minutes`` (unfiltered, so cheap: it only
    bounds which offset changes of the zone the CASE must cover, and a superset is as correct),
    then one list of values per endpoint and local week hour, which DuckDB computes per row (a
    CASE over the offset changes), with each group's first and last minute for the report's
    data range. NaN and infinite values carry no latency: left out.
    """
    sel = (f"FROM probe_minutes WHERE {where} AND {column} IS NOT NULL "
           f"AND isfinite({column})")
    span = query(f"SELECT min({MINUTE_INDEX_SQL}) AS lo, max({MINUTE_INDEX_SQL}) AS hi FROM "
                 "(SELECT min(minute) AS minute FROM probe_minutes "
                 " UNION ALL SELECT max(minute) FROM probe_minutes)", [])
    all_lo, all_hi = span["lo"][0], span["hi"][0]
    empty = [], np.zeros(0, np.uint8), np.zeros(0), np.zeros(1, np.int64), None, None
    if all_lo is None or all_hi is None:
        return empty
    segments = utc_offset_segments(zone, int(all_lo) * 60, (int(all_hi) + 1) * 60)
    frame = query(f"""
        SELECT endpoint_id, wh, list(v) AS v, min(m) AS lo, max(m) AS hi
        FROM (SELECT endpoint_id, {week_hour_sql(segments)} AS wh, v, m
              FROM (SELECT endpoint_id, {MINUTE_INDEX_SQL} AS m, {column} AS v {sel}))
        GROUP BY endpoint_id, wh ORDER BY endpoint_id, wh""", params)
    if frame.height == 0:
        return empty
    lo, hi = frame["lo"].min(), frame["hi"].max()
    lists = frame["v"]
    lengths = lists.list.len().to_numpy().astype(np.int64)
    values = lists.explode().to_numpy().astype(np.float64)
    week_hours = np.repeat(frame["wh"].to_numpy().astype(np.uint8), lengths)
    runs = frame["endpoint_id"].rle()  # consecutive rows of one endpoint (sorted by id)
    ids: list[str] = runs.struct.field("value").to_list()
    rows_per_id = runs.struct.field("len").to_numpy()
    ends = np.cumsum(lengths)[np.cumsum(rows_per_id) - 1]
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    return ids, week_hours, values, offsets, int(lo), int(hi)


@dataclass
class _Stats:
    """Per-endpoint arrays: rank sums and counts by hour, tie terms, quantiles by hour/dow."""

    rank_sums: npt.NDArray[np.float64]  # (E, 24)
    n_hour: npt.NDArray[np.int64]  # (E, 24)
    ties: npt.NDArray[np.float64]  # (E,)
    q_hour: npt.NDArray[np.float64]  # (E, 24, 2)
    n_dow: npt.NDArray[np.int64]  # (E, 7)
    q_dow: npt.NDArray[np.float64]  # (E, 7, 2)


def _latency_stats(
    week_hours: npt.NDArray[np.uint8], values: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
) -> _Stats:
    """Per endpoint: one sort of its values, then rank sums and quantiles by local hour and by
    day of week. Single-threaded on purpose: with about 10,000 values per endpoint the
    Python between numpy calls holds the GIL, and threads only added CPU time."""
    e = offsets.size - 1
    out = _Stats(np.zeros((e, 24)), np.zeros((e, 24), np.int64), np.zeros(e),
                 np.full((e, 24, 2), np.nan), np.zeros((e, 7), np.int64),
                 np.full((e, 7, 2), np.nan))
    for i in range(e):
        a, b = int(offsets[i]), int(offsets[i + 1])
        order = np.argsort(values[a:b])
        sv, week_hour = values[a:b][order], week_hours[a:b][order]
        hours, days = week_hour % 24, week_hour // 24
        ranks, out.ties[i] = average_ranks(sv)
        out.rank_sums[i] = np.bincount(hours, weights=ranks, minlength=24)
        out.n_hour[i] = np.bincount(hours, minlength=24)
        out.q_hour[i] = group_quantiles(sv, hours, out.n_hour[i])
        out.n_dow[i] = np.bincount(days, minlength=7)
        out.q_dow[i] = group_quantiles(sv, days, out.n_dow[i])
    return out


_Parts = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, list[str], int | None, int | None]


def _latency_part(
    query: QueryFn, column: str, zone: ZoneInfo, where: str, params: list[object],
    requested: list[str],
) -> _Parts:
    found, week_hours, values, offsets, lo, hi = _latency_arrays(
        query, column, where, params, zone)
    st = _latency_stats(week_hours, values, offsets)
    ids = sorted(set(found) | set(requested))
    if ids != found:  # requested endpoints without data get empty rows
        index = {x: i for i, x in enumerate(found)}
        st = _Stats(*(_pick(arr, [index.get(x, -1) for x in ids])
                      for arr in (st.rank_sums, st.n_hour, st.ties, st.q_hour, st.n_dow,
                                  st.q_dow)))
    hourly = long_frame(ids, 24, "hour", {
        "p50": st.q_hour[:, :, 0], "p90": st.q_hour[:, :, 1], "count": st.n_hour})
    dow = long_frame(ids, 7, "dow", {
        "p50": st.q_dow[:, :, 0], "p90": st.q_dow[:, :, 1], "count": st.n_dow})
    h, p, k, n = kruskal_arrays(st.rank_sums, st.n_hour, st.ties)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.clip((h - k + 1.0) / (n - k), 0.0, 1.0)
    sig = significance_frame(ids, "kruskal", h, p, eps, n, k, st.q_hour[:, :, 0])
    return hourly, dow, sig, ids, lo, hi


def _pick(arr: np.ndarray, rows: list[int]) -> np.ndarray:
    fill = np.nan if arr.dtype.kind == "f" and arr.ndim == 3 else 0
    out = np.full((len(rows), *arr.shape[1:]), fill, dtype=arr.dtype)
    for j, i in enumerate(rows):
        if i >= 0:
            out[j] = arr[i]
    return out


def _aligned(segments: Sequence[tuple[int, int]], bucket_s: int) -> bool:
    """Whether every offset and transition is a multiple of the bucket (so a bucket of UTC
    minutes never straddles a local hour)."""
    return all(o % bucket_s == 0 for _, o in segments) and all(
        st % bucket_s == 0 for st, _ in segments[1:])


def _error_part(
    query: QueryFn, zone: ZoneInfo, where: str, params: list[object], requested: list[str],
) -> _Parts:
    def run(bucket_s: int) -> pl.DataFrame:
        per = bucket_s // 60  # minutes per bucket; the shift keeps // a floor division
        return query(f"""
            SELECT endpoint_id, (m + {_SHIFT_MIN}) // {per} - {_SHIFT_MIN // per} AS b,
                   count(*) AS minutes, sum(n)::BIGINT AS n, sum(n_error)::BIGINT AS n_error,
                   sum(n_429)::BIGINT AS n_429, min(m) AS lo, max(m) AS hi
            FROM (SELECT endpoint_id, {MINUTE_INDEX_SQL} AS m, n, n_error, n_429
                  FROM probe_minutes WHERE {where})
            GROUP BY endpoint_id, b""", params)

    bucket = _ERROR_BUCKET_S
    frame = run(bucket)
    lo = int(frame["lo"].to_numpy().min()) if frame.height else None
    hi = int(frame["hi"].to_numpy().max()) if frame.height else None
    first_bucket = int(frame["b"].to_numpy().min()) * bucket if frame.height else 0
    segments = utc_offset_segments(zone, first_bucket, ((hi or 0) + 1) * 60)
    if not _aligned(segments, bucket):  # e.g. local mean time offsets: go minute by minute
        bucket = 60
        frame = run(bucket)
    ids = sorted(set(frame["endpoint_id"].to_list()) | set(requested))
    index = {x: i for i, x in enumerate(ids)}
    rows = np.array([index[x] for x in frame["endpoint_id"].to_list()], dtype=np.int64)
    slot = local_week_hour(frame["b"].to_numpy().astype(np.int64) * (bucket // 60), segments)
    slot = slot.astype(np.int64)
    cube: dict[str, npt.NDArray[np.float64]] = {}
    for name in ("n", "n_error", "n_429", "minutes"):
        flat = np.bincount(rows * 168 + slot, weights=frame[name].to_numpy().astype(np.float64),
                           minlength=len(ids) * 168)
        cube[name] = flat.reshape(len(ids), 7, 24)

    def frame_of(axis: int, slots: int, key: str) -> pl.DataFrame:
        c = {name: arr.sum(axis=axis).astype(np.int64) for name, arr in cube.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            c2 = {"n": c["n"], "n_error": c["n_error"], "n_429": c["n_429"],
                  "error_rate": c["n_error"] / c["n"], "rate_429": c["n_429"] / c["n"],
                  "minutes": c["minutes"]}
        return long_frame(ids, slots, key, c2)

    hourly, dow = frame_of(1, 24, "hour"), frame_of(2, 7, "dow")
    n_h, e_h = cube["n"].sum(axis=1), cube["n_error"].sum(axis=1)
    chi2, p, v, k, n = chi2_by_hour(n_h, e_h)
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = np.where(n_h > 0, e_h / n_h, np.nan)
    sig = significance_frame(ids, "chi2", chi2, p, v, n, k, matrix)
    return hourly, dow, sig, ids, lo, hi


def tod_report(
    con_or_query_fn: duckdb.DuckDBPyConnection | QueryFn,
    *,
    metric: Metric,
    tz: str = "UTC",
    endpoints: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = "probe",
    min_count: int = DEFAULT_MIN_COUNT,
) -> TodReport:
    """Which endpoint is fastest at which local hour: hourly and day-of-week figures, the best
    endpoint per hour and the per-endpoint significance of the hour-of-day effect.

    Reads the ``probe_minutes`` rows with ``since <= minute < until`` (each optional and
    timezone-aware), of ``source`` (None: both sources) and of ``endpoints`` (None: all; a
    requested endpoint without data is reported as "insufficient data"). DuckDB does the
    filtering and grouping (two queries). Blocking: call it in a thread from async code.
    Raises ValueError on a bad metric, time zone, range, endpoint list or source.
    """
    zone = validate_args(metric, tz, since, until, endpoints, source)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    spec = METRICS[metric]
    since_utc = since.astimezone(UTC) if since is not None else None
    until_utc = until.astimezone(UTC) if until is not None else None
    query = as_query_fn(con_or_query_fn)
    requested = sorted(set(endpoints)) if endpoints is not None else []
    where, params = _where(source, endpoints, since_utc, until_utc)
    if spec.column is None:
        hourly, dow, sig, ids, lo, hi = _error_part(query, zone, where, params, requested)
        value, count = "error_rate", "n"
    else:
        hourly, dow, sig, ids, lo, hi = _latency_part(
            query, spec.column, zone, where, params, requested)
        value, count = "p50", "count"
    best = best_by_hour(hourly, value, count, higher_is_better=spec.higher_is_better,
                        min_count=min_count)
    return TodReport(
        metric=cast(Metric, metric), tz=tz, source=source, since=since_utc, until=until_utc,
        endpoints=tuple(ids), hourly=hourly, dow=dow, best_by_hour=best, significance=sig,
        data_from=_minute_dt(lo), data_to=_minute_dt(hi),
    )


def _minute_dt(epoch_minute: int | None) -> datetime | None:
    return None if epoch_minute is None else datetime.fromtimestamp(epoch_minute * 60, UTC)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def run_tod_report(
    db_or_con: str | Path | duckdb.DuckDBPyConnection | QueryFn,
    *,
    metric: Metric,
    tz: str = "UTC",
    endpoint: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    out_dir: str | Path = ".",
    source: str | None = "probe",
) -> tuple[TodReport, Path, Path]:
    """Compute the report and write ``<out_dir>/tod-<metric>-<tz slug>.png`` and ``.html``.

    ``db_or_con`` is a DuckDB file (opened read-only with ``warehouse.store.open_read_only``,
    e.g. a stopped service's file or the lake's catalog, and closed again), an open connection,
    or a ``QueryFn``. ``endpoint`` is one id, several, or None for all.
    Raises ValueError for an unknown metric or time zone, a naive datetime, since >= until,
    and FileNotFoundError for a missing database file. Blocking: run it in a thread from async
    code.
    """
    endpoints = [endpoint] if isinstance(endpoint, str) else (
        list(endpoint) if endpoint is not None else None)
    validate_args(metric, tz, since, until, endpoints, source)
    opened: duckdb.DuckDBPyConnection | None = None
    target: duckdb.DuckDBPyConnection | QueryFn
    if isinstance(db_or_con, str | Path):
        target = opened = open_read_only(db_or_con)
    else:
        target = db_or_con
    try:
        report = tod_report(target, metric=metric, tz=tz, endpoints=endpoints, since=since,
                            until=until, source=source)
    finally:
        if opened is not None:
            opened.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"tod-{metric}-{_slug(tz)}"
    png = render_png(report, out / f"{stem}.png")
    page = render_html(report, out / f"{stem}.html", png_path=png)
    return report, png, page
