"""Garbage collection for a router that keeps many long-lived objects: freeze them.

A sidecar routing 1,000 requests/s keeps every decision in memory until its feedback window
closes (an hour by default), plus caches of recent decisions. Python's full collections walk
all of them, and they come more often while the heap grows: measured on
``tests/bench/route_load.py``, pauses of 100 to 430 ms every few seconds, which were the p99.

``GcFreezer`` calls ``gc.freeze()`` every ``freeze_every_s``: whatever is alive then moves to
the permanent generation, which collections skip, so a collection only walks what was made
since. Decisions, live stats and models are freed by reference counting as usual when they
are dropped; only reference *cycles* that were frozen while alive wait for the next full
collection, which ``GcFreezer`` runs every ``full_every_s`` (``gc.unfreeze()``, one
``gc.collect()``, freeze again): one long pause per interval instead of one every few
seconds. The figures before and after are in ``tests/bench/route_load.py``'s history.

While it runs, only the youngest generation is collected automatically. Every decision leaves
~10 tracked objects that live until its feedback window closes; each generation-1 collection
walked the survivors of ten generation-0 collections, 3 to 5 ms of a loop serving 1,000
requests/s, every 0.7 s (measured with ``gc.callbacks`` in the sidecar). Survivors of the
young collections now wait, unwalked, for the next freeze. Cycles that die after surviving a
young collection wait for the full collection: ~800 objects over a 40-s ``route_load`` run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
#: a generation-1 threshold no run reaches: older generations wait for ``tick``
OLDER_NEVER = 2**31 - 1


class GcFreezer:
    """Freeze the heap periodically; unfreeze and collect fully now and then."""

    def __init__(self, freeze_every_s: float, full_every_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not freeze_every_s > 0:
            raise ValueError(f"freeze_every_s must be > 0, got {freeze_every_s!r}")
        if not full_every_s >= freeze_every_s:
            raise ValueError(f"full_every_s must be >= freeze_every_s ({freeze_every_s}), "
                             f"got {full_every_s!r}")
        self.freeze_every_s = freeze_every_s
        self.full_every_s = full_every_s
        self.clock = clock
        self._last_full = clock()
        self.freezes = 0
        self.full_collections = 0

    def tick(self) -> str:
        """One step: ``"full"`` (unfreeze, collect, freeze) when due, else ``"freeze"``."""
        now = self.clock()
        if now - self._last_full >= self.full_every_s:
            gc.unfreeze()
            started = time.perf_counter()
            found = gc.collect()
            self._last_full = now
            self.full_collections += 1
            log.info("full garbage collection: %d objects freed in %.0f ms", found,
                     (time.perf_counter() - started) * 1000)
            gc.freeze()
            return "full"
        gc.freeze()
        self.freezes += 1
        return "freeze"

    async def run(self) -> None:
        """Tick every ``freeze_every_s`` until cancelled, with automatic collections of the
        youngest generation only; unfreezes and restores the thresholds on the way out."""
        thresholds = gc.get_threshold()
        gc.set_threshold(thresholds[0], OLDER_NEVER, OLDER_NEVER)
        try:
            while True:
                await asyncio.sleep(self.freeze_every_s)
                self.tick()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
