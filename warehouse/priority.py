"""Idle CPU priority for the warehouse's background threads (Linux's ``SCHED_IDLE``).

The writer and the lake do their work in bursts next to a busy event loop: a batch insert, a
checkpoint or a Parquet copy keeps its core for milliseconds to a tenth of a second. When the
event loop's thread woke meanwhile (a request came in, or the writer handed it the GIL), the
kernel often queued it on the writer's core, and it waited there for the next scheduler tick
(4 ms at HZ=250) while the other core sat idle: ``perf sched timehist`` under
``tests/bench/route_load.py`` showed the event loop runnable but waiting 3-5 ms, 28 times in
10 s, behind the writer or the lake thread, and those waits made most of /v1/route's p99. A
nice value does not help (a woken thread still waits out the running thread's time slice).
A thread under ``SCHED_IDLE`` is preempted at once by any other thread that wakes on its core,
and a core that runs only such threads counts as idle where the kernel places a waking thread.

The price: a thread under ``SCHED_IDLE`` gets almost no CPU while the cores are saturated, and
an unprivileged thread cannot leave that policy again. So the background threads hand work
that must not wait (shutdown, a caller blocked on a flush, a write that fell behind) to
``Foreground``, one thread at normal priority. Threads that an idle thread starts inherit its
policy (DuckDB and Arrow start a few, for a moment, when the lake first writes).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def make_idle() -> bool:
    """Put the calling thread under ``SCHED_IDLE``; False where the OS lacks it or refuses."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:
        log.info("%s stays at normal CPU priority: SCHED_IDLE refused (%s)",
                 threading.current_thread().name, exc)
        return False
    return True


class Foreground:
    """One thread at normal CPU priority that runs, one at a time, the work idle threads hand
    it. Create it on a thread at normal priority: a new thread inherits its creator's policy."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self.runs = 0  # pieces of work done here
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            work, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(work())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)
            self.runs += 1

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work()`` on this thread; block until it is done and return its result (or
        raise its exception)."""
        if not self._thread.is_alive():
            raise RuntimeError("the foreground thread has stopped")
        fut: Future[T] = Future()
        self._queue.put((work, fut))  # type: ignore[arg-type]
        return fut.result()

    def close(self) -> None:
        """End the thread after the work already handed over. Idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
