"""``Warehouse``: the one place that opens DuckDB connections.

One process holds the warehouse file. Inside it, a single writer thread owns the write
connection (``warehouse.writer``); producers hand it rows without blocking; reads run on
per-thread cursors of the same database; live per-endpoint figures are kept in memory
(``warehouse.live``); the writer keeps the per-minute rollup current (``warehouse.rollup``); a
Parquet mirror plus a read-only catalog lets other processes read at any time
(``warehouse.lake``). ``open_read_only(path)`` is the entry point for reports and analysts
that read a file no process is writing (a copy, a snapshot, a stopped service's file).

>>> import tempfile, pathlib
>>> from warehouse.config import WarehouseConfig
>>> cfg = WarehouseConfig(path=pathlib.Path(tempfile.mkdtemp()) / "w.duckdb")
>>> with Warehouse(cfg) as wh:
...     wh.flush()
...     wh.query("SELECT count(*) FROM probes")
[(0,)]

Reads see committed rows. ``get_decision``, ``feedback_for`` and ``decisions_since`` also see
rows still in the write buffer; for anything else call ``flush()`` (or ``aflush()``) first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import duckdb
import polars as pl

from warehouse.config import WarehouseConfig
from warehouse.convert import decision_from_row, feedback_from_row
from warehouse.errors import (
    WarehouseClosedError,
    WarehouseError,
    WarehouseQueryError,
)
from warehouse.lake import Lake, catalog_path, export_tables, lake_dir
from warehouse.live import LiveStats
from warehouse.migrations import migrate
from warehouse.models import Decision, Endpoint, Feedback, ProbeResult, utcnow
from warehouse.priority import Foreground
from warehouse.retention import retention_steps
from warehouse.rollup import MinuteRollup, epoch_us, from_epoch_us

T = TypeVar("T")
from warehouse.writer import Writer

log = logging.getLogger(__name__)
Params = Sequence[object] | dict[str, object] | None

#: Files held by an open Warehouse of this process (DuckDB would hand a second connect the
#: same database, and with it a second writer).
_HELD: set[Path] = set()
_HELD_LOCK = threading.Lock()

_READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
_NEW, _OPEN, _CLOSING, _CLOSED = "new", "open", "closing", "closed"


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file for writing, in UTC. Every connection of Switchyard starts here."""
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_read_only(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a warehouse file (or the lake's ``-read.duckdb`` catalog) read-only, in UTC.

    The entry point for reports (``warehouse.tod.run_tod_report``) and analysts. It fails
    with ``duckdb.IOException`` while a process holds the file for writing: read its catalog
    (``Warehouse.read_path``) instead. Raises FileNotFoundError for a missing file (DuckDB
    would create an empty one).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no DuckDB database at {path}")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con


class Warehouse:
    """The DuckDB warehouse of one process: a single writer, cheap reads, live stats.

    ``open()`` (or ``await start()``, or ``with``/``async with``) creates or migrates the
    file, rebuilds ``live`` from the last ``live_window_s`` of probes and starts the writer;
    ``close()`` writes everything buffered, checkpoints and closes. ``lake=False`` turns the
    Parquet mirror off (it is on by default). ``idle_threads=True`` runs the writer and lake
    threads at idle CPU priority where the OS offers it, for a process whose event loop
    must answer fast (``warehouse.priority``; ``switchyard up`` does).
    """

    def __init__(
        self,
        config: WarehouseConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
        lake: bool = True,
        idle_threads: bool = False,
    ) -> None:
        if not isinstance(config, WarehouseConfig):
            raise ValueError(f"config must be a WarehouseConfig, got {type(config).__name__}")
        self.config = config
        self.clock = clock
        self.now = now
        self.lake_enabled = lake
        self.idle_threads = idle_threads
        self.path = Path(config.path).resolve()
        self.live = LiveStats(
            window_s=config.live_window_s, half_life_s=config.live_half_life_s, now=now
        )
        self._state = _NEW
        self._state_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._read_root: duckdb.DuckDBPyConnection | None = None
        self._writer: Writer | None = None
        self._rollup: MinuteRollup | None = None
        self._lake: Lake | None = None
        self._foreground: Foreground | None = None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursor_lock = threading.Lock()

    @property
    def lake_dir(self) -> Path:
        """The Parquet mirror: ``<stem>-lake`` next to the database file."""
        return lake_dir(self.path)

    @property
    def read_path(self) -> Path:
        """The read-only catalog analysts open: ``<stem>-read.duckdb``."""
        return catalog_path(self.path)

    @property
    def is_open(self) -> bool:
        return self._state == _OPEN

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Create or migrate the file, rebuild live stats, start the writer (blocking)."""
        with self._state_lock:
            if self._state == _OPEN:
                return
            if self._state != _NEW:
                raise WarehouseClosedError("the warehouse is closed; create a new one")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            hint = f"one writer holds a warehouse file; read {self.read_path} (read-only) instead"
            with _HELD_LOCK:
                if self.path in _HELD:
                    raise WarehouseError(f"{self.path} is already open in this process; {hint}")
                _HELD.add(self.path)
            try:
                con = _connect(self.path)
            except duckdb.IOException as exc:
                self._release()
                raise WarehouseError(f"cannot open {self.path}: {exc}; {hint}") from exc
            try:
                con.execute(f"SET threads = {int(self.config.threads)}")
                migrate(con, now=self.now(), where=str(self.path))
                self._rebuild_live(con)
                self._read_root = con.cursor()
            except BaseException:
                con.close()
                self._release()
                raise
            self._con = con
            self._rollup = MinuteRollup(
                con,
                now=self.now,
                grace_s=self.config.rollup_grace_s,
                slice_rows=self.config.rollup_slice_rows,
                returning=self.lake_enabled,
            )
            if self.idle_threads:  # created here, at this thread's priority
                self._foreground = Foreground("warehouse-foreground")
            writer = self._writer = Writer(
                con,
                flush_interval_s=self.config.flush_interval_s,
                batch_rows=self.config.batch_rows,
                clock=self.clock,
                rollup=self._rollup,
                foreground=self._foreground,
            )
            if self.lake_enabled:
                writer.lake = self._lake = Lake(
                    self.path,
                    con.cursor(),
                    now=self.now,
                    connect=_connect,
                    snapshot_interval_s=self.config.snapshot_interval_s,
                    wake_writer=writer.wake,
                    foreground=self._foreground,
                )
            writer.start()
            if self._lake is not None:
                self._lake.start()
            self._state = _OPEN

    async def start(self) -> None:
        """``open()`` in a worker thread."""
        await asyncio.to_thread(self.open)

    def close(self) -> None:
        """Write everything buffered, stop the writer, checkpoint and close. Idempotent."""
        with self._state_lock:
            if self._state in (_CLOSING, _CLOSED):
                return
            if self._state == _NEW:
                self._state = _CLOSED
                return
            self._state = _CLOSING
        writer, con = self._writer, self._con
        assert writer is not None and con is not None
        try:
            writer.stop()
            try:
                writer.flush(timeout=0)
            except WarehouseError as exc:
                log.error("rows were lost before close: %s", exc)
            if self._lake is not None:
                self._lake.stop()  # after the writer: appends what it committed last
                self._lake.close()
            if self._foreground is not None:
                self._foreground.close()
            with self._cursor_lock:
                for cur in self._cursors:
                    cur.close()
                self._cursors.clear()
                if self._read_root is not None:
                    self._read_root.close()
            con.execute("CHECKPOINT")
        finally:
            con.close()
            self._release()
            self._state = _CLOSED

    def _release(self) -> None:
        with _HELD_LOCK:
            _HELD.discard(self.path)

    async def aclose(self) -> None:
        """``close()`` in a worker thread."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Warehouse:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Warehouse:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _w(self) -> Writer:
        if self._state != _OPEN or self._writer is None:
            if self._state == _NEW:
                raise WarehouseError("the warehouse is not open: call open() or start() first")
            raise WarehouseClosedError("the warehouse is closed")
        return self._writer

    # -- writes (non-blocking: buffered for the writer thread) ------------------------------
    def submit(self, job: Callable[[duckdb.DuckDBPyConnection], T]) -> Future[T]:
        """Run ``job(write_connection)`` on the writer thread, after the rows enqueued before
        it: the one way for another module's tables (e.g. ``warehouse.training``) to be
        written by the single writer. The future holds the job's result or exception."""
        return self._w().submit(job)

    def add_probe(self, r: ProbeResult) -> None:
        """Buffer one probe or traffic row and update the live stats."""
        self._w().put_probes([r])
        self.live.add(r)

    def add_probes(self, rows: Iterable[ProbeResult]) -> None:
        """Buffer many rows and update the live stats once per endpoint."""
        batch = list(rows)
        self._w().put_probes(batch)
        self.live.add_many(batch)

    def add_decision(self, d: Decision) -> None:
        """Buffer a routing decision (a repeated event_id keeps the first one written)."""
        self._w().put_decision(d)

    def add_feedback(self, f: Feedback) -> None:
        """Buffer one feedback row."""
        self._w().put_feedback(f)

    def mark_learned(self, event_ids: Iterable[str]) -> None:
        """Record that the bandit has learned these events (the first mark wins)."""
        self._w().put_learned(list(event_ids), self.now())

    def upsert_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """Insert or replace catalog endpoints (never their keys)."""
        self._w().put_endpoints(list(endpoints), self.now())

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything added so far is committed (durable against kill -9).

        Raises ``WarehouseWriteError`` if some of those rows could not be written.
        """
        self._w().flush(timeout)

    async def aflush(self) -> None:
        await asyncio.to_thread(self.flush)

    @property
    def backlog(self) -> int:
        """Rows added and not yet committed."""
        return self._w().backlog

    def writer_stats(self) -> dict[str, float]:
        """Counters of the writer thread: batches, rows and seconds spent writing; maintenance
        steps (rollup slices, retention), their seconds and the longest one (what a flush may
        have waited); the rollup's slices and the raw rows they covered; the lake's cycles,
        partition rewrites and whether it has work waiting (1.0) or not (0.0); with
        ``idle_threads``, the writer rounds and lake cycles handed to the thread at normal
        priority (``foreground_runs``)."""
        w = self._w()
        rollup = self._rollup
        lake = self._lake
        return {
            "lake_cycles": lake.cycles if lake is not None else 0,
            "lake_rewrites": lake.rewrites if lake is not None else 0,
            "lake_busy": float(lake.has_work) if lake is not None else 0.0,
            "batches": w.batches_written,
            "rows": w.rows_written,
            "write_seconds": w.write_seconds,
            "maintenance_steps": w.maintenance_steps,
            "maintenance_seconds": w.maintenance_seconds,
            "max_step_seconds": w.max_step_seconds,
            "foreground_runs": self._foreground.runs if self._foreground is not None else 0,
            "rollup_steps": rollup.steps if rollup is not None else 0,
            "rollup_rows": rollup.rows_rolled if rollup is not None else 0,
        }

    # -- reads ---------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        self._w()
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            with self._cursor_lock:
                assert self._read_root is not None
                cur = self._read_root.cursor()
                cur.execute("SET TimeZone = 'UTC'")
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def _relation(self, sql: str, params: Params) -> duckdb.DuckDBPyRelation | None:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise WarehouseQueryError(str(exc)) from exc
        for statement in statements:
            if statement.type not in _READ_STATEMENTS:
                raise WarehouseQueryError(
                    f"query() runs reads only, got a {statement.type.name} statement; "
                    "writes go through the warehouse's single writer"
                )
        return self._cursor().sql(sql, params=params)

    def query(self, sql: str, params: Params = None) -> list[tuple[object, ...]]:
        """Run a read-only statement; rows as tuples (TIMESTAMPTZ as aware datetimes)."""
        rel = self._relation(sql, params)
        if rel is None:
            return []
        if any("TIME ZONE" in str(t) for t in rel.types):
            table = rel.to_arrow_table()  # DuckDB's own conversion would need pytz
            return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
        return rel.fetchall()

    def query_pl(self, sql: str, params: Params = None) -> pl.DataFrame:
        """Run a read-only statement; the result as a polars DataFrame."""
        rel = self._relation(sql, params)
        return rel.pl() if rel is not None else pl.DataFrame()

    async def aquery(self, sql: str, params: Params = None) -> list[tuple[object, ...]]:
        return await asyncio.to_thread(self.query, sql, params)

    async def aquery_pl(self, sql: str, params: Params = None) -> pl.DataFrame:
        return await asyncio.to_thread(self.query_pl, sql, params)

    def _dicts(self, sql: str, params: Params = None) -> list[dict[str, object]]:
        rel = self._cursor().sql(sql, params=params)
        return rel.to_arrow_table().to_pylist() if rel is not None else []

    def get_decision(self, event_id: str) -> Decision | None:
        """One decision by event id (buffered ones included), or None."""
        pending = self._w().pending_decision(event_id)
        if pending is not None:
            return pending
        found = self._decisions_where("event_id = ?", [event_id])
        return found[0] if found else None

    def feedback_for(self, event_id: str) -> list[Feedback]:
        """Every feedback row of one event, oldest first (buffered ones included)."""
        pending = self._w().pending_feedback(event_id)
        rows = self._dicts(
            "SELECT * FROM feedback WHERE event_id = ? ORDER BY received_at", [event_id]
        )
        out = [feedback_from_row(r) for r in rows] + pending
        return sorted(out, key=lambda f: f.received_at)

    def decisions_since(self, ts: datetime, *, unlearned_only: bool = True) -> list[Decision]:
        """Decisions created at or after ``ts``, oldest first; by default only those not yet
        marked learned (restart recovery replays them into the bandit)."""
        writer = self._w()
        pending = [d for d in writer.pending_decisions() if d.created_at >= ts]
        learned = writer.pending_learned() if unlearned_only else set()
        where = "created_at >= ?"
        if unlearned_only:
            where += " AND NOT EXISTS (SELECT 1 FROM learned AS l WHERE l.event_id = d.event_id)"
        found = self._committed_or_buffered(where, [ts], pending)
        return [d for d in found if d.event_id not in learned]

    def decisions_between(self, start: datetime, end: datetime) -> list[Decision]:
        """Decisions created in ``[start, end]`` (buffered ones included), oldest first: how
        the bandit reads back the decisions it no longer keeps whole in memory."""
        pending = [d for d in self._w().pending_decisions() if start <= d.created_at <= end]
        return self._committed_or_buffered("created_at >= ? AND created_at <= ?", [start, end],
                                           pending)  # fmt: skip

    def _committed_or_buffered(
        self, where: str, params: list[object], pending: list[Decision]
    ) -> list[Decision]:
        """The committed decisions ``d`` matching ``where``, and ``pending`` (buffered ones,
        read before this query, so that a batch committed meanwhile is in the table), one per
        event id (the committed row when both have it), oldest first."""
        found = {d.event_id: d for d in self._decisions_where(where, params)}
        for d in pending:
            found.setdefault(d.event_id, d)
        return sorted(found.values(), key=lambda d: (d.created_at, d.event_id))

    def _decisions_where(self, where: str, params: list[object]) -> list[Decision]:
        """The committed decisions ``d`` matching ``where``, whole: their candidates read from
        ``decision_arms`` (one read for all of them; each candidate parsed once)."""
        rows = self._dicts(f"SELECT d.* FROM decisions AS d WHERE {where}", params)
        ids = list({i for r in rows for i in (r.get("arms") or ())})
        arms: dict[int, tuple[str, dict[str, object]]] = {}
        if ids:
            found = self._cursor().execute(
                "SELECT arm_id, endpoint_id, features FROM decision_arms "
                "WHERE arm_id IN (SELECT unnest(?::BIGINT[]))", [ids]
            ).fetchall()
            arms = {int(i): (str(e), json.loads(f)) for i, e, f in found}
        return [decision_from_row(r, arms) for r in rows]

    async def aget_decision(self, event_id: str) -> Decision | None:
        return await asyncio.to_thread(self.get_decision, event_id)

    async def afeedback_for(self, event_id: str) -> list[Feedback]:
        return await asyncio.to_thread(self.feedback_for, event_id)

    async def adecisions_since(
        self, ts: datetime, *, unlearned_only: bool = True
    ) -> list[Decision]:
        return await asyncio.to_thread(self.decisions_since, ts, unlearned_only=unlearned_only)

    # -- maintenance ---------------------------------------------------------------------
    def rollup(self, older_than_days: float | None = None) -> int:
        """Retention: delete raw probes older than ``older_than_days`` (default
        ``retention_days``); returns the raw rows deleted. Idempotent.

        The name is historical: every closed minute is rolled up into ``probes_minute``
        continuously, so this only deletes raw rows whose minutes are already there (rolling
        up to the cutoff first if the rollup lags behind), and ``probe_minutes`` is the same
        before and after. The work runs on the writer thread one UTC day per transaction,
        between flushes. Rows that arrive later for minutes before the cutoff are merged into
        their minutes (see ``warehouse.rollup``).
        """
        days = self.config.retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise ValueError(f"older_than_days must be >= 0, got {days}")
        cutoff_us = epoch_us(self.now() - timedelta(days=days))
        writer, rollup = self._w(), self._rollup
        assert rollup is not None  # set by open()
        return writer.submit_steps(lambda con: retention_steps(rollup, cutoff_us)).result()

    async def arollup(self, older_than_days: float | None = None) -> int:
        return await asyncio.to_thread(self.rollup, older_than_days)

    def catch_up(self) -> datetime | None:
        """Block until every minute closed by now is rolled up (the writer does it anyway, in
        steps between flushes: this waits for it); returns the watermark (None: no rows)."""
        writer, rollup = self._w(), self._rollup
        assert rollup is not None  # set by open()
        return from_epoch_us(writer.submit_steps(lambda con: rollup.catch_up_steps()).result())

    def rollup_status(self) -> dict[str, datetime | None]:
        """``rolled_to``: minutes before it are in ``probes_minute``; ``raw_from``: raw rows
        before it were deleted by retention (None: not yet)."""
        self._w()
        assert self._rollup is not None  # set by open()
        mark = self._rollup.mark
        return {"rolled_to": from_epoch_us(mark.rolled_to),
                "raw_from": from_epoch_us(mark.raw_from)}

    def snapshot(self, timeout: float | None = 60.0) -> None:
        """Bring the Parquet lake up to date now (it also happens every snapshot interval):
        when it returns, every row added before the call is in the mirror."""
        self.flush()
        lake = self._lake
        if lake is None:
            raise WarehouseError("the Parquet lake is off (Warehouse(..., lake=False))")
        if not lake.wait_snapshot(lake.request_snapshot(), timeout):
            raise WarehouseError(f"the lake snapshot did not finish within {timeout} s")

    def export_parquet(self, dest_dir: Path | str, *, partition_by_date: bool = True) -> Path:
        """Write every table to ``dest_dir`` as Parquet; time-series tables in
        ``<table>/date=YYYY-MM-DD/`` folders (UTC dates) unless ``partition_by_date=False``."""
        self.flush()
        return export_tables(self._cursor(), Path(dest_dir), partition_by_date=partition_by_date)

    async def aexport_parquet(
        self, dest_dir: Path | str, *, partition_by_date: bool = True
    ) -> Path:
        return await asyncio.to_thread(
            self.export_parquet, dest_dir, partition_by_date=partition_by_date
        )

    # -- live ----------------------------------------------------------------------------
    def _rebuild_live(self, con: duckdb.DuckDBPyConnection) -> int:
        since = self.now().timestamp() - self.config.live_window_s
        since_us = int(since * 1_000_000)
        rel = con.sql(
            "SELECT endpoint_id, started_at, source, outcome, ttft_ms, itl_ms_p50, tpot_ms "
            f"FROM probes WHERE started_at >= make_timestamptz({since_us}) ORDER BY started_at"
        )
        table = rel.to_arrow_table()
        columns = [c.to_pylist() for c in table.columns]
        return self.live.rebuild(zip(*columns, strict=True))  # type: ignore[arg-type]
