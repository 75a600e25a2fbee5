"""The trade-off graph: replaying held-out outcomes through the trained decision rule."""

from __future__ import annotations

import random

import pytest

from bandit.quality import Example, QualityConfig, QualityModel
from bandit.router_string import Objective, parse_router
from bandit.tradeoff import EndpointFacts, HeldOut, choose, tradeoff

BIG, SMALL = "big@p", "small@q"
FACTS = [EndpointFacts(BIG, 10.0, 30.0, 800.0), EndpointFacts(SMALL, 0.5, 0.5, 200.0)]


def _rows(seed: int, n: int) -> list[tuple[str, dict[str, float]]]:
    """Easy prompts: both right. Hard prompts: only the big model is right."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(2, 999)
        if rng.random() < 0.5:
            rows.append((f"What is the capital of country {k}?", {BIG: 1.0, SMALL: 1.0}))
        else:
            rows.append((f"Prove theorem {k} about prime gaps rigorously.", {BIG: 1.0, SMALL: 0.0}))
    return rows


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    model = QualityModel([BIG, SMALL], config=QualityConfig(bits=16))
    model.fit([Example(p, s) for p, s in _rows(1, 400)])
    held = [HeldOut(p, s, 20, {BIG: 100, SMALL: 120}) for p, s in _rows(2, 200)]
    result = tradeoff(model, held, FACTS, stars=12)
    model.close()
    return result


def test_dots_are_the_single_endpoints_measured(graph) -> None:  # type: ignore[no-untyped-def]
    dots = {p.label: p for p in graph.endpoints}
    assert set(dots) == {BIG, SMALL}
    assert dots[BIG].quality == 1.0 and 0.3 < dots[SMALL].quality < 0.7
    assert dots[BIG].cost_per_1k == pytest.approx(1000 * (20 * 10 + 100 * 30) / 1e6)
    assert dots[SMALL].ttft_ms == 200.0


def test_a_router_star_beats_both_dots(graph) -> None:  # type: ignore[no-untyped-def]
    dots = {p.label: p for p in graph.endpoints}
    best = max((p for p in graph.routers if p.axis == "cost"),
               key=lambda p: (p.quality, -p.cost_per_1k))
    assert best.quality >= 0.98
    assert best.cost_per_1k < 0.7 * dots[BIG].cost_per_1k  # easy prompts go to the cheap one
    assert 0.3 < best.shares[SMALL] < 0.7
    assert parse_router(best.label).q == 1.0  # the label is a router string one can paste
    assert best.frontier


def test_frontier_stars_are_not_dominated(graph) -> None:  # type: ignore[no-untyped-def]
    everyone = [*graph.endpoints, *graph.routers]
    for star in graph.routers:
        if star.frontier and star.axis == "cost":
            assert not any(o.quality > star.quality and o.cost_per_1k < star.cost_per_1k
                           for o in everyone)
    assert any(not s.frontier for s in graph.routers) or len(graph.routers) <= 3


def test_json_shape_and_table(graph) -> None:  # type: ignore[no-untyped-def]
    data = graph.to_json()
    assert data["heldout"] == 200
    assert {"endpoint", "quality", "cost_per_1k", "ttft_ms"} <= set(data["endpoints"][0])
    assert {"router", "quality", "cost_per_1k", "ttft_ms", "shares", "frontier", "axis"} <= set(
        data["routers"][0])
    assert {r["axis"] for r in data["routers"]} == {"cost", "ttft"}
    table = graph.frontier_table()
    assert "router@q:1" in table and table.splitlines()[0].split()[0] == "quality"


def test_choose_weighs_quality_price_and_latency() -> None:
    facts = {f.endpoint: f for f in FACTS}
    q = {BIG: 0.9, SMALL: 0.6}
    assert choose(q, facts, Objective(q=1.0), 10, 10) == BIG
    assert choose(q, facts, Objective(q=1.0, c=1.0), 10, 10) == SMALL
    assert choose(q, facts, Objective(q=1.0, t=0.01), 10, 10) == SMALL


def test_empty_inputs_are_refused() -> None:
    model = QualityModel([BIG])
    with pytest.raises(ValueError, match="held-out"):
        tradeoff(model, [], FACTS)
    with pytest.raises(ValueError, match="endpoint"):
        tradeoff(model, [HeldOut("x", {BIG: 1.0}, 1)], [])
    model.close()
