"""Training data in the warehouse: runs, the answers they paid for, versioned router models.

``switchyard train`` sends every prompt of a dataset to every candidate endpoint; each answer
is one ``train_answers`` row, keyed by ``(run_id, prompt_id, endpoint_id)`` where ``prompt_id``
is the SHA-256 of the prompt text. A row is committed before :meth:`TrainingStore.add_answers`
returns, so an interrupted run loses at most the calls in flight, and a resumed run asks
:meth:`TrainingStore.done_pairs` what it must not send again. Trained models are kept in
``router_models`` with the trade-off they were measured at (JSON), the graph (PNG) and the
interactive page (HTML); ``version`` counts up from 1 and at most one model is active.

Every write runs on the warehouse's single writer thread, after the rows already buffered
(``Writer.submit``); reads use the warehouse's per-thread cursors.

    store = TrainingStore(warehouse)
    store.create_run(TrainRun.new("r1", "prompts.jsonl", sha, ["a@x", "b@y"], {}))
    store.add_answers([answer, ...])           # durable when it returns
    store.done_pairs("r1")                     # {(prompt_id, endpoint_id), ...}
    model_id = store.save_model(run_id="r1", kind="quality", model=blob, activate=True)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import duckdb

from warehouse.errors import WarehouseError
from warehouse.models import utcnow
from warehouse.store import Warehouse

T = TypeVar("T")

#: Statuses of a run, in the order a run goes through them.
RUN_STATUSES = ("calling", "training", "done", "failed")
#: ``train_answers.outcome`` of an answer that was received whole.
OK = "ok"

_ANSWER_COLUMNS = (
    "run_id", "prompt_id", "endpoint_id", "answer", "score", "scorer", "tokens_in",
    "tokens_out", "cost_usd", "ttft_ms", "latency_ms", "outcome", "ts",
)  # fmt: skip
_MODEL_INFO = "model_id, version, created_at, run_id, kind, tradeoff, active"


class TrainingStoreError(WarehouseError):
    """A training run or model that does not exist, or a run created twice."""

    status = 404


def prompt_id(prompt: str) -> str:
    """The key of a prompt: the hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class TrainRun:
    """One ``switchyard train`` run: what it trains on and how far it got."""

    run_id: str
    created_at: datetime
    dataset_path: str
    dataset_sha256: str
    endpoints: tuple[str, ...]
    options: Mapping[str, object] = field(default_factory=dict)
    status: str = "calling"
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("run_id must not be empty")
        if self.status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {self.status!r}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")

    @classmethod
    def new(
        cls,
        run_id: str,
        dataset_path: str,
        dataset_sha256: str,
        endpoints: Sequence[str],
        options: Mapping[str, object],
        *,
        now: datetime | None = None,
    ) -> TrainRun:
        return cls(run_id, now or utcnow(), dataset_path, dataset_sha256, tuple(endpoints),
                   dict(options))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrainAnswer:
    """One prompt sent to one endpoint: the answer, its score and what it cost.

    ``score`` is in [0, 1], None when it could not be scored (a failed call, a judge that did
    not answer). ``cost_usd`` is tokens x the endpoint's prices; times are milliseconds.
    """

    run_id: str
    prompt_id: str
    endpoint_id: str
    answer: str | None
    score: float | None
    scorer: str
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    ttft_ms: float | None
    latency_ms: float | None
    outcome: str
    ts: datetime

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware")

    @property
    def ok(self) -> bool:
        return self.outcome == OK


@dataclass(frozen=True, slots=True)
class RouterModelInfo:
    """A stored router model, without its blobs."""

    model_id: str
    version: int
    created_at: datetime
    run_id: str | None
    kind: str
    tradeoff: Mapping[str, object] | None
    active: bool


class TrainingStore:
    """Runs, answers and router models of one open :class:`Warehouse` (see the module doc)."""

    def __init__(self, warehouse: Warehouse) -> None:
        if not isinstance(warehouse, Warehouse):
            raise ValueError(f"warehouse must be a Warehouse, got {type(warehouse).__name__}")
        self.warehouse = warehouse

    def _submit(self, job: Callable[[duckdb.DuckDBPyConnection], T]) -> Future[T]:
        return self.warehouse.submit(job)  # on the warehouse's single writer thread

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, run: TrainRun) -> None:
        """Store a new run; ``TrainingStoreError`` when its id is taken."""

        def job(con: duckdb.DuckDBPyConnection) -> None:
            taken = con.execute(
                "SELECT count(*) FROM train_runs WHERE run_id = ?", [run.run_id]
            ).fetchone()
            if taken and taken[0]:
                raise TrainingStoreError(f"training run {run.run_id!r} already exists")
            con.execute(
                "INSERT INTO train_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run.run_id, run.created_at, run.dataset_path, run.dataset_sha256,
                 list(run.endpoints), json.dumps(dict(run.options), sort_keys=True), run.status,
                 run.updated_at or run.created_at],
            )  # fmt: skip

        self._submit(job).result()

    def set_status(self, run_id: str, status: str) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        now = self.warehouse.now()

        def job(con: duckdb.DuckDBPyConnection) -> int:
            rows = con.execute(
                "UPDATE train_runs SET status = ?, updated_at = ? WHERE run_id = ? RETURNING 1",
                [status, now, run_id],
            ).fetchall()
            return len(rows)

        if not self._submit(job).result():
            raise TrainingStoreError(f"no training run {run_id!r}")

    def get_run(self, run_id: str) -> TrainRun | None:
        runs = self._runs("WHERE run_id = ?", [run_id])
        return runs[0] if runs else None

    def list_runs(self) -> list[TrainRun]:
        """Every run, newest first."""
        return self._runs("ORDER BY created_at DESC, run_id", [])

    def _runs(self, where: str, params: list[object]) -> list[TrainRun]:
        rows = self.warehouse.query(
            "SELECT run_id, created_at, dataset_path, dataset_sha256, endpoints, options, status,"
            f" updated_at FROM train_runs {where}",
            params,
        )
        return [
            TrainRun(str(r[0]), r[1], str(r[2]), str(r[3]), tuple(r[4]),  # type: ignore[arg-type]
                     json.loads(str(r[5])), str(r[6]), r[7])  # type: ignore[arg-type]
            for r in rows
        ]  # fmt: skip

    # -- answers --------------------------------------------------------------------------
    def add_answers(self, answers: Sequence[TrainAnswer]) -> None:
        """Store answers (one transaction); committed when this returns. A pair stored
        before is replaced (a failed call retried on resume)."""
        if not answers:
            return
        rows = [[getattr(a, c) for c in _ANSWER_COLUMNS] for a in answers]
        marks = ", ".join("?" * len(_ANSWER_COLUMNS))

        def job(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("BEGIN TRANSACTION")
            try:
                con.executemany(f"INSERT OR REPLACE INTO train_answers VALUES ({marks})", rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

        self._submit(job).result()

    async def aadd_answers(self, answers: Sequence[TrainAnswer]) -> None:
        """:meth:`add_answers` without blocking the event loop."""
        if answers:
            await asyncio.to_thread(self.add_answers, answers)

    def answers(self, run_id: str) -> list[TrainAnswer]:
        """Every stored answer of a run, ordered by prompt then endpoint."""
        rows = self.warehouse.query(
            f"SELECT {', '.join(_ANSWER_COLUMNS)} FROM train_answers WHERE run_id = ? "
            "ORDER BY prompt_id, endpoint_id",
            [run_id],
        )
        return [TrainAnswer(*r) for r in rows]  # type: ignore[arg-type]

    def done_pairs(self, run_id: str) -> set[tuple[str, str]]:
        """``(prompt_id, endpoint_id)`` of every answer received whole: never send them again."""
        rows = self.warehouse.query(
            "SELECT prompt_id, endpoint_id FROM train_answers WHERE run_id = ? AND outcome = ?",
            [run_id, OK],
        )
        return {(str(p), str(e)) for p, e in rows}

    # -- models ---------------------------------------------------------------------------
    def save_model(
        self,
        *,
        run_id: str | None,
        kind: str,
        model: bytes,
        tradeoff: Mapping[str, object] | None = None,
        plot_png: bytes | None = None,
        html: str | None = None,
        activate: bool = False,
    ) -> str:
        """Store a model as the next version; returns its id (``<kind>-v<version>``)."""
        if not kind or not kind.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"kind must be a short name such as 'quality', got {kind!r}")
        now = self.warehouse.now()
        blob = json.dumps(tradeoff) if tradeoff is not None else None

        def job(con: duckdb.DuckDBPyConnection) -> str:
            con.execute("BEGIN TRANSACTION")
            try:
                row = con.execute("SELECT coalesce(max(version), 0) FROM router_models").fetchone()
                version = int(row[0]) + 1 if row else 1
                model_id = f"{kind}-v{version}"
                if activate:
                    con.execute("UPDATE router_models SET active = false WHERE active")
                con.execute(
                    "INSERT INTO router_models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [model_id, version, now, run_id, kind, model, blob, plot_png, html, activate],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return model_id

        return self._submit(job).result()

    def activate(self, model_id: str) -> None:
        """Make ``model_id`` the one active model."""

        def job(con: duckdb.DuckDBPyConnection) -> bool:
            found = con.execute(
                "SELECT count(*) FROM router_models WHERE model_id = ?", [model_id]
            ).fetchone()
            if not found or not found[0]:
                return False
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("UPDATE router_models SET active = (model_id = ?)", [model_id])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return True

        if not self._submit(job).result():
            raise TrainingStoreError(f"no router model {model_id!r}")

    def list_models(self) -> list[RouterModelInfo]:
        """Every stored model, newest version first."""
        return self._models("ORDER BY version DESC", [])

    def latest_model(self, kind: str | None = None) -> RouterModelInfo | None:
        where = "WHERE kind = ? " if kind is not None else ""
        found = self._models(where + "ORDER BY version DESC LIMIT 1", [kind] if kind else [])
        return found[0] if found else None

    def model_info(self, model_id: str) -> RouterModelInfo | None:
        """One stored model's description (``None`` when there is no such model)."""
        found = self._models("WHERE model_id = ?", [model_id])
        return found[0] if found else None

    def active_model(self) -> RouterModelInfo | None:
        found = self._models("WHERE active ORDER BY version DESC LIMIT 1", [])
        return found[0] if found else None

    def _models(self, tail: str, params: list[object]) -> list[RouterModelInfo]:
        rows = self.warehouse.query(f"SELECT {_MODEL_INFO} FROM router_models {tail}", params)
        return [
            RouterModelInfo(str(r[0]), int(r[1]), r[2], r[3], str(r[4]),  # type: ignore[arg-type]
                            json.loads(str(r[5])) if r[5] is not None else None, bool(r[6]))
            for r in rows
        ]  # fmt: skip

    def _blob(self, model_id: str, column: str) -> object:
        rows = self.warehouse.query(
            f"SELECT {column} FROM router_models WHERE model_id = ?", [model_id]
        )
        if not rows:
            raise TrainingStoreError(f"no router model {model_id!r}")
        return rows[0][0]

    def load_model(self, model_id: str) -> bytes:
        """The model's bytes (what ``QualityModel.to_bytes`` wrote)."""
        return bytes(self._blob(model_id, "model"))  # type: ignore[arg-type]

    def model_plot(self, model_id: str) -> bytes | None:
        """The trade-off graph as PNG bytes, if one was stored."""
        value = self._blob(model_id, "plot")
        return bytes(value) if value is not None else None  # type: ignore[arg-type]

    def model_html(self, model_id: str) -> str | None:
        """The interactive trade-off page, if one was stored."""
        value = self._blob(model_id, "html")
        return str(value) if value is not None else None
