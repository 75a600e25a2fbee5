"""Local wall-clock hour and weekday of UTC instants in an IANA zone, vectorised with numpy.

``utc_offset_segments`` finds a zone's UTC offsets over a time range with ``zoneinfo`` (a few
dozen calls, bisecting each transition to the second); ``local_week_hour`` then maps millions
of UTC epoch minutes to local ``dow * 24 + hour`` with one ``searchsorted``. A wall-clock hour
that occurs twice (fall back) collects both, the skipped hour (spring forward) collects
nothing, 30- and 45-minute offsets are exact, and offsets in seconds (local mean time before
the 1900s) too. Used by the time-of-day report (``warehouse.tod``).

>>> from zoneinfo import ZoneInfo
>>> import numpy as np
>>> minutes = np.array([0, 60 * 24 * 4 + 13 * 60])  # 1970-01-01 00:00 and 01-05 13:00 UTC
>>> local_hour_dow(minutes, utc_offset_segments(ZoneInfo("Asia/Kolkata"), 0, 10**6))
(array([ 5, 18], dtype=uint8), array([3, 0], dtype=uint8))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

_SCAN_STEP_S = 6 * 3600  # offsets are sampled this often, transitions then bisected to the second


def utc_offset_segments(zone: ZoneInfo, lo_s: int, hi_s: int) -> list[tuple[int, int]]:
    """The UTC offsets of ``zone`` over ``[lo_s, hi_s]`` (epoch seconds).

    Returns ``[(start_s, offset_s), ...]`` sorted by start; the first start is ``lo_s`` and each
    offset holds until the next start. Offsets are sampled every 6 hours and every change is
    bisected to the second (two transitions less than 6 hours apart do not occur in tzdata).
    """

    def offset(t: int) -> int:
        delta = datetime.fromtimestamp(t, zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    segments = [(lo_s, offset(lo_s))]
    t = lo_s
    while t < hi_s:
        nxt = min(t + _SCAN_STEP_S, hi_s)
        current = segments[-1][1]
        if offset(nxt) == current:
            t = nxt
            continue
        a, b = t, nxt  # offset(a) == current != offset(b)
        while b - a > 1:
            mid = (a + b) // 2
            if offset(mid) == current:
                a = mid
            else:
                b = mid
        segments.append((b, offset(b)))
        t = b
    return segments


def local_week_hour(
    epoch_minutes: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    segments: Sequence[tuple[int, int]],
) -> npt.NDArray[np.uint8]:
    """Local ``dow * 24 + hour`` (0 = Monday 00h ... 167 = Sunday 23h) of UTC epoch minutes.

    ``segments`` come from ``utc_offset_segments`` and must start at or before every instant.
    """
    starts = np.fromiter((st for st, _ in segments), dtype=np.int64, count=len(segments))
    offs = np.fromiter((o for _, o in segments), dtype=np.int64, count=len(segments))
    if (offs % 60).any() or (starts[1:] % 60).any():  # offsets in seconds (local mean time)
        utc_s = epoch_minutes.astype(np.int64) * 60
        local_hours = (utc_s + offs[np.searchsorted(starts, utc_s, side="right") - 1]) // 3600
    else:  # whole minutes: int32 arithmetic is enough until the year 6000 and faster
        minutes = epoch_minutes.astype(np.int32, copy=False)
        off_min = (offs // 60).astype(np.int32)
        if offs.size == 1:
            local_hours = (minutes + off_min[0]) // np.int32(60)
        else:
            index = np.searchsorted((starts // 60).astype(np.int32), minutes, side="right") - 1
            local_hours = (minutes + off_min[index]) // np.int32(60)
    return ((local_hours + 72) % 168).astype(np.uint8)  # epoch hour 0: a Thursday, 00h


def local_hour_dow(
    epoch_minutes: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    segments: Sequence[tuple[int, int]],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Local hour (0-23) and day of week (0 = Monday) of UTC epoch minutes."""
    week_hour = local_week_hour(epoch_minutes, segments)
    return week_hour % 24, week_hour // 24
