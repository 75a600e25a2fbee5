"""A Parquet mirror of the warehouse, and a read-only DuckDB catalog of views over it.

DuckDB lets one process hold a database file, and no other process may open it, not even
read-only. Analysts therefore read a mirror instead, refreshed every ``snapshot_interval_s``:

    <stem>-lake/<table>/_schema.parquet                       zero rows: the table's columns
    <stem>-lake/<table>/date=YYYY-MM-DD/part-00000042.parquet  rows of that UTC date
    <stem>-lake/endpoints/part.parquet                         a small table, as one file
    <stem>-read.duckdb                                         views only, absolute paths

The lake has its own thread and its own cursor, so writing Parquet never delays the writer's
flushes. It works in cycles, each on one pinned snapshot of the database: the writer thread,
between two of its transactions, opens a read transaction on the lake's cursor and hands over
the rows it committed since the last cycle (``pin``). Those rows are exactly the committed rows
the mirror lacks, so the lake thread appends them as one new part per date, then rewrites the
stale date partitions from the same snapshot without losing or doubling a row, then commits the
read transaction. Appended parts are written to a ``.tmp`` name, then ``os.replace``d, so a
reader never sees a partial file; the small tables are written after the partitioned ones, so
a reader never sees a rollup watermark newer than the minutes it covers.

A date partition is rewritten as one part when it holds more than ``MAX_PARTS`` parts, when its
date is over, when the warehouse replaced or deleted some of its rows (rollup, retention) and
whenever its row count disagrees with the warehouse (at start, after a crash that lost a
snapshot). A rewrite renames the new part in before deleting the old ones: a query that lists
files in that instant may count a partition twice.

``duckdb -readonly var/switchyard-read.duckdb`` then sees ``probes``, ``probe_minutes``,
``v_hourly``, ``v_decisions`` ... as in the warehouse, at most about one snapshot interval old,
and cannot change the service's data.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.migrations import LATEST_VERSION, install_views
from warehouse.priority import Foreground, make_idle
from warehouse.schema import LAKE_TABLES, PARTITION_COLUMN

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
#: A date partition with more parts than this is compacted into one.
MAX_PARTS = 48
#: A cycle starts no new partition rewrite after this many seconds (its snapshot stays short).
CYCLE_REWRITE_BUDGET_S = 5.0
WHOLE_TABLES: tuple[str, ...] = tuple(t for t in LAKE_TABLES if t not in PARTITION_COLUMN)
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_DATE_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def lake_dir(db_path: Path) -> Path:
    """``<stem>-lake`` next to the database file."""
    return db_path.with_name(f"{db_path.stem}-lake")


def catalog_path(db_path: Path) -> Path:
    """``<stem>-read.duckdb`` next to the database file."""
    return db_path.with_name(f"{db_path.stem}-read.duckdb")


def export_tables(
    cur: duckdb.DuckDBPyConnection, dest_dir: Path, *, partition_by_date: bool = True
) -> Path:
    """Write every lake table to ``dest_dir`` as Parquet (a one-off export, not the mirror):
    time-series tables in ``<table>/date=YYYY-MM-DD/`` folders (UTC dates) unless
    ``partition_by_date=False``, the others as ``<table>.parquet``."""
    dest = dest_dir.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for table in LAKE_TABLES:
        col = PARTITION_COLUMN.get(table)
        if partition_by_date and col is not None:
            cur.execute(
                f"COPY (SELECT *, strftime({col}, '%Y-%m-%d') AS date FROM {table}) "
                f"TO {_sql_str(dest / table)} (FORMAT parquet, PARTITION_BY (date), "
                "OVERWRITE_OR_IGNORE)"
            )
        else:
            cur.execute(f"COPY {table} TO {_sql_str(dest / f'{table}.parquet')} (FORMAT parquet)")
    return dest


def _day_name(day: int) -> str:
    return "date=" + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def _day_of(name: str) -> int:
    return int(datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) // 86_400


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class _Covered:
    """What a pinned snapshot covers: rows committed before it, partitions stale before it,
    tables to reconcile and small tables to write, and the snapshot requests made before it."""

    pending: dict[str, list[pa.Table]]
    dirty: set[tuple[str, int]]
    reconcile: set[str]
    whole: set[str]
    request: int


class Lake:
    """The Parquet mirror and its thread.

    The writer thread calls ``add``, ``mark_dirty`` and ``request_reconcile`` after its commits
    and ``pin`` when ``wants_pin``; ``wake_writer`` asks it to come round soon. ``cursor`` is a
    cursor of the warehouse database for the lake thread alone; ``connect`` opens the catalog
    file (the warehouse passes its own, so that connections are opened in one place).
    """

    def __init__(
        self,
        db_path: Path,
        cursor: duckdb.DuckDBPyConnection,
        *,
        now: Callable[[], datetime],
        connect: Callable[[Path], duckdb.DuckDBPyConnection],
        snapshot_interval_s: float,
        wake_writer: Callable[[], None] = lambda: None,
        foreground: Foreground | None = None,
    ) -> None:
        self.db_path = db_path.resolve()
        self.dir = lake_dir(self.db_path)
        self.catalog = catalog_path(self.db_path)
        self.snapshot_interval_s = snapshot_interval_s
        self._cur = cursor
        self._now = now
        self._connect = connect
        self._wake_writer = wake_writer
        self.foreground = foreground
        self._lock = threading.Condition()
        # shared with the writer thread (under the lock)
        self._pending: dict[str, list[pa.Table]] = defaultdict(list)
        self._dirty: set[tuple[str, int]] = set()
        self._reconcile: set[str] = set(PARTITION_COLUMN)
        self._whole: set[str] = set(WHOLE_TABLES)
        self._want = False
        self._pinned = False
        self._covered: _Covered | None = None  # handed over by pin(), used by _cycle()
        self._stop = False
        self._requested = 0  # snapshot requests (sequence numbers)
        self._done = 0  # the newest request whose rows are in the mirror
        # the lake thread's own
        self._parts: dict[str, dict[int, dict[int, int]]] = {}  # table -> day -> {seq: rows}
        self._next_seq: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="warehouse-lake", daemon=True)
        self._ready = False  # set up: schema files written, parts scanned
        self.cycles = 0
        self.rewrites = 0

    # -- the writer thread's side --------------------------------------------------------
    def add(self, table: str, rows: pa.Table) -> None:
        """Queue rows just committed to ``table`` for the next cycle."""
        with self._lock:
            if table in PARTITION_COLUMN:
                if rows.num_rows:
                    self._pending[table].append(rows)
            else:
                self._whole.add(table)

    def mark_dirty(self, items: Iterable[tuple[str, int]]) -> None:
        """(table, UTC day) partitions whose rows changed otherwise than by appends (a small
        table: any day). They are rewritten from a snapshot taken after this call."""
        with self._lock:
            for table, day in items:
                if table in PARTITION_COLUMN:
                    self._dirty.add((table, day))
                else:
                    self._whole.add(table)

    def request_reconcile(self, tables: Iterable[str]) -> None:
        """Compare these tables' row counts per date with the mirror at the next cycle."""
        with self._lock:
            self._reconcile.update(t for t in tables if t in PARTITION_COLUMN)

    @property
    def has_work(self) -> bool:
        """Rows or partitions waiting for a cycle, or a cycle under way."""
        with self._lock:
            return bool(self._pending or self._dirty or self._reconcile or self._whole
                        or self._pinned or self._want)

    @property
    def wants_pin(self) -> bool:
        return self._want

    def pin(self) -> None:
        """Writer thread, between transactions: pin the lake's snapshot and hand over the
        rows committed since the last cycle (all of them, and only them, are in it)."""
        with self._lock:
            if not self._want:
                return
            try:
                self._cur.execute("BEGIN TRANSACTION")
                # DuckDB takes a transaction's snapshot at its first read
                self._cur.execute("SELECT count(*) FROM rollup_watermark").fetchall()
            except duckdb.Error:
                log.exception("lake: could not pin a snapshot (retried at the next round)")
                try:
                    self._cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                return
            self._want = False
            self._pinned = True
            # exactly what was committed before the snapshot, and no more
            self._covered = _Covered(self._pending, self._dirty, self._reconcile, self._whole,
                                     self._requested)
            self._pending, self._dirty = defaultdict(list), set()
            self._reconcile, self._whole = set(), set()
            self._lock.notify_all()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def request_snapshot(self) -> int:
        """Ask for a cycle now; returns the number to pass to ``wait_snapshot``."""
        with self._lock:
            self._requested += 1
            self._lock.notify_all()
            return self._requested

    def wait_snapshot(self, request: int, timeout: float | None = None) -> bool:
        """Block until the rows committed before ``request`` are in the mirror."""
        with self._lock:
            return self._lock.wait_for(lambda: self._done >= request or self._stop, timeout)

    def stop(self) -> None:
        """End the thread (after its current rewrite), then append what is left: call it
        after the writer has stopped, so nothing is committed meanwhile."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if not self._ready:
            return
        with self._lock:
            self._want = True
        self.pin()
        self._guard(lambda: self._cycle(rewrite=False))

    def close(self) -> None:
        """Close the lake's cursor (after ``stop``)."""
        self._cur.close()

    # -- the lake thread -------------------------------------------------------------------
    def _guard(self, fn: Callable[[], object]) -> bool:
        try:
            fn()
        except Exception:
            log.exception("parquet lake update failed (the warehouse itself is unaffected)")
            return False
        return True

    def _run(self) -> None:
        if self.foreground is not None:
            make_idle()
        if not self._guard(self._setup):
            with self._lock:
                self._stop = True
                self._lock.notify_all()
            return
        last = time.monotonic()
        while True:
            with self._lock:
                while not self._stop:
                    busy = bool(self._dirty or self._reconcile)
                    pending = bool(self._pending or self._whole)
                    due = time.monotonic() - last >= self.snapshot_interval_s
                    if self._requested > self._done or busy or (pending and due):
                        break
                    self._lock.wait(max(0.05, self.snapshot_interval_s - (time.monotonic() - last)))
                if self._stop:
                    return
                self._want = True
            self._wake_writer()
            with self._lock:
                while not self._pinned:
                    if self._stop:  # the writer is gone: stop() does the last cycle
                        self._want = False
                        return
                    self._lock.wait(0.05)
                waited = self._requested > self._done
            now = time.monotonic()
            late = now - last > 2 * self.snapshot_interval_s
            last = now
            if self.foreground is not None and (waited or late):
                # Someone waits for this cycle, or this thread, at idle priority, was starved
                # of CPU (or had nothing to do for a while: then the cycle is small anyway).
                self.foreground.run(lambda: self._guard(self._cycle))
            else:
                self._guard(self._cycle)

    def _setup(self) -> None:
        """Write the schema files and the catalog, scan the parts on disk."""
        for table in LAKE_TABLES:
            (self.dir / table).mkdir(parents=True, exist_ok=True)
            self._copy(f"SELECT * FROM {table} LIMIT 0", self.dir / table / "_schema.parquet")
            if table in PARTITION_COLUMN:
                self._scan(table)
        self.write_catalog()
        self._ready = True

    def _cycle(self, *, rewrite: bool = True) -> None:
        """One cycle on the pinned snapshot: appends, reconciles, small tables, rewrites."""
        with self._lock:
            covered = self._covered
            if not self._pinned or covered is None:
                return
            self._covered = None
        pending, dirty = covered.pending, covered.dirty
        started = time.monotonic()
        try:
            for table, tables in pending.items():
                self._append(table, pa.concat_tables(tables) if len(tables) > 1 else tables[0],
                             dirty)
            for table in sorted(covered.reconcile):
                dirty |= self._stale(table)
            for table in sorted(covered.whole):  # after the partitions: see the docstring
                self._copy(f"SELECT * FROM {table}", self.dir / table / "part.parquet")
            with self._lock:
                self._done = max(self._done, covered.request)
                self._lock.notify_all()
            today = int(self._now().timestamp()) // 86_400
            for table, parts in self._parts.items():
                for day, seqs in parts.items():
                    if len(seqs) > MAX_PARTS or (day < today and len(seqs) > 1):
                        dirty.add((table, day))
            for table, day in sorted(dirty):
                late = time.monotonic() - started > CYCLE_REWRITE_BUDGET_S
                if not rewrite or self._stop or late:
                    with self._lock:
                        self._dirty.add((table, day))
                    continue
                try:
                    self._rewrite(table, day)
                except (duckdb.Error, OSError):
                    log.exception("lake: could not rewrite %s %s", table, _day_name(day))
        finally:
            with self._lock:
                self._pinned = False
            self._cur.execute("COMMIT")
            self.cycles += 1

    def _scan(self, table: str) -> None:
        parts: dict[int, dict[int, int]] = {}
        top = 0
        for sub in (self.dir / table).iterdir():
            match = _DATE_RE.match(sub.name)
            if not (match and sub.is_dir()):
                continue
            day = _day_of(match.group(1))
            for f in sub.iterdir():
                if f.name.endswith(".tmp"):
                    f.unlink(missing_ok=True)
                    continue
                pm = _PART_RE.match(f.name)
                if pm:
                    seq = int(pm.group(1))
                    parts.setdefault(day, {})[seq] = pq.read_metadata(f).num_rows
                    top = max(top, seq)
        self._parts[table] = parts
        self._next_seq[table] = top + 1

    def _stale(self, table: str) -> set[tuple[str, int]]:
        """Dates whose row count in the mirror differs from the (pinned) warehouse."""
        col = PARTITION_COLUMN[table]
        counts = dict(
            self._cur.execute(
                f"SELECT epoch_us({col}) // {DAY_US} AS day, count(*) FROM {table} GROUP BY day"
            ).fetchall()
        )
        parts = self._parts[table]
        return {
            (table, int(day))
            for day in set(counts) | set(parts)
            if counts.get(day, 0) != sum(parts.get(day, {}).values())
        }

    def _append(self, table: str, batch: pa.Table, dirty: set[tuple[str, int]]) -> None:
        col = PARTITION_COLUMN[table]
        self._cur.register("lake_batch", batch)
        try:
            days = [
                int(d)
                for (d,) in self._cur.execute(
                    f"SELECT DISTINCT epoch_us({col}) // {DAY_US} FROM lake_batch"
                ).fetchall()
            ]
            for day in days:
                try:
                    self._write_part(
                        table,
                        day,
                        f"SELECT * FROM lake_batch WHERE epoch_us({col}) // {DAY_US} = {day}",
                    )
                except (duckdb.Error, OSError):
                    log.exception("lake: could not append to %s %s", table, _day_name(day))
                    dirty.add((table, day))  # rewritten from the warehouse instead
        finally:
            self._cur.unregister("lake_batch")

    def _write_part(self, table: str, day: int, select: str) -> int | None:
        seq = self._next_seq[table]
        self._next_seq[table] = seq + 1
        folder = self.dir / table / _day_name(day)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{seq:08d}.parquet"
        n = self._copy(select, final)
        if n == 0:
            final.unlink(missing_ok=True)
            return None
        self._parts[table].setdefault(day, {})[seq] = n
        return n

    def _copy(self, select: str, final: Path) -> int:
        tmp = final.with_name(final.name + ".tmp")
        row = self._cur.execute(
            f"COPY ({select}) TO {_sql_str(tmp)} (FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()
        os.replace(tmp, final)
        return int(row[0]) if row else 0

    def _rewrite(self, table: str, day: int) -> None:
        """Replace every part of one date partition with one part read from the snapshot."""
        col = PARTITION_COLUMN[table]
        old = self._parts[table].pop(day, {})
        lo, hi = day * DAY_US, (day + 1) * DAY_US
        self._write_part(
            table,
            day,
            f"SELECT * FROM {table} WHERE {col} >= make_timestamptz({lo}) "
            f"AND {col} < make_timestamptz({hi})",
        )
        folder = self.dir / table / _day_name(day)
        for seq in old:
            (folder / f"part-{seq:08d}.parquet").unlink(missing_ok=True)
        if day not in self._parts[table]:
            try:
                folder.rmdir()
            except OSError:
                pass
        self.rewrites += 1

    # -- the catalog -------------------------------------------------------------------
    def write_catalog(self) -> None:
        """Write ``<stem>-read.duckdb``: views over the Parquet files, nothing else."""
        tmp = self.catalog.with_name(self.catalog.name + ".tmp")
        tmp.unlink(missing_ok=True)
        cat = self._connect(tmp)
        try:
            for table in LAKE_TABLES:
                pattern = self.dir / table / "**" / "*.parquet"
                cat.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet({_sql_str(pattern)}, "
                    "hive_partitioning = false, union_by_name = true)"
                )
            install_views(cat)
            cat.execute(
                "CREATE VIEW lake_info AS SELECT "
                f"{LATEST_VERSION} AS schema_version, "
                f"{_sql_str(self.db_path)} AS warehouse_path, "
                f"{_sql_str(self.dir)} AS lake_path"
            )
            cat.execute("CHECKPOINT")
        finally:
            cat.close()
        os.replace(tmp, self.catalog)
