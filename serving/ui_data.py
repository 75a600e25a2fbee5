"""The dashboard's data: what ``/ui/api/...`` answers, computed from the sidecar's own state.

Cheap figures come from memory (live stats, cooldowns, the router); everything DuckDB or
numpy computes runs in a worker thread (``Warehouse.aquery*`` or ``asyncio.to_thread``) and is
cached by :class:`TtlCache`, so one open dashboard (or ten) costs the sidecar a handful of
small queries a minute:

    ============  ============================================================  =========
    payload       source                                                        cached
    ============  ============================================================  =========
    now           live stats, cooldowns; the last hour per minute (sparklines)  1 s / 30 s
    traffic       ``decisions`` and ``feedback`` of the chosen window             5 s
    tod           ``warehouse.tod.tod_report`` over ``probe_minutes``              60 s
    tradeoff      the trained router's trade-off, else live figures and feedback  30 s
    event         one decision, its outcome rows and its feedback                  no
    ============  ============================================================  =========

This module holds the caches, the shared helpers and the live payloads (now, traffic);
``serving.ui_reports`` the reports (tod, tradeoff, event).

Every payload is a plain JSON-ready dict; times are ISO 8601 UTC strings, minutes are epoch
minutes (UTC), rates are fractions in [0, 1].
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Generic, TypeVar

from warehouse.models import Endpoint, LiveStat
from warehouse.store import Warehouse

T = TypeVar("T")
JSON = dict[str, object]

SPARK_MINUTES = 60
STATUS_FAILING_ERROR_RATE = 0.5  # at least half the calls in the window failed
STATUS_DEGRADED_ERROR_RATE = 0.1
STATUS_MIN_SAMPLES = 3
IDLE_INTERVALS = 5.0  # no sample for this many probe intervals: idle
IDLE_MIN_S = 60.0
TRAFFIC_WINDOWS_MIN = (60, 360, 1440)  # the windows the traffic view offers
TRAFFIC_BUCKETS = 60  # buckets per window
RECENT_EVENTS = 12
EXPLORE_EPS = 1e-9  # a chosen probability this far below the top one was exploration
MS_DIGITS = 2  # milliseconds and tokens/s are sent with two decimals, rates with four
RATE_DIGITS = 4
NOW_TTL_S = 1.0
SPARK_TTL_S = 30.0
TRAFFIC_TTL_S = 5.0
TOD_TTL_S = 60.0
TRADEOFF_TTL_S = 30.0


class TtlCache(Generic[T]):
    """Values by key for ``ttl_s`` seconds; concurrent misses of one key share one computation.

    >>> cache: TtlCache[int] = TtlCache(10.0)
    >>> async def compute() -> int: return 42
    >>> # value = await cache.get("k", compute)  -> 42, computed once per 10 s
    """

    def __init__(
        self, ttl_s: float, *, max_entries: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not ttl_s >= 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._values: dict[Hashable, tuple[float, T]] = {}
        self._pending: dict[Hashable, asyncio.Future[T]] = {}
        self.computed = 0

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        hit = self._values.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl_s:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._pending[key]
        self.computed += 1
        if len(self._values) >= self.max_entries:
            self._values.pop(next(iter(self._values)))
        self._values[key] = (self.clock(), value)
        future.set_result(value)
        return value


@dataclass(slots=True)
class UiCaches:
    """The dashboard's caches, one set per application (``serving.state.UI_CACHES``)."""

    now: TtlCache[JSON]
    spark: TtlCache[JSON]
    traffic: TtlCache[JSON]
    tod: TtlCache[JSON]
    tradeoff: TtlCache[JSON]

    @classmethod
    def default(cls, clock: Callable[[], float] = time.monotonic) -> UiCaches:
        return cls(TtlCache(NOW_TTL_S, clock=clock), TtlCache(SPARK_TTL_S, clock=clock),
                   TtlCache(TRAFFIC_TTL_S, clock=clock), TtlCache(TOD_TTL_S, clock=clock),
                   TtlCache(TRADEOFF_TTL_S, clock=clock))


def iso(value: object) -> str | None:
    """A datetime as ISO 8601 UTC text; anything else as None."""
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else None


def count(value: object) -> int:
    """A count from a query row (DuckDB gives ints; None counts as 0)."""
    return int(value) if isinstance(value, int | float) else 0


def finite(value: object, digits: int | None = None) -> float | None:
    """A finite float (rounded to ``digits`` decimals if given), or None (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        return None
    f = float(value)
    if not math.isfinite(f):
        return None
    return round(f, digits) if digits is not None else f


def epoch_minute(value: datetime) -> int:
    return int(value.timestamp() // 60)


# --- now ----------------------------------------------------------------------------------


def endpoint_status(
    stat: LiveStat | None, cooldown_s: float | None, now: datetime, idle_after_s: float
) -> str:
    """``cooling`` (a Retry-After or failure cooldown), ``failing`` (half the window's calls
    failed), ``degraded`` (a tenth failed or hit 429), ``idle`` (no sample for a while),
    ``no data`` or ``ok``."""
    if cooldown_s:
        return "cooling"
    if stat is None or stat.samples == 0 and stat.newest_at is None:
        return "no data"
    if stat.samples >= STATUS_MIN_SAMPLES and stat.error_rate >= STATUS_FAILING_ERROR_RATE:
        return "failing"
    age = stat.age_s(now)
    if age is not None and age > idle_after_s:
        return "idle"
    if stat.samples and (stat.error_rate >= STATUS_DEGRADED_ERROR_RATE
                         or stat.rate_429 >= STATUS_DEGRADED_ERROR_RATE):
        return "degraded"
    return "ok"


def live_view(stat: LiveStat | None, now: datetime) -> JSON | None:
    if stat is None:
        return None
    return {
        "samples": stat.samples,
        "samples_traffic": stat.samples_traffic,
        "ttft_ms_p50": finite(stat.ttft_ms_p50, MS_DIGITS),
        "ttft_ms_p90": finite(stat.ttft_ms_p90, MS_DIGITS),
        "itl_ms_p50": finite(stat.itl_ms_p50, MS_DIGITS),
        "itl_ms_p90": finite(stat.itl_ms_p90, MS_DIGITS),
        "tokens_per_s": finite(stat.tokens_per_s, MS_DIGITS),
        "error_rate": finite(stat.error_rate, RATE_DIGITS),
        "rate_429": finite(stat.rate_429, RATE_DIGITS),
        "ttft_ms_ewma": finite(stat.ttft_ms_ewma, MS_DIGITS),
        "error_rate_ewma": finite(stat.error_rate_ewma, RATE_DIGITS),
        "age_s": finite(stat.age_s(now), 1),
        "newest_at": iso(stat.newest_at),
    }


SPARK_SQL = """
SELECT endpoint_id, CAST(epoch_us(minute) // 60000000 AS BIGINT) AS m,
       sum(ttft_ms_sum) / nullif(sum(n_ttft), 0) AS ttft_ms,
       CAST(sum(n_error) AS DOUBLE) / nullif(sum(n), 0) AS error_rate
FROM probe_minutes_between(?, ?)
GROUP BY endpoint_id, m
"""


async def sparklines(wh: Warehouse, now: datetime, minutes: int = SPARK_MINUTES) -> JSON:
    """Per endpoint, the mean TTFT and the error rate of each of the last ``minutes`` minutes
    (the current one included, partial), oldest first; None where a minute had no call."""
    last = epoch_minute(now)
    first = last - minutes + 1
    t0 = datetime.fromtimestamp(first * 60, UTC)
    t1 = datetime.fromtimestamp((last + 1) * 60, UTC)
    rows = await wh.aquery(SPARK_SQL, [t0, t1])
    series: dict[str, tuple[list[float | None], list[float | None]]] = {}
    for endpoint_id, m, ttft, err in rows:
        ttft_s, err_s = series.setdefault(str(endpoint_id), ([None] * minutes, [None] * minutes))
        i = count(m) - first
        if 0 <= i < minutes:
            ttft_s[i] = finite(ttft, 1)
            err_s[i] = finite(err, RATE_DIGITS)
    return {
        "first_minute": first,
        "minutes": minutes,
        "series": {k: {"ttft_ms": v[0], "error_rate": v[1]} for k, v in sorted(series.items())},
    }


@dataclass(frozen=True, slots=True)
class NowInputs:
    """What the "now" view is made of (all in memory)."""

    endpoints: Mapping[str, Endpoint]
    live: Mapping[str, LiveStat]
    cooldowns: Mapping[str, float]
    model_version: str
    ready: bool
    idle_after_s: float


def now_payload(inputs: NowInputs, now: datetime) -> JSON:
    """One row per endpoint: catalog facts, live figures and state (the sparklines, which
    change once a minute, travel apart: see ``sparklines``)."""
    rows = []
    counts: dict[str, int] = {}
    for eid in sorted(set(inputs.endpoints) | set(inputs.live)):
        ep = inputs.endpoints.get(eid)
        stat = inputs.live.get(eid)
        cooldown = inputs.cooldowns.get(eid)
        status = endpoint_status(stat, cooldown, now, inputs.idle_after_s)
        counts[status] = counts.get(status, 0) + 1
        rows.append(
            {
                "id": eid,
                "model": ep.model if ep else eid.rsplit("@", 1)[0],
                "provider": ep.provider if ep else eid.rsplit("@", 1)[-1],
                "wire_format": ep.wire_format.value if ep else None,
                "price_in_per_mtok": ep.price_in_per_mtok if ep else None,
                "price_out_per_mtok": ep.price_out_per_mtok if ep else None,
                "in_catalog": ep is not None,
                "status": status,
                "cooldown_s": finite(cooldown),
                "live": live_view(stat, now),
            }
        )
    return {
        "ok": True,
        "generated_at": iso(now),
        "model_version": inputs.model_version,
        "ready": inputs.ready,
        "status_counts": counts,
        "endpoints": rows,
    }


# --- traffic ------------------------------------------------------------------------------

# "explore": the chosen arm's probability is below the top one (by more than EXPLORE_EPS)
TRAFFIC_SQL = """
SELECT CAST(epoch_us(created_at) // $bucket_us AS BIGINT) AS b,
       coalesce(served, chosen) AS endpoint,
       count(*) AS n,
       count_if(chosen_prob < list_max(probabilities) - 1e-9) AS explore,
       count_if(created_at >= $last_min) AS n_last_min
FROM decisions WHERE created_at >= $since
GROUP BY b, endpoint
"""
FEEDBACK_SQL = """
SELECT CAST(epoch_us(received_at) // $bucket_us AS BIGINT) AS b,
       count_if(score >= 0.5) AS up, count_if(score < 0.5) AS down
FROM feedback WHERE received_at >= $since
GROUP BY b
"""
FEEDBACK_RATE_SQL = """
SELECT count(*) AS n, count(f.event_id) AS with_feedback
FROM decisions AS d
LEFT JOIN (SELECT DISTINCT event_id FROM feedback WHERE received_at >= $since) AS f
  ON f.event_id = d.event_id
WHERE d.created_at >= $since
"""
RECENT_SQL = """
SELECT event_id, created_at, coalesce(served, chosen) AS endpoint, router, chosen_prob,
       chosen_prob < list_max(probabilities) - 1e-9 AS explored
FROM decisions WHERE created_at >= $since
ORDER BY created_at DESC LIMIT $limit
"""


def traffic_window(minutes: int) -> tuple[int, int]:
    """(window, bucket) in minutes; ValueError unless the window is one of those offered."""
    if minutes not in TRAFFIC_WINDOWS_MIN:
        raise ValueError(
            f"window must be one of {', '.join(map(str, TRAFFIC_WINDOWS_MIN))} minutes, "
            f"got {minutes}"
        )
    return minutes, max(1, minutes // TRAFFIC_BUCKETS)


async def traffic_payload(wh: Warehouse, now: datetime, window_min: int) -> JSON:
    """Where decisions went per time bucket, decisions/s, exploration, feedback and its rate."""
    window_min, bucket_min = traffic_window(window_min)
    bucket_us = bucket_min * 60_000_000
    first = (epoch_minute(now) - window_min + 1) // bucket_min
    last = epoch_minute(now) // bucket_min
    since = datetime.fromtimestamp(first * bucket_min * 60, UTC)
    params = {"bucket_us": bucket_us, "since": since, "last_min": now - timedelta(minutes=1)}
    decisions, feedback, rate, recent = await asyncio.gather(
        wh.aquery(TRAFFIC_SQL, params),
        wh.aquery(FEEDBACK_SQL, {"bucket_us": bucket_us, "since": since}),
        wh.aquery(FEEDBACK_RATE_SQL, {"since": since}),
        wh.aquery(RECENT_SQL, {"since": now - timedelta(hours=1), "limit": RECENT_EVENTS}),
    )
    buckets = last - first + 1
    by_endpoint: dict[str, list[int]] = {}
    totals = [0] * buckets
    explore = total = last_min = 0
    for b, endpoint, n, n_explore, n_last in decisions:
        i = count(b) - first
        if not 0 <= i < buckets:
            continue
        counts = by_endpoint.setdefault(str(endpoint), [0] * buckets)
        counts[i] += count(n)
        totals[i] += count(n)
        total += count(n)
        explore += count(n_explore)
        last_min += count(n_last)
    up_s, down_s = [0] * buckets, [0] * buckets
    for b, up, down in feedback:
        i = count(b) - first
        if 0 <= i < buckets:
            up_s[i], down_s[i] = count(up), count(down)
    n_rate, with_feedback = (count(rate[0][0]), count(rate[0][1])) if rate else (0, 0)
    return {
        "ok": True,
        "generated_at": iso(now),
        "window_min": window_min,
        "bucket_min": bucket_min,
        "first_bucket_minute": first * bucket_min,
        "buckets": buckets,
        "totals": totals,
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "decisions": total,
        "decisions_per_s": last_min / 60.0,
        "exploration_share": explore / total if total else None,
        "feedback_up": sum(up_s),
        "feedback_down": sum(down_s),
        "feedback_up_series": up_s,
        "feedback_down_series": down_s,
        "feedback_rate": with_feedback / n_rate if n_rate else None,
        "recent": [
            {"event_id": e, "created_at": iso(c), "endpoint": ep, "router": r,
             "chosen_prob": finite(p), "explored": bool(x)}
            for e, c, ep, r, p, x in recent
        ],
    }
