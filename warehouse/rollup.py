"""The continuous minute rollup: ``probes_minute`` holds every closed minute, kept current.

Every method runs on the warehouse's writer thread, on the write connection, so a rollup step
and a batch of new rows never interleave. Three things change ``probes_minute``:

- **Rolling forward** (``step``). A minute is closed once its end is ``grace_s`` in the past.
  Each step aggregates the raw rows of the closed minutes from the watermark ``rolled_to`` on,
  with ``warehouse.schema.MINUTE_AGG_SQL``, appends them and advances the watermark, in one
  transaction. A step covers at most about ``slice_rows`` raw rows (cut on hour, or for a busy
  hour minute, boundaries of a histogram), so catching up on a large file runs as many short
  steps between the writer's flushes. In steady state a step runs once a minute.
- **Late rows** (``fold_late``, inside the transaction that writes them). A row for a minute
  before the watermark (a traffic outcome reported late, history seeded after live probes)
  makes its (endpoint, source, minute) keys stale. Keys whose raw rows are all retained
  (minute at or after ``raw_from``) are aggregated again from ``probes``: delete, insert, one
  set-based statement each, whatever the size of the batch. Keys older than ``raw_from``
  (their raw rows were deleted by retention) are merged instead
  (``warehouse.schema.minute_merge_sql``: counts and sums exact, percentiles an
  ``n_ok``-weighted mean) and the late raw rows are deleted like their neighbours.
- **Retention** (``warehouse.retention``) deletes raw rows before a cutoff, whose minutes are in
  ``probes_minute`` already, and advances ``raw_from``.

Invariants after every transaction: every minute before ``rolled_to`` is in ``probes_minute``
and no raw row from ``rolled_to`` on is; no raw row is older than ``raw_from``;
``raw_from <= rolled_to``. So ``probe_minutes`` (rolled-up minutes before the watermark plus raw
rows from it on) equals an aggregation of all raw rows, except for the merged percentiles of
minutes that received rows after retention deleted their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from warehouse.schema import (
    MINUTE_COLUMNS,
    MINUTE_EXPR,
    MINUTE_US,
    minute_agg_sql,
    minute_merge_sql,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000
_COLS = ", ".join(MINUTE_COLUMNS)


def ts(us: int) -> str:
    """SQL literal of an instant given in epoch microseconds."""
    return f"make_timestamptz({int(us)})"


def floor_minute(us: int) -> int:
    """Epoch microseconds floored to the whole UTC minute."""
    return us - us % MINUTE_US


def epoch_us(t: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact, no float rounding)."""
    delta = t - datetime.fromtimestamp(0, t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class Watermark:
    """``rolled_to``: minutes before it are rolled up; ``raw_from``: raw rows before it are
    deleted. Epoch microseconds; None when nothing was rolled up (deleted) yet."""

    rolled_to: int | None = None
    raw_from: int | None = None


@dataclass
class Changes:
    """What a rollup transaction changed, for the Parquet lake: rows appended to
    ``probes_minute`` and (table, UTC day) partitions whose rows were replaced or deleted."""

    appended: pa.Table | None = None
    dirty: set[tuple[str, int]] = field(default_factory=set)
    rows: int = 0  # raw rows aggregated (step), or deleted (retention)


def read_watermark(con: duckdb.DuckDBPyConnection) -> Watermark:
    row = con.execute(
        "SELECT epoch_us(max(rolled_to)), epoch_us(max(raw_from)) FROM rollup_watermark"
    ).fetchone()
    if row is None:
        return Watermark()
    return Watermark(
        None if row[0] is None else int(row[0]), None if row[1] is None else int(row[1])
    )


class MinuteRollup:
    """State and steps of the continuous rollup (see the module docstring).

    ``returning=True`` hands the appended minute rows back (``Changes.appended``) for the lake.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        now: Callable[[], datetime],
        grace_s: float,
        slice_rows: int,
        returning: bool = False,
    ) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        if slice_rows < 1:
            raise ValueError(f"slice_rows must be >= 1, got {slice_rows}")
        self._con = con
        self._now = now
        self.grace_us = int(grace_s * 1_000_000)
        self.slice_rows = slice_rows
        self.returning = returning
        self.mark = read_watermark(con)
        self._maybe_rows = True  # before the first rollup: are there raw rows to look at?
        self._plan: list[tuple[int, int, int]] = []  # (start, end, rows) ahead of the mark
        self._plan_key: int | None = None  # the target the plan was made for
        self.steps = 0  # slices rolled up
        self.rows_rolled = 0  # raw rows they covered

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The write connection (the writer thread's)."""
        return self._con

    # -- the watermark -------------------------------------------------------------------
    def target(self) -> int:
        """The watermark the rollup aims at: every minute before it ended ``grace_s`` ago."""
        return floor_minute(epoch_us(self._now()) - self.grace_us)

    @property
    def has_work(self) -> bool:
        """Whether a closed minute is waiting (cheap: no query)."""
        if self.mark.rolled_to is None:
            return self._maybe_rows
        return self.mark.rolled_to < self.target()

    def note_rows(self) -> None:
        """Raw rows were written: worth looking for a first minute to roll up."""
        self._maybe_rows = True

    def write_mark(self, rolled_to: int | None, raw_from: int | None) -> None:
        """Store the watermark (call it inside the transaction that moved it)."""
        # the table always holds exactly one row
        self._con.execute("DELETE FROM rollup_watermark")
        self._con.execute(
            "INSERT INTO rollup_watermark VALUES (?, ?, ?)",
            [
                from_epoch_us(rolled_to),
                from_epoch_us(raw_from),
                self._now(),
            ],
        )

    # -- rolling forward -----------------------------------------------------------------
    def step(self) -> Changes | None:
        """Roll up the next slice of closed minutes; None when there was nothing to do."""
        con = self._con
        target = self.target()
        start = self.mark.rolled_to
        if start is None:
            row = con.execute("SELECT epoch_us(min(started_at)) FROM probes").fetchone()
            if row is None or row[0] is None:
                self._maybe_rows = False
                return None
            start = floor_minute(int(row[0]))
        if start >= target:
            if self.mark.rolled_to is None:  # first rows, none closed yet: start the mark
                self._commit_mark(start)
            return None
        end, covered = self._slice_end(start, target)
        sql = (
            f"INSERT INTO probes_minute ({_COLS}) SELECT {_COLS} FROM "
            f"({minute_agg_sql(where=f'started_at >= {ts(start)} AND started_at < {ts(end)}')})"
        )
        changes = Changes()
        con.execute("BEGIN TRANSACTION")
        try:
            if self.returning:
                rel = con.sql(sql + " RETURNING *")
                changes.appended = rel.to_arrow_table() if rel is not None else None
            else:
                con.execute(sql)
            self.write_mark(end, self.mark.raw_from)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.mark.rolled_to = end
        changes.dirty.add(("rollup_watermark", 0))
        changes.rows = covered
        self.steps += 1
        self.rows_rolled += covered
        return changes

    def _commit_mark(self, rolled_to: int) -> None:
        self._con.execute("BEGIN TRANSACTION")
        try:
            self.write_mark(rolled_to, self.mark.raw_from)
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self.mark.rolled_to = rolled_to

    def _histogram(self, lo: int, hi: int, bucket_us: int) -> list[tuple[int, int, int]]:
        """(bucket start, bucket end, raw rows) of the raw rows in [lo, hi), clipped to it."""
        rows = self._con.execute(
            f"SELECT epoch_us(started_at) // {bucket_us} AS b, count(*) FROM probes "
            f"WHERE started_at >= {ts(lo)} AND started_at < {ts(hi)} GROUP BY b ORDER BY b"
        ).fetchall()
        return [
            (max(int(b) * bucket_us, lo), min((int(b) + 1) * bucket_us, hi), int(n))
            for b, n in rows
        ]

    def _slice_end(self, start: int, target: int) -> tuple[int, int]:
        """End of the next slice and its raw rows: about ``slice_rows`` rows from ``start``,
        never past ``target``. The hour histogram is kept while catching up (one scan for many
        steps); a busy hour is cut by minutes."""
        if self._plan_key != target or not self._plan or self._plan[0][0] < start:
            self._plan = self._histogram(start, target, HOUR_US)
            self._plan_key = target
        plan = self._plan
        if not plan:
            return target, 0
        first_lo, first_hi, first_n = plan[0]
        if first_n > self.slice_rows and first_hi - first_lo > MINUTE_US:
            plan = self._histogram(first_lo, first_hi, MINUTE_US) + plan[1:]
        total = 0
        for i, (lo, hi, n) in enumerate(plan):
            if total and total + n > self.slice_rows and n > self.slice_rows:
                self._plan = plan[i:]  # stop before a busy bucket: it is cut by minutes next
                return lo, total
            total += n
            if total >= self.slice_rows:
                self._plan = plan[i + 1 :]
                return hi, total
        self._plan = []
        return target, total

    # -- late rows -----------------------------------------------------------------------
    def fold_late(self, batch: str, oldest_us: int) -> Changes | None:
        """Bring the minutes of ``batch``'s rows before the watermark up to date.

        Runs inside the transaction that has just inserted ``batch`` (a registered relation
        with the probe columns) into ``probes``. None when no row is late.
        """
        rolled_to = self.mark.rolled_to
        if rolled_to is None or oldest_us >= rolled_to:
            return None
        con = self._con
        # with nothing deleted yet, every late minute still has all its raw rows
        raw_from = self.mark.raw_from
        if raw_from is None:
            raw_from = floor_minute(oldest_us)
        changes = Changes()
        con.execute(
            "CREATE OR REPLACE TEMP TABLE late_keys AS SELECT DISTINCT endpoint_id AS k_e, "
            f"source AS k_s, {MINUTE_EXPR} AS k_m FROM {batch} "
            f"WHERE started_at < {ts(rolled_to)}"
        )
        span = con.execute(
            "SELECT epoch_us(min(k_m)), epoch_us(max(k_m)), count(*) FILTER (WHERE k_m < "
            f"{ts(raw_from)}) FROM late_keys"
        ).fetchone()
        assert span is not None
        lo, hi, merged = span
        if lo is not None and hi is not None and hi >= raw_from:
            # raw rows of these minutes are all there: aggregate them again
            lo = max(int(lo), raw_from)
            keep = f"k_m >= {ts(raw_from)}"
            con.execute(  # the minute range lets DuckDB skip other row groups
                "DELETE FROM probes_minute AS pm USING late_keys AS k WHERE "
                f"pm.endpoint_id = k.k_e AND pm.source = k.k_s AND pm.minute = k.k_m AND {keep} "
                f"AND pm.minute >= {ts(lo)} AND pm.minute <= {ts(int(hi))}"
            )
            stale = (
                f"(SELECT * FROM probes SEMI JOIN (SELECT * FROM late_keys WHERE {keep}) "
                f"ON endpoint_id = k_e AND source = k_s AND {MINUTE_EXPR} = k_m "
                f"WHERE started_at >= {ts(lo)} AND started_at < {ts(int(hi) + MINUTE_US)})"
            )
            con.execute(
                f"INSERT INTO probes_minute ({_COLS}) SELECT {_COLS} FROM "
                f"({minute_agg_sql(source=stale)})"
            )
        if merged:
            # raw rows of these minutes were deleted by retention: merge, then drop the rows
            con.execute(
                "CREATE OR REPLACE TEMP TABLE late_new AS "
                + minute_agg_sql(source=batch, where=f"started_at < {ts(raw_from)}")
            )
            merge = minute_merge_sql("late_new")
            con.execute(f"CREATE OR REPLACE TEMP TABLE late_merged AS {merge}")
            con.execute(
                "DELETE FROM probes_minute AS pm USING late_merged AS m WHERE pm.endpoint_id = "
                "m.endpoint_id AND pm.source = m.source AND pm.minute = m.minute"
            )
            con.execute(f"INSERT INTO probes_minute ({_COLS}) SELECT {_COLS} FROM late_merged")
            for (day,) in con.execute(
                f"SELECT DISTINCT epoch_us(started_at) // {DAY_US} FROM {batch} "
                f"WHERE started_at < {ts(raw_from)}"
            ).fetchall():
                changes.dirty.add(("probes", int(day)))
            con.execute(f"DELETE FROM probes WHERE started_at < {ts(raw_from)}")
            con.execute("DROP TABLE late_new")
            con.execute("DROP TABLE late_merged")
        for (day,) in con.execute(
            f"SELECT DISTINCT epoch_us(k_m) // {DAY_US} FROM late_keys"
        ).fetchall():
            changes.dirty.add(("probes_minute", int(day)))
        con.execute("DROP TABLE late_keys")
        return changes

    def catch_up_steps(self) -> Generator[Changes, None, int | None]:
        """Roll up every minute closed now, in steps; returns the watermark reached."""
        target = self.target()
        while self.mark.rolled_to is None or self.mark.rolled_to < target:
            changes = self.step()
            if changes is None:
                break
            yield changes
        return self.mark.rolled_to


def from_epoch_us(us: int | None) -> datetime | None:
    """The UTC instant of epoch microseconds (None stays None)."""
    return None if us is None else _EPOCH + timedelta(microseconds=us)
