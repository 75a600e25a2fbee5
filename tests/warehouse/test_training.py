"""Training runs, answers and router models in a real DuckDB file; the v3 -> v4 migration."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from warehouse.config import WarehouseConfig
from warehouse.migrations import LATEST_VERSION, migrate, schema_version
from warehouse.store import Warehouse
from warehouse.training import (
    TrainAnswer,
    TrainingStore,
    TrainingStoreError,
    TrainRun,
    prompt_id,
)

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def open_wh(path: Path) -> Warehouse:
    wh = Warehouse(WarehouseConfig(path=path), now=lambda: T0, lake=False)
    wh.open()
    return wh


def answer(run: str, prompt: str, endpoint: str, *, outcome: str = "ok",
           score: float | None = 1.0, text: str = "42") -> TrainAnswer:
    return TrainAnswer(
        run_id=run, prompt_id=prompt_id(prompt), endpoint_id=endpoint, answer=text, score=score,
        scorer="numeric", tokens_in=10, tokens_out=3, cost_usd=1.5e-5, ttft_ms=120.5,
        latency_ms=300.0, outcome=outcome, ts=T0,
    )


def test_prompt_id_is_the_sha256_of_the_text() -> None:
    assert prompt_id("What is 2 + 2?") == hashlib.sha256(b"What is 2 + 2?").hexdigest()
    assert len(prompt_id("x")) == 64 and prompt_id("x") != prompt_id("x ")


def test_runs_round_trip_and_refuse_a_second_create(tmp_path: Path) -> None:
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        store = TrainingStore(wh)
        run = TrainRun.new("r1", "p.jsonl", "ab" * 32, ["a@x", "b@y"], {"holdout": 0.2}, now=T0)
        store.create_run(run)
        with pytest.raises(TrainingStoreError, match="already exists"):
            store.create_run(run)
        got = store.get_run("r1")
        assert got is not None
        assert (got.endpoints, got.options, got.status) == (("a@x", "b@y"), {"holdout": 0.2},
                                                            "calling")
        assert got.created_at == T0 and got.created_at.tzinfo is not None
        store.set_status("r1", "done")
        assert store.get_run("r1").status == "done"  # type: ignore[union-attr]
        store.create_run(TrainRun.new("r0", "q.jsonl", "cd" * 32, ["a@x"], {},
                                      now=T0 - timedelta(days=1)))
        assert [r.run_id for r in store.list_runs()] == ["r1", "r0"]
        assert store.get_run("nope") is None
        with pytest.raises(TrainingStoreError):
            store.set_status("nope", "done")
        with pytest.raises(ValueError):
            store.set_status("r1", "finished")
    finally:
        wh.close()


def test_answers_are_durable_when_add_returns(tmp_path: Path) -> None:
    """A child process stores answers and is killed with SIGKILL right after: they are there."""
    path = tmp_path / "k.duckdb"
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import UTC, datetime
        from pathlib import Path
        from warehouse.config import WarehouseConfig
        from warehouse.store import Warehouse
        from warehouse.training import TrainAnswer, TrainingStore, TrainRun, prompt_id
        wh = Warehouse(WarehouseConfig(path=Path({str(path)!r}), flush_interval_s=1.0),
                       lake=False)
        wh.open()
        store = TrainingStore(wh)
        store.create_run(TrainRun.new("r", "p.jsonl", "0" * 64, ["a@x"], {{}}))
        now = datetime.now(UTC)
        for i in range(3):
            store.add_answers([TrainAnswer("r", prompt_id(str(i)), "a@x", "ans", 1.0, "exact",
                               1, 1, 0.0, 1.0, 2.0, "ok", now)])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    wh = open_wh(path)
    try:
        assert len(TrainingStore(wh).done_pairs("r")) == 3
    finally:
        wh.close()


def test_done_pairs_are_the_ok_answers_and_a_retry_replaces_a_failure(tmp_path: Path) -> None:
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        store = TrainingStore(wh)
        store.add_answers([
            answer("r", "p1", "a@x"),
            answer("r", "p1", "b@y", outcome="http_429", score=None, text=""),
            answer("r", "p2", "a@x", score=0.0),
            answer("other", "p1", "a@x"),
        ])
        assert store.done_pairs("r") == {(prompt_id("p1"), "a@x"), (prompt_id("p2"), "a@x")}
        store.add_answers([answer("r", "p1", "b@y", score=0.5, text="41")])
        rows = store.answers("r")
        assert len(rows) == 3
        retried = next(a for a in rows if a.endpoint_id == "b@y")
        assert (retried.outcome, retried.score, retried.answer) == ("ok", 0.5, "41")
        assert retried.ts == T0 and retried.ttft_ms == pytest.approx(120.5)
        assert len(store.done_pairs("r")) == 3
    finally:
        wh.close()


def test_answer_validation() -> None:
    with pytest.raises(ValueError, match="score"):
        answer("r", "p", "a@x", score=1.5)
    with pytest.raises(ValueError):
        TrainRun("r", datetime(2025, 1, 1), "p", "s", ())  # naive time  # noqa: DTZ001


def test_models_are_versioned_and_one_is_active(tmp_path: Path) -> None:
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        store = TrainingStore(wh)
        assert store.latest_model() is None and store.active_model() is None
        tradeoff = {"endpoints": [], "routers": [], "heldout": 3}
        first = store.save_model(run_id="r", kind="quality", model=b"\x00vw1",
                                 tradeoff=tradeoff, plot_png=b"\x89PNG", html="<html></html>",
                                 activate=True)
        second = store.save_model(run_id="r", kind="quality", model=b"\x00vw2")
        assert (first, second) == ("quality-v1", "quality-v2")
        assert [m.version for m in store.list_models()] == [2, 1]
        assert store.load_model(second) == b"\x00vw2"
        assert store.model_plot(first) == b"\x89PNG" and store.model_plot(second) is None
        assert store.model_html(first) == "<html></html>"
        latest = store.latest_model("quality")
        assert latest is not None and latest.model_id == second and latest.tradeoff is None
        active = store.active_model()
        assert active is not None and active.model_id == first and active.tradeoff == tradeoff
        store.activate(second)
        assert [m.model_id for m in store.list_models() if m.active] == [second]
        third = store.save_model(run_id=None, kind="quality", model=b"3", activate=True)
        assert [m.model_id for m in store.list_models() if m.active] == [third]
        with pytest.raises(TrainingStoreError):
            store.activate("quality-v99")
        with pytest.raises(TrainingStoreError):
            store.load_model("quality-v99")
        with pytest.raises(ValueError):
            store.save_model(run_id=None, kind="bad kind!", model=b"")
    finally:
        wh.close()


def test_a_v3_file_is_migrated_to_v4_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    try:
        assert migrate(con, target=3) == [1, 2, 3]
        con.execute(
            "INSERT INTO probes (endpoint_id, started_at, source, outcome, detail, prompt_name,"
            " chunks, usage_reported, ttft_ms) VALUES ('m@p', TIMESTAMPTZ '2025-05-01 08:00:00+00',"
            " 'probe', 'ok', '', 'short', 3, true, 150)"
        )
    finally:
        con.close()
    wh = open_wh(path)
    try:
        versions = [r[0] for r in wh.query("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, LATEST_VERSION + 1)) and LATEST_VERSION >= 4
        assert wh.query("SELECT count(*), max(ttft_ms) FROM probes") == [(1, 150.0)]
        columns = [r[0] for r in wh.query("DESCRIBE train_answers")]
        assert columns[:3] == ["run_id", "prompt_id", "endpoint_id"]
        assert {"score", "scorer", "cost_usd", "ttft_ms", "latency_ms", "outcome"} <= set(columns)
        store = TrainingStore(wh)
        store.add_answers([answer("r", "p", "m@p")])
        assert store.save_model(run_id="r", kind="quality", model=b"m") == "quality-v1"
    finally:
        wh.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert schema_version(con) == LATEST_VERSION
    finally:
        con.close()


def test_model_info_is_one_model_or_none(tmp_path: Path) -> None:
    with Warehouse(WarehouseConfig(path=tmp_path / "m.duckdb"), lake=False) as wh:
        store = TrainingStore(wh)
        first = store.save_model(run_id=None, kind="quality", model=b"one", tradeoff={"heldout": 3})
        store.save_model(run_id=None, kind="quality", model=b"two")
        info = store.model_info(first)
        assert info is not None and info.model_id == first and info.tradeoff == {"heldout": 3}
        assert store.model_info("quality-v99") is None
