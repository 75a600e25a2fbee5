"""The single writer: one thread owns the write connection and appends rows in batches.

Producers (the event loop, any thread) append to an in-memory buffer under a lock: O(1), no
I/O. The writer thread wakes every ``flush_interval_s``, when ``batch_rows`` rows are waiting,
or when someone calls ``flush()``; it swaps the buffer out and appends it in one transaction,
each table as one Arrow batch. A committed batch is in DuckDB's write-ahead log, so it
survives ``kill -9``: a crash loses at most the rows of the last interval.

Between flushes the thread does maintenance in bounded steps, so that no flush waits for more
than one step (a fraction of a second): the continuous minute rollup (``warehouse.rollup``), a
slice at a time, and stepped jobs handed to ``submit_steps`` (retention, catching up). Rows
written for minutes already rolled up are folded into their minutes inside the transaction
that writes them. Jobs handed to ``submit`` run whole, after the pending rows. The Parquet
lake (``warehouse.lake``) runs on its own thread: the writer only hands it committed rows and
pins its snapshots between transactions.

Given a ``Foreground`` thread, the writer thread runs at idle CPU priority
(``warehouse.priority``) and hands a round (the commit, then the queued jobs) to that thread
when the round must not wait: a flush or a job is waited for, the writer is stopping, or the
rows piled up to ``batch_rows`` or waited ``BEHIND_INTERVALS`` flush intervals, which happens
when the CPUs were saturated and the idle thread got no time.

A batch that fails is retried table by table, in halves, until the rows that cannot be written
stand alone; those are dropped, logged, and reported by the next ``flush()`` as
``WarehouseWriteError``. Decisions go in with a plain ``INSERT`` (their event ids are new);
the retry uses ``INSERT OR IGNORE``, so a decision logged twice keeps its first row. The
candidates they list go to ``decision_arms`` in the same transaction, each once: those the
writer has not written yet, with ``INSERT OR IGNORE`` (a restart forgets which it wrote).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.convert import (
    DECISION_ARROW_SCHEMA,
    DECISION_CHUNK,
    ArmRef,
    DecisionRow,
    arms_to_arrow,
    decision_chunk,
    decision_parts,
    decision_row,
    decision_rows_to_arrow,
    endpoints_to_arrow,
    feedback_to_arrow,
    learned_to_arrow,
    probes_to_arrow,
)
from warehouse.errors import WarehouseClosedError, WarehouseError, WarehouseWriteError
from warehouse.lake import Lake
from warehouse.models import Decision, Endpoint, Feedback, ProbeResult
from warehouse.priority import Foreground, make_idle
from warehouse.rollup import Changes, MinuteRollup

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[[duckdb.DuckDBPyConnection], object]
Steps = Generator[Changes | None, None, T]
#: Seconds the continuous rollup rests after a failed step before it tries again.
ROLLUP_RETRY_S = 30.0
#: With a foreground thread, a round goes there when its rows have waited this many flush
#: intervals since the last round started: the idle writer thread was starved of CPU.
BEHIND_INTERVALS = 4
_Inserted = tuple[pa.Table, Changes | None]
#: Arm ids the writer remembers as stored before it forgets them all (and lets INSERT OR
#: IGNORE sort them out again): ~60 bytes each.
MAX_KNOWN_ARMS = 100_000
ARMS_PER_STATEMENT = 250
_Insert = Callable[[list[object]], _Inserted]


@dataclass
class _Batch:
    """Rows waiting for (or in) one write."""

    probes: list[ProbeResult] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    #: their rows (built by ``put_decision`` on the caller's thread) in Arrow,
    #: ``DECISION_CHUNK`` at a time, and the rows not converted yet
    decision_chunks: list[pa.RecordBatch] = field(default_factory=list)
    decision_tail: list[DecisionRow] = field(default_factory=list)
    #: the candidates those decisions list, each once, with the time first listed
    arms: dict[int, tuple[ArmRef, datetime]] = field(default_factory=dict)
    feedback: list[Feedback] = field(default_factory=list)
    learned: dict[str, datetime] = field(default_factory=dict)
    endpoints: dict[str, tuple[Endpoint, datetime]] = field(default_factory=dict)

    def decision_table(self) -> pa.Table:
        """The buffered decisions as one Arrow table, in the order they were added."""
        chunks = list(self.decision_chunks)
        if self.decision_tail:
            chunks.append(decision_chunk(self.decision_tail))
        return pa.Table.from_batches(chunks, schema=DECISION_ARROW_SCHEMA)

    def rows(self) -> int:
        return (
            len(self.probes)
            + len(self.decisions)
            + len(self.feedback)
            + len(self.learned)
            + len(self.endpoints)
        )


class Writer:
    """The writer thread and its buffer (see the module docstring)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        flush_interval_s: float,
        batch_rows: int,
        clock: Callable[[], float],
        rollup: MinuteRollup | None = None,
        lake: Lake | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        self._con = con
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self._clock = clock
        self.rollup = rollup
        self.lake = lake
        self.foreground = foreground
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._buf = _Batch()
        self._inflight: _Batch | None = None
        self._enqueued = 0
        self._durable = 0
        self._errors: list[tuple[int, BaseException]] = []
        self._jobs: deque[tuple[Job, Future[object]]] = deque()
        self._steps: deque[tuple[Callable[[duckdb.DuckDBPyConnection], Steps[object]],
                                 Future[object]]] = deque()
        self._running: Steps[object] | None = None
        # arm ids known to be in decision_arms (writer thread only): not inserted again
        self._stored_arms: set[int] = set()
        self._rollup_rest_until = 0.0
        self._round_at = clock()  # when the last round began
        self._flush_waiters = 0
        self._stopping = False
        self._dead = False
        self._thread = threading.Thread(target=self._run, name="warehouse-writer", daemon=True)
        self.batches_written = 0
        self.rows_written = 0
        self.write_seconds = 0.0  # time spent converting and appending batches
        self.maintenance_steps = 0
        self.maintenance_seconds = 0.0
        self.max_step_seconds = 0.0  # the longest maintenance step: what a flush may wait

    # -- producer side (any thread, O(1)) ------------------------------------------------
    def _check(self) -> None:
        # lock held
        if self._stopping or self._dead:
            raise WarehouseClosedError("the warehouse is closing; no more rows are accepted")

    def _added(self, n: int) -> None:
        # lock held
        self._enqueued += n
        if self._buf.rows() >= self.batch_rows:
            self._wake.set()

    def put_probes(self, rows: list[ProbeResult]) -> None:
        with self._lock:
            self._check()
            self._buf.probes.extend(rows)
            self._added(len(rows))

    def put_decision(self, d: Decision) -> None:
        # outside the lock, on the caller's thread (see decision_parts)
        row, refs = decision_parts(d)
        with self._lock:
            self._check()
            buf = self._buf
            self._added(1)
            if d.event_id in buf.decisions:
                return  # the first one stays (and a later batch's plain insert fails on it)
            buf.decisions[d.event_id] = d
            arms = buf.arms
            for ref in refs:
                if ref[0] not in arms:
                    arms[ref[0]] = (ref, d.created_at)
            buf.decision_tail.append(row)
            if len(buf.decision_tail) >= DECISION_CHUNK:
                # Converted here, on the caller's thread (under the lock, so that the chunk
                # lands in this batch): ~2 ms per chunk under route_load, 0.3 ms in a quiet
                # process, when decisions still carried their candidates' features. The
                # writer thread converting ~600 rows at once took 10-30 ms of CPU under that
                # load, holding the GIL in C calls of a few ms each, and the event loop's
                # requests waited behind it (route_load, 2026-11-23).
                buf.decision_chunks.append(decision_chunk(buf.decision_tail))
                buf.decision_tail = []

    def put_feedback(self, f: Feedback) -> None:
        with self._lock:
            self._check()
            self._buf.feedback.append(f)
            self._added(1)

    def put_learned(self, event_ids: list[str], at: datetime) -> None:
        with self._lock:
            self._check()
            for event_id in event_ids:
                self._buf.learned.setdefault(event_id, at)
            self._added(len(event_ids))

    def put_endpoints(self, endpoints: list[Endpoint], at: datetime) -> None:
        with self._lock:
            self._check()
            for e in endpoints:
                self._buf.endpoints[e.id] = (e, at)
            self._added(len(endpoints))

    # -- rows not yet committed ----------------------------------------------------------
    def _batches(self) -> list[_Batch]:
        return [b for b in (self._inflight, self._buf) if b is not None]

    def pending_decision(self, event_id: str) -> Decision | None:
        with self._lock:
            for b in self._batches():
                if event_id in b.decisions:
                    return b.decisions[event_id]
        return None

    def pending_decisions(self) -> list[Decision]:
        with self._lock:
            return [d for b in self._batches() for d in b.decisions.values()]

    def pending_feedback(self, event_id: str) -> list[Feedback]:
        with self._lock:
            return [f for b in self._batches() for f in b.feedback if f.event_id == event_id]

    def pending_learned(self) -> set[str]:
        with self._lock:
            return {e for b in self._batches() for e in b.learned}

    @property
    def backlog(self) -> int:
        """Rows enqueued and not yet committed."""
        with self._lock:
            return self._enqueued - self._durable

    # -- control -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row enqueued before the call is committed."""
        with self._lock:
            target = self._enqueued
            self._flush_waiters += 1
        self._wake.set()
        with self._done:
            try:
                ok = self._done.wait_for(lambda: self._durable >= target or self._dead, timeout)
            finally:
                self._flush_waiters -= 1
            if self._durable < target:
                if not ok:
                    raise WarehouseError(f"flush timed out after {timeout} s")
                raise WarehouseClosedError("the warehouse writer has stopped")
            failed = [exc for upto, exc in self._errors if upto <= target]
            self._errors = [(u, e) for u, e in self._errors if u > target]
        if failed:
            raise WarehouseWriteError(
                f"{len(failed)} write(s) failed, rows dropped: {failed[0]!r}"
            ) from failed[0]

    def submit(self, job: Callable[[duckdb.DuckDBPyConnection], T]) -> Future[T]:
        """Run ``job(write_connection)`` on the writer thread after the pending rows."""
        fut: Future[T] = Future()
        with self._lock:
            if self._stopping or self._dead:
                raise WarehouseClosedError("the warehouse writer has stopped")
            self._jobs.append((job, fut))  # type: ignore[arg-type]
        self._wake.set()
        return fut

    def submit_steps(self, job: Callable[[duckdb.DuckDBPyConnection], Steps[T]]) -> Future[T]:
        """Run the generator ``job(write_connection)`` on the writer thread one step (one
        ``next``) at a time between flushes; the future gets its return value. Each yielded
        ``Changes`` is handed to the lake."""
        fut: Future[T] = Future()
        with self._lock:
            if self._stopping or self._dead:
                raise WarehouseClosedError("the warehouse writer has stopped")
            self._steps.append((job, fut))  # type: ignore[arg-type]
        self._wake.set()
        return fut

    def wake(self) -> None:
        """Come round now (the lake asks for a snapshot this way)."""
        self._wake.set()

    def stop(self) -> None:
        """Write everything buffered, run queued jobs, end the thread."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        if self.foreground is not None:
            make_idle()
        try:
            self._loop()
        except BaseException:
            log.critical(
                "the warehouse writer thread died; rows are no longer written", exc_info=True
            )
        finally:
            with self._done:
                self._dead = True
                jobs, self._jobs = list(self._jobs), deque()
                steps, self._steps = list(self._steps), deque()
                self._done.notify_all()
            for fut in [f for _, f in jobs] + [f for _, f in steps]:
                if fut.running() or fut.set_running_or_notify_cancel():
                    fut.set_exception(WarehouseClosedError("the warehouse writer has stopped"))

    def _loop(self) -> None:
        while True:
            self._round()
            self._serve_lake()
            with self._lock:
                if self._stopping and not (self._buf.rows() or self._jobs or self._steps
                                           or self._running):
                    break
            self._maintain()  # at least one step per round, even when rows keep coming
            deadline = self._clock() + self.flush_interval_s
            while not self._wake.is_set():
                self._serve_lake()
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                if not self._maintain():
                    self._wake.wait(remaining)
            self._wake.clear()

    def _round(self) -> None:
        """Commit the buffered rows, then run the queued jobs: on this thread, or, when it runs
        at idle priority (``foreground`` given), on the foreground thread if the round must not
        wait (see ``warehouse.priority``)."""
        started = self._clock()
        fg = self.foreground
        if fg is not None and self._urgent(started):
            fg.run(self._commit_and_run_jobs)
        else:
            self._commit_and_run_jobs()
        self._round_at = started

    def _urgent(self, now: float) -> bool:
        """Someone waits for this round (a flush, a job, the shutdown), or the rows piled up
        (``batch_rows``) or waited ``BEHIND_INTERVALS`` flush intervals."""
        with self._lock:
            rows = self._buf.rows()
            return bool(
                self._stopping
                or self._flush_waiters
                or self._jobs
                or rows >= self.batch_rows
                or (rows and now - self._round_at > BEHIND_INTERVALS * self.flush_interval_s)
            )

    def _commit_and_run_jobs(self) -> None:
        self._commit_pending()
        self._run_jobs()

    def _serve_lake(self) -> None:
        lake = self.lake
        if lake is not None and lake.wants_pin:
            lake.pin()

    def _maintain(self) -> bool:
        """One bounded maintenance step; False when there was nothing to do."""
        started = time.perf_counter()
        if self._running is None:
            with self._lock:
                if self._steps:
                    job, fut = self._steps[0]
                    if fut.set_running_or_notify_cancel():
                        try:
                            self._running = job(self._con)
                        except BaseException as exc:  # noqa: BLE001 - handed to the caller
                            self._steps.popleft()
                            fut.set_exception(exc)
                            return True
                    else:
                        self._steps.popleft()
                        return True
        if self._running is not None:
            fut = self._steps[0][1]
            try:
                self._apply(next(self._running))
            except StopIteration as done:
                self._finish_steps()
                fut.set_result(done.value)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._finish_steps()
                fut.set_exception(exc)
        elif (
            self.rollup is not None
            and not self._stopping
            and self._clock() >= self._rollup_rest_until
            and self.rollup.has_work
        ):
            try:
                changes = self.rollup.step()
            except Exception:
                log.exception("minute rollup step failed; retrying in %.0f s", ROLLUP_RETRY_S)
                self._rollup_rest_until = self._clock() + ROLLUP_RETRY_S
                return False
            if changes is None:
                return False
            self._apply(changes)
        else:
            return False
        took = time.perf_counter() - started
        self.maintenance_steps += 1
        self.maintenance_seconds += took
        self.max_step_seconds = max(self.max_step_seconds, took)
        return True

    def _finish_steps(self) -> None:
        self._running = None
        with self._lock:
            self._steps.popleft()

    def _apply(self, changes: Changes | None) -> None:
        lake = self.lake
        if changes is None or lake is None:
            return
        if changes.appended is not None:
            lake.add("probes_minute", changes.appended)
        if changes.dirty:
            lake.mark_dirty(changes.dirty)

    def _run_jobs(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    return
                job, fut = self._jobs.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(job(self._con))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

    def _commit_pending(self) -> None:
        with self._lock:
            batch, self._buf = self._buf, _Batch()
            upto = self._enqueued
            self._inflight = batch
        errors: list[BaseException] = []
        if batch.rows():
            started = time.perf_counter()
            errors = self._write(batch)
            self.write_seconds += time.perf_counter() - started
        with self._done:
            self._inflight = None
            self._durable = upto
            self._errors.extend((upto, e) for e in errors)
            self._done.notify_all()

    def _write(self, batch: _Batch) -> list[BaseException]:
        # (table, rows, its insert, the insert that retries them when the batch failed)
        steps: list[tuple[str, list[object], _Insert, _Insert]] = []
        if batch.endpoints:
            endpoints = list(batch.endpoints.values())
            steps.append(("endpoints", endpoints, self._endpoints, self._endpoints))
        if batch.arms:
            arms = [a for i, a in batch.arms.items() if i not in self._stored_arms]
            if arms:
                steps.append(("decision_arms", arms, self._arms, self._arms))
        if batch.decisions:
            # a repeated event id fails the plain insert; the tolerant retry keeps its first row
            decisions = list(batch.decisions.values())
            table = batch.decision_table()
            steps.append(("decisions", decisions, lambda _: self._decisions(table),
                          self._decisions_tolerant))
        if batch.probes:
            steps.append(("probes", list(batch.probes), self._probes, self._probes))
        if batch.feedback:
            steps.append(("feedback", list(batch.feedback), self._feedback, self._feedback))
        if batch.learned:
            steps.append(("learned", list(batch.learned.items()), self._learned, self._learned))
        con = self._con
        done: list[tuple[str, _Inserted]] = []
        errors: list[BaseException] = []
        try:
            con.execute("BEGIN TRANSACTION")
            done = [(table, insert(rows)) for table, rows, insert, _ in steps]
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            done = []
            for table, rows, _, retry in steps:
                errors.extend(self._salvage(table, rows, retry, done))
        if not errors and batch.arms:
            if len(self._stored_arms) > MAX_KNOWN_ARMS:
                self._stored_arms.clear()
            self._stored_arms.update(batch.arms)
        for table, (written, changes) in done:
            self.rows_written += written.num_rows
            if table == "probes" and self.rollup is not None:
                self.rollup.note_rows()
            if self.lake is not None:
                self.lake.add(table, written)
            self._apply(changes)
        self.batches_written += 1
        return errors

    def _salvage(
        self,
        table: str,
        rows: list[object],
        insert: _Insert,
        done: list[tuple[str, _Inserted]],
    ) -> list[BaseException]:
        """Write what can be written: halve failing parts until the bad rows stand alone."""
        errors: list[BaseException] = []
        stack = [rows]
        while stack:
            part = stack.pop()
            try:
                self._con.execute("BEGIN TRANSACTION")
                written = insert(part)
                self._con.execute("COMMIT")
                done.append((table, written))
            except Exception as exc:
                self._con.execute("ROLLBACK")
                if len(part) > 1:
                    half = len(part) // 2
                    stack.extend((part[half:], part[:half]))
                else:
                    log.error("dropped one %s row that could not be written: %r", table, exc)
                    errors.append(exc)
        return errors

    def _insert(self, sql: str, rows: pa.Table, *, returning: bool = False) -> _Inserted:
        self._con.register("wh_batch", rows)
        try:
            if not returning:
                self._con.execute(sql)
                return rows, None
            rel = self._con.sql(sql + " RETURNING *")
            return (rel.to_arrow_table() if rel is not None else rows.slice(0, 0)), None
        finally:
            self._con.unregister("wh_batch")

    def _probes(self, rows: list[object]) -> _Inserted:
        table = probes_to_arrow(rows)  # type: ignore[arg-type]
        self._con.register("wh_batch", table)
        try:
            self._con.execute("INSERT INTO probes BY NAME SELECT * FROM wh_batch")
            changes = None
            oldest = pc.min(table.column("started_at")).value
            if self.rollup is not None and oldest is not None:
                # rows for minutes already rolled up: fold them in, in this same transaction
                changes = self.rollup.fold_late("wh_batch", int(oldest))
            return table, changes
        finally:
            self._con.unregister("wh_batch")

    def _feedback(self, rows: list[object]) -> _Inserted:
        table = feedback_to_arrow(rows)  # type: ignore[arg-type]
        return self._insert("INSERT INTO feedback BY NAME SELECT * FROM wh_batch", table)

    def _arms(self, rows: list[object]) -> _Inserted:
        # A few rows a batch (candidates whose live stats changed). One VALUES statement with
        # parameters costs half of an Arrow scan with RETURNING * (1.8 against 3.4 ms of CPU
        # for 3 rows); the ids returned are those new to the table, which the lake gets.
        arms: list[tuple[ArmRef, datetime]] = rows  # type: ignore[assignment]
        new: set[int] = set()
        for i in range(0, len(arms), ARMS_PER_STATEMENT):
            part = arms[i : i + ARMS_PER_STATEMENT]
            sql = ("INSERT OR IGNORE INTO decision_arms (arm_id, endpoint_id, features, "
                   "first_seen) VALUES " + ",".join(["(?, ?, ?, ?)"] * len(part))
                   + " RETURNING arm_id")
            params = [x for ref, at in part for x in (*ref, at)]
            new.update(r[0] for r in self._con.execute(sql, params).fetchall())
        return arms_to_arrow([a for a in arms if a[0][0] in new]), None

    def _decisions(self, table: pa.Table) -> _Inserted:
        # put_decision converted the rows. Every event id is new (random, logged once), so a
        # plain insert, which the primary key still guards, costs a third less than INSERT OR
        # IGNORE ... RETURNING (20 against 30 ms of CPU per 600 decisions). A repeated id fails
        # the batch, and _write retries with _decisions_tolerant.
        return self._insert("INSERT INTO decisions BY NAME SELECT * FROM wh_batch", table)

    def _decisions_tolerant(self, rows: list[object]) -> _Inserted:
        # The first row of an event id stays; the rows returned are the ones written. Only a
        # failed batch comes here, so its rows are built again rather than kept twice.
        table = decision_rows_to_arrow([decision_row(d) for d in rows])  # type: ignore[arg-type]
        sql = "INSERT OR IGNORE INTO decisions BY NAME SELECT * FROM wh_batch"
        return self._insert(sql, table, returning=True)

    def _learned(self, rows: list[object]) -> _Inserted:
        table = learned_to_arrow(rows)  # type: ignore[arg-type]
        sql = "INSERT OR IGNORE INTO learned BY NAME SELECT * FROM wh_batch"
        return self._insert(sql, table, returning=True)

    def _endpoints(self, rows: list[object]) -> _Inserted:
        table = endpoints_to_arrow(rows)  # type: ignore[arg-type]
        sql = "INSERT OR REPLACE INTO endpoints BY NAME SELECT * FROM wh_batch"
        return self._insert(sql, table)
