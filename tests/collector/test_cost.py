from __future__ import annotations

import pytest

from collector.catalog import ProbePromptSpec
from collector.config import CollectorConfig
from collector.cost import estimate_tokens, probing_cost, render_cost
from warehouse.models import Endpoint


def ep(id_: str, pin: float, pout: float, **kw: object) -> Endpoint:
    return Endpoint.model_validate(dict(id=id_, base_url="http://127.0.0.1:9/v1",
                                        wire_format="openai", price_in_per_mtok=pin,
                                        price_out_per_mtok=pout, context_window=1000, **kw))


def test_cost_per_day_matches_hand_computation() -> None:
    prompts = [ProbePromptSpec(name="p", text="x" * 400)]  # 100 tokens + framing
    cfg = CollectorConfig(interval_s=60, max_tokens=50)
    rows = probing_cost([ep("cheap@a", 1, 2), ep("dear@b", 10, 30, probes_per_hour=6)],
                        prompts, cfg)
    assert [r.endpoint_id for r in rows] == ["dear@b", "cheap@a"]  # most expensive first
    by_id = {r.endpoint_id: r for r in rows}
    tin = estimate_tokens("x" * 400)
    assert by_id["cheap@a"].probes_per_day == 1440
    assert by_id["cheap@a"].usd_per_day == pytest.approx(1440 * (tin * 1 + 50 * 2) / 1e6)
    assert by_id["dear@b"].probes_per_day == 144  # hourly budget is the binding limit
    assert by_id["dear@b"].usd_per_day == pytest.approx(144 * (tin * 10 + 50 * 30) / 1e6)
    text = render_cost(rows)
    assert "total" in text and "cheap@a" in text


def test_no_prompts_is_an_error() -> None:
    with pytest.raises(ValueError, match="no probe prompts"):
        probing_cost([ep("a@b", 1, 1)], [], CollectorConfig())
