"""A router warm-started from training data: a quality model plus live latency and prices.

``TrainedPolicy`` routes each request to the endpoint with the highest expected reward
``q * Q - c * P - t * TTFT - i * ITL`` (``bandit.reward.expected_reward``), where ``Q`` is the
quality the ``bandit.quality.QualityModel`` predicts for this prompt on that endpoint and the
price and latencies are the endpoint's logged prices and live p50s, with epsilon-greedy
exploration so every probability is logged and off-policy evaluation stays possible.

Quality is the only part that has to be learned: latency and price are measured live, so they
follow drift the moment the collector sees it. The quality model starts from offline training
(``switchyard train``) and keeps learning online from every thumbs-up or -down on the endpoint
that was chosen. A call without feedback teaches it nothing: failures already show in the
live error rates the router filters on.

>>> from datetime import UTC, datetime
>>> from bandit.features import Arm
>>> from bandit.quality import Example, QualityConfig, QualityModel
>>> from bandit.router_string import parse_router
>>> q = QualityModel(["big@p", "small@p"], config=QualityConfig(passes=4))
>>> _ = q.fit([Example("Prove the Riemann hypothesis.", {"big@p": 1, "small@p": 0})] * 20)
>>> policy = TrainedPolicy(BanditConfig(epsilon=0.001), quality=q)
>>> arms = [Arm.build(e, {"model": e[:-2], "provider": "p", "price_in": pi, "price_out": pi})
...         for e, pi in (("big@p", 10.0), ("small@p", 0.5))]
>>> ctx = RouteContext.build("Prove the Riemann hypothesis.", objective=parse_router("router@q:1"),
...                          router="router@q:1", now=datetime(2025, 1, 1, tzinfo=UTC))
>>> policy.pull(ctx, arms).chosen
'big@p'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bandit.checkpoint import JsonDict
from bandit.config import BanditConfig, PolicyKind
from bandit.errors import ModelStateError
from bandit.features import Arm
from bandit.policy import Policy, RouteContext, VWPolicy, config_of, epsilon_greedy
from bandit.quality import QualityConfig, QualityModel
from bandit.reward import Reward, expected_reward
from warehouse.models import Decision


class TrainedPolicy(Policy):
    """Expected reward from a learned quality model and live figures; epsilon-greedy."""

    learns = True

    def __init__(self, config: BanditConfig | None = None, *,
                 quality: QualityModel | None = None, model_id: str = "") -> None:
        config = config or BanditConfig()
        super().__init__(seed=config.seed)
        self.config = config
        self.quality = quality or QualityModel([], config=QualityConfig.online(
            max_words=config.max_prompt_features), seed=config.seed)
        self.model_id = model_id or hashlib.blake2b(
            self.quality.to_bytes(), digest_size=4).hexdigest()

    @property
    def version(self) -> str:
        return f"trained-{self.model_id}-{self.quality.learned}"

    def params(self) -> JsonDict:
        return {"config": self.config.model_dump(mode="json"), "model_id": self.model_id}

    def clone(self) -> TrainedPolicy:
        fresh = QualityModel(self.quality.endpoints, config=self.quality.config,
                             seed=self.quality.seed)
        return TrainedPolicy(self.config, quality=fresh, model_id=f"{self.model_id}-fresh")

    def values(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        """Expected reward of each arm (same order)."""
        predicted = self.quality.predict_context(context.features, [a.endpoint_id for a in arms])
        return [
            expected_reward(arm.features, context.objective, prompt_tokens=context.prompt_tokens,
                            max_tokens=context.max_tokens, config=self.config,
                            quality=predicted[arm.endpoint_id]).value
            for arm in arms
        ]

    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        values = self.values(context, arms)
        best = max(range(len(arms)), key=lambda k: (values[k], -k))
        return epsilon_greedy(len(arms), best, self.config.epsilon)

    def _update(self, context: RouteContext, arms: Sequence[Arm], decision: Decision,
                reward: Reward) -> None:
        if not reward.has_feedback:
            return
        score = min(1.0, max(0.0, reward.quality))
        self.quality.learn_context(context.features, decision.chosen, score)

    def _state(self) -> tuple[JsonDict, bytes]:
        return {"learned": self.quality.learned}, self.quality.to_bytes()

    @classmethod
    def _from_params(cls, params: JsonDict, payload: bytes) -> Policy:
        cfg = config_of(params, cls.__name__)
        if not payload:
            raise ModelStateError("TrainedPolicy checkpoint without a quality model")
        return cls(cfg, quality=QualityModel.from_bytes(payload),
                   model_id=str(params.get("model_id") or ""))

    def close(self) -> None:
        self.quality.close()


def make_policy(config: BanditConfig) -> Policy:
    """The policy ``config.policy`` names, with nothing learned yet."""
    if config.policy is PolicyKind.QUALITY:
        return TrainedPolicy(config)
    return VWPolicy(config)
