"""Off-policy estimators against a synthetic log whose true policy values are known."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bandit.config import BanditConfig
from bandit.ope import (
    EpsilonTarget,
    FixedTarget,
    ObjectiveTarget,
    PolicyTarget,
    UniformTarget,
    evaluate,
    mean_reward_model,
)
from bandit.policy import GreedyLatencyPolicy, VWPolicy
from bandit.router_string import parse_router
from warehouse.models import Decision

T0 = datetime(2025, 2, 1, tzinfo=UTC)
ARMS = ("a@p", "b@p", "c@p")
KIND_P = (0.6, 0.4)
MU = {0: {"a@p": 0.8, "b@p": 0.5, "c@p": 0.2}, 1: {"a@p": 0.3, "b@p": 0.4, "c@p": 0.9}}
LOGGING = {0: (0.6, 0.3, 0.1), 1: (0.2, 0.2, 0.6)}
TTFT = {0: {"a@p": 100.0, "b@p": 300.0, "c@p": 500.0},
        1: {"a@p": 600.0, "b@p": 400.0, "c@p": 150.0}}


def _truth(pi: dict[int, tuple[float, float, float]]) -> float:
    return sum(KIND_P[k] * sum(p * MU[k][a] for p, a in zip(pi[k], ARMS, strict=True))
               for k in (0, 1))


def _log(n: int, seed: int) -> list[tuple[Decision, float]]:
    rng = random.Random(seed)
    out: list[tuple[Decision, float]] = []
    for i in range(n):
        kind = 0 if rng.random() < KIND_P[0] else 1
        probs = LOGGING[kind]
        k = rng.choices(range(3), weights=probs)[0]
        ctx: dict[str, float | str] = {"p.tokens": 10.0, "r.t": 1.0}
        for a in ARMS:
            ctx.update({f"a.{a}.model": a[0], f"a.{a}.provider": "p",
                        f"a.{a}.price_in": 1.0, f"a.{a}.price_out": 1.0,
                        f"a.{a}.ttft_p50": TTFT[kind][a]})
        d = Decision(event_id=f"ev{i:016d}", created_at=T0 + timedelta(seconds=i),
                     router="router@t:1", context=ctx, candidates=ARMS, probabilities=probs,
                     chosen=ARMS[k], chosen_prob=probs[k], policy_version="logger",
                     prompt_tokens=10, max_tokens=10)
        out.append((d, 1.0 if rng.random() < MU[kind][ARMS[k]] else 0.0))
    return out


LOG = _log(6000, seed=42)
CASES = [
    (FixedTarget("a@p"), {0: (1.0, 0.0, 0.0), 1: (1.0, 0.0, 0.0)}),
    (FixedTarget("c@p"), {0: (0.0, 0.0, 1.0), 1: (0.0, 0.0, 1.0)}),
    (UniformTarget(), {0: (1 / 3,) * 3, 1: (1 / 3,) * 3}),  # type: ignore[dict-item]
    (ObjectiveTarget(parse_router("router@t:1")), {0: (1.0, 0.0, 0.0), 1: (0.0, 0.0, 1.0)}),
    (EpsilonTarget(FixedTarget("b@p"), 0.3), {0: (0.1, 0.8, 0.1), 1: (0.1, 0.8, 0.1)}),
    (PolicyTarget(GreedyLatencyPolicy(epsilon=0.0)), {0: (1.0, 0.0, 0.0), 1: (0.0, 0.0, 1.0)}),
]


@pytest.mark.parametrize(("target", "pi"), CASES, ids=[c[0].name for c in CASES])
def test_estimates_match_the_true_value(target: object, pi: dict[int, tuple[float, ...]]) -> None:
    truth = _truth(pi)  # type: ignore[arg-type]
    estimates = evaluate(LOG, [target])  # type: ignore[list-item]
    assert [e.estimator for e in estimates] == ["ips", "snips", "dr"]
    for e in estimates:
        half = (e.high - e.low) / 2
        assert e.low <= e.value <= e.high and e.n == len(LOG)
        assert abs(e.value - truth) <= max(0.03, 2 * half), (e, truth)
        assert abs(e.value - truth) <= 2 * half, (e, truth)  # within ~4 standard errors


def test_the_logging_policy_evaluates_to_the_logged_mean() -> None:
    class Logger:
        name = "logger"

        def probabilities(self, decision: Decision) -> tuple[float, ...]:
            return decision.probabilities

    mean = sum(r for _, r in LOG) / len(LOG)
    for e in evaluate(LOG, [Logger()]):
        assert e.value == pytest.approx(mean, abs=1e-9) if e.estimator != "dr" else True
        assert e.effective_n == pytest.approx(len(LOG))


def test_dr_with_a_good_reward_model_is_tighter_than_ips() -> None:
    def oracle(d: Decision, a: str) -> float:
        kind = 0 if float(d.context["a.a@p.ttft_p50"]) == 100.0 else 1
        return MU[kind][a]

    ips, _, dr = evaluate(LOG, [FixedTarget("c@p")], reward_model=oracle)
    assert dr.high - dr.low < 0.9 * (ips.high - ips.low)
    assert abs(dr.value - _truth({0: (0, 0, 1), 1: (0, 0, 1)})) < 0.02


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate() -> None:
    a = evaluate(LOG[:1500], [FixedTarget("b@p")], bootstrap=200, seed=3)
    b = evaluate(LOG[:1500], [FixedTarget("b@p")], bootstrap=200, seed=3)
    assert a == b
    for e in a:
        assert e.low <= e.value <= e.high


def test_current_vw_model_can_be_evaluated() -> None:
    policy = VWPolicy(BanditConfig(bits=16))
    estimates = evaluate(LOG[:300], [PolicyTarget(policy, name="current")])
    assert {e.policy for e in estimates} == {"current"}
    assert all(0.0 <= e.value <= 3.0 for e in estimates)
    policy.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        evaluate([], [UniformTarget()])
    with pytest.raises(ValueError):
        evaluate(LOG[:10], [UniformTarget()], estimators=["nope"])
    with pytest.raises(ValueError):
        evaluate(LOG[:10], [UniformTarget()], confidence=1.0)
    model = mean_reward_model(LOG)
    assert 0.0 <= model(LOG[0][0], "zzz@q") <= 1.0
