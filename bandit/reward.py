"""How one routed call becomes a reward, and the cost Vowpal Wabbit learns.

The caller's objective is a router string (``bandit.router_string``) with weights q, c, t, i.
The reward of a decision (higher is better) is

    R = q * Q  -  c * P  -  t * TTFT  -  i * ITL

- ``Q``, quality in [0, 1], is the caller's feedback: thumbs up 1, thumbs down 0, or a score.
  Without feedback it is 0 when the call failed; otherwise (an event whose feedback window
  closed, under ``past_window_policy = latency_cost_only``) it is the endpoint's mean feedback
  score so far, smoothed as ``(sum + 0.5) / (n + 1)``, so that silence neither rewards nor
  punishes an endpoint's quality.
- ``P``, price, is the call's cost per token in USD per million tokens:
  ``(in * price_in + out * price_out) / (in + out)`` with the token counts the outcome reported,
  else the prompt tokens and ``max_tokens`` of the request (prices logged with the decision).
- ``TTFT`` and ``ITL`` (milliseconds; ITL is the median gap between tokens) are measured when
  the outcome of the call is known. A failed call (any outcome but ``ok``) counts as
  ``failure_ttft_ms`` (or its own time if slower) and ``failure_itl_ms``. Without an outcome
  they are the live p50 figures of the endpoint logged with the decision, else
  ``unknown_ttft_ms`` and ``unknown_itl_ms``.

VW minimises a cost, learned as ``-R / S`` with ``S = q + 10 c + 1000 t + 50 i``: the reward
in units of the objective's own scale (quality 1, $10 per million tokens, 1 s of TTFT and
50 ms of ITL weigh ``q``, ``10 c``, ``1000 t`` and ``50 i``). Dividing by a positive constant
does not change which endpoint is best; it keeps the costs near [-1, 1] whatever the weights'
units. The cost is clipped to [-10, 10]. Measured figures are rounded to float32 first, as the
warehouse stores them, so that relearning an event after a restart gives the same cost.

With the default ``router@q:1|c:4.65e-03|t:2.08e-05|i:2.07e-03`` a thumbs-up is worth as much
as 215 USD/Mtok of price, 48 s of TTFT or 483 ms of ITL.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from bandit.config import BanditConfig
from bandit.features import reward_scale
from bandit.router_string import Objective
from warehouse.models import Decision, Outcome, ProbeResult

COST_CLIP = 10.0
QUALITY_PRIOR_MEAN = 0.5
QUALITY_PRIOR_WEIGHT = 1.0


def f32(x: float) -> float:
    """``x`` rounded to float32, the precision of the warehouse's measurement columns."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward and its parts. ``value`` is R (higher is better), ``cost`` what VW learns."""

    value: float
    cost: float
    quality: float
    price_per_mtok: float
    ttft_ms: float
    itl_ms: float
    measured: bool  # latency came from the call's outcome
    has_feedback: bool


@dataclass
class QualityMeans:
    """Running mean feedback score per endpoint: the quality assumed without feedback."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, endpoint_id: str, score: float) -> None:
        self.sums[endpoint_id] = self.sums.get(endpoint_id, 0.0) + score
        self.counts[endpoint_id] = self.counts.get(endpoint_id, 0) + 1

    def mean(self, endpoint_id: str) -> float:
        n = self.counts.get(endpoint_id, 0)
        s = self.sums.get(endpoint_id, 0.0)
        return (s + QUALITY_PRIOR_MEAN * QUALITY_PRIOR_WEIGHT) / (n + QUALITY_PRIOR_WEIGHT)

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {
            eid: {"sum": self.sums[eid], "n": float(self.counts[eid])} for eid in sorted(self.sums)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> QualityMeans:
        out = cls()
        for eid, row in data.items():
            out.sums[eid] = float(row["sum"])
            out.counts[eid] = int(row["n"])
        return out


def labelled_action(decision: Decision) -> str:
    """The endpoint whose outcome is learned: the one that served (shadow mode) or the chosen."""
    if decision.shadow and decision.served is not None and decision.served in decision.candidates:
        return decision.served
    return decision.chosen


def _logged(decision: Decision, endpoint_id: str, name: str) -> float | None:
    value = decision.context.get(f"a.{endpoint_id}.{name}")
    return float(value) if isinstance(value, int | float) else None


def blended_price(price_in: float, price_out: float, tokens_in: int, tokens_out: int) -> float:
    """USD per million tokens of a call with these token counts."""
    total = tokens_in + tokens_out
    if total <= 0:
        return (price_in + price_out) / 2.0
    return (tokens_in * price_in + tokens_out * price_out) / total


def reward_value(objective: Objective, quality: float, price_per_mtok: float, ttft_ms: float,
                 itl_ms: float) -> float:
    """R = q * Q - c * P - t * TTFT - i * ITL (higher is better)."""
    q, c, t, i = objective.weights
    return q * quality - c * price_per_mtok - t * ttft_ms - i * itl_ms


def _reward(objective: Objective, quality: float, price: float, ttft: float, itl: float, *,
            measured: bool, has_feedback: bool) -> Reward:
    """The reward and the cost VW learns: ``-R / S``, clipped (see the module docstring)."""
    value = reward_value(objective, quality, price, ttft, itl)
    scale = reward_scale(*objective.weights) or 1.0
    return Reward(
        value=value,
        cost=min(COST_CLIP, max(-COST_CLIP, -value / scale)),
        quality=quality,
        price_per_mtok=price,
        ttft_ms=ttft,
        itl_ms=itl,
        measured=measured,
        has_feedback=has_feedback,
    )


def compute_reward(
    decision: Decision,
    objective: Objective,
    config: BanditConfig,
    *,
    feedback_score: float | None = None,
    outcome: ProbeResult | None = None,
    quality_prior: float = QUALITY_PRIOR_MEAN,
) -> Reward:
    """The reward of a decision's labelled action (see the module docstring for the formula)."""
    endpoint = labelled_action(decision)
    if outcome is not None and outcome.endpoint_id != endpoint:
        outcome = None  # an outcome of another endpoint (a fallback) says nothing about this one
    failed = outcome is not None and outcome.outcome is not Outcome.OK

    if feedback_score is not None:
        if not (math.isfinite(feedback_score) and 0.0 <= feedback_score <= 1.0):
            raise ValueError(f"feedback score must be in [0, 1], got {feedback_score!r}")
        quality = float(feedback_score)
    else:
        quality = 0.0 if failed else float(quality_prior)

    price_in = _logged(decision, endpoint, "price_in") or 0.0
    price_out = _logged(decision, endpoint, "price_out") or 0.0
    tokens_in = decision.prompt_tokens or 0
    tokens_out = decision.max_tokens or config.default_max_tokens
    if outcome is not None and outcome.input_tokens is not None:
        tokens_in = outcome.input_tokens
    if outcome is not None and outcome.output_tokens is not None:
        tokens_out = outcome.output_tokens
    price = blended_price(price_in, price_out, tokens_in, tokens_out)

    measured = outcome is not None
    if outcome is None:
        ttft = _logged(decision, endpoint, "ttft_p50")
        itl = _logged(decision, endpoint, "itl_p50")
        ttft = config.unknown_ttft_ms if ttft is None else ttft
        itl = config.unknown_itl_ms if itl is None else itl
    elif failed:
        own = f32(outcome.ttft_ms) if outcome.ttft_ms is not None else 0.0
        ttft = max(config.failure_ttft_ms, own)
        itl = config.failure_itl_ms
    else:
        ttft = f32(outcome.ttft_ms) if outcome.ttft_ms is not None else config.unknown_ttft_ms
        itl_raw = outcome.itl_ms_p50 if outcome.itl_ms_p50 is not None else outcome.itl_ms_mean
        if itl_raw is None:
            itl_raw = _logged(decision, endpoint, "itl_p50")
            itl = config.unknown_itl_ms if itl_raw is None else itl_raw
        else:
            itl = f32(itl_raw)

    return _reward(objective, quality, price, ttft, itl, measured=measured,
                   has_feedback=feedback_score is not None)


def expected_reward(
    features: Mapping[str, float | str],
    objective: Objective,
    *,
    prompt_tokens: int,
    max_tokens: int,
    config: BanditConfig,
    quality: float = QUALITY_PRIOR_MEAN,
) -> Reward:
    """The reward an endpoint is expected to earn, from its live stats and prices alone."""

    def num(name: str) -> float | None:
        value = features.get(name)
        return float(value) if isinstance(value, int | float) else None

    price = blended_price(
        num("price_in") or 0.0, num("price_out") or 0.0, prompt_tokens, max_tokens
    )
    ttft = num("ttft_p50")
    itl = num("itl_p50")
    ttft = config.unknown_ttft_ms if ttft is None else ttft
    itl = config.unknown_itl_ms if itl is None else itl
    return _reward(objective, quality, price, ttft, itl, measured=False, has_feedback=False)
