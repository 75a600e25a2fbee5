"""The real router: ``bandit.service.RouterService`` behind the sidecar's ``RouterService``.

The bandit service is blocking and thread-safe. Routing runs on the event loop itself: a
decision is CPU-bound and short (features, one VW prediction, a queued warehouse row; about
0.3 ms with 20 endpoints, ``tests/bench/bandit_speed.py``), so handing it to a thread would cost
more than it saves. Learning (outcomes, feedback) and checkpoints take longer and run in one
dedicated worker thread (a VW workspace holds the GIL, so more threads would only contend). Weights given apart from
the router string replace its weights (the string is re-written canonically); the prompt the
bandit featurises is the text of the messages, one per line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bandit.quality import QualityModel
from bandit.router_string import format_router, parse_router
from bandit.service import FeedbackStatus
from bandit.service import RouterService as BanditService
from bandit.trained import TrainedPolicy
from serving.router import Expected, RoutePlan, RouteQuery
from warehouse.models import Decision, Endpoint, Feedback, ProbeResult

log = logging.getLogger(__name__)
T = TypeVar("T")


def prompt_text(messages: Sequence[Mapping[str, object]]) -> str:
    """The text of the messages, one message per line (text parts only)."""
    lines = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            lines.append(content)
        elif isinstance(content, list):
            lines.append(
                " ".join(
                    str(p["text"]) for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
            )  # fmt: skip
    return "\n".join(lines)


class BanditRouter:
    """Adapts :class:`bandit.service.RouterService` to :class:`serving.router.RouterService`."""

    def __init__(self, service: BanditService) -> None:
        self.service = service
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bandit")
        self._endpoints = {e.id: e for e in service.endpoints}
        self._default = parse_router(service.config.default_router)

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        return self._endpoints

    @property
    def model_version(self) -> str:
        return self.service.policy.version

    def _router(self, query: RouteQuery) -> str | None:
        router = query.router.strip()
        if query.weights is None:
            return router or None
        objective = parse_router(router or "router@", self._default)
        w = query.weights
        objective = objective.with_weights(
            w.get("q", 0.0), w.get("c", 0.0), w.get("t", 0.0), w.get("i", 0.0)
        )
        return format_router(objective)

    async def route(self, query: RouteQuery) -> RoutePlan:
        # from values the HTTP schemas validated already: no second validation
        routed = self.service.decide(  # short and CPU-bound: see the module docstring
            prompt_text(query.messages),
            router=self._router(query),
            max_tokens=query.max_tokens,
            prompt_tokens=query.prompt_tokens,
            default_endpoint=query.shadow_endpoint,
            metadata=query.metadata,
        )
        expected = Expected(
            ttft_ms=routed.expected_ttft_ms,
            itl_ms=routed.expected_itl_ms,
            cost_usd=routed.expected_cost_usd,
        )
        return RoutePlan(decision=routed.decision, expected={routed.endpoint: expected})

    async def record_outcome(self, decision: Decision, result: ProbeResult) -> None:
        await self._run(functools.partial(self.service.record_outcome, result, store=False))

    async def record_outcomes(self, outcomes: Sequence[tuple[Decision, ProbeResult]]) -> int:
        return await self._run(self._record_all, list(outcomes))

    def _record_all(self, outcomes: list[tuple[Decision, ProbeResult]]) -> int:
        failed = 0
        for decision, result in outcomes:
            try:
                self.service.record_outcome(result, store=False)
            except Exception:  # noqa: BLE001 - one bad item must not stop the batch
                failed += 1
                log.exception("learning the outcome of %s failed", decision.event_id)
        return failed

    async def record_feedback(self, feedback: Feedback) -> bool:
        status = await self._run(self.service.record_feedback, feedback)
        return status is FeedbackStatus.ACCEPTED

    @property
    def trained_model_id(self) -> str | None:
        """The id of the trained model routing now (``None``: not a trained model)."""
        policy = self.service.policy
        return policy.model_id if isinstance(policy, TrainedPolicy) else None

    async def load_trained(self, model_id: str, data: bytes) -> str:
        """Route with the trained quality model ``data`` from now on (no restart); returns
        the new model version. Raises ``ModelStateError`` for bytes that are not a model."""

        def swap() -> str:
            quality = QualityModel.from_bytes(data)
            config = self.service.config
            self.service.swap_policy(TrainedPolicy(config, quality=quality, model_id=model_id))
            return self.service.policy.version

        return await self._run(swap)

    async def start(self) -> None:
        await self.service.start()

    async def checkpoint(self) -> None:
        await self._run(self.service.checkpoint)

    async def aclose(self) -> None:
        try:
            await self.service.aclose()
        finally:
            self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
