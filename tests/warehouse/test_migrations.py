"""Schema versions: new files, a real v1 file migrated to the latest, newer files refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from warehouse.config import WarehouseConfig
from warehouse.errors import SchemaVersionError
from warehouse.migrations import LATEST_VERSION, migrate, schema_version
from warehouse.models import Decision, Feedback, ProbeResult
from warehouse.schema import MIGRATIONS, MINUTE_COLUMNS, VIEWS, minute_agg_sql
from warehouse.store import Warehouse

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def open_wh(path: Path) -> Warehouse:
    wh = Warehouse(WarehouseConfig(path=path), now=lambda: T0 + timedelta(minutes=5), lake=False)
    wh.open()
    return wh


def make_v1_file(path: Path) -> None:
    """A file as release 1 wrote it, holding a few rows."""
    con = duckdb.connect(str(path))
    try:
        assert migrate(con, target=1) == [1]
        con.execute(
            "INSERT INTO probes (endpoint_id, started_at, source, outcome, detail, prompt_name,"
            " chunks, usage_reported, ttft_ms, tpot_ms) VALUES"
            " ('m@p', TIMESTAMPTZ '2025-03-01 12:00:10+00', 'probe', 'ok', '', 'short', 3,"
            " true, 120, 20),"
            " ('m@p', TIMESTAMPTZ '2025-03-01 12:00:40+00', 'probe', 'http_429', '', 'short', 0,"
            " false, NULL, NULL)"
        )
        con.execute(
            "INSERT INTO decisions VALUES ('e0000000000000001',"
            " TIMESTAMPTZ '2025-03-01 12:00:00+00',"
            " 'fast', '{\"len\": 3.0}', ['m@p', 'n@q'], [0.25, 0.75], 'n@q', 0.75, [], 'v1', false,"
            " NULL, 10, 100)"
        )
        con.execute(
            "INSERT INTO feedback VALUES ('e0000000000000001', 1.0, 'good',"
            " TIMESTAMPTZ '2025-03-01 12:01:00+00')"
        )
    finally:
        con.close()


def test_new_file_gets_the_latest_schema_and_contract_columns(tmp_path: Path) -> None:
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        rows = wh.query("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS] == [1, 2, 3, 4, 5, 6]
        described = {
            t: [r[0] for r in wh.query(f"DESCRIBE {t}")]
            for t in ("probes", "probes_minute", "decisions", "feedback", "learned", "endpoints",
                      "rollup_watermark", "decision_arms")
        }
    finally:
        wh.close()
    assert described["probes"] == list(ProbeResult.model_fields)
    assert described["probes_minute"] == list(MINUTE_COLUMNS)
    # the candidates' features are stored once each, listed by id (schema 5); the caller's
    # metadata came with schema 6, so after them
    own = [f for f in Decision.model_fields if f != "metadata"]
    assert described["decisions"] == [*own, "arms", "metadata"]
    assert described["decision_arms"] == ["arm_id", "endpoint_id", "features", "first_seen"]
    assert described["feedback"] == list(Feedback.model_fields)
    assert described["learned"] == ["event_id", "learned_at"]
    assert described["rollup_watermark"] == ["rolled_to", "raw_from", "updated_at"]
    assert described["endpoints"] == [
        "id", "base_url", "wire_format", "model", "provider", "price_in_per_mtok",
        "price_out_per_mtok", "context_window", "tags", "updated_at",
    ]
    assert not any("key" in c for c in described["endpoints"])


def test_views_are_documented(tmp_path: Path) -> None:
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        comments = dict(
            wh.query("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal")
        )
    finally:
        wh.close()
    for view in VIEWS:
        if not view.macro:
            assert comments[view.name] and len(comments[view.name]) > 40


def test_v1_file_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_v1_file(path)
    wh = open_wh(path)
    try:
        versions = [r[0] for r in wh.query("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == [1, 2, 3, 4, 5, 6]
        assert wh.query("SELECT count(*) FROM probes") == [(2,)]
        minute = wh.query("SELECT n, n_ok, n_429, n_error, ttft_ms_p50 FROM probe_minutes")
        assert minute == [(2, 1, 1, 1, 120.0)]
        d = wh.get_decision("e0000000000000001")
        assert d is not None and d.context == {"len": 3.0} and d.chosen == "n@q"
        assert d.metadata == {} and wh.query("SELECT metadata FROM decisions") == [(None,)]
        assert [f.comment for f in wh.feedback_for("e0000000000000001")] == ["good"]
        # v2 additions work on the migrated file
        wh.mark_learned(["e0000000000000001"])
        wh.flush()
        assert wh.decisions_since(T0 - timedelta(days=1)) == []
        indexes = wh.query("SELECT index_name FROM duckdb_indexes()")
        assert ("feedback_event_id",) in indexes
    finally:
        wh.close()


def test_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    make_v1_file(path)
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE probes_minute (x INTEGER)")  # v2 will fail to create it
    con.close()
    with pytest.raises(SchemaVersionError, match="failed at step 2") as err:
        open_wh(path)
    assert isinstance(err.value.__cause__, duckdb.CatalogException)
    con = duckdb.connect(str(path))
    try:
        assert schema_version(con) == 1
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "learned" not in tables  # the first v2 statement was rolled back too
        assert con.execute("SELECT count(*) FROM probes").fetchone() == (2,)
    finally:
        con.close()


def test_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    open_wh(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [LATEST_VERSION + 1])
    con.close()
    with pytest.raises(SchemaVersionError) as err:
        open_wh(path)
    message = str(err.value)
    assert "newer Switchyard" in message
    assert f"schema {LATEST_VERSION + 1} > {LATEST_VERSION}" in message
    assert "upgrade" in message
    con = duckdb.connect(str(path))
    try:
        assert schema_version(con) == LATEST_VERSION + 1
    finally:
        con.close()


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    with pytest.raises(SchemaVersionError, match="not a Switchyard warehouse"):
        open_wh(path)


def test_migrate_is_idempotent_and_validates_target() -> None:
    con = duckdb.connect()
    try:
        assert migrate(con) == [1, 2, 3, 4, 5, 6]
        assert migrate(con) == []
        assert schema_version(con) == LATEST_VERSION
        with pytest.raises(ValueError):
            migrate(con, target=LATEST_VERSION + 1)
        with pytest.raises(SchemaVersionError):
            migrate(con, target=1)
    finally:
        con.close()


def test_v2_file_with_a_rollup_is_migrated_and_its_stragglers_merged(tmp_path: Path) -> None:
    """A v2 rollup moved minutes before a cutoff into probes_minute and deleted their raw rows;
    a raw row that arrived after it for such a minute waited for the next v2 rollup. v3 starts
    both marks after the newest rolled-up minute and merges the straggler right away."""
    path = tmp_path / "v2.duckdb"
    cols = ", ".join(MINUTE_COLUMNS)
    order = "ORDER BY endpoint_id, source, minute"
    insert = (
        "INSERT INTO probes (endpoint_id, started_at, source, outcome, detail, prompt_name,"
        " chunks, usage_reported, ttft_ms, tpot_ms) SELECT 'm@p', ? + to_seconds(7 * i),"
        " 'probe', ?, '', 'p', 1, true, 100.0 + (i * 37) % 300, 20 FROM range(?) AS t(i)"
    )
    start = T0 - timedelta(hours=2)  # 400 rows, 7 s apart
    straggler = [T0 - timedelta(hours=1, minutes=50, seconds=-5), "timeout", 1]
    cutoff = T0 - timedelta(hours=1, minutes=30)
    con = duckdb.connect(str(path))
    try:
        assert migrate(con, target=2) == [1, 2]
        con.execute(insert, [start, "ok", 400])
        con.execute("UPDATE probes SET outcome = 'http_429', ttft_ms = NULL "
                    "WHERE epoch(started_at)::BIGINT % 5 = 0")
        con.execute(insert, straggler)
        want = con.execute(f"SELECT {cols} FROM ({minute_agg_sql()}) {order}").fetchall()
        con.execute("DELETE FROM probes WHERE outcome = 'timeout'")
        # what a v2 rollup(cutoff) did
        con.execute(f"INSERT INTO probes_minute ({cols}) SELECT {cols} FROM "
                    f"({minute_agg_sql(where='started_at < ?')})", [cutoff])
        con.execute("DELETE FROM probes WHERE started_at < ?", [cutoff])
        [(newest,)] = con.execute("SELECT max(minute) FROM probes_minute").fetchall()
        con.execute(insert, straggler)  # arrives after the rollup
    finally:
        con.close()
    wh = open_wh(path)
    try:
        status = wh.rollup_status()
        assert status["raw_from"] == newest + timedelta(minutes=1)
        assert wh.query("SELECT count(*) FROM probes WHERE outcome = 'timeout'") == [(0,)]
        got = wh.query(f"SELECT {cols} FROM probe_minutes {order}")
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g[:-2] == w[:-2]  # the straggler is a timeout: merged counts, same figures
            assert g[-2] == pytest.approx(w[-2], rel=1e-12) and g[-1] == w[-1]
    finally:
        wh.close()
