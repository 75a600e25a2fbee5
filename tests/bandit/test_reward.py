"""The reward formula of bandit/reward.py, term by term."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bandit.config import BanditConfig
from bandit.reward import (
    COST_CLIP,
    QualityMeans,
    blended_price,
    compute_reward,
    expected_reward,
    f32,
    labelled_action,
)
from bandit.router_string import parse_router
from warehouse.models import Decision, Outcome, ProbeResult

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CFG = BanditConfig()


def _decision(**over: object) -> Decision:
    fields: dict[str, object] = {
        "event_id": "e" * 22,
        "created_at": T0,
        "router": "router@q:1",
        "context": {
            "a.a@p.price_in": 2.0, "a.a@p.price_out": 8.0, "a.a@p.ttft_p50": 300.0,
            "a.a@p.itl_p50": 20.0, "a.b@p.price_in": 1.0, "a.b@p.price_out": 1.0,
        },
        "candidates": ("a@p", "b@p"),
        "probabilities": (0.9, 0.1),
        "chosen": "a@p",
        "chosen_prob": 0.9,
        "policy_version": "test",
        "prompt_tokens": 300,
        "max_tokens": 100,
    }
    fields.update(over)
    return Decision(**fields)  # type: ignore[arg-type]


def _ok(endpoint: str = "a@p", ttft: float = 250.0, itl: float = 15.0) -> ProbeResult:
    return ProbeResult(endpoint_id=endpoint, started_at=T0, outcome=Outcome.OK, ttft_ms=ttft,
                       itl_ms_p50=itl, input_tokens=400, output_tokens=200)


def test_full_formula_with_feedback_and_measured_outcome() -> None:
    obj = parse_router("router@q:1|c:0.01|t:0.0001|i:0.002")
    r = compute_reward(_decision(), obj, CFG, feedback_score=1.0, outcome=_ok())
    price = (400 * 2.0 + 200 * 8.0) / 600
    assert r.price_per_mtok == pytest.approx(price)
    assert r.value == pytest.approx(1.0 - 0.01 * price - 0.0001 * 250.0 - 0.002 * 15.0)
    scale = 1.0 + 0.01 * 10 + 0.0001 * 1000 + 0.002 * 50
    assert r.cost == pytest.approx(-r.value / scale)
    assert r.measured and r.has_feedback


def test_without_outcome_latency_comes_from_the_logged_live_stats() -> None:
    obj = parse_router("router@t:1|i:1")
    r = compute_reward(_decision(), obj, CFG)
    assert (r.ttft_ms, r.itl_ms) == (300.0, 20.0) and not r.measured
    assert r.price_per_mtok == pytest.approx((300 * 2.0 + 100 * 8.0) / 400)


def test_without_outcome_or_stats_the_configured_unknowns_apply() -> None:
    d = _decision(chosen="b@p", chosen_prob=0.1)
    r = compute_reward(d, parse_router("router@t:1"), CFG)
    assert (r.ttft_ms, r.itl_ms) == (CFG.unknown_ttft_ms, CFG.unknown_itl_ms)


def test_failed_call_counts_as_slow_and_worthless() -> None:
    failed = ProbeResult(endpoint_id="a@p", started_at=T0, outcome=Outcome.HTTP_429, ttft_ms=30.0)
    r = compute_reward(_decision(), parse_router("router@q:1|t:0.0001"), CFG, outcome=failed)
    assert r.quality == 0.0 and r.ttft_ms == CFG.failure_ttft_ms
    slow_fail = ProbeResult(endpoint_id="a@p", started_at=T0, outcome=Outcome.TIMEOUT,
                            ttft_ms=30_000.0)
    assert compute_reward(_decision(), parse_router("router@t:1"), CFG,
                          outcome=slow_fail).ttft_ms == 30_000.0


def test_quality_prior_is_used_without_feedback() -> None:
    r = compute_reward(_decision(), parse_router("router@q:1"), CFG, quality_prior=0.8)
    assert r.quality == 0.8 and r.value == pytest.approx(0.8) and not r.has_feedback


def test_outcome_of_another_endpoint_is_ignored() -> None:
    r = compute_reward(_decision(), parse_router("router@t:1"), CFG, outcome=_ok("b@p", 5.0))
    assert r.ttft_ms == 300.0 and not r.measured


def test_shadow_learns_the_served_endpoint() -> None:
    d = _decision(shadow=True, served="b@p")
    assert labelled_action(d) == "b@p"
    r = compute_reward(d, parse_router("router@t:1"), CFG, outcome=_ok("b@p", 123.0))
    assert r.ttft_ms == f32(123.0) and r.measured
    outside = _decision(shadow=True, served="zzz@q")
    assert labelled_action(outside) == "a@p"


def test_measured_values_are_rounded_like_the_warehouse_stores_them() -> None:
    r = compute_reward(_decision(), parse_router("router@t:1"), CFG, outcome=_ok(ttft=0.1))
    assert r.ttft_ms == f32(0.1) != 0.1


def test_cost_is_clipped_and_scale_free() -> None:
    slow = ProbeResult(endpoint_id="a@p", started_at=T0, outcome=Outcome.OK, ttft_ms=1e6)
    assert compute_reward(_decision(), parse_router("router@t:1"), CFG,
                          outcome=slow).cost == COST_CLIP
    a = compute_reward(_decision(), parse_router("router@t:1"), CFG, outcome=_ok())
    b = compute_reward(_decision(), parse_router("router@t:1000"), CFG, outcome=_ok())
    assert a.cost == pytest.approx(b.cost)


def test_bad_feedback_score_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_reward(_decision(), parse_router("router@q:1"), CFG, feedback_score=1.5)


def test_blended_price_and_expected_reward() -> None:
    assert blended_price(2.0, 8.0, 0, 0) == 5.0
    assert blended_price(2.0, 8.0, 100, 300) == pytest.approx(6.5)
    exp = expected_reward({"price_in": 2.0, "price_out": 8.0, "ttft_p50": 400.0},
                          parse_router("router@t:1"), prompt_tokens=100, max_tokens=300,
                          config=CFG)
    assert exp.ttft_ms == 400.0 and exp.itl_ms == CFG.unknown_itl_ms
    assert exp.value == pytest.approx(-400.0)


def test_quality_means_round_trip() -> None:
    q = QualityMeans()
    assert q.mean("x") == 0.5
    q.add("x", 1.0)
    q.add("x", 1.0)
    assert q.mean("x") == pytest.approx(2.5 / 3)
    assert QualityMeans.from_dict(q.to_dict()).mean("x") == q.mean("x")
