"""The trade-off graph of a trained router: quality against cost and TTFT on held-out prompts.

``tradeoff(model, heldout, facts)`` replays the held-out prompts through the trained router's
own decision rule (``choose``: the highest ``q * predicted quality - c * price - t * TTFT``,
the rule ``bandit.trained.TrainedPolicy`` routes live with, without exploration) for a sweep
of objective weights, and measures what each configuration would have earned with the
endpoints' real outcomes: mean quality (the held-out scores), cost per 1,000 requests (the
prompt's tokens and each endpoint's measured output tokens at its prices) and mean TTFT.

The sweep is chosen from the data: the cost weights (then the TTFT weights) at which the
decision on some held-out prompt flips, taken at evenly spaced quantiles, so the stars spread
along the whole curve instead of piling up at its ends. Every single endpoint is a dot. A
configuration is on the frontier when no dot or star is at least as good on quality and on
that axis and better on one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bandit.features import Value
from bandit.quality import QualityModel
from bandit.reward import blended_price, reward_value
from bandit.router_string import Objective, format_router

DEFAULT_STARS = 24  # router configurations per axis


@dataclass(frozen=True, slots=True)
class EndpointFacts:
    """Prices (USD per million tokens) and typical TTFT of one endpoint."""

    endpoint: str
    price_in_per_mtok: float
    price_out_per_mtok: float
    ttft_ms: float
    itl_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One held-out prompt with every endpoint's measured outcome."""

    prompt: str
    scores: Mapping[str, float]
    tokens_in: int
    tokens_out: Mapping[str, int] = field(default_factory=dict)
    ttft_ms: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Point:
    """One dot (single endpoint) or star (router configuration) of the graph."""

    label: str  # endpoint id or router string
    quality: float
    cost_per_1k: float
    ttft_ms: float
    shares: Mapping[str, float] = field(default_factory=dict)
    axis: str = ""  # "cost" or "ttft" for stars: the weight that was swept
    frontier: bool = False


@dataclass(frozen=True, slots=True)
class Tradeoff:
    endpoints: tuple[Point, ...]
    routers: tuple[Point, ...]
    heldout: int

    def to_json(self) -> dict[str, object]:
        def num(x: float) -> float:
            return round(x, 6)

        return {
            "endpoints": [{"endpoint": p.label, "quality": num(p.quality),
                           "cost_per_1k": num(p.cost_per_1k), "ttft_ms": num(p.ttft_ms)}
                          for p in self.endpoints],
            "routers": [{"router": p.label, "quality": num(p.quality),
                         "cost_per_1k": num(p.cost_per_1k), "ttft_ms": num(p.ttft_ms),
                         "shares": {k: num(v) for k, v in p.shares.items()},
                         "axis": p.axis, "frontier": p.frontier} for p in self.routers],
            "heldout": self.heldout,
        }

    def frontier_table(self) -> str:
        """A plain-text table of the frontier stars, cheapest first."""
        rows = sorted((p for p in self.routers if p.frontier), key=lambda p: p.cost_per_1k)
        lines = [f"{'quality':>8} {'$/1k req':>10} {'TTFT ms':>9}  router"]
        lines += [f"{p.quality:8.3f} {p.cost_per_1k:10.4f} {p.ttft_ms:9.1f}  {p.label}"
                  for p in rows]
        return "\n".join(lines)


def choose(quality: Mapping[str, float], facts: Mapping[str, EndpointFacts],
           objective: Objective, tokens_in: int, tokens_out: int) -> str:
    """The endpoint with the highest expected reward (ties: the first id in sorted order)."""
    best, best_value = "", -math.inf
    for endpoint in sorted(quality):
        f = facts[endpoint]
        price = blended_price(f.price_in_per_mtok, f.price_out_per_mtok, tokens_in, tokens_out)
        value = reward_value(objective, quality[endpoint], price, f.ttft_ms, f.itl_ms)
        if value > best_value:
            best, best_value = endpoint, value
    return best


def _cost_usd(f: EndpointFacts, tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * f.price_in_per_mtok + tokens_out * f.price_out_per_mtok) / 1e6


class _Rows:
    """Held-out prompts with predictions, ready for many replays."""

    def __init__(self, model: QualityModel, heldout: Sequence[HeldOut],
                 facts: Mapping[str, EndpointFacts]) -> None:
        self.facts = facts
        self.endpoints = sorted(facts)
        self.items: list[tuple[HeldOut, dict[str, float], int]] = []
        for h in heldout:
            ctx: dict[str, Value] = model.context(h.prompt)
            pred = model.predict_context(ctx, self.endpoints)
            out = round(sum(h.tokens_out.values()) / len(h.tokens_out)) if h.tokens_out else 1
            self.items.append((h, pred, max(1, out)))

    def measure(self, label: str, pick: Sequence[str], axis: str = "") -> Point:
        n = len(self.items)
        quality = cost = ttft = 0.0
        counts: dict[str, int] = dict.fromkeys(self.endpoints, 0)
        for (h, _, out), e in zip(self.items, pick, strict=True):
            f = self.facts[e]
            quality += float(h.scores.get(e, 0.0))
            cost += _cost_usd(f, h.tokens_in, h.tokens_out.get(e, out))
            ttft += h.ttft_ms.get(e, f.ttft_ms)
            counts[e] += 1
        return Point(label, quality / n, 1000.0 * cost / n, ttft / n,
                     {e: k / n for e, k in counts.items()}, axis)

    def decide(self, objective: Objective) -> list[str]:
        return [choose(pred, self.facts, objective, h.tokens_in, out)
                for h, pred, out in self.items]

    def flips(self, axis: str) -> list[float]:
        """Per prompt and endpoint pair, the weight at which quality stops paying for the
        more expensive (or slower) endpoint: ``dq / d(price)`` or ``dq / d(ttft)``."""
        values: list[float] = []
        for h, pred, out in self.items:
            for a in self.endpoints:
                for b in self.endpoints:
                    fa, fb = self.facts[a], self.facts[b]
                    if axis == "cost":
                        da = blended_price(fa.price_in_per_mtok, fa.price_out_per_mtok,
                                           h.tokens_in, out)
                        db = blended_price(fb.price_in_per_mtok, fb.price_out_per_mtok,
                                           h.tokens_in, out)
                    else:
                        da, db = fa.ttft_ms, fb.ttft_ms
                    dq = pred[a] - pred[b]
                    if da > db and dq > 0:
                        values.append(dq / (da - db))
        return sorted(values)


def _weights(flips: Sequence[float], stars: int) -> list[float]:
    if not flips:
        return []
    picks = {flips[min(len(flips) - 1, int(k * len(flips) / stars))] for k in range(stars)}
    # just below each flip point, so the prompt that flips there still takes the better one
    return sorted({float(f"{w * 0.999:.3g}") for w in picks} | {0.0})


def _mark_frontier(points: list[Point], dots: Sequence[Point], axis: str) -> list[Point]:
    def x(p: Point) -> float:
        return p.cost_per_1k if axis == "cost" else p.ttft_ms

    everyone = [*points, *dots]
    marked = []
    for p in points:
        dominated = any(
            o is not p and o.quality >= p.quality and x(o) <= x(p)
            and (o.quality > p.quality or x(o) < x(p))
            for o in everyone
        )
        marked.append(replace(p, frontier=not dominated))
    return marked


def tradeoff(model: QualityModel, heldout: Sequence[HeldOut], facts: Sequence[EndpointFacts],
             *, stars: int = DEFAULT_STARS) -> Tradeoff:
    """The graph's points (see the module docstring). Blocking: one prediction per held-out
    prompt and endpoint, then cheap replays."""
    if not heldout:
        raise ValueError("tradeoff needs at least one held-out prompt")
    if not facts:
        raise ValueError("tradeoff needs at least one endpoint")
    by_id = {f.endpoint: f for f in facts}
    rows = _Rows(model, heldout, by_id)
    dots = tuple(rows.measure(e, [e] * len(rows.items)) for e in rows.endpoints)
    routers: list[Point] = []
    for axis, key in (("cost", "c"), ("ttft", "t")):
        points: list[Point] = []
        seen: set[tuple[str, ...]] = set()
        for w in _weights(rows.flips(axis), stars):
            objective = Objective(q=1.0, c=w if key == "c" else 0.0, t=w if key == "t" else 0.0)
            pick = rows.decide(objective)
            if tuple(pick) in seen:
                continue
            seen.add(tuple(pick))
            points.append(rows.measure(format_router(objective), pick, axis))
        routers += _mark_frontier(points, dots, axis)
    return Tradeoff(dots, tuple(routers), len(rows.items))
