"""Policies: given a request's context and the allowed endpoints, pick one and log why.

``Policy.pull(context, arms) -> Decision`` sorts the arms by endpoint id (so their order never
matters), asks the ``_pull`` hook for a probability per arm, samples one with the policy's own
seeded ``random.Random``, ranks the others as fallbacks and returns a ``Decision`` carrying
everything off-policy learning needs: the features, every candidate with its probability, the
choice and its probability, and the policy version. ``Policy.update(decision, reward)`` learns.

- ``VWPolicy``: Vowpal Wabbit ``--cb_explore_adf`` (``bandit.vw``), the production policy.
- ``UniformPolicy``: every candidate equally likely.
- ``FixedPolicy``: always one endpoint (uniform when it is not a candidate).
- ``GreedyLatencyPolicy``: the lowest live TTFT p50, else the lowest moving average of
  measured TTFT, with epsilon exploration.

Every policy has ``clone()`` (same parameters, nothing learned), ``save(path)`` and
``Policy.load(path)`` (parameters, learned state and random state: a loaded policy makes the
same decisions as the saved one would have).

>>> from datetime import UTC, datetime
>>> from bandit.features import Arm
>>> from bandit.router_string import parse_router
>>> ctx = RouteContext.build("Hello?", objective=parse_router("router@t:1"),
...                          router="router@t:1", now=datetime(2025, 1, 1, tzinfo=UTC))
>>> arms = [Arm.build("b@p", {"model": "b", "provider": "p"}),
...         Arm.build("a@p", {"model": "a", "provider": "p"})]
>>> d = UniformPolicy(seed=1).pull(ctx, arms)
>>> d.candidates, d.probabilities
(('a@p', 'b@p'), (0.5, 0.5))
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import random
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from bandit.checkpoint import JsonDict, read_checkpoint, write_checkpoint
from bandit.config import DEFAULT_MAX_PROMPT_FEATURES, BanditConfig
from bandit.errors import ModelStateError
from bandit.features import (
    Arm,
    Candidates,
    Context,
    LoggedContext,
    arms_from_context,
    prompt_context,
    request_context,
    shared_from_context,
    shared_line,
)
from bandit.reward import Reward, labelled_action
from bandit.router_string import Objective
from bandit.vw import VWModel
from warehouse.models import Decision

log = logging.getLogger(__name__)
PMF_TOLERANCE = 1e-3
RECENT_EXAMPLES = 10_000  # decisions whose VW text VWPolicy keeps for learning


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a policy knows about one request: logged features and the VW shared line."""

    features: Mapping[str, float | str]
    line: str
    router: str
    objective: Objective
    prompt_tokens: int
    max_tokens: int
    created_at: datetime

    @classmethod
    def build(
        cls,
        prompt: str,
        *,
        objective: Objective,
        router: str,
        now: datetime,
        max_tokens: int = 512,
        prompt_tokens: int | None = None,
        max_words: int = DEFAULT_MAX_PROMPT_FEATURES,
    ) -> RouteContext:
        feats: Context = prompt_context(prompt, max_words=max_words, prompt_tokens=prompt_tokens)
        feats.update(request_context(now, objective.weights, max_tokens))
        return cls(
            features=feats,
            line=shared_line(feats),
            router=router,
            objective=objective,
            prompt_tokens=int(feats["p.tokens"]),
            max_tokens=max_tokens,
            created_at=now,
        )

    @classmethod
    def from_decision(cls, decision: Decision, objective: Objective | None = None) -> RouteContext:
        """The context a logged decision was made in (for learning and evaluation); without
        ``objective``, the weights logged in the context (filters are not needed then)."""
        feats = shared_from_context(decision.context)
        if objective is None:
            q, c, t, i = (float(feats.get(k, 0.0)) for k in ("r.q", "r.c", "r.t", "r.i"))
            objective = Objective(q=q, c=c, t=t, i=i)
        return cls(
            features=feats,
            line=shared_line(feats),
            router=decision.router,
            objective=objective,
            prompt_tokens=decision.prompt_tokens or int(float(feats.get("p.tokens", 0.0))),
            max_tokens=decision.max_tokens or int(float(feats.get("r.max_tokens", 1.0))),
            created_at=decision.created_at,
        )


class _EventIds:
    """Event ids as ``secrets.token_urlsafe(16)`` makes them (16 bytes from the OS's CSPRNG,
    URL-safe base64), but with one ``os.urandom`` call per ``BATCH`` ids: the call costs tens
    of microseconds on some machines, a tenth of a routing decision."""

    BATCH = 256
    SIZE = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool = os.urandom(self.SIZE * self.BATCH)
                self._at = 0
            raw = self._pool[self._at : self._at + self.SIZE]
            self._at += self.SIZE
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def reset(self) -> None:
        """Drop the pool (a forked child must not hand out its parent's ids)."""
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0


new_event_id = _EventIds()
os.register_at_fork(after_in_child=new_event_id.reset)


def canonical(arms: Sequence[Arm]) -> Candidates:
    """Arms sorted by endpoint id; ``ValueError`` on a repeated id, ``NoCandidateError`` if none
    (``Candidates`` are canonical already)."""
    return arms if type(arms) is Candidates else Candidates(arms)


def _pmf_total(pmf: Sequence[float]) -> float | None:
    """The exact sum of ``pmf``, or ``None`` unless every value is finite and >= 0 (in C: an
    infinite or NaN value makes the sum so, or ``fsum`` raise)."""
    try:
        total = math.fsum(pmf)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(total) or (pmf and min(pmf) < 0.0):
        return None
    return total


def _clean_pmf(pmf: Sequence[float], n: int) -> list[float]:
    """Validate a PMF (finite, >= 0, sums to 1 within tolerance) and renormalise it."""
    total = _pmf_total(pmf) if len(pmf) == n else None
    if total is None:
        raise ModelStateError(f"invalid probabilities {list(pmf)!r} for {n} candidates")
    if abs(total - 1.0) > PMF_TOLERANCE or total <= 0.0:
        raise ModelStateError(f"probabilities sum to {total}, not 1")
    return [p / total for p in pmf]


def _sample(rng: random.Random, pmf: Sequence[float]) -> int:
    u = rng.random()
    acc = 0.0
    last = 0
    for k, p in enumerate(pmf):
        if p <= 0.0:
            continue
        last = k
        acc += p
        if u < acc:
            return k
    return last


def epsilon_greedy(n: int, best: int, epsilon: float) -> list[float]:
    """Probability 1 - epsilon + epsilon/n on ``best``, epsilon/n on every other arm."""
    pmf = [epsilon / n] * n
    pmf[best] += 1.0 - epsilon
    return pmf


def _live_costs(arms: Candidates, weights: tuple[float, float, float, float], tokens_in: int,
                tokens_out: int) -> list[float]:
    """Each arm's expected cost without quality, from logged prices and live p50s (ranks
    fallbacks; lower is better; unknown latencies count as 1 s and 50 ms)."""
    _, c, t, i = weights
    n = max(1, tokens_in + tokens_out)
    return [
        c * ((tokens_in * price_in + tokens_out * price_out) / n)
        + t * (1000.0 if ttft is None else ttft)
        + i * (50.0 if itl is None else itl)
        for price_in, price_out, ttft, itl in arms.figures
    ]


def config_of(params: JsonDict, policy: str) -> BanditConfig:
    """The ``BanditConfig`` in a checkpoint's parameters (``ModelStateError`` without one)."""
    config = params.get("config")
    if isinstance(config, BanditConfig):
        return config
    if isinstance(config, dict):
        return BanditConfig.model_validate(config)
    raise ModelStateError(f"{policy} checkpoint without a config")


class Policy(ABC):
    """Base class: ``pull`` decides and logs, ``update`` learns, ``_pull`` is the hook."""

    learns: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[Policy]]] = {}

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        Policy.registry[cls.__name__] = cls

    # -- the interface -------------------------------------------------------------------
    @property
    @abstractmethod
    def version(self) -> str:
        """Identifies the policy and its learned state (logged with every decision)."""

    @abstractmethod
    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        """Probabilities over ``arms`` (already in canonical order)."""

    def _update(self, context: RouteContext, arms: Sequence[Arm], decision: Decision,
                reward: Reward) -> None:
        """Learn from one rewarded decision (no-op for policies that do not learn)."""

    def probabilities(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        """The PMF over ``canonical(arms)`` without sampling (used by off-policy evaluation)."""
        ordered = canonical(arms)
        return _clean_pmf(self._pull(context, ordered), len(ordered))

    def pull(
        self,
        context: RouteContext,
        arms: Sequence[Arm],
        *,
        max_fallbacks: int = 3,
        shadow_endpoint: str | None = None,
    ) -> Decision:
        """Choose one of ``arms``; the ``Decision`` lists the rest, ranked, as fallbacks."""
        ordered = canonical(arms)
        pmf = _clean_pmf(self._pull(context, ordered), len(ordered))
        k = _sample(self._rng, pmf)
        chosen = ordered[k].endpoint_id
        weights = context.objective.weights
        tin, tout = context.prompt_tokens, context.max_tokens
        # the rest ranked by probability, then expected cost, then id
        costs = _live_costs(ordered, weights, tin, tout)
        rest = [j for _, _, j in sorted(zip([-p for p in pmf], costs, range(len(ordered))))
                if j != k]
        ctx = LoggedContext(context.features, ordered)
        event_id = new_event_id()
        self._remember(event_id, context, ordered)
        return Decision.model_construct(
            event_id=event_id,
            created_at=context.created_at,
            router=context.router,
            context=ctx,
            candidates=ordered.ids,
            probabilities=tuple(pmf),
            chosen=chosen,
            chosen_prob=pmf[k],
            fallbacks=tuple(ordered[j].endpoint_id for j in rest[:max_fallbacks]),
            policy_version=self.version,
            shadow=shadow_endpoint is not None,
            served=shadow_endpoint,
            prompt_tokens=context.prompt_tokens,
            max_tokens=context.max_tokens,
        )

    def _remember(self, event_id: str, context: RouteContext, arms: Sequence[Arm]) -> None:
        """Hook: keep what is needed to learn this decision cheaply later (default: nothing)."""

    def update(self, decision: Decision, reward: Reward) -> None:
        """Learn from a logged decision and its reward (the context is rebuilt from the log)."""
        if not self.learns:
            return
        context = RouteContext.from_decision(decision)
        arms = arms_from_context(decision.context, decision.candidates)
        self._update(context, arms, decision, reward)

    # -- persistence ---------------------------------------------------------------------
    def params(self) -> JsonDict:
        """Constructor parameters (JSON-able), the basis of ``clone`` and ``save``."""
        return {"seed": self.seed}

    def clone(self) -> Policy:
        """A new policy with the same parameters and nothing learned."""
        return type(self)(**self.params())  # type: ignore[arg-type]

    def _state(self) -> tuple[JsonDict, bytes]:
        return {}, b""

    def _restore(self, state: JsonDict, payload: bytes) -> None:
        return None

    def snapshot(self, extra: JsonDict | None = None) -> tuple[JsonDict, bytes]:
        """Parameters, learned state and random state as a checkpoint's header and payload
        (in memory: ``save`` writes them; a service takes the snapshot under its lock and
        writes it after releasing the lock)."""
        state, payload = self._state()
        version, internal, gauss = self._rng.getstate()
        header: JsonDict = {
            "policy": type(self).__name__,
            "params": self.params(),
            "rng": [version, list(internal), gauss],
            "state": state,
            "extra": extra or {},
        }
        return header, payload

    def save(self, path: Path, extra: JsonDict | None = None) -> None:
        """Write parameters, learned state and random state atomically to ``path``."""
        write_checkpoint(path, *self.snapshot(extra))

    @staticmethod
    def load(path: Path, **overrides: object) -> Policy:
        """The policy saved at ``path`` (``overrides`` replace constructor parameters)."""
        header, payload = read_checkpoint(path)
        name = header.get("policy")
        cls = Policy.registry.get(str(name))
        if cls is None:
            raise ModelStateError(f"{path}: unknown policy class {name!r}")
        params = dict(header.get("params") or {})  # type: ignore[call-overload]
        params.update(overrides)
        policy = cls._from_params(params, payload)
        rng = header.get("rng")
        if isinstance(rng, list) and len(rng) == 3:
            policy._rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        state = header.get("state")
        policy._restore(state if isinstance(state, dict) else {}, payload)
        return policy

    @staticmethod
    def read_extra(path: Path) -> JsonDict:
        """The ``extra`` header a service stored with its checkpoint."""
        header, _ = read_checkpoint(path)
        extra = header.get("extra")
        return extra if isinstance(extra, dict) else {}

    @classmethod
    def _from_params(cls, params: JsonDict, payload: bytes) -> Policy:
        return cls(**params)  # type: ignore[arg-type]

    def close(self) -> None:
        """Release resources (a VW workspace)."""


class UniformPolicy(Policy):
    """Every candidate equally likely."""

    @property
    def version(self) -> str:
        return "uniform"

    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        return [1.0 / len(arms)] * len(arms)


class FixedPolicy(Policy):
    """Always ``endpoint_id`` (uniform over the candidates when it is not one of them)."""

    def __init__(self, endpoint_id: str, *, seed: int = 0) -> None:
        super().__init__(seed=seed)
        if not endpoint_id:
            raise ValueError("FixedPolicy needs an endpoint id")
        self.endpoint_id = endpoint_id

    @property
    def version(self) -> str:
        return f"fixed:{self.endpoint_id}"

    def params(self) -> JsonDict:
        return {"endpoint_id": self.endpoint_id, "seed": self.seed}

    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        ids = [a.endpoint_id for a in arms]
        if self.endpoint_id in ids:
            return [1.0 if i == self.endpoint_id else 0.0 for i in ids]
        return [1.0 / len(arms)] * len(arms)


class GreedyLatencyPolicy(Policy):
    """Lowest TTFT: the live p50 when the arm carries one, else a moving average of the TTFT
    measured in rewards (``alpha`` per update), with ``epsilon`` spread uniformly. An endpoint
    with neither counts as 0 ms, so each is tried early."""

    learns = True

    def __init__(self, *, epsilon: float = 0.05, alpha: float = 0.2, use_live: bool = True,
                 seed: int = 0) -> None:
        super().__init__(seed=seed)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.epsilon = epsilon
        self.alpha = alpha
        self.use_live = use_live
        self.averages: dict[str, float] = {}

    @property
    def version(self) -> str:
        return f"greedy-latency:{len(self.averages)}"

    def params(self) -> JsonDict:
        return {"epsilon": self.epsilon, "alpha": self.alpha, "use_live": self.use_live,
                "seed": self.seed}

    def ttft_estimate(self, arm: Arm) -> float:
        live = arm.features.get("ttft_p50")
        if self.use_live and isinstance(live, int | float):
            return float(live)
        return self.averages.get(arm.endpoint_id, 0.0)

    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        scores = [self.ttft_estimate(a) for a in arms]
        best = min(range(len(arms)), key=lambda k: (scores[k], arms[k].endpoint_id))
        return epsilon_greedy(len(arms), best, self.epsilon)

    def _update(self, context: RouteContext, arms: Sequence[Arm], decision: Decision,
                reward: Reward) -> None:
        eid = labelled_action(decision)
        old = self.averages.get(eid)
        x = reward.ttft_ms
        self.averages[eid] = x if old is None else old + self.alpha * (x - old)

    def _state(self) -> tuple[JsonDict, bytes]:
        return {"averages": dict(sorted(self.averages.items()))}, b""

    def _restore(self, state: JsonDict, payload: bytes) -> None:
        averages = state.get("averages")
        if isinstance(averages, dict):
            self.averages = {str(k): float(v) for k, v in averages.items()}


class VWPolicy(Policy):
    """Vowpal Wabbit ``--cb_explore_adf`` with the arguments of ``config.vw_args``.

    The version is ``vw-<digest of the arguments>-<events learned>``, so a logged decision says
    which model state made it.
    """

    learns = True

    def __init__(self, config: BanditConfig | None = None, *,
                 _model: VWModel | None = None) -> None:
        config = config or BanditConfig()
        super().__init__(seed=config.seed)
        self.config = config
        self.model = _model or VWModel(config.vw_args)
        self.invalid_predictions = 0
        # event id -> (shared line, action lines) of recent decisions: learning them skips
        # rebuilding the example from the logged context (identical text, tested)
        self._recent: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()
        self._digest = hashlib.blake2b(config.vw_args.encode(), digest_size=4).hexdigest()

    @property
    def version(self) -> str:
        return f"vw-{self._digest}-{self.model.learned}"

    def params(self) -> JsonDict:
        return {"config": self.config.model_dump(mode="json")}

    def clone(self) -> VWPolicy:
        return VWPolicy(self.config)

    def _pull(self, context: RouteContext, arms: Sequence[Arm]) -> list[float]:
        if type(arms) is Candidates:  # the action lines joined and checked once per set
            pmf = self.model.predict_joined(context.line, arms.action_text, len(arms))
        else:
            pmf = self.model.predict(context.line, [a.line for a in arms])
        total = _pmf_total(pmf)
        if total is None or abs(total - 1.0) > 1e-3:
            # a corrupted model must not stop routing: explore uniformly and say so loudly
            self.invalid_predictions += 1
            log.error("VW returned an invalid PMF %r; routing uniformly", pmf)
            return [1.0 / len(arms)] * len(arms)
        return pmf

    def _remember(self, event_id: str, context: RouteContext, arms: Sequence[Arm]) -> None:
        lines = arms.lines if type(arms) is Candidates else tuple(a.line for a in arms)
        self._recent[event_id] = (context.line, lines)  # untracked by gc
        if len(self._recent) > RECENT_EXAMPLES:
            self._recent.popitem(last=False)

    def update(self, decision: Decision, reward: Reward) -> None:
        cached = self._recent.pop(decision.event_id, None)
        if cached is None:
            context = RouteContext.from_decision(decision)
            arms = arms_from_context(decision.context, decision.candidates)
            cached = (context.line, tuple(a.line for a in arms))
        self._learn(cached[0], cached[1], decision, reward)

    def _learn(self, shared: str, actions: Sequence[str], decision: Decision,
               reward: Reward) -> None:
        target = labelled_action(decision)
        k = decision.candidates.index(target)
        prob = 1.0 if target != decision.chosen else decision.chosen_prob
        self.model.learn(shared, actions, chosen=k, cost=reward.cost, prob=prob)

    def _state(self) -> tuple[JsonDict, bytes]:
        state: JsonDict = {"learned": self.model.learned, "vw_args": self.config.vw_args}
        return state, self.model.to_bytes()

    @classmethod
    def _from_params(cls, params: JsonDict, payload: bytes) -> Policy:
        cfg = config_of(params, cls.__name__)
        if not payload:
            raise ModelStateError("VWPolicy checkpoint without a model")
        return cls(cfg, _model=VWModel.from_bytes(cfg.vw_args, payload))

    def _restore(self, state: JsonDict, payload: bytes) -> None:
        saved_args = state.get("vw_args")
        if saved_args is not None and saved_args != self.config.vw_args:
            raise ModelStateError(
                f"the checkpoint was trained with VW arguments {saved_args!r}, the config now "
                f"says {self.config.vw_args!r}: restore the config or move the checkpoint away"
            )
        learned = state.get("learned")
        if isinstance(learned, int):
            self.model.learned = learned

    def close(self) -> None:
        self.model.close()
