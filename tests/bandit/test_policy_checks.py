"""The invariants every policy keeps (STYLE.md section 8), parametrised over every policy."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit.config import BanditConfig
from bandit.constraints import Limits, screen
from bandit.errors import NoCandidateError
from bandit.features import Arm, ArmCache
from bandit.policy import (
    FixedPolicy,
    GreedyLatencyPolicy,
    Policy,
    RouteContext,
    UniformPolicy,
    VWPolicy,
)
from bandit.reward import compute_reward
from bandit.router_string import Objective, Threshold, parse_router
from warehouse.models import Endpoint, LiveStat, Outcome, ProbeResult

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
LATENCY = parse_router("router@t:1")
IDS = ["fast@alpha", "slow@beta", "mid@gamma", "other@delta"]
PROMPTS = ["hello there", "write a python function", "What is 2+2?", "translate: bonjour"]


def _vw(seed: int) -> Policy:
    return VWPolicy(BanditConfig(seed=seed, bits=16))


FACTORIES: dict[str, Callable[[int], Policy]] = {
    "vw": _vw,
    "vw-squarecb": lambda seed: VWPolicy(BanditConfig(seed=seed, bits=16, squarecb=True)),
    "uniform": lambda seed: UniformPolicy(seed=seed),
    "fixed": lambda seed: FixedPolicy("mid@gamma", seed=seed),
    "greedy-latency": lambda seed: GreedyLatencyPolicy(seed=seed, use_live=False),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[int], Policy]:
    return FACTORIES[request.param]


def _arms(ids: list[str] = IDS) -> list[Arm]:
    return [Arm.build(i, {"model": i.split("@")[0], "provider": i.split("@")[1],
                          "price_in": 1.0, "price_out": 2.0}) for i in ids]


def _context(k: int, objective: Objective = LATENCY) -> RouteContext:
    return RouteContext.build(
        PROMPTS[k % len(PROMPTS)], objective=objective, router="router@t:1",
        now=T0 + timedelta(minutes=7 * k), max_tokens=64,
    )


def _ttft(endpoint_id: str, rng: random.Random) -> float:
    base = {"fast@alpha": 100.0, "slow@beta": 400.0, "mid@gamma": 250.0, "other@delta": 300.0}
    return base[endpoint_id] * rng.lognormvariate(0.0, 0.2)


def _learn_stream(policy: Policy, n: int, seed: int) -> list[str]:
    """Route n requests, feed the measured TTFT back; returns the chosen endpoints."""
    rng = random.Random(seed)
    config = BanditConfig()
    chosen: list[str] = []
    for k in range(n):
        d = policy.pull(_context(k), _arms(["fast@alpha", "slow@beta"]))
        outcome = ProbeResult(endpoint_id=d.chosen, started_at=d.created_at,
                              outcome=Outcome.OK, ttft_ms=_ttft(d.chosen, rng), itl_ms_p50=20.0)
        policy.update(d, compute_reward(d, LATENCY, config, outcome=outcome))
        chosen.append(d.chosen)
    return chosen


def test_chosen_is_a_candidate_with_a_probability(factory: Callable[[int], Policy]) -> None:
    policy = factory(1)
    for k in range(20):
        d = policy.pull(_context(k), _arms())
        assert d.chosen in d.candidates
        p = d.probabilities[d.candidates.index(d.chosen)]
        assert 0.0 < d.chosen_prob <= 1.0 and d.chosen_prob == p
        assert abs(sum(d.probabilities) - 1.0) < 1e-6
        assert d.chosen not in d.fallbacks and set(d.fallbacks) <= set(d.candidates)
        assert len(d.event_id) >= 16
    policy.close()


def test_same_seed_same_decisions(factory: Callable[[int], Policy]) -> None:
    a, b = factory(7), factory(7)
    assert _learn_stream(a, 60, seed=3) == _learn_stream(b, 60, seed=3)
    a.close()
    b.close()


def test_save_load_round_trip_reproduces_decisions(
    factory: Callable[[int], Policy], tmp_path: Path
) -> None:
    policy = factory(5)
    _learn_stream(policy, 80, seed=1)
    path = tmp_path / "policy.ckpt"
    policy.save(path)
    loaded = Policy.load(path)
    assert type(loaded) is type(policy) and loaded.version == policy.version
    for k in range(30):
        ctx = _context(100 + k)
        da, db = policy.pull(ctx, _arms()), loaded.pull(ctx, _arms())
        assert (da.chosen, da.probabilities) == (db.chosen, db.probabilities)
    policy.close()
    loaded.close()


def test_reordering_arms_does_not_change_the_choice(factory: Callable[[int], Policy]) -> None:
    a, b = factory(11), factory(11)
    _learn_stream(a, 40, seed=2)
    _learn_stream(b, 40, seed=2)
    shuffler = random.Random(0)
    for k in range(30):
        arms = _arms()
        shuffled = arms[:]
        shuffler.shuffle(shuffled)
        da, db = a.pull(_context(k), arms), b.pull(_context(k), shuffled)
        assert da.candidates == db.candidates == tuple(sorted(IDS))
        assert (da.chosen, da.probabilities) == (db.chosen, db.probabilities)
    a.close()
    b.close()


def test_clone_has_the_same_parameters_and_nothing_learned(
    factory: Callable[[int], Policy],
) -> None:
    policy = factory(3)
    _learn_stream(policy, 30, seed=4)
    clone = policy.clone()
    assert type(clone) is type(policy) and clone.params() == policy.params()
    fresh = factory(3)
    assert clone.version == fresh.version
    policy.close()
    clone.close()
    fresh.close()


def test_learns_to_prefer_the_faster_endpoint(factory: Callable[[int], Policy]) -> None:
    policy = factory(2)
    if not policy.learns:
        pytest.skip(f"{type(policy).__name__} does not learn")
    chosen = _learn_stream(policy, 300, seed=9)
    late = chosen[-100:]
    assert late.count("fast@alpha") >= 85, late.count("fast@alpha")
    policy.close()


def test_no_arms_is_no_candidate_and_vw_is_not_called(factory: Callable[[int], Policy]) -> None:
    policy = factory(0)
    with pytest.raises(NoCandidateError):
        policy.pull(_context(0), [])
    policy.close()


# -- constraints hold for every policy under random requests ------------------------------

_endpoint_ids = [f"m{k}@p{k % 3}" for k in range(6)]


def _catalog(prices: list[float], windows: list[int]) -> list[Endpoint]:
    return [
        Endpoint(id=eid, base_url="https://x.test/v1", wire_format="openai",
                 price_in_per_mtok=p, price_out_per_mtok=2 * p, context_window=w)
        for eid, p, w in zip(_endpoint_ids, prices, windows, strict=True)
    ]


class _Live:
    def __init__(self, stats: dict[str, LiveStat]) -> None:
        self.stats = stats

    def get(self, endpoint_id: str) -> LiveStat | None:
        return self.stats.get(endpoint_id)


_SHARED: dict[str, Policy] = {}  # one policy per kind for all examples (VW start-up is slow)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(FACTORIES)),
    prices=st.lists(st.floats(0, 50), min_size=6, max_size=6),
    windows=st.lists(st.integers(100, 20_000), min_size=6, max_size=6),
    ttfts=st.lists(st.none() | st.floats(10, 3000), min_size=6, max_size=6),
    errors=st.lists(st.floats(0, 1), min_size=6, max_size=6),
    cooling=st.sets(st.sampled_from(_endpoint_ids)),
    deny=st.sets(st.sampled_from(_endpoint_ids)),
    allow=st.none() | st.sets(st.sampled_from(_endpoint_ids), min_size=1),
    skip_providers=st.sets(st.sampled_from(["p0", "p1", "p2"]), max_size=2),
    max_price=st.none() | st.floats(0.5, 60),
    ttft_max=st.none() | st.floats(50, 2000),
    prompt_tokens=st.integers(1, 8000),
    max_tokens=st.integers(1, 8000),
)
def test_constraints_hold_under_random_requests(
    name: str, prices: list[float], windows: list[int], ttfts: list[float | None],
    errors: list[float], cooling: set[str], deny: set[str], allow: set[str] | None,
    skip_providers: set[str], max_price: float | None, ttft_max: float | None,
    prompt_tokens: int, max_tokens: int,
) -> None:
    catalog = _catalog(prices, windows)
    live = _Live({
        eid: LiveStat(endpoint_id=eid, samples=20, ttft_ms_p50=t, error_rate=err)
        for eid, t, err in zip(_endpoint_ids, ttfts, errors, strict=True)
    })
    objective = Objective(
        t=1.0, skip_providers=tuple(sorted(skip_providers)),
        thresholds=() if ttft_max is None else (Threshold("ttft", ttft_max),),
    )
    cooldowns = {eid: T0 + timedelta(seconds=30) for eid in cooling}
    limits = Limits(allow=frozenset(allow) if allow is not None else None,
                    deny=frozenset(deny), max_price_per_mtok=max_price)
    screening = screen(catalog, objective=objective, now=T0, prompt_tokens=prompt_tokens,
                       max_tokens=max_tokens, live=live, cooldowns=cooldowns, limits=limits)
    policy = _SHARED.setdefault(name, FACTORIES[name](0))
    if not screening.allowed:
        with pytest.raises(NoCandidateError):
            screening.require()
        return
    cache = ArmCache()
    arms = [cache.get(e, live.get(e.id), T0) for e in screening.require()]
    ctx = RouteContext.build("a prompt", objective=objective, router="router@t:1", now=T0,
                             max_tokens=max_tokens, prompt_tokens=prompt_tokens)
    d = policy.pull(ctx, arms)
    e = next(e for e in catalog if e.id == d.chosen)
    stat = live.get(e.id)
    assert stat is not None
    assert e.id not in deny and e.id not in cooling
    assert allow is None or e.id in allow
    assert e.provider not in skip_providers
    assert e.context_window >= prompt_tokens + max_tokens
    price = (prompt_tokens * e.price_in_per_mtok + max_tokens * e.price_out_per_mtok) / (
        prompt_tokens + max_tokens)
    assert max_price is None or price <= max_price
    assert stat.error_rate < 0.5
    assert ttft_max is None or stat.ttft_ms_p50 is None or stat.ttft_ms_p50 < ttft_max
    assert set(d.candidates) == {a.endpoint_id for a in arms}


def test_event_ids_are_unique_url_safe_and_differ_after_a_fork() -> None:
    import os
    import re

    from bandit.policy import new_event_id

    ids = [new_event_id() for _ in range(3000)]  # several refills of the pool
    assert len(set(ids)) == 3000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id must not be the parent's next one
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_event_id() and len(child) == 22
