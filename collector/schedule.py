"""Continuous probing: one APScheduler interval job per endpoint.

Every endpoint gets an ``IntervalTrigger`` job (``interval_s`` with ``jitter_s``), first fires
spread evenly over one interval so that a large catalog does not start in a burst. A job never
overlaps itself (``max_instances=1`` plus an in-flight set), all probes share one concurrency
limit, and :class:`collector.manners.Manners` skips endpoints that are paused or over budget.
Every result, failure or not, goes to the ``sink`` (the warehouse's ``add_probe``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import aiohttp
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collector.catalog import ProbePromptSpec
from collector.config import CollectorConfig
from collector.manners import Manners
from collector.probe import ProbePrompt, ProbeTimeouts, probe_endpoint
from warehouse.models import Endpoint, ProbeResult

log = logging.getLogger(__name__)

ProbeSink = Callable[[ProbeResult], None]
LAG_SAMPLES = 100_000


class Collector:
    """Probes every endpoint on a schedule and hands each result to ``sink``.

    >>> collector = Collector(catalog.endpoints, catalog.probe_prompts,  # doctest: +SKIP
    ...                       config=CollectorConfig(), session=session, sink=wh.add_probe)
    >>> await collector.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        prompts: Sequence[ProbePromptSpec],
        *,
        config: CollectorConfig,
        session: aiohttp.ClientSession,
        sink: ProbeSink,
        api_keys: Mapping[str, str] | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not endpoints:
            raise ValueError("Collector needs at least one endpoint")
        if not prompts:
            raise ValueError("Collector needs at least one probe prompt")
        self.endpoints = {ep.id: ep for ep in endpoints}
        self.prompts = tuple(prompts)
        self.config = config
        self.session = session
        self.sink = sink
        self.api_keys = dict(api_keys or {})
        self.seed = seed
        self.clock = clock
        self.manners = Manners(config, clock=clock)
        self.timeouts = ProbeTimeouts(
            connect_s=config.connect_timeout_s,
            ttft_s=config.ttft_timeout_s,
            total_s=config.total_timeout_s,
        )
        # Jitter never exceeds half the interval, so a short interval keeps its cadence.
        self.jitter_s = min(config.jitter_s, config.interval_s / 2)
        self._rng = random.Random(seed)
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[ProbeResult | None]] = set()
        self._prompt_index: Counter[str] = Counter()
        self._scheduled: dict[str, datetime] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self.lags_s: deque[float] = deque(maxlen=LAG_SAMPLES)
        self.fired = 0
        self.skipped: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Add one job per endpoint and start the scheduler on the running loop."""
        if self._scheduler is not None:
            raise RuntimeError("collector already started")
        sched = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        sched.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        now = datetime.now(UTC)
        interval = self.config.interval_s
        for i, ep_id in enumerate(sorted(self.endpoints)):
            # Spread first fires evenly over one interval, in a seeded order.
            offset = interval * ((i + self._rng.random()) / len(self.endpoints))
            sched.add_job(
                self._job,
                IntervalTrigger(
                    seconds=interval,
                    jitter=self.jitter_s or None,
                    start_date=now + timedelta(seconds=offset),
                    timezone=UTC,
                ),
                args=(ep_id,),
                id=ep_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, round(self.config.misfire_grace_s)),
            )
        sched.start()
        self._scheduler = sched

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop scheduling and wait (bounded) for probes in flight; they still reach the sink."""
        sched, self._scheduler = self._scheduler, None
        if sched is not None:
            sched.pause()  # no new probes; the executor's shutdown would cancel running ones
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
        if sched is not None:
            sched.shutdown(wait=False)

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            self._scheduled[event.job_id] = event.scheduled_run_times[-1]

    async def _job(self, endpoint_id: str) -> None:
        scheduled = self._scheduled.pop(endpoint_id, None)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.probe(endpoint_id, scheduled_at=scheduled)
        finally:
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

    # -- probing ---------------------------------------------------------------------------

    async def probe(
        self, endpoint_id: str, *, scheduled_at: datetime | None = None, force: bool = False
    ) -> ProbeResult | None:
        """Probe one endpoint now unless it is busy, paused or over budget (``force`` ignores
        pauses and budget). Returns the result, or None when skipped."""
        endpoint = self.endpoints[endpoint_id]
        if endpoint_id in self._in_flight:
            self.skipped["in_flight"] += 1
            return None
        if not force:
            reason = self.manners.skip_reason(endpoint)
            if reason is not None:
                self.skipped["paused" if reason.startswith("paused") else "budget"] += 1
                log.debug("skip %s: %s", endpoint_id, reason)
                return None
        self._in_flight.add(endpoint_id)
        try:
            async with self._semaphore:
                if scheduled_at is not None:
                    self.lags_s.append((datetime.now(UTC) - scheduled_at).total_seconds())
                self.manners.started(endpoint_id)
                self.fired += 1
                result = await probe_endpoint(
                    self.session,
                    endpoint,
                    self._next_prompt(endpoint_id),
                    max_tokens=self.manners.max_tokens_for(endpoint),
                    api_key=self._api_key(endpoint),
                    timeouts=self.timeouts,
                )
        finally:
            self._in_flight.discard(endpoint_id)
        self.manners.record(result)
        self.outcomes[result.outcome.value] += 1
        self.sink(result)
        return result

    async def run_round(self, *, force: bool = True) -> list[ProbeResult]:
        """Probe every endpoint once, concurrently (under the limit), and return the results."""
        tasks = [asyncio.create_task(self.probe(ep, force=force)) for ep in sorted(self.endpoints)]
        self._tasks.update(tasks)
        try:
            results = await asyncio.gather(*tasks)
        finally:
            self._tasks.difference_update(tasks)
        return [r for r in results if r is not None]

    def _next_prompt(self, endpoint_id: str) -> ProbePrompt:
        i = self._prompt_index[endpoint_id]
        self._prompt_index[endpoint_id] += 1
        spec = self.prompts[i % len(self.prompts)]
        return ProbePrompt(name=spec.name, messages=[{"role": "user", "content": spec.text}])

    def _api_key(self, endpoint: Endpoint) -> str | None:
        if endpoint.api_key_env is None:
            return None
        return self.api_keys.get(endpoint.api_key_env) or os.environ.get(endpoint.api_key_env)

    def lag_p99_s(self) -> float | None:
        if not self.lags_s:
            return None
        ordered = sorted(self.lags_s)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
