"""Retention: delete raw probe rows older than a cutoff; their minutes stay in ``probes_minute``.

Every closed minute is rolled up continuously (``warehouse.rollup``), so retention only deletes
raw rows: first it lets the rollup catch up to the cutoff (if it lags behind), then it deletes
the raw rows before the cutoff, floored to a whole UTC minute and never past the rollup
watermark, one UTC day per transaction, and advances the watermark's ``raw_from`` with each.
``probe_minutes`` gives the same answer before, during and after. Running it again finds
nothing to do.

A raw row that arrives later for a minute before ``raw_from`` cannot be aggregated with its
deleted neighbours; the writer merges it into its minute instead (counts and sums exact,
percentiles an ``n_ok``-weighted mean: the only approximation, and only for such very late
rows) and deletes it like them.

Runs on the writer thread, as steps of ``Writer.submit_steps``: a flush never waits for more
than one step.
"""

from __future__ import annotations

from collections.abc import Generator

from warehouse.rollup import DAY_US, Changes, MinuteRollup, floor_minute, ts


def retention_steps(rollup: MinuteRollup, cutoff_us: int) -> Generator[Changes, None, int]:
    """Delete raw rows started before ``cutoff_us`` (epoch microseconds, floored to the
    minute). Yields each step's changes (for the lake); returns the raw rows deleted."""
    cutoff = floor_minute(cutoff_us)
    mark = rollup.mark
    while mark.rolled_to is None or mark.rolled_to < min(cutoff, rollup.target()):
        changes = rollup.step()
        if changes is None:
            break
        yield changes
    if mark.rolled_to is None:
        return 0  # no raw rows at all
    limit = min(cutoff, mark.rolled_to)
    if mark.raw_from is not None and mark.raw_from >= limit:
        return 0
    con = rollup.con
    row = con.execute(
        f"SELECT epoch_us(min(started_at)) FROM probes WHERE started_at < {ts(limit)}"
    ).fetchone()
    lo = int(row[0]) if row is not None and row[0] is not None else limit
    deleted = 0
    while True:
        end = min(limit, (lo // DAY_US + 1) * DAY_US)
        changes = Changes()
        raw_from = max(end, mark.raw_from if mark.raw_from is not None else end)
        con.execute("BEGIN TRANSACTION")
        try:
            out = con.execute(f"DELETE FROM probes WHERE started_at < {ts(end)}").fetchone()
            changes.rows = int(out[0]) if out is not None else 0
            rollup.write_mark(mark.rolled_to, raw_from)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        mark.raw_from = raw_from
        deleted += changes.rows
        if changes.rows:
            changes.dirty.update(("probes", d) for d in range(lo // DAY_US, end // DAY_US + 1))
        changes.dirty.add(("rollup_watermark", 0))
        yield changes
        if end >= limit:
            return deleted
        lo = end
