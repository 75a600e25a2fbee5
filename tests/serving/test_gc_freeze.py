"""GcFreezer: long-lived objects leave the collections; a full collection comes when due."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from serving.gc_freeze import GcFreezer
from serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_then_full_collection_reclaims_frozen_cycles() -> None:
    now = [0.0]
    freezer = GcFreezer(5.0, 60.0, clock=lambda: now[0])
    garbage = Cycle()
    ref = weakref.ref(garbage)
    now[0] = 5.0
    assert freezer.tick() == "freeze"
    assert gc.get_freeze_count() > 0  # everything alive, the cycle too, is frozen
    del garbage  # now a frozen cycle: ordinary collections do not look at it
    gc.collect()
    assert ref() is not None
    now[0] = 61.0
    assert freezer.tick() == "full"  # unfreeze, collect, freeze again
    assert ref() is None
    assert freezer.full_collections == 1 and freezer.freezes == 1
    assert gc.get_freeze_count() > 0


def test_frozen_objects_leave_ordinary_collections() -> None:
    freezer = GcFreezer(5.0, 3600.0, clock=lambda: 0.0)
    kept = [{"k": [i]} for i in range(2000)]  # tracked, long-lived
    freezer.tick()
    tracked = len(gc.get_objects())
    assert tracked < 2000  # the frozen ones are not in any generation collections walk
    assert len(kept) == 2000


async def test_run_ticks_and_unfreezes_when_cancelled() -> None:
    freezer = GcFreezer(0.01, 3600.0)
    before = gc.get_threshold()
    task = asyncio.create_task(freezer.run())
    await asyncio.sleep(0.1)
    assert freezer.freezes >= 2 and gc.get_freeze_count() > 0
    # only the youngest generation is collected automatically while it runs
    assert gc.get_threshold()[0] == before[0] and min(gc.get_threshold()[1:]) > 10**9
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="freeze_every_s"):
        GcFreezer(0.0, 10.0)
    with pytest.raises(ValueError, match="full_every_s"):
        GcFreezer(10.0, 5.0)
    with pytest.raises(ValueError, match="gc_full_collect_interval_s"):
        ServingSettings(gc_freeze_interval_s=10.0, gc_full_collect_interval_s=5.0)
