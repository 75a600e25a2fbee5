"""The contextual bandit: picks an endpoint for every prompt and learns from what happened.

    from bandit import BanditConfig, RouterService, RouteRequest
    service = RouterService(BanditConfig(), warehouse, endpoints)
    result = service.route(RouteRequest(prompt="Prove that ...", router="router@q:1|t:1e-4"))
"""

from __future__ import annotations

from bandit.config import BanditConfig, PastWindowPolicy
from bandit.errors import BanditError, ModelStateError, NoCandidateError, RouterStringError
from bandit.ope import Estimate, evaluate
from bandit.policy import FixedPolicy, GreedyLatencyPolicy, Policy, UniformPolicy, VWPolicy
from bandit.reward import compute_reward
from bandit.router_string import Objective, format_router, parse_router
from bandit.schemas import FeedbackStatus, OutcomeStatus, RouteRequest, RouteResult
from bandit.service import RouterService

__all__ = [
    "BanditConfig",
    "BanditError",
    "Estimate",
    "FeedbackStatus",
    "FixedPolicy",
    "GreedyLatencyPolicy",
    "ModelStateError",
    "NoCandidateError",
    "Objective",
    "OutcomeStatus",
    "PastWindowPolicy",
    "Policy",
    "RouteRequest",
    "RouteResult",
    "RouterService",
    "RouterStringError",
    "UniformPolicy",
    "VWPolicy",
    "compute_reward",
    "evaluate",
    "format_router",
    "parse_router",
]
