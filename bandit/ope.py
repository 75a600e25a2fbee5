"""Off-policy evaluation: what would another policy have earned on the logged decisions?

Every logged decision carries the candidates, the probability the logging policy gave each,
the endpoint whose outcome was observed (the chosen one, or the one that served in shadow
mode, observed with probability 1) and, once learned, its reward. For a target policy with
probabilities pi(a|x), with w_i = pi(a_i|x_i) / p_i:

- IPS    V = mean(w_i r_i)                                   (unbiased, high variance)
- SNIPS  V = sum(w_i r_i) / sum(w_i)                          (self-normalised, small bias)
- DR     V = mean(sum_a pi(a|x_i) m(x_i,a) + w_i (r_i - m(x_i,a_i)))
         with a reward model m (by default the mean logged reward of each endpoint).

Confidence intervals use the normal approximation (SNIPS by the delta method) or, with
``bootstrap=B``, percentile intervals over B resamples drawn from ``seed``.

Targets: ``FixedTarget`` ("always endpoint X"), ``UniformTarget``, ``PolicyTarget`` (any
``Policy``, e.g. the current VW model, evaluated on the logged context), ``ObjectiveTarget``
(greedy on the logged live stats under other router weights) and ``EpsilonTarget`` (another
target's greedy choice with other exploration).

>>> from datetime import UTC, datetime
>>> from warehouse.models import Decision
>>> d = Decision(event_id="e" * 16, created_at=datetime(2025, 1, 1, tzinfo=UTC), router="r",
...              candidates=("a@p", "b@p"), probabilities=(0.5, 0.5), chosen="a@p",
...              chosen_prob=0.5, policy_version="uniform")
>>> [round(e.value, 3) for e in evaluate([(d, 1.0)], [FixedTarget("a@p")])]
[2.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

import numpy as np

from bandit.config import BanditConfig
from bandit.features import arms_from_context
from bandit.policy import Policy, RouteContext, epsilon_greedy
from bandit.reward import expected_reward, labelled_action
from bandit.router_string import Objective
from warehouse.models import Decision

ESTIMATORS = ("ips", "snips", "dr")
RewardModel = Callable[[Decision, str], float]


class TargetPolicy(Protocol):
    """A policy to evaluate: probabilities over a logged decision's candidates (same order)."""

    name: str

    def probabilities(self, decision: Decision) -> Sequence[float]: ...


@dataclass(frozen=True, slots=True)
class Estimate:
    """One estimator's value of one target policy, with a confidence interval."""

    policy: str
    estimator: str
    value: float
    low: float
    high: float
    n: int
    effective_n: float  # (sum w)^2 / sum w^2: how many logged events the estimate rests on


class FixedTarget:
    """Always ``endpoint_id`` (uniform over the candidates when it is not among them)."""

    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.name = f"always {endpoint_id}"

    def probabilities(self, decision: Decision) -> Sequence[float]:
        c = decision.candidates
        if self.endpoint_id in c:
            return [1.0 if e == self.endpoint_id else 0.0 for e in c]
        return [1.0 / len(c)] * len(c)


class UniformTarget:
    """Every candidate equally likely."""

    name = "uniform"

    def probabilities(self, decision: Decision) -> Sequence[float]:
        return [1.0 / len(decision.candidates)] * len(decision.candidates)


class PolicyTarget:
    """A ``Policy`` (e.g. the current VW model) asked about each logged context."""

    def __init__(self, policy: Policy, name: str | None = None) -> None:
        self.policy = policy
        self.name = name or policy.version

    def probabilities(self, decision: Decision) -> Sequence[float]:
        context = RouteContext.from_decision(decision)
        arms = arms_from_context(decision.context, decision.candidates)
        pmf = self.policy.probabilities(context, arms)
        order = sorted(decision.candidates)
        by_id = dict(zip(order, pmf, strict=True))
        return [by_id[e] for e in decision.candidates]


class ObjectiveTarget:
    """Greedy on the logged live stats and prices under another objective (other weights)."""

    def __init__(self, objective: Objective, *, epsilon: float = 0.0,
                 config: BanditConfig | None = None, name: str | None = None) -> None:
        self.objective = objective
        self.epsilon = epsilon
        self.config = config or BanditConfig()
        self.name = name or f"greedy q:{objective.q:g} c:{objective.c:g} t:{objective.t:g} " \
                            f"i:{objective.i:g} eps:{epsilon:g}"

    def probabilities(self, decision: Decision) -> Sequence[float]:
        arms = arms_from_context(decision.context, decision.candidates)
        tokens = decision.prompt_tokens or 0
        out = decision.max_tokens or self.config.default_max_tokens
        values = [
            expected_reward(a.features, self.objective, prompt_tokens=tokens, max_tokens=out,
                            config=self.config).value
            for a in arms
        ]
        best = max(range(len(arms)), key=lambda k: (values[k], -k))
        return epsilon_greedy(len(arms), best, self.epsilon)


class EpsilonTarget:
    """Another target's most likely endpoint with probability 1 - epsilon, the rest uniform."""

    def __init__(self, base: TargetPolicy, epsilon: float) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.base = base
        self.epsilon = epsilon
        self.name = f"{base.name} eps:{epsilon:g}"

    def probabilities(self, decision: Decision) -> Sequence[float]:
        pmf = list(self.base.probabilities(decision))
        best = max(range(len(pmf)), key=lambda k: (pmf[k], -k))
        return epsilon_greedy(len(pmf), best, self.epsilon)


def mean_reward_model(logged: Sequence[tuple[Decision, float]]) -> RewardModel:
    """The mean logged reward of each endpoint (overall mean for unseen ones)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for d, r in logged:
        a = labelled_action(d)
        sums[a] = sums.get(a, 0.0) + r
        counts[a] = counts.get(a, 0) + 1
    overall = sum(sums.values()) / max(1, sum(counts.values()))
    means = {a: sums[a] / counts[a] for a in sums}
    return lambda d, a: means.get(a, overall)


def _propensity(d: Decision) -> tuple[str, float]:
    action = labelled_action(d)
    return action, (d.chosen_prob if action == d.chosen else 1.0)


def _interval(terms: np.ndarray, z: float) -> tuple[float, float, float]:
    n = len(terms)
    mean = float(terms.mean())
    se = float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return mean, mean - z * se, mean + z * se


def _snips(w: np.ndarray, r: np.ndarray, z: float) -> tuple[float, float, float]:
    total = float(w.sum())
    if total <= 0:
        return math.nan, math.nan, math.nan
    value = float((w * r).sum()) / total
    se = math.sqrt(float(((w * (r - value)) ** 2).sum())) / total
    return value, value - z * se, value + z * se


def evaluate(
    decisions_with_rewards: Iterable[tuple[Decision, float]],
    target_policies: Sequence[TargetPolicy],
    *,
    estimators: Sequence[str] = ESTIMATORS,
    confidence: float = 0.95,
    reward_model: RewardModel | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> list[Estimate]:
    """Estimate each target's mean reward per decision; one ``Estimate`` per target and
    estimator, in the order given (targets outer, estimators inner)."""
    logged = list(decisions_with_rewards)
    if not logged:
        raise ValueError("no logged decisions to evaluate on")
    unknown = set(estimators) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown estimators {sorted(unknown)}; known: {ESTIMATORS}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    model = reward_model or mean_reward_model(logged)
    rewards = np.array([r for _, r in logged], dtype=float)
    props = [_propensity(d) for d, _ in logged]
    p_log = np.array([p for _, p in props], dtype=float)
    m_chosen = np.array([model(d, a) for (d, _), (a, _) in zip(logged, props, strict=True)])
    m_all = [[model(d, c) for c in d.candidates] for d, _ in logged]
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(logged), len(logged)) for _ in range(bootstrap)]

    out: list[Estimate] = []
    for target in target_policies:
        pi_chosen = np.empty(len(logged))
        direct = np.empty(len(logged))
        for k, ((d, _), (a, _)) in enumerate(zip(logged, props, strict=True)):
            pi = list(target.probabilities(d))
            if len(pi) != len(d.candidates):
                raise ValueError(f"target {target.name!r} gave {len(pi)} probabilities")
            pi_chosen[k] = pi[d.candidates.index(a)]
            direct[k] = float(np.dot(pi, m_all[k]))
        w = pi_chosen / p_log
        ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
        terms = {"ips": w * rewards, "dr": direct + w * (rewards - m_chosen)}
        for name in estimators:
            if name == "snips":
                value, low, high = _snips(w, rewards, z)
                if boots:
                    stats = [float((w[b] * rewards[b]).sum() / max(w[b].sum(), 1e-300))
                             for b in boots]
                    low, high = _percentiles(stats, confidence)
            else:
                value, low, high = _interval(terms[name], z)
                if boots:
                    low, high = _percentiles([float(terms[name][b].mean()) for b in boots],
                                             confidence)
            out.append(Estimate(target.name, name, value, low, high, len(logged), ess))
    return out


def _percentiles(stats: Sequence[float], confidence: float) -> tuple[float, float]:
    lo, hi = np.quantile(np.array(stats), [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)
