"""Report types and statistics of the warehouse analyses (the time-of-day report).

``warehouse.tod`` computes a ``TodReport`` from ``probe_minutes``; ``warehouse.heatmap`` renders
it. This module holds what both share: the metrics, the report type and the statistics.

Statistical choices, in one place:

- **Significance.** Per endpoint, a Kruskal-Wallis H test of its minute values grouped by local
  hour, exact and with the tie correction, so it equals ``scipy.stats.kruskal``; the p-value is
  ``chi2.sf(H, k - 1)``. Effect size ``epsilon^2 = (H - k + 1) / (n - k)`` clipped at 0, read
  with Cohen's eta-squared bounds: 0.01 small, 0.06 medium, 0.14 large. For ``errors``: a
  chi-square test of the 2 x k table (errors, successes) x hour, effect size Cramer's V =
  ``sqrt(chi2 / n)``, bounds 0.1 small, 0.3 medium, 0.5 large (Cohen's w, one degree of
  freedom on the short side). ``alpha = 0.01``. Verdicts: ``"significant, <size>"`` with size
  negligible, small, medium or large; ``"not significant"``; ``"insufficient data"`` when fewer
  than 2 local hours have data or there are fewer than 5 observations (minutes; calls for
  errors) per hour with data on average. No errors at all (or only errors) gives chi2 = 0, p = 1.
- **Peak and trough** are the hours with the highest and the lowest hourly value (p50, or the
  error rate); ``peak_trough_ratio`` is peak / trough (null when the trough is 0).
- **Best by hour.** Lowest p50 (ttft, itl), highest p50 (tps), lowest error rate (errors) among
  the endpoints with at least ``min_count`` observations at that hour; ties go to the smaller
  endpoint id. ``margin`` is the absolute gap to the runner-up, ``margin_pct`` that gap in % of
  the best value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import chdtrc  # chi-square survival function; scipy.stats takes 0.5 s to import

Metric = Literal["ttft", "itl", "tps", "errors"]

ALPHA = 0.01
EPSILON_SQ_BOUNDS = ((0.14, "large"), (0.06, "medium"), (0.01, "small"))
CRAMERS_V_BOUNDS = ((0.5, "large"), (0.3, "medium"), (0.1, "small"))
MIN_OBS_PER_HOUR = 5  # average observations per hour with data below which: insufficient data
DEFAULT_MIN_COUNT = 5  # observations an endpoint needs at an hour to compete in best_by_hour
DOW_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
VERDICT_INSUFFICIENT = "insufficient data"
VERDICT_NOT_SIGNIFICANT = "not significant"
_QUANTILES = np.array([0.5, 0.9])


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is read from ``probe_minutes`` and presented."""

    name: str
    column: str | None  # the per-minute column; None for errors (counts)
    label: str
    unit: str
    higher_is_better: bool


METRICS: dict[str, MetricSpec] = {
    "ttft": MetricSpec("ttft", "ttft_ms_p50", "Time to first token", "ms", False),
    "itl": MetricSpec("itl", "itl_ms_p50", "Inter-token latency", "ms", False),
    "tps": MetricSpec("tps", "tps_p50", "Output speed", "tokens/s", True),
    "errors": MetricSpec("errors", None, "Error rate", "% of calls", False),
}


@dataclass(frozen=True)
class TodReport:
    """The time-of-day report of one metric; frames are polars, hours and days are local.

    - ``hourly``: endpoint_id, hour, then p50, p90, count (minutes) for ttft/itl/tps, or
      n, n_error, n_429, error_rate, rate_429, minutes for errors. Only hours with data.
    - ``dow``: the same by endpoint_id, dow (0 = Monday).
    - ``best_by_hour``: hour (all 24), best_endpoint, best_value, runner_up, runner_up_value,
      margin, margin_pct, candidates.
    - ``significance``: endpoint_id, test, statistic, dof, p_value, effect_size, effect_measure,
      n, hours, verdict, peak_hour, peak_value, trough_hour, trough_value, peak_trough_ratio.

    Usage (``warehouse.tod.tod_report`` builds it)::

        report = tod_report(con, metric="ttft", tz="Europe/Paris")
        report.best_by_hour.filter(pl.col("hour") == 9)  # who is fastest at 09:00 in Paris
    """

    metric: Metric
    tz: str
    source: str | None
    since: datetime | None
    until: datetime | None
    endpoints: tuple[str, ...]
    hourly: pl.DataFrame
    dow: pl.DataFrame
    best_by_hour: pl.DataFrame
    significance: pl.DataFrame
    data_from: datetime | None = None
    data_to: datetime | None = None

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]

    @property
    def value_column(self) -> str:
        """The hourly/dow column the heatmap and best_by_hour rank on."""
        return "error_rate" if self.metric == "errors" else "p50"

    @property
    def title(self) -> str:
        """E.g. ``Time to first token p50 (ms) by local hour, Europe/Paris``."""
        what = self.spec.label if self.metric == "errors" else f"{self.spec.label} p50"
        return f"{what} ({self.spec.unit}) by local hour, {self.tz}"


def average_ranks(sorted_values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """1-based average ranks of an ascending array and the tie term ``sum(t^3 - t)``."""
    n = sorted_values.size
    if n == 0:
        return np.empty(0), 0.0
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    if new.all():
        return np.arange(1, n + 1, dtype=np.float64), 0.0
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n)).astype(np.float64)
    ranks = np.repeat(starts + (sizes + 1.0) / 2.0, sizes.astype(np.int64))
    return ranks, float(np.sum(sizes**3 - sizes))


def kruskal_arrays(
    rank_sums: npt.NDArray[np.float64], counts: npt.NDArray[np.int64],
    tie_terms: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64],
           npt.NDArray[np.int64]]:
    """Tie-corrected Kruskal-Wallis H, p-value, groups k and size n per row of (E, G) rank sums.

    H and p are NaN for rows with fewer than two non-empty groups; a row whose values are all
    equal gets H = 0 and p = 1.
    """
    n = counts.sum(axis=1)
    k = (counts > 0).sum(axis=1)
    nf = n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(counts > 0, rank_sums**2 / np.maximum(counts, 1), 0.0).sum(axis=1)
        h = 12.0 / (nf * (nf + 1.0)) * s - 3.0 * (nf + 1.0)
        correction = 1.0 - tie_terms / (nf**3 - nf)
        h = np.where(correction > 0, np.maximum(h / correction, 0.0), 0.0)
        p = np.where(correction > 0, chdtrc(np.maximum(k - 1, 1), h), 1.0)
    few = k < 2
    return np.where(few, np.nan, h), np.where(few, np.nan, p), k, n


def kruskal_wallis(
    groups: npt.NDArray[np.integer], values: npt.NDArray[np.floating]
) -> tuple[float, float]:
    """Kruskal-Wallis H and p-value of ``values`` grouped by small non-negative ints ``groups``.

    Equals ``scipy.stats.kruskal(*[values[groups == g] for g in set(groups)])``.
    """
    order = np.argsort(values, kind="stable")
    ranks, ties = average_ranks(np.asarray(values, dtype=np.float64)[order])
    g = np.asarray(groups)[order]
    size = int(g.max()) + 1 if g.size else 1
    sums = np.bincount(g, weights=ranks, minlength=size)[None, :]
    counts = np.bincount(g, minlength=size)[None, :]
    h, p, _, _ = kruskal_arrays(sums, counts, np.array([ties]))
    return float(h[0]), float(p[0])


def chi2_by_hour(
    n_hour: npt.NDArray[np.float64], errors_hour: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64],
           npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Chi-square test of (errors, successes) x hour per row of (E, G) call and error counts.

    Returns chi2, p-value, Cramer's V, hours with calls k and calls n. Equals
    ``scipy.stats.chi2_contingency`` on the 2 x k table of the hours with calls.
    """
    n = n_hour.sum(axis=1)
    k = (n_hour > 0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = errors_hour.sum(axis=1) / n
        expected = n_hour * rate[:, None]
        terms = np.where(n_hour > 0,
                         (errors_hour - expected) ** 2 / (expected * (1.0 - rate[:, None])), 0.0)
        degenerate = ~((rate > 0) & (rate < 1))
        chi2 = np.where(degenerate, 0.0, terms.sum(axis=1))
        p = np.where(degenerate, 1.0, chdtrc(np.maximum(k - 1, 1), chi2))
        v = np.sqrt(chi2 / n)
    return chi2, p, v, k.astype(np.int64), n.astype(np.int64)


def verdict(p_value: float, effect: float, bounds: Sequence[tuple[float, str]]) -> str:
    """``"significant, <size>"`` when ``p_value < ALPHA``, else ``"not significant"``."""
    if not np.isfinite(p_value) or p_value >= ALPHA:
        return VERDICT_NOT_SIGNIFICANT
    size = next((name for bound, name in bounds if effect >= bound), "negligible")
    return f"significant, {size}"


def group_quantiles(
    sorted_values: npt.NDArray[np.float64], groups: npt.NDArray[np.uint8],
    counts: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """p50 and p90 (linear interpolation, as ``numpy.quantile``) of each group of an ascending
    array; NaN where a group is empty. Returns shape (groups, 2)."""
    grouped = sorted_values[np.argsort(groups, kind="stable")]  # stable: sorted within groups
    out = np.full((counts.size, 2), np.nan)
    ok = counts > 0
    size = counts[ok][:, None]
    pos = (size - 1) * _QUANTILES
    lo = pos.astype(np.int64)
    start = (np.cumsum(counts) - counts)[ok][:, None]
    a = grouped[start + lo]
    b = grouped[start + np.minimum(lo + 1, size - 1)]
    out[ok] = a + (b - a) * (pos - lo)
    return out


def peaks(matrix: npt.NDArray[np.float64]) -> dict[str, list[object]]:
    """Peak and trough hour/value per row of an (E, 24) matrix with NaN for no data."""
    rows = matrix.shape[0]
    has = ~np.isnan(matrix).all(axis=1) if rows else np.zeros(0, dtype=bool)
    hi = np.zeros(rows, dtype=np.int64)
    lo = np.zeros(rows, dtype=np.int64)
    if has.any():
        hi[has] = np.nanargmax(matrix[has], axis=1)
        lo[has] = np.nanargmin(matrix[has], axis=1)
    index = np.arange(rows)
    top, bottom = matrix[index, hi], matrix[index, lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = top / bottom
    cols: dict[str, list[object]] = {
        "peak_hour": hi.tolist(), "peak_value": top.tolist(), "trough_hour": lo.tolist(),
        "trough_value": bottom.tolist(), "peak_trough_ratio": ratio.tolist(),
    }
    positive = (bottom > 0).tolist()
    for i, ok in enumerate(has.tolist()):
        if not ok:
            for key in cols:
                cols[key][i] = None
        elif not positive[i]:
            cols["peak_trough_ratio"][i] = None
    return cols


SIGNIFICANCE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "endpoint_id": pl.String, "test": pl.String, "statistic": pl.Float64, "dof": pl.Int64,
    "p_value": pl.Float64, "effect_size": pl.Float64, "effect_measure": pl.String,
    "n": pl.Int64, "hours": pl.Int64, "verdict": pl.String, "peak_hour": pl.Int32,
    "peak_value": pl.Float64, "trough_hour": pl.Int32, "trough_value": pl.Float64,
    "peak_trough_ratio": pl.Float64,
}


def significance_frame(
    ids: Sequence[str], test: str, statistic: npt.NDArray[np.float64],
    p_value: npt.NDArray[np.float64], effect: npt.NDArray[np.float64],
    n: npt.NDArray[np.int64], k: npt.NDArray[np.int64], value_matrix: npt.NDArray[np.float64],
) -> pl.DataFrame:
    """One row per endpoint: test, statistic, p, effect size, verdict, peak and trough."""
    kruskal = test == "kruskal"
    bounds = EPSILON_SQ_BOUNDS if kruskal else CRAMERS_V_BOUNDS
    enough = (k >= 2) & (n >= MIN_OBS_PER_HOUR * np.maximum(k, 1))
    verdicts = [
        verdict(float(p), float(eff), bounds) if ok else VERDICT_INSUFFICIENT
        for p, eff, ok in zip(p_value, effect, enough, strict=True)
    ]

    def keep(a: npt.NDArray[np.float64]) -> list[float | None]:
        return [float(x) if ok and np.isfinite(x) else None
                for x, ok in zip(a, enough, strict=True)]

    extremes = peaks(np.where(enough[:, None], value_matrix, np.nan))
    return pl.DataFrame(
        {
            "endpoint_id": list(ids), "test": [test] * len(ids), "statistic": keep(statistic),
            "dof": [int(x) - 1 if ok else None for x, ok in zip(k, enough, strict=True)],
            "p_value": keep(p_value), "effect_size": keep(effect),
            "effect_measure": ["epsilon^2" if kruskal else "Cramer's V"] * len(ids),
            "n": n.astype(np.int64), "hours": k.astype(np.int64), "verdict": verdicts, **extremes,
        },
        schema=SIGNIFICANCE_SCHEMA,
    )


def long_frame(
    ids: Sequence[str], slots: int, key: str, columns: dict[str, np.ndarray]
) -> pl.DataFrame:
    """Endpoint x slot arrays (E, slots) as a long frame, keeping slots with observations."""
    data: dict[str, object] = {
        "endpoint_id": np.repeat(np.asarray(ids, dtype=object), slots).tolist() if ids else [],
        key: np.tile(np.arange(slots, dtype=np.int32), len(ids)),
    }
    data.update({name: arr.reshape(-1) for name, arr in columns.items()})
    frame = pl.DataFrame(data, schema_overrides={"endpoint_id": pl.String, key: pl.Int32})
    count = "count" if "count" in columns else "minutes"
    return frame.filter(pl.col(count) > 0)


def best_by_hour(
    hourly: pl.DataFrame, value: str, count: str, *, higher_is_better: bool, min_count: int
) -> pl.DataFrame:
    """For each local hour 0-23 the best endpoint, its value and the runner-up's margin."""
    ranked = (
        hourly.filter((pl.col(count) >= min_count) & pl.col(value).is_not_null()
                      & pl.col(value).is_not_nan())
        .sort(["hour", value, "endpoint_id"], descending=[False, higher_is_better, False])
        .group_by("hour", maintain_order=True)
        .agg(pl.col("endpoint_id").head(2).alias("ids"), pl.col(value).head(2).alias("vals"),
             pl.len().cast(pl.Int64).alias("candidates"))
    )
    hours = pl.DataFrame({"hour": np.arange(24, dtype=np.int32)})
    best = hours.join(ranked, on="hour", how="left").select(
        "hour",
        pl.col("ids").list.get(0, null_on_oob=True).alias("best_endpoint"),
        pl.col("vals").list.get(0, null_on_oob=True).alias("best_value"),
        pl.col("ids").list.get(1, null_on_oob=True).alias("runner_up"),
        pl.col("vals").list.get(1, null_on_oob=True).alias("runner_up_value"),
        pl.col("candidates").fill_null(0),
    )
    margin = (pl.col("runner_up_value") - pl.col("best_value")).abs()
    return best.with_columns(
        margin.alias("margin"),
        pl.when(pl.col("best_value").abs() > 0)
        .then(100.0 * margin / pl.col("best_value").abs())
        .otherwise(None)
        .alias("margin_pct"),
    ).select("hour", "best_endpoint", "best_value", "runner_up", "runner_up_value", "margin",
             "margin_pct", "candidates")
