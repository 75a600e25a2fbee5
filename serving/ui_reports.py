"""The dashboard's reports: the hour-of-day heatmap, the trade-off graph and one decision
explained (``/ui/api/tod``, ``/ui/api/tradeoff``, ``/ui/api/event/{id}``).

Each reads the warehouse in worker threads (``Warehouse.aquery`` or ``asyncio.to_thread``) and
returns a JSON-ready dict; ``serving.ui`` caches the first two (``serving.ui_data.UiCaches``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import cast

from serving.ui_data import EXPLORE_EPS, JSON, count, finite, iso, live_view
from warehouse.analysis import METRICS, Metric
from warehouse.models import Decision, Endpoint, Feedback, LiveStat
from warehouse.store import Warehouse
from warehouse.tod import tod_report, validate_args

TOD_MAX_DAYS = 90
REFERENCE_TOKENS_IN = 500  # the request the trade-off dots are priced on without traffic
REFERENCE_TOKENS_OUT = 250
TRADEOFF_LOOKBACK = timedelta(hours=24)
QUALITY_LOOKBACK = timedelta(days=30)
EVENT_BEFORE = timedelta(minutes=10)  # outcome rows of an event are looked for in this span
EVENT_AFTER = timedelta(hours=1)


# --- time of day --------------------------------------------------------------------------


def tod_args(metric: str, tz: str, days: int, source: str) -> tuple[Metric, str, int, str | None]:
    """Validated time-of-day arguments; ValueError naming the culprit."""
    if not 1 <= days <= TOD_MAX_DAYS:
        raise ValueError(f"days must be between 1 and {TOD_MAX_DAYS}, got {days}")
    if source not in ("probe", "traffic", "all"):
        raise ValueError(f"source must be probe, traffic or all, got {source!r}")
    src = None if source == "all" else source
    validate_args(metric, tz, None, None, None, src)
    return cast(Metric, metric), tz, days, src


async def tod_payload(
    wh: Warehouse, now: datetime, metric: str, tz: str, days: int, source: str
) -> JSON:
    """The hour-of-day heatmap (endpoints x 24 local hours) and the best endpoint per hour."""
    metric_, tz, days, src = tod_args(metric, tz, days, source)
    since = now - timedelta(days=days)
    report = await asyncio.to_thread(
        lambda: tod_report(wh.query_pl, metric=metric_, tz=tz, since=since, source=src)
    )
    value_col = report.value_column
    count_col = "count" if metric != "errors" else "n"
    index = {e: i for i, e in enumerate(report.endpoints)}
    values: list[list[float | None]] = [[None] * 24 for _ in report.endpoints]
    counts: list[list[int]] = [[0] * 24 for _ in report.endpoints]
    for row in report.hourly.select("endpoint_id", "hour", value_col, count_col).iter_rows():
        i = index[row[0]]
        values[i][row[1]] = finite(row[2])
        counts[i][row[1]] = int(row[3] or 0)
    best = [
        {"hour": h, "endpoint": e, "value": finite(v), "margin_pct": finite(mp)}
        for h, e, v, mp in report.best_by_hour.select(
            "hour", "best_endpoint", "best_value", "margin_pct").iter_rows()
    ]
    verdicts = dict(report.significance.select("endpoint_id", "verdict").iter_rows())
    spec = METRICS[metric]
    return {
        "ok": True,
        "generated_at": iso(now),
        "metric": metric,
        "tz": tz,
        "days": days,
        "source": source,
        "title": report.title,
        "unit": spec.unit,
        "higher_is_better": spec.higher_is_better,
        "endpoints": list(report.endpoints),
        "values": values,
        "counts": counts,
        "best": best,
        "verdicts": verdicts,
        "data_from": iso(report.data_from),
        "data_to": iso(report.data_to),
    }


# --- trade-offs ---------------------------------------------------------------------------

QUALITY_SQL = """
SELECT coalesce(d.served, d.chosen) AS endpoint, avg(f.score) AS quality, count(*) AS n
FROM decisions AS d
JOIN (SELECT event_id, arg_max(score, received_at) AS score FROM feedback
      WHERE received_at >= $since GROUP BY event_id) AS f ON f.event_id = d.event_id
GROUP BY endpoint
"""
SHARES_SQL = """
SELECT coalesce(served, chosen) AS endpoint, count(*) AS n, avg(prompt_tokens) AS tokens_in
FROM decisions WHERE created_at >= $since GROUP BY endpoint
"""
TOKENS_OUT_SQL = """
SELECT avg(output_tokens) FROM probes
WHERE started_at >= $since AND source = 'traffic' AND outcome = 'ok' AND output_tokens > 0
"""


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    """The mean of the values weighted by their weights, skipping None; None if nothing."""
    total = weight = 0.0
    for value, w in pairs:
        if value is not None and w > 0:
            total += value * w
            weight += w
    return total / weight if weight > 0 else None


def _cost_per_1k(ep: Endpoint, tokens_in: float, tokens_out: float) -> float:
    return 1000.0 * (tokens_in * ep.price_in_per_mtok + tokens_out * ep.price_out_per_mtok) / 1e6


def normalise_tradeoff(raw: Mapping[str, object]) -> JSON:
    """A trained router's trade-off JSON, checked to the shape the page draws."""
    endpoints = raw.get("endpoints", [])
    routers = raw.get("routers", [])
    if not isinstance(endpoints, list) or not isinstance(routers, list):
        raise ValueError("trade-off JSON: 'endpoints' and 'routers' must be lists")
    dots = [
        {"endpoint": str(d.get("endpoint")), "quality": finite(d.get("quality")),
         "cost_per_1k": finite(d.get("cost_per_1k")), "ttft_ms": finite(d.get("ttft_ms"))}
        for d in endpoints if isinstance(d, dict)
    ]
    stars = []
    for r in routers:
        if not isinstance(r, dict):
            continue
        shares = r.get("shares")
        stars.append({
            "router": str(r.get("router")), "quality": finite(r.get("quality")),
            "cost_per_1k": finite(r.get("cost_per_1k")), "ttft_ms": finite(r.get("ttft_ms")),
            "shares": ({str(k): finite(v) for k, v in shares.items()}
                       if isinstance(shares, dict) else {}),
            "frontier": bool(r.get("frontier", False)),
        })
    return {"endpoints": dots, "routers": stars, "heldout": raw.get("heldout")}


async def tradeoff_payload(
    wh: Warehouse,
    now: datetime,
    *,
    trained: Callable[[], Mapping[str, object] | None] | None,
    endpoints: Mapping[str, Endpoint],
    live: Mapping[str, LiveStat],
    default_router: str,
) -> JSON:
    """The trained router's trade-off when there is one; otherwise one dot per endpoint from
    what the sidecar knows (live TTFT, list prices on the mean request of the last 24 h, mean
    feedback score) and one star for the live router (its traffic shares of the last 24 h)."""
    raw = await asyncio.to_thread(trained) if trained is not None else None
    if raw is not None:
        return {"ok": True, "generated_at": iso(now), "trained": True, **normalise_tradeoff(raw)}
    since = now - TRADEOFF_LOOKBACK
    quality_rows, share_rows, out_rows = await asyncio.gather(
        wh.aquery(QUALITY_SQL, {"since": now - QUALITY_LOOKBACK}),
        wh.aquery(SHARES_SQL, {"since": since}),
        wh.aquery(TOKENS_OUT_SQL, {"since": since}),
    )
    quality = {str(e): (finite(q), count(n)) for e, q, n in quality_rows}
    shares = {str(e): count(n) for e, n, _ in share_rows}
    tokens_in = weighted_mean((finite(t), count(n)) for _, n, t in share_rows)
    tokens_out = finite(out_rows[0][0]) if out_rows else None
    tokens_in = tokens_in if tokens_in is not None else float(REFERENCE_TOKENS_IN)
    tokens_out = tokens_out if tokens_out is not None else float(REFERENCE_TOKENS_OUT)
    costs: dict[str, float] = {}
    ttfts: dict[str, float | None] = {}
    dots: list[JSON] = []
    for eid in sorted(endpoints):
        stat = live.get(eid)
        costs[eid] = _cost_per_1k(endpoints[eid], tokens_in, tokens_out)
        ttfts[eid] = None if stat is None else finite(
            stat.ttft_ms_p50 if stat.ttft_ms_p50 is not None else stat.ttft_ms_ewma)
        q, n_q = quality.get(eid, (None, 0))
        dots.append({"endpoint": eid, "quality": q, "quality_n": n_q,
                     "cost_per_1k": costs[eid], "ttft_ms": ttfts[eid]})
    routers: list[JSON] = []
    n_total = sum(shares.values())
    if n_total:
        mix = {e: n / n_total for e, n in sorted(shares.items())}
        routers.append({
            "router": default_router,
            "quality": weighted_mean(quality.values()),
            "cost_per_1k": weighted_mean((costs.get(e), w) for e, w in mix.items()),
            "ttft_ms": weighted_mean((ttfts.get(e), w) for e, w in mix.items()),
            "shares": mix, "frontier": False, "live": True,
        })
    return {
        "ok": True,
        "generated_at": iso(now),
        "trained": False,
        "note": "no trained router yet: dots are live figures, the star is the live router",
        "request": {"tokens_in": tokens_in, "tokens_out": tokens_out},
        "endpoints": dots,
        "routers": routers,
        "heldout": None,
    }


# --- one decision -------------------------------------------------------------------------

OUTCOME_SQL = """
SELECT endpoint_id, started_at, source, outcome, status_code, ttft_ms, itl_ms_p50, e2e_ms,
       input_tokens, output_tokens, detail
FROM probes WHERE event_id = $event_id AND started_at >= $t0 AND started_at < $t1
ORDER BY started_at
"""
_OUTCOME_COLS = ("endpoint_id", "started_at", "source", "outcome", "status_code", "ttft_ms",
                 "itl_ms_p50", "e2e_ms", "input_tokens", "output_tokens", "detail")


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return finite(value)
    return value


def candidate_features(d: Decision) -> dict[str, dict[str, object]]:
    """The logged ``a.<endpoint id>.<name>`` features, per candidate."""
    out: dict[str, dict[str, object]] = {c: {} for c in d.candidates}
    for key, value in d.context.items():
        if not key.startswith("a."):
            continue
        for c in d.candidates:  # endpoint ids may contain dots: match the known ids
            prefix = f"a.{c}."
            if key.startswith(prefix):
                out[c][key[len(prefix):]] = _plain(value)
                break
    return out


async def event_payload(
    wh: Warehouse,
    decision: Decision,
    feedback: Sequence[Feedback],
    live: Mapping[str, LiveStat],
    now: datetime,
) -> JSON:
    """One decision explained: features, candidates (logged and live figures, probability,
    rank), the choice, the outcome rows measured for it and its feedback."""
    d = decision
    rows = await wh.aquery(OUTCOME_SQL, {"event_id": d.event_id,
                                         "t0": d.created_at - EVENT_BEFORE,
                                         "t1": d.created_at + EVENT_AFTER})
    feats = candidate_features(d)
    order = sorted(range(len(d.candidates)), key=lambda i: (-d.probabilities[i], d.candidates[i]))
    rank = {d.candidates[i]: r + 1 for r, i in enumerate(order)}
    candidates = [
        {"endpoint": c, "probability": finite(p), "rank": rank[c], "chosen": c == d.chosen,
         "served": c == (d.served or d.chosen),
         "fallback_rank": d.fallbacks.index(c) + 1 if c in d.fallbacks else None,
         "logged": feats[c], "live_now": live_view(live.get(c), now)}
        for c, p in zip(d.candidates, d.probabilities, strict=True)
    ]
    return {
        "ok": True,
        "event_id": d.event_id,
        "created_at": iso(d.created_at),
        "router": d.router,
        "policy_version": d.policy_version,
        "chosen": d.chosen,
        "chosen_prob": d.chosen_prob,
        "explored": d.chosen_prob < max(d.probabilities) - EXPLORE_EPS,
        "served": d.served or d.chosen,
        "shadow": d.shadow,
        "fallbacks": list(d.fallbacks),
        "prompt_tokens": d.prompt_tokens,
        "max_tokens": d.max_tokens,
        "metadata": dict(d.metadata),
        "prompt": {k[2:]: _plain(v) for k, v in sorted(d.context.items()) if k.startswith("p.")},
        "request": {k[2:]: _plain(v) for k, v in sorted(d.context.items()) if k.startswith("r.")},
        "candidates": [candidates[i] for i in order],
        "outcomes": [dict(zip(_OUTCOME_COLS, map(_plain, r), strict=True)) for r in rows],
        "feedback": [{"score": f.score, "comment": f.comment, "received_at": iso(f.received_at)}
                     for f in feedback],
    }
