"""The router service the sidecar calls: route, join outcomes and feedback, learn, persist.

- ``route(request)``: screen the catalog (``bandit.constraints``), build features, let the
  policy decide, log the ``Decision`` to the warehouse, return it with ranked fallbacks and
  the expected TTFT, ITL and cost. In shadow mode the caller's default endpoint serves and the
  decision is only logged (and the served endpoint's outcome learned, with probability 1).
- ``record_outcome(result)``: the measured call (a ``ProbeResult`` with ``event_id``).
- ``record_feedback(feedback)``: ``accepted`` or ``duplicate``; an unknown event raises
  ``UnknownEventError`` (404), feedback after the window ``FeedbackWindowError`` (409).

When an event is learned (see ``bandit.reward`` for the reward): as soon as its feedback
arrives within ``feedback_window_s``; for objectives without a quality weight, as soon as its
outcome arrives; otherwise when the window closes (``expire``), following
``past_window_policy``. Each event is learned exactly once: the service keeps every pending
and every recently settled event id, and the warehouse's ``learned`` table remembers the rest.

Memory: a pending event keeps its whole ``Decision`` for ``pending_in_memory_s`` only; then
it is a small record (id, time, labelled endpoint, any outcome or feedback) and the decision
is read back from the warehouse when the event is learned. Settled ids are kept until their
window has passed.

Persistence: ``checkpoint()`` saves the policy atomically with the ids it learned since the
previous checkpoint and the creation time of the oldest event still pending, then marks those
ids in the warehouse's ``learned`` table. ``recover()`` restores the checkpoint and replays,
oldest first, every decision logged since that time that the ``learned`` table does not list:
learned again if its feedback or outcome is in the warehouse, pending otherwise. So a kill -9
loses no learning that the warehouse holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bandit.config import BanditConfig, PastWindowPolicy
from bandit.constraints import Limits, LiveStatsSource, Screening, screen, screen_size
from bandit.errors import FeedbackWindowError, UnknownEventError
from bandit.checkpoint import write_checkpoint
from bandit.features import Arm, ArmCache, Candidates
from bandit.policy import Policy, RouteContext, VWPolicy
from bandit.trained import TrainedPolicy, make_policy
from bandit.reward import QualityMeans, compute_reward, expected_reward, labelled_action
from bandit.router_string import Objective, parse_router
from bandit.schemas import (
    FeedbackStatus,
    OutcomeStatus,
    RecoveryReport,
    RouteRequest,
    RouteResult,
    WarehouseLike,
)
from warehouse.models import Decision, Endpoint, Feedback, ProbeResult, Source, utcnow
from warehouse.schema import PROBE_COLUMNS

__all__ = [
    "FeedbackStatus",
    "OutcomeStatus",
    "RecoveryReport",
    "RouteRequest",
    "RouteResult",
    "Routed",
    "RouterService",
    "WarehouseLike",
]

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SWEEP_INTERVAL_S = 5.0
MAX_KEPT_CANDIDATES = 256  # screenings kept at once (distinct objectives and limits)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Routed:
    """What ``RouterService.decide`` answers: ``RouteResult``'s values, unvalidated."""

    decision: Decision
    endpoint: str
    expected_ttft_ms: float
    expected_itl_ms: float
    expected_cost_usd: float
    rejected: Mapping[str, str]

    def result(self) -> RouteResult:
        return RouteResult.model_construct(  # the service's own values: nothing to validate
            decision=self.decision,
            endpoint=self.endpoint,
            fallbacks=self.decision.fallbacks,
            expected_ttft_ms=self.expected_ttft_ms,
            expected_itl_ms=self.expected_itl_ms,
            expected_cost_usd=self.expected_cost_usd,
            rejected=dict(self.rejected),
        )


class _Kept:
    """A screening without the size checks and its allowed endpoints' arms, valid from
    ``start`` until ``end`` (see ``RouterService._candidates``), with the ``Candidates`` of
    every subset the size checks left so far."""

    __slots__ = ("start", "end", "screening", "_arms", "_sets")

    def __init__(self, start: datetime, end: datetime, screening: Screening,
                 arms: list[Arm]) -> None:
        self.start, self.end, self.screening = start, end, screening
        self._arms = arms
        self._sets: dict[tuple[str, ...] | None, Candidates] = {}

    def candidates(self, screening: Screening) -> Candidates:
        """The arms of ``screening.allowed``, this screening's or one the size checks made
        from it (``NoCandidateError`` when none is allowed)."""
        allowed = screening.require()
        key = None if screening is self.screening else tuple(e.id for e in allowed)
        cands = self._sets.get(key)
        if cands is None:
            ids = {e.id for e in allowed}
            cands = Candidates(a for a in self._arms if a.endpoint_id in ids)
            if len(self._sets) >= MAX_KEPT_CANDIDATES:
                self._sets.clear()
            self._sets[key] = cands
        return cands


@dataclass(slots=True)
class _Pending:
    """An event waiting to be learned. ``decision`` is dropped (``None``) once the event has
    waited ``pending_in_memory_s``: the warehouse holds it, and it is read back to learn."""

    decision: Decision | None
    needs_feedback: bool
    created_at: datetime
    target: str  # the labelled action (bandit.reward.labelled_action)
    outcome: ProbeResult | None = None
    feedback: Feedback | None = None


def _pending(decision: Decision, needs_feedback: bool) -> _Pending:
    return _Pending(decision, needs_feedback, decision.created_at, labelled_action(decision))


def _objective_of(decision: Decision) -> Objective:
    ctx = decision.context

    def w(key: str) -> float:
        value = ctx.get(key, 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    return Objective(q=w("r.q"), c=w("r.c"), t=w("r.t"), i=w("r.i"))


class RouterService:
    """Routes requests with a policy and keeps it learning. Thread-safe; blocking (VW and
    DuckDB), so async callers use the ``a*`` methods, which run in a worker thread."""

    def __init__(
        self,
        config: BanditConfig,
        warehouse: WarehouseLike,
        endpoints: Sequence[Endpoint],
        *,
        policy: Policy | None = None,
        cooldowns: Mapping[str, datetime] | None = None,
        live: LiveStatsSource | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("the service needs at least one endpoint")
        self.config = config
        self.warehouse = warehouse
        self.endpoints = list(endpoints)
        self._by_id = {e.id: e for e in self.endpoints}
        self.policy = policy if policy is not None else make_policy(config)
        self.cooldowns: Mapping[str, datetime] = cooldowns if cooldowns is not None else {}
        self.live = live if live is not None else warehouse.live
        self.clock = clock
        self.default_objective = parse_router(config.default_router)
        self.quality = QualityMeans()
        self._window = timedelta(seconds=config.feedback_window_s)
        self._lock = threading.RLock()
        self._checkpointing = threading.Lock()
        self._arms = ArmCache()
        # (objective, limits, cooldowns) -> what _candidates keeps
        self._kept: dict[tuple[object, ...], _Kept] = {}
        self._kept_version: tuple[object, int] | None = None
        self._kept_at = float("-inf")  # monotonic() when the live stats were last read
        self._monotonic = monotonic
        self._catalog_version = 0
        self._min_window = min(e.context_window for e in self.endpoints)
        self._pending: dict[str, _Pending] = {}
        # ids of pending events still held whole, oldest first (see _compact)
        self._whole: deque[str] = deque()
        # settled event id -> (created_at, had feedback, labelled endpoint)
        self._settled: dict[str, tuple[datetime, bool, str]] = {}
        self._since_checkpoint: list[str] = []
        self._task: asyncio.Task[None] | None = None

    # -- routing -------------------------------------------------------------------------
    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Replace the catalog (e.g. after a reload)."""
        with self._lock:
            self.endpoints = list(endpoints)
            self._by_id = {e.id: e for e in self.endpoints}
            self._catalog_version += 1
            self._min_window = min((e.context_window for e in self.endpoints), default=0)

    def route(self, request: RouteRequest) -> RouteResult:
        """Decide which endpoint serves ``request``; ``NoCandidateError`` if none may."""
        return self.decide(
            request.prompt,
            router=request.router,
            max_tokens=request.max_tokens,
            prompt_tokens=request.prompt_tokens,
            allow=request.allow,
            deny=request.deny,
            max_price_per_mtok=request.max_price_per_mtok,
            default_endpoint=request.default_endpoint,
            metadata=request.metadata,
        ).result()

    def decide(
        self,
        prompt: str,
        *,
        router: str | None = None,
        max_tokens: int | None = None,
        prompt_tokens: int | None = None,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] = (),
        max_price_per_mtok: float | None = None,
        default_endpoint: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Routed:
        """``route`` for values validated already (the sidecar's schemas did): the same
        decision, as plain values, without building and validating a ``RouteRequest`` and a
        ``RouteResult`` per request. ``metadata`` (the caller's labels) is stored with the
        decision as given."""
        now = self.clock()
        router = router or self.config.default_router
        objective = parse_router(router, self.default_objective)
        max_tokens = max_tokens or self.config.default_max_tokens
        context = RouteContext.build(
            prompt,
            objective=objective,
            router=router,
            now=now,
            max_tokens=max_tokens,
            prompt_tokens=prompt_tokens,
            max_words=self.config.max_prompt_features,
        )
        limits = Limits(
            allow=frozenset(allow) if allow is not None else None,
            deny=frozenset(deny),
            max_price_per_mtok=max_price_per_mtok,
        )
        shadow = None
        if self.config.shadow:
            shadow = default_endpoint or self.config.shadow_endpoint
            if shadow is None:
                raise ValueError("shadow mode needs a default endpoint (request or config)")
        with self._lock:
            screening, arms = self._candidates(objective, limits, now, context.prompt_tokens,
                                               max_tokens)
            decision = self.policy.pull(
                context, arms, max_fallbacks=self.config.max_fallbacks, shadow_endpoint=shadow
            )
            if metadata:
                decision = decision.model_copy(update={"metadata": dict(metadata)})
            self._pending[decision.event_id] = _pending(decision, objective.needs_feedback)
            self._whole.append(decision.event_id)
        self.warehouse.add_decision(decision)
        serve = shadow or decision.chosen
        endpoint = self._by_id.get(serve)
        served_arm = arms.arm_of(serve)
        exp = expected_reward(
            served_arm.features if served_arm is not None else {},
            objective,
            prompt_tokens=context.prompt_tokens,
            max_tokens=max_tokens,
            config=self.config,
        )
        return Routed(
            decision=decision,
            endpoint=serve,
            expected_ttft_ms=exp.ttft_ms,
            expected_itl_ms=exp.itl_ms,
            expected_cost_usd=endpoint.cost_usd(context.prompt_tokens, max_tokens)
            if endpoint is not None
            else 0.0,
            rejected=screening.rejected,
        )

    def _candidates(self, objective: Objective, limits: Limits, now: datetime,
                    prompt_tokens: int, max_tokens: int) -> tuple[Screening, Candidates]:
        """The screening of the catalog and the allowed endpoints' arms. Lock held.

        Apart from the context window and price checks (``screen_size``, per request), both
        depend on the request only through its objective and limits. So they are kept, per
        objective and limits, while the catalog, the live stats (their ``version``) and the
        cooldowns stay the same, and until the next age step of an arm or end of a cooldown:
        a decision then skips screening the catalog endpoint by endpoint and looking up their
        arms. The arms left when the size or price rejects some are kept with them.

        A change of the live stats alone is taken up once ``live_refresh_s`` has passed since
        they were last read. Through the proxy every finished call changes them (~100 times a
        second at 200 concurrent streams), and rebuilding the arms, their VW lines and their
        parsed VW examples for every decision made it cost 189 us instead of 84 (4 endpoints,
        a change before every decision, a loop over ``decide``; 120-126 us with the default
        0.1 s). Live figures summarise minutes of calls: a tenth of a second adds nothing they
        would show."""
        live_version = getattr(self.live, "version", None)
        cooldowns = self.cooldowns
        # .get, not .items(): another thread may end a cooldown meanwhile
        cooling = tuple((e, t) for e in list(cooldowns) if (t := cooldowns.get(e)) is not None)
        key = (objective, limits, cooling)
        kept = None
        if live_version is not None:
            if self._kept_version != (live_version, self._catalog_version):
                tick = self._monotonic()
                if (
                    self._kept_version is None
                    or self._kept_version[1] != self._catalog_version
                    or tick - self._kept_at >= self.config.live_refresh_s
                ):
                    self._kept.clear()
                    self._kept_version = (live_version, self._catalog_version)
                    self._kept_at = tick
            kept = self._kept.get(key)
            if kept is not None and not kept.start <= now < kept.end:
                kept = None
        if kept is None:
            base = screen(
                self.endpoints,
                objective=objective,
                now=now,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                live=self.live,
                cooldowns=cooldowns,
                limits=limits,
                max_error_rate=self.config.max_error_rate,
                min_error_samples=self.config.min_error_samples,
                sizes=False,
            )
            stats = [self.live.get(e.id) for e in base.allowed]
            arms = [self._arms.get(e, st, now) for e, st in zip(base.allowed, stats, strict=True)]
            ends = [t for st in stats if (t := ArmCache.next_step(st, now)) is not None]
            ends += [until for _, until in cooling if until > now]
            kept = _Kept(now, min(ends, default=FAR_FUTURE), base, arms)
            if live_version is not None:
                if len(self._kept) >= MAX_KEPT_CANDIDATES:
                    self._kept.clear()
                self._kept[key] = kept
        screening = screen_size(
            kept.screening,
            self.endpoints,
            objective=objective,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            limits=limits,
            min_context_window=self._min_window,
        )
        return screening, kept.candidates(screening)

    # -- outcomes and feedback -----------------------------------------------------------
    def record_outcome(self, result: ProbeResult, *, store: bool = True) -> OutcomeStatus:
        """Join a measured call to its decision (by ``result.event_id``) and store it."""
        if not result.event_id:
            raise ValueError("an outcome needs the event_id of its decision")
        if store and result.source is not Source.TRAFFIC:
            result = result.model_copy(update={"source": Source.TRAFFIC})
        decision = self._read_back(result.event_id)
        with self._lock:
            pending = self._pending.get(result.event_id)
            if pending is not None:
                if pending.outcome is not None:
                    return OutcomeStatus.DUPLICATE
                pending.outcome = result
                status = OutcomeStatus.ACCEPTED
                if not pending.needs_feedback:
                    self._settle(result.event_id, pending, learn=True, decision=decision)
            elif result.event_id in self._settled:
                status = OutcomeStatus.ALREADY_LEARNED
            elif self.warehouse.get_decision(result.event_id) is None:
                raise UnknownEventError(f"no decision with event id {result.event_id!r}")
            else:
                status = OutcomeStatus.ALREADY_LEARNED
        if store:
            self.warehouse.add_probe(result)
        return status

    def record_feedback(self, feedback: Feedback) -> FeedbackStatus:
        """Join feedback to its decision; learn the event if it waited for it."""
        now = self.clock()
        feedback = feedback.model_copy(update={"received_at": now})
        decision = self._read_back(feedback.event_id)
        with self._lock:
            pending = self._pending.get(feedback.event_id)
            if pending is not None:
                if pending.feedback is not None:
                    return FeedbackStatus.DUPLICATE
                late = now - pending.created_at
                if late > self._window:
                    self._settle_expired(feedback.event_id, pending, decision=decision)
                    raise self._too_late(feedback.event_id, late)
                pending.feedback = feedback
                self.warehouse.add_feedback(feedback)
                self._settle(feedback.event_id, pending, learn=True, decision=decision)
                return FeedbackStatus.ACCEPTED
            settled = self._settled.get(feedback.event_id)
            if settled is not None:
                created, had_feedback, endpoint_id = settled
                if had_feedback:
                    return FeedbackStatus.DUPLICATE
                if now - created > self._window:
                    raise self._too_late(feedback.event_id, now - created)
                # learned already (its objective had no quality weight): keep the verdict
                self._settled[feedback.event_id] = (created, True, endpoint_id)
                self.warehouse.add_feedback(feedback)
                self.quality.add(endpoint_id, feedback.score)
                return FeedbackStatus.ACCEPTED
        decision = self.warehouse.get_decision(feedback.event_id)
        if decision is None:
            raise UnknownEventError(f"no decision with event id {feedback.event_id!r}")
        late = now - decision.created_at
        if late > self._window:
            raise self._too_late(feedback.event_id, late)
        if self.warehouse.feedback_for(feedback.event_id):
            return FeedbackStatus.DUPLICATE
        with self._lock:
            endpoint_id = labelled_action(decision)
            self._settled[feedback.event_id] = (decision.created_at, True, endpoint_id)
        self.warehouse.add_feedback(feedback)
        return FeedbackStatus.ACCEPTED

    def _too_late(self, event_id: str, late: timedelta) -> FeedbackWindowError:
        reason = (
            f"feedback came {late.total_seconds():.0f} s after the decision; the window is "
            f"{self.config.feedback_window_s:.0f} s and the event was settled with "
            f"past_window_policy={self.config.past_window_policy.value}"
        )
        return FeedbackWindowError(f"event {event_id!r}: {reason}", reason=reason)

    # -- learning ------------------------------------------------------------------------
    def _read_back(self, event_id: str) -> Decision | None:
        """The decision of a pending event no longer held whole, read from the warehouse
        before taking the lock (``None`` when it is held whole, settled or unknown)."""
        pending = self._pending.get(event_id)  # a dict read: no lock needed to peek
        if pending is None or pending.decision is not None:
            return None
        return self.warehouse.get_decision(event_id)

    def _settle(
        self, event_id: str, pending: _Pending, *, learn: bool, decision: Decision | None = None
    ) -> None:
        """Learn (or skip) one pending event and remember it as settled. Lock held.

        ``decision`` stands in for ``pending.decision`` when that was dropped from memory
        (read back from the warehouse by the caller, outside the lock)."""
        del self._pending[event_id]
        target = pending.target
        self._settled[event_id] = (pending.created_at, pending.feedback is not None, target)
        self._since_checkpoint.append(event_id)
        if not learn:
            return
        d = pending.decision or decision
        if d is None:  # dropped from memory after the caller looked (a race): read it now
            d = self.warehouse.get_decision(event_id)
        if d is None:
            # dropped from memory and not in the warehouse (a row the writer could not write)
            log.warning("event %s settled without learning: its decision is not in the "
                        "warehouse", event_id)  # fmt: skip
            return
        learnable = not d.shadow or (d.served is not None and d.served in d.candidates)
        if not learnable:
            return
        score = pending.feedback.score if pending.feedback is not None else None
        reward = compute_reward(
            d,
            _objective_of(d),
            self.config,
            feedback_score=score,
            outcome=pending.outcome,
            quality_prior=self.quality.mean(target),
        )
        self.policy.update(d, reward)
        if score is not None:
            self.quality.add(target, score)

    def _learns_expired(self, pending: _Pending) -> bool:
        return (
            not pending.needs_feedback
            or self.config.past_window_policy is PastWindowPolicy.LATENCY_COST_ONLY
        )

    def _settle_expired(
        self, event_id: str, pending: _Pending, *, decision: Decision | None = None
    ) -> None:
        self._settle(event_id, pending, learn=self._learns_expired(pending), decision=decision)

    def _compact(self, now: datetime) -> list[Decision]:
        """Drop the decisions of events pending longer than ``pending_in_memory_s`` from
        their records (the warehouse holds them) and return them. Lock held; the caller
        frees them after releasing it (see ``_free``)."""
        dropped: list[Decision] = []
        horizon = now - timedelta(seconds=self.config.pending_in_memory_s)
        whole = self._whole
        while whole:
            pending = self._pending.get(whole[0])
            if pending is not None and pending.created_at > horizon:
                break
            whole.popleft()
            # past its window, an event is settled in this sweep: no use reading it back
            if pending is not None and pending.decision is not None and (
                now - pending.created_at <= self._window
            ):
                dropped.append(pending.decision)
                pending.decision = None
        return dropped

    @staticmethod
    def _free(dropped: list[Decision]) -> None:
        """Free decisions a few hundred at a time: one ``del`` runs without a chance to hand
        the GIL over, and 5,000 decisions at once took 7-9 ms from the event loop here (256 at
        a time, 0.4 ms)."""
        while dropped:
            del dropped[-256:]

    def expire(self, now: datetime | None = None) -> int:
        """Settle every pending event whose feedback window has closed; returns how many.
        Also drops from memory the decisions pending longer than ``pending_in_memory_s``."""
        now = now or self.clock()
        with self._lock:
            dropped = self._compact(now)
            # pending events are kept in the order they were decided: stop at the first one
            # still inside its window instead of walking every pending event under the lock
            expired: list[tuple[str, _Pending]] = []
            for event_id, pending in self._pending.items():
                if now - pending.created_at <= self._window:
                    break
                expired.append((event_id, pending))
            missing = [p for _, p in expired if p.decision is None and self._learns_expired(p)]
        self._free(dropped)
        # read the dropped decisions back in one query, outside the lock
        found: dict[str, Decision] = {}
        if missing:
            start = min(p.created_at for p in missing)
            end = max(p.created_at for p in missing)
            found = {d.event_id: d for d in self.warehouse.decisions_between(start, end)}
        count = 0
        with self._lock:
            for event_id, pending in expired:
                if event_id not in self._pending:  # settled meanwhile (late feedback)
                    continue
                self._settle_expired(event_id, pending, decision=found.get(event_id))
                count += 1
            # settled events are kept in the order they settled, which follows the order they
            # were decided to within one window: prune from the front, stop at the first young
            # one. Past its window an event needs no memory: feedback for it is too late
            # either way, and the warehouse answers for events no longer listed here.
            horizon = now - self._window - timedelta(seconds=2 * SWEEP_INTERVAL_S)
            old = []
            for event_id, (created_at, _, _) in self._settled.items():
                if created_at >= horizon:
                    break
                old.append(event_id)
            for event_id in old:
                del self._settled[event_id]
        return count

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def pending_whole_count(self) -> int:
        """Pending events whose decision is still held in memory (see ``_compact``)."""
        return sum(1 for p in self._pending.values() if p.decision is not None)

    # -- persistence ---------------------------------------------------------------------
    def checkpoint(self) -> Path:
        """Save the policy atomically, then mark what it learned in the warehouse."""
        path = self.config.checkpoint_path
        # one checkpoint at a time (a newer snapshot is never overwritten by an older one);
        # routing waits only for the in-memory snapshot, not for the fsync'ed file
        with self._checkpointing:
            with self._lock:
                ids = list(self._since_checkpoint)
                first = next(iter(self._pending.values()), None)  # decided first: the oldest
                oldest = first.created_at if first is not None else None
                extra: dict[str, object] = {
                    "learned_ids": ids,
                    "oldest_pending_at": (oldest or self.clock()).isoformat(),
                    "quality": self.quality.to_dict(),
                }
                header, payload = self.policy.snapshot(extra)
                self._since_checkpoint = []
            try:
                write_checkpoint(path, header, payload)
            except BaseException:
                with self._lock:  # not saved: the next checkpoint must list them again
                    self._since_checkpoint[:0] = ids
                raise
            if ids:
                self.warehouse.mark_learned(ids)
        self.warehouse.flush()
        return path

    def recover(self) -> RecoveryReport:
        """Restore the checkpoint (if any) and replay the decisions logged after it."""
        path = self.config.checkpoint_path
        restored = Path(path).exists()
        since = EPOCH
        in_model: set[str] = set()
        if restored:
            policy = Policy.load(path, **self._load_overrides())
            extra = Policy.read_extra(path)
            with self._lock:
                self.policy.close()
                self.policy = policy
                quality = extra.get("quality")
                if isinstance(quality, dict):
                    self.quality = QualityMeans.from_dict(quality)
            ids = extra.get("learned_ids")
            in_model = {str(i) for i in ids} if isinstance(ids, list) else set()
            oldest = extra.get("oldest_pending_at")
            if isinstance(oldest, str):
                since = datetime.fromisoformat(oldest)
        decisions = self.warehouse.decisions_since(since, unlearned_only=True)
        feedback, outcomes = self._joined(since)
        now = self.clock()
        relearned = 0
        with self._lock:
            for event_id in in_model:
                self._since_checkpoint.append(event_id)
            for d in decisions:
                if d.event_id in in_model or d.event_id in self._settled:
                    continue
                pending = _pending(d, _objective_of(d).needs_feedback)
                self._pending[d.event_id] = pending
                self._whole.append(d.event_id)
                # only feedback accepted within the window is ever stored
                pending.feedback = feedback.get(d.event_id)
                pending.outcome = outcomes.get(d.event_id)
                if pending.feedback is not None or (
                    pending.outcome is not None and not pending.needs_feedback
                ):
                    self._settle(d.event_id, pending, learn=True)
                    relearned += 1
                elif now - d.created_at > self._window:
                    self._settle_expired(d.event_id, pending)
                    relearned += 1
            report = RecoveryReport(restored, len(decisions), relearned, len(self._pending))
        self.checkpoint()
        log.info("bandit recovery: %s", report)
        return report

    def rewarded_decisions(self, since: datetime = EPOCH) -> list[tuple[Decision, float]]:
        """Logged decisions since ``since`` with the reward each earned (for
        ``bandit.ope.evaluate``): those with feedback, or with an outcome when their objective
        has no quality weight. Rewards use each decision's own objective."""
        decisions = self.warehouse.decisions_since(since, unlearned_only=False)
        feedback, outcomes = self._joined(since)
        out: list[tuple[Decision, float]] = []
        for d in decisions:
            objective = _objective_of(d)
            fb = feedback.get(d.event_id)
            outcome = outcomes.get(d.event_id)
            if fb is None and (outcome is None or objective.needs_feedback):
                continue
            reward = compute_reward(
                d,
                objective,
                self.config,
                feedback_score=fb.score if fb is not None else None,
                outcome=outcome,
                quality_prior=self.quality.mean(labelled_action(d)),
            )
            out.append((d, reward.value))
        return out

    def _load_overrides(self) -> dict[str, object]:
        return {"config": self.config} if isinstance(self.policy, VWPolicy | TrainedPolicy) else {}

    def swap_policy(self, policy: Policy) -> Path:
        """Route with ``policy`` from now on (e.g. a trained model), without a restart.

        Decisions still pending are learned by the new policy when their feedback arrives.
        The new policy is checkpointed at once, so a restart keeps it; the old one is closed.
        Returns the checkpoint path."""
        with self._lock:
            old, self.policy = self.policy, policy
        old.close()
        log.info("router policy switched to %s", policy.version)
        return self.checkpoint()

    def _joined(self, since: datetime) -> tuple[dict[str, Feedback], dict[str, ProbeResult]]:
        """First feedback and first traffic outcome of every event decided since ``since``."""
        feedback: dict[str, Feedback] = {}
        rows = self.warehouse.query(
            "SELECT f.event_id, f.score, f.comment, f.received_at FROM feedback AS f "
            "JOIN decisions AS d ON d.event_id = f.event_id WHERE d.created_at >= ? "
            "ORDER BY f.received_at",
            [since],
        )
        for event_id, score, comment, received_at in rows:
            feedback.setdefault(
                str(event_id),
                Feedback(
                    event_id=str(event_id),
                    score=float(score),  # type: ignore[arg-type]
                    comment=comment,  # type: ignore[arg-type]
                    received_at=received_at,  # type: ignore[arg-type]
                ),
            )
        names = [name for name, _ in PROBE_COLUMNS]
        rows = self.warehouse.query(
            f"SELECT {', '.join('p.' + n for n in names)} FROM probes AS p "
            "JOIN decisions AS d ON d.event_id = p.event_id "
            "WHERE d.created_at >= ? AND p.source = 'traffic' ORDER BY p.started_at",
            [since],
        )
        outcomes: dict[str, ProbeResult] = {}
        for row in rows:
            data = {k: v for k, v in zip(names, row, strict=True) if v is not None}
            result = ProbeResult.model_validate(data)
            if result.event_id is not None:
                outcomes.setdefault(result.event_id, result)
        return feedback, outcomes

    # -- async lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Recover, then checkpoint every ``checkpoint_interval_s`` and expire windows."""
        await asyncio.to_thread(self.recover)
        self._task = asyncio.create_task(self._maintain(), name="bandit-maintenance")

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + self.config.checkpoint_interval_s
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL_S, self.config.checkpoint_interval_s))
            try:
                await asyncio.to_thread(self.expire)
                if loop.time() >= next_checkpoint:
                    await asyncio.to_thread(self.checkpoint)
                    next_checkpoint = loop.time() + self.config.checkpoint_interval_s
            except Exception:  # keep maintaining; the next round retries
                log.exception("bandit maintenance failed")

    async def aclose(self) -> None:
        """Stop maintenance, write a final checkpoint, release the policy."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Write a final checkpoint and release the policy (blocking)."""
        try:
            self.checkpoint()
        finally:
            self.policy.close()

    async def aroute(self, request: RouteRequest) -> RouteResult:
        return await asyncio.to_thread(self.route, request)

    async def arecord_outcome(self, result: ProbeResult) -> OutcomeStatus:
        return await asyncio.to_thread(self.record_outcome, result)

    async def arecord_feedback(self, feedback: Feedback) -> FeedbackStatus:
        return await asyncio.to_thread(self.record_feedback, feedback)
