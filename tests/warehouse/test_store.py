"""Warehouse: lifecycle, the single writer, round trips, lookups, crash safety."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.config import WarehouseConfig
from warehouse.convert import (
    DECISION_ARROW_SCHEMA,
    DECISION_CHUNK,
    decision_row,
    decision_rows_to_arrow,
)
from warehouse.errors import (
    WarehouseClosedError,
    WarehouseError,
    WarehouseQueryError,
    WarehouseWriteError,
)
from warehouse.models import (
    Decision,
    Endpoint,
    Feedback,
    Outcome,
    ProbeResult,
    Source,
)
from warehouse.store import Warehouse, open_read_only

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def probe(i: int, *, endpoint: str = "m@p", at: datetime = T0, **kw: object) -> ProbeResult:
    fields: dict[str, object] = {
        "endpoint_id": endpoint,
        "started_at": at + timedelta(seconds=i),
        "outcome": Outcome.OK,
        "ttft_ms": 100.0 + i,
        "itl_ms_p50": 10.0,
        "tpot_ms": 20.0,
        "chunks": 5,
    }
    fields.update(kw)
    return ProbeResult(**fields)  # type: ignore[arg-type]


def decision(n: int, *, at: datetime = T0) -> Decision:
    return Decision(
        event_id=f"evt-{n:012d}-abcdef",
        created_at=at + timedelta(seconds=n),
        router="fast",
        context={"prompt_tokens": 12.0, "lang": "en"},
        candidates=("m@p", "n@q"),
        probabilities=(0.25, 0.75),
        chosen="n@q",
        chosen_prob=0.75,
        fallbacks=("m@p",),
        policy_version="v7",
        prompt_tokens=12,
        max_tokens=256,
    )


def config(tmp_path: Path, **kw: object) -> WarehouseConfig:
    return WarehouseConfig(path=tmp_path / "w.duckdb", **kw)  # type: ignore[arg-type]


@pytest.fixture
def wh(tmp_path: Path):
    w = Warehouse(config(tmp_path), now=lambda: T0 + timedelta(minutes=1), lake=False)
    w.open()
    yield w
    w.close()


def test_lifecycle_and_use_after_close(tmp_path: Path) -> None:
    w = Warehouse(config(tmp_path), lake=False)
    with pytest.raises(WarehouseError, match="not open"):
        w.add_probe(probe(0))
    w.open()
    w.open()  # no-op
    w.add_probe(probe(0))
    w.close()
    w.close()  # idempotent
    for call in (
        lambda: w.add_probe(probe(1)),
        lambda: w.query("SELECT 1"),
        w.flush,
        lambda: w.get_decision("x" * 16),
        w.open,
    ):
        with pytest.raises(WarehouseClosedError):
            call()
    with Warehouse(config(tmp_path), lake=False) as again:  # close() flushed the row
        assert again.query("SELECT count(*) FROM probes") == [(1,)]


def test_one_writer_per_file_in_a_process(tmp_path: Path) -> None:
    with Warehouse(config(tmp_path), lake=False):
        with pytest.raises(WarehouseError, match="already open in this process"):
            Warehouse(config(tmp_path), lake=False).open()
    with Warehouse(config(tmp_path), lake=False) as again:  # released by close()
        assert again.is_open


def test_constructor_rejects_a_non_config() -> None:
    with pytest.raises(ValueError):
        Warehouse({"path": "x.duckdb"})  # type: ignore[arg-type]


async def test_async_lifecycle(tmp_path: Path) -> None:
    async with Warehouse(config(tmp_path), lake=False) as w:
        w.add_probes([probe(i) for i in range(10)])
        await w.aflush()
        assert await w.aquery("SELECT count(*) FROM probes") == [(10,)]
        frame = await w.aquery_pl("SELECT endpoint_id FROM probes")
        assert frame.height == 10
    with pytest.raises(WarehouseClosedError):
        await w.aquery("SELECT 1")


def test_probe_round_trip_every_field(wh: Warehouse) -> None:
    r = ProbeResult(
        endpoint_id="gpt-4o@openai",
        started_at=T0,
        source=Source.TRAFFIC,
        outcome=Outcome.STREAM_ERROR,
        status_code=200,
        detail="overloaded_error",
        prompt_name="long",
        event_id="evt-1",
        conn_reused=False,
        connect_ms=35.25,
        ttft_ms=180.5,
        reasoning_ttft_ms=90.125,
        itl_ms_mean=12.5,
        itl_ms_p50=11.0,
        itl_ms_p90=30.75,
        itl_ms_max=400.0,
        tpot_ms=16.0,
        e2e_ms=2500.5,
        chunks=77,
        tokens_per_chunk=2.5,
        input_tokens=40,
        output_tokens=190,
        usage_reported=True,
        retry_after_s=1.5,
    )
    wh.add_probe(r)
    wh.flush()
    frame = wh.query_pl("SELECT * FROM probes")
    assert frame.height == 1
    back = frame.row(0, named=True)
    for name, value in r.model_dump().items():
        got = back[name]
        if isinstance(value, float):
            assert math.isclose(got, value, rel_tol=1e-6), name
        else:
            assert got == value, name
    assert frame.schema["started_at"] == pl.Datetime("us", "UTC")
    (tps,) = wh.query("SELECT tokens_per_s FROM v_probes")[0]
    assert tps == pytest.approx(1000 / 16)


def test_rows_become_durable_without_flush(tmp_path: Path) -> None:
    with Warehouse(config(tmp_path, flush_interval_s=0.1), lake=False) as w:
        w.add_probes([probe(i) for i in range(25)])
        deadline = time.monotonic() + 10
        # the rows are visible as soon as they commit; the backlog counter follows just after
        while w.query("SELECT count(*) FROM probes") != [(25,)] or w.backlog:
            assert time.monotonic() < deadline, "the writer never wrote on its own"
            time.sleep(0.05)
        assert w.backlog == 0


def test_batch_rows_wake_the_writer_early(tmp_path: Path) -> None:
    with Warehouse(config(tmp_path, flush_interval_s=1.0, batch_rows=100), lake=False) as w:
        time.sleep(0.2)  # let the first idle interval start
        t0 = time.monotonic()
        w.add_probes([probe(i) for i in range(150)])
        while w.query("SELECT count(*) FROM probes") != [(150,)]:
            time.sleep(0.01)
        assert time.monotonic() - t0 < 0.8  # sooner than the 1 s interval


def test_decision_lookups_see_buffered_and_committed_rows(wh: Warehouse) -> None:
    d = decision(1)
    wh.add_decision(d)
    assert wh.get_decision(d.event_id) == d  # still buffered
    wh.flush()
    assert wh.get_decision(d.event_id) == d  # from DuckDB, context JSON and lists restored
    assert wh.get_decision("missing-event-0000") is None
    twin = d.model_copy(update={"policy_version": "v8"})
    wh.add_decision(twin)
    wh.flush()
    assert wh.get_decision(d.event_id) == d  # a repeated event id keeps the first decision
    assert wh.query("SELECT count(*) FROM decisions") == [(1,)]


def test_a_decision_logged_twice_before_a_flush_keeps_the_first(wh: Warehouse) -> None:
    ds = [decision(n) for n in range(DECISION_CHUNK + 1)]  # a whole chunk and one more
    for d in ds:
        wh.add_decision(d)
    twin = ds[3].model_copy(update={"policy_version": "v8"})
    wh.add_decision(twin)  # still buffered with the first: the buffer keeps the first
    assert wh.get_decision(twin.event_id) == ds[3]
    wh.flush()  # nothing reported: nothing was dropped
    assert wh.get_decision(twin.event_id) == ds[3]
    assert wh.query("SELECT count(*), count(DISTINCT event_id) FROM decisions") == [
        (len(ds), len(ds))]


def test_decision_rows_convert_in_chunks_in_order() -> None:
    ds = [decision(n) for n in range(2 * DECISION_CHUNK + 5)]
    table = decision_rows_to_arrow([decision_row(d) for d in ds])
    assert table.schema == DECISION_ARROW_SCHEMA
    assert [len(c) for c in table.column("event_id").chunks] == [DECISION_CHUNK] * 2 + [5]
    rows = table.to_pylist()
    assert [r["event_id"] for r in rows] == [d.event_id for d in ds]
    assert rows[-1]["candidates"] == ["m@p", "n@q"] and rows[-1]["chosen_prob"] == 0.75
    assert decision_rows_to_arrow([]).num_rows == 0


def test_many_decisions_written_in_one_batch_read_back_whole(wh: Warehouse) -> None:
    ds = [decision(n) for n in range(2 * DECISION_CHUNK + 5)]  # more than one Arrow chunk
    for d in ds:
        wh.add_decision(d)
    wh.flush()
    assert wh.query("SELECT count(*) FROM decisions") == [(len(ds),)]
    for d in (ds[0], ds[DECISION_CHUNK], ds[-1]):
        assert wh.get_decision(d.event_id) == d


def test_decisions_between_reads_committed_and_buffered_rows_in_range(wh: Warehouse) -> None:
    for n in range(4):
        wh.add_decision(decision(n))  # at T0 + n seconds
    wh.flush()
    for n in range(4, 6):
        wh.add_decision(decision(n))  # still buffered
    got = wh.decisions_between(T0 + timedelta(seconds=1), T0 + timedelta(seconds=4))
    assert [d.event_id for d in got] == [decision(n).event_id for n in (1, 2, 3, 4)]
    assert got[0] == decision(1)  # whole, as stored
    assert wh.decisions_between(T0 + timedelta(seconds=9), T0 + timedelta(seconds=10)) == []


def test_candidate_features_are_stored_once_and_read_back_flat(wh: Warehouse) -> None:
    flat = {"p.tokens": 12.0, "a.llama-3.1-8b@groq.ttft_p50": 95.5,
            "a.llama-3.1-8b@groq.model": "llama-3.1-8b", "a.m@p.ttft_p50": 300.0}
    d = decision(1).model_copy(update={"context": flat})
    # a later decision lists the same first candidate, and the second one changed
    later = decision(2).model_copy(update={"context": {**flat, "a.m@p.ttft_p50": 310.0}})
    wh.add_decision(d)
    wh.flush()
    wh.add_decision(later)
    wh.flush()
    # each candidate's features are one decision_arms row, whatever the decisions listing it
    arms = wh.query("SELECT endpoint_id, features->>'ttft_p50' FROM decision_arms "
                    "ORDER BY 1, 2")
    assert arms == [("llama-3.1-8b@groq", "95.5"), ("m@p", "300.0"), ("m@p", "310.0")]
    assert wh.query("SELECT context FROM decisions WHERE event_id = ?", [d.event_id]) == [
        ('{"p.tokens":12.0}',)]
    # SQL sees each decision's candidates in order (endpoint ids may hold dots)
    rows = wh.query("SELECT position, endpoint_id, features->>'ttft_p50' FROM v_decision_arms "
                    "WHERE event_id = ? ORDER BY position", [later.event_id])
    assert rows == [(1, "llama-3.1-8b@groq", "95.5"), (2, "m@p", "310.0")]
    assert wh.get_decision(d.event_id) == d  # Python readers get the flat keys back
    assert wh.decisions_between(T0, T0 + timedelta(seconds=5)) == [d, later]
    # rows written before decision_arms (schema 5) read back as they were: the candidates
    # nested under "a" in the context, or flat keys from before the nested form
    nested = decision(3).model_copy(update={"context": {"p.tokens": 3.0, "a.m@p.ttft_p50": 1.5,
                                                        "a.n@q.ttft_p50": 2.5}})
    old = decision(4).model_copy(update={"context": {"a.m@p.ttft_p50": 1.5}})
    for row, text in ((nested, '{"p.tokens":3.0,"a":{"m@p":{"ttft_p50":1.5},'
                               '"n@q":{"ttft_p50":2.5}}}'),
                      (old, '{"a.m@p.ttft_p50":1.5}')):
        wh.submit(lambda con, row=row, text=text: con.execute(
            "INSERT INTO decisions SELECT ?, ?, 'fast', ?, ['m@p', 'n@q'], [0.25, 0.75], 'n@q', "
            "0.75, [], 'v7', false, NULL, 12, 256, NULL, NULL",
            [row.event_id, row.created_at, text])).result()
    assert wh.get_decision(nested.event_id).context == nested.context
    assert wh.get_decision(old.event_id).context == {"a.m@p.ttft_p50": 1.5}
    rows = wh.query("SELECT position, endpoint_id, features->>'ttft_p50' FROM v_decision_arms "
                    "WHERE event_id = ? ORDER BY position", [nested.event_id])
    assert rows == [(1, "m@p", "1.5"), (2, "n@q", "2.5")]


def test_a_batch_with_hundreds_of_new_candidates_stores_each_once(wh: Warehouse) -> None:
    ds = [decision(n).model_copy(update={"context": {"p.tokens": 1.0, "a.m@p.ttft_p50": 1.0,
                                                     "a.n@q.ttft_p50": float(n)}})
          for n in range(600)]  # more candidates than one insert statement takes
    for d in ds:
        wh.add_decision(d)
    wh.flush()
    assert wh.query("SELECT count(*), count(DISTINCT (endpoint_id, features)) "
                    "FROM decision_arms") == [(601, 601)]
    assert wh.get_decision(ds[-1].event_id) == ds[-1]


def test_feedback_for_merges_buffer_and_table_in_time_order(wh: Warehouse) -> None:
    d = decision(2)
    wh.add_decision(d)
    wh.add_feedback(Feedback(event_id=d.event_id, score=0.0, received_at=T0 + timedelta(seconds=5)))
    wh.flush()
    wh.add_feedback(Feedback(event_id=d.event_id, score=1.0, received_at=T0 + timedelta(seconds=9)))
    wh.add_feedback(Feedback(event_id="other-event-000001", score=0.5))
    scores = [f.score for f in wh.feedback_for(d.event_id)]
    assert scores == [0.0, 1.0]
    wh.flush()
    assert [f.score for f in wh.feedback_for(d.event_id)] == [0.0, 1.0]
    latest = wh.query("SELECT score, n_feedback FROM v_decisions WHERE event_id = ?", [d.event_id])
    assert latest == [(1.0, 2)]


def test_decisions_since_skips_learned_events(wh: Warehouse) -> None:
    ds = [decision(n) for n in range(6)]
    for d in ds[:4]:
        wh.add_decision(d)
    wh.flush()
    for d in ds[4:]:
        wh.add_decision(d)  # still buffered
    wh.mark_learned([ds[0].event_id])
    wh.flush()
    wh.mark_learned([ds[5].event_id])  # buffered mark
    since = wh.decisions_since(ds[1].created_at)
    assert [d.event_id for d in since] == [d.event_id for d in ds[1:5]]
    every = wh.decisions_since(T0 - timedelta(days=1), unlearned_only=False)
    assert [d.event_id for d in every] == [d.event_id for d in ds]
    wh.mark_learned([ds[0].event_id])  # twice: the first mark stays
    wh.flush()
    assert wh.query("SELECT count(*) FROM learned") == [(2,)]


def test_endpoints_upsert_and_never_store_keys(wh: Warehouse) -> None:
    e = Endpoint(
        id="gpt-4o@openai",
        base_url="https://api.openai.com/v1",
        wire_format="openai",
        api_key_env="OPENAI_API_KEY",
        price_in_per_mtok=2.5,
        price_out_per_mtok=10,
        context_window=128000,
        tags=("fast", "big"),
    )
    wh.upsert_endpoints([e])
    wh.flush()
    wh.upsert_endpoints([e.model_copy(update={"price_in_per_mtok": 2.0})])
    wh.flush()
    rows = wh.query("SELECT id, model, provider, price_in_per_mtok, tags FROM endpoints")
    assert rows == [("gpt-4o@openai", "gpt-4o", "openai", 2.0, ["fast", "big"])]
    dump = str(wh.query("SELECT * FROM endpoints"))
    assert "OPENAI_API_KEY" not in dump


def test_query_refuses_writes(wh: Warehouse) -> None:
    wh.add_probe(probe(0))
    wh.flush()
    for sql in ("DELETE FROM probes", "SELECT 1; DROP TABLE probes", "CREATE TABLE x (a INT)"):
        with pytest.raises(WarehouseQueryError):
            wh.query(sql)
    with pytest.raises(WarehouseQueryError):
        wh.query_pl("INSERT INTO learned VALUES ('a', now())")
    assert wh.query("SELECT count(*) FROM probes") == [(1,)]


def test_reads_from_many_threads_while_writing(wh: Warehouse) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                wh.query("SELECT count(*), max(started_at) FROM probes")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):
        wh.add_probes([probe(i * 10 + k) for k in range(10)])
        time.sleep(0.005)
    wh.flush()
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert wh.query("SELECT count(*) FROM probes") == [(200,)]


def test_a_bad_row_is_dropped_alone_and_reported(wh: Warehouse) -> None:
    good = [probe(i) for i in range(9)]
    bad = probe(9, input_tokens=2**40)  # valid for the model, too big for the INTEGER column
    wh.add_probes(good[:5] + [bad] + good[5:])
    wh.add_decision(decision(3))
    with pytest.raises(WarehouseWriteError):
        wh.flush()
    assert wh.query("SELECT count(*) FROM probes") == [(9,)]
    assert wh.query("SELECT count(*) FROM decisions") == [(1,)]
    wh.add_probe(probe(20))
    wh.flush()  # the error was reported once; later writes are fine


def test_timezone_is_utc_in_every_read(wh: Warehouse) -> None:
    wh.add_probe(probe(0, at=datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)))
    wh.flush()
    [(setting, started)] = wh.query(
        "SELECT current_setting('TimeZone'), started_at FROM probes"
    )
    assert setting == "UTC"
    assert started.utcoffset() == timedelta(0)
    assert started == datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)


def test_duckdb_threads_follow_the_config(tmp_path: Path) -> None:
    # one by default: a batch write must not take the event loop's core in bursts
    with Warehouse(config(tmp_path), lake=False) as w:
        assert w.query("SELECT current_setting('threads')") == [(1,)]
    three = config(tmp_path).model_copy(update={"threads": 3})
    with Warehouse(three, lake=False) as w:
        assert w.query("SELECT current_setting('threads')") == [(3,)]
    with pytest.raises(ValueError, match="threads"):
        WarehouseConfig(path=tmp_path / "x.duckdb", threads=0)


def test_open_read_only_reads_a_closed_warehouse_and_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no DuckDB database"):
        open_read_only(tmp_path / "missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()  # DuckDB would have created it
    with Warehouse(config(tmp_path), lake=False) as w:
        w.add_probes([probe(i) for i in range(3)])
        with pytest.raises(duckdb.Error):  # the service holds the file
            open_read_only(w.path)
    con = open_read_only(tmp_path / "w.duckdb")
    try:
        assert con.execute("SELECT count(*), current_setting('TimeZone') FROM probes").fetchone() \
            == (3, "UTC")
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM probes")
    finally:
        con.close()


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from warehouse.config import WarehouseConfig
    from warehouse.models import Outcome, ProbeResult
    from warehouse.store import Warehouse, open_read_only

    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    wh = Warehouse(WarehouseConfig(path=Path(sys.argv[1]), flush_interval_s=0.2))
    wh.open()

    def row(i):
        return ProbeResult(endpoint_id="m@p", started_at=t0 + timedelta(seconds=i),
                           outcome=Outcome.OK, ttft_ms=float(i))

    wh.add_probes([row(i) for i in range(5000)])
    time.sleep(0.8)  # more than one flush interval: these rows are committed
    print("committed", flush=True)
    i = 5000
    while True:  # keep writing until killed
        wh.add_probe(row(i))
        i += 1
        time.sleep(0.001)
    """
)


@pytest.mark.slow
def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "crash.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "committed"
        time.sleep(0.5)  # the writer keeps committing small batches meanwhile
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with Warehouse(WarehouseConfig(path=path), lake=False) as w:
        [(n, lo, hi)] = w.query("SELECT count(*), min(ttft_ms), max(ttft_ms) FROM probes")
    assert n >= 5000
    assert lo == 0.0
    assert hi == n - 1  # no gaps: every row up to the last committed batch is there
