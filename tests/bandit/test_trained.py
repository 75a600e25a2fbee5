"""The trained policy: routing on a learned quality model, learning online, switching live."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bandit.config import BanditConfig
from bandit.features import Arm
from bandit.policy import Policy, RouteContext, VWPolicy
from bandit.quality import Example, QualityConfig, QualityModel
from bandit.reward import compute_reward
from bandit.router_string import parse_router
from bandit.service import RouteRequest, RouterService
from bandit.trained import TrainedPolicy
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint, Feedback
from warehouse.store import Warehouse

BIG, SMALL = "big@alpha", "small@beta"
T0 = datetime(2025, 6, 1, 9, tzinfo=UTC)
EASY = "What is the capital of country {k}?"
HARD = "Prove theorem {k} about prime gaps rigorously."


def _quality(seed: int = 1) -> QualityModel:
    rng = random.Random(seed)
    data = []
    for _ in range(300):
        k = rng.randint(2, 999)
        data.append(Example(EASY.format(k=k), {BIG: 1.0, SMALL: 1.0}))
        data.append(Example(HARD.format(k=k), {BIG: 1.0, SMALL: 0.0}))
    return QualityModel([BIG, SMALL], config=QualityConfig(bits=16)).fit(data)


def _arms() -> list[Arm]:
    return [Arm.build(BIG, {"model": "big", "provider": "alpha", "price_in": 10.0,
                            "price_out": 30.0, "ttft_p50": 400.0}),
            Arm.build(SMALL, {"model": "small", "provider": "beta", "price_in": 0.5,
                              "price_out": 0.5, "ttft_p50": 300.0})]


def _ctx(prompt: str, router: str = "router@q:1|c:0.01") -> RouteContext:
    return RouteContext.build(prompt, objective=parse_router(router), router=router, now=T0,
                              max_tokens=50)


def test_routes_hard_prompts_to_the_strong_model_only() -> None:
    policy = TrainedPolicy(BanditConfig(epsilon=0.01, seed=2), quality=_quality())
    hard = [policy.pull(_ctx(HARD.format(k=k)), _arms()).chosen for k in range(1000, 1040)]
    easy = [policy.pull(_ctx(EASY.format(k=k)), _arms()).chosen for k in range(1000, 1040)]
    assert hard.count(BIG) >= 36 and easy.count(SMALL) >= 36
    # a cost-only caller never pays for quality, a quality-only caller always does
    assert policy.pull(_ctx(HARD.format(k=5), "router@c:1"), _arms()).probabilities[1] > 0.9
    d = policy.pull(_ctx(EASY.format(k=5), "router@q:1"), _arms())
    assert d.probabilities[0] > 0.9 and d.policy_version.startswith("trained-")
    policy.close()


def test_learns_online_from_feedback_only() -> None:
    policy = TrainedPolicy(BanditConfig(epsilon=0.5, seed=3), quality=_quality())
    config = policy.config
    before = policy.quality.learned
    d = policy.pull(_ctx(EASY.format(k=7)), _arms())
    objective = parse_router(d.router)
    policy.update(d, compute_reward(d, objective, config))  # no feedback: nothing learned
    assert policy.quality.learned == before
    policy.update(d, compute_reward(d, objective, config, feedback_score=0.0))
    assert policy.quality.learned > before


def test_save_and_load_make_the_same_decisions(tmp_path: Path) -> None:
    policy = TrainedPolicy(BanditConfig(epsilon=0.2, seed=4), quality=_quality(), model_id="m1")
    policy.save(tmp_path / "p.ckpt")
    loaded = Policy.load(tmp_path / "p.ckpt")
    assert isinstance(loaded, TrainedPolicy) and loaded.model_id == "m1"
    prompts = [(EASY if k % 2 else HARD).format(k=k) for k in range(30)]
    assert [policy.pull(_ctx(p), _arms()).chosen for p in prompts] == [
        loaded.pull(_ctx(p), _arms()).chosen for p in prompts]
    assert loaded.version == policy.version
    policy.close()
    loaded.close()


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    wh = Warehouse(WarehouseConfig(path=tmp_path / "w.duckdb"), lake=False)
    wh.open()
    yield wh
    wh.close()


def _endpoints() -> list[Endpoint]:
    return [Endpoint(id=BIG, base_url="https://x.test/v1", wire_format="openai",
                     price_in_per_mtok=10.0, price_out_per_mtok=30.0, context_window=32_000),
            Endpoint(id=SMALL, base_url="https://y.test/v1", wire_format="openai",
                     price_in_per_mtok=0.5, price_out_per_mtok=0.5, context_window=32_000)]


def test_service_switches_to_a_trained_model_without_restart(tmp_path: Path,
                                                              warehouse: Warehouse) -> None:
    config = BanditConfig(checkpoint_path=tmp_path / "b.ckpt", bits=16, epsilon=0.01, seed=5)
    svc = RouterService(config, warehouse, _endpoints())
    pending = svc.route(RouteRequest(prompt=HARD.format(k=1), router="router@q:1|c:0.01"))
    assert isinstance(svc.policy, VWPolicy)
    svc.swap_policy(TrainedPolicy(config, quality=_quality(), model_id="trained-1"))
    routed = [svc.route(RouteRequest(prompt=HARD.format(k=k), router="router@q:1|c:0.01"))
              for k in range(2000, 2020)]
    assert all(r.decision.policy_version.startswith("trained-trained-1") for r in routed)
    assert sum(r.endpoint == BIG for r in routed) >= 18
    # feedback on a decision the old policy made is learned by the new one
    learned = svc.policy.quality.learned  # type: ignore[attr-defined]
    svc.record_feedback(Feedback(event_id=pending.decision.event_id, score=1.0))
    assert svc.policy.quality.learned > learned  # type: ignore[attr-defined]
    svc.checkpoint()
    svc.close()
    # a restart restores the trained model from the checkpoint
    again = RouterService(config, warehouse, _endpoints())
    again.recover()
    assert isinstance(again.policy, TrainedPolicy) and again.policy.model_id == "trained-1"
    again.close()
