"""A Parquet mirror of the warehouse, and a read-only DuckDB catalog of views over it.

DuckDB lets one process hold a database file, and no other process may open it, not even
read-only. Analysts therefore read a mirror instead, refreshed by the writer thread every
``snapshot_interval_s``:

    <stem>-lake/<table>/_schema.parquet                       zero rows: the table's columns
    <stem>-lake/<table>/date=YYYY-MM-DD/part-00000042.parquet  rows of that UTC date
    <stem>-lake/endpoints/part.parquet                         the whole (small) table
    <stem>-read.duckdb                                         views only, absolute paths

Rows committed since the last snapshot are appended as one new part per date (written to a
``.tmp`` name, then ``os.replace``d, so a reader never sees a partial file). A date partition
is rewritten from the warehouse as one part when it holds more than ``MAX_PARTS`` parts, when
its date is over, and whenever its row count disagrees with the warehouse (at start, after a
crash that lost a snapshot, after a rollup). A rewrite renames the new part in before deleting
the old ones: a query that lists files in that instant may count a partition twice.

``duckdb -readonly var/switchyard-read.duckdb`` (or ``duckdb.connect(path, read_only=True)``)
then sees ``probes``, ``probe_minutes``, ``v_hourly``, ``v_decisions`` ... as in the warehouse,
at most one snapshot interval old, and cannot change the service's data.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.migrations import LATEST_VERSION, install_views
from warehouse.schema import LAKE_TABLES, PARTITION_COLUMN

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
#: A date partition with more parts than this is compacted into one.
MAX_PARTS = 48
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_DATE_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def lake_dir(db_path: Path) -> Path:
    """``<stem>-lake`` next to the database file."""
    return db_path.with_name(f"{db_path.stem}-lake")


def catalog_path(db_path: Path) -> Path:
    """``<stem>-read.duckdb`` next to the database file."""
    return db_path.with_name(f"{db_path.stem}-read.duckdb")


def _day_name(day: int) -> str:
    return "date=" + datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def _day_of(name: str) -> int:
    return int(datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) // 86_400


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class Lake:
    """The Parquet mirror. Every method runs on the warehouse's writer thread.

    ``con`` is the writer's connection; ``connect`` opens the catalog file (the warehouse
    passes its own, so that connections are opened in one place).
    """

    def __init__(
        self,
        db_path: Path,
        con: duckdb.DuckDBPyConnection,
        *,
        now: Callable[[], datetime],
        connect: Callable[[Path], duckdb.DuckDBPyConnection],
    ) -> None:
        self.db_path = db_path.resolve()
        self.dir = lake_dir(self.db_path)
        self.catalog = catalog_path(self.db_path)
        self._con = con
        self._now = now
        self._connect = connect
        self._pending: dict[str, list[pa.Table]] = defaultdict(list)
        # table -> day -> {part seq: rows}
        self._parts: dict[str, dict[int, dict[int, int]]] = {}
        self._next_seq: dict[str, int] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._endpoints_dirty = True

    # -- start -------------------------------------------------------------------------
    def start(self) -> None:
        """Write the schema files and the catalog, scan the parts, find stale partitions."""
        for table in LAKE_TABLES:
            (self.dir / table).mkdir(parents=True, exist_ok=True)
            self._copy(f"SELECT * FROM {table} LIMIT 0", self.dir / table / "_schema.parquet")
            if table in PARTITION_COLUMN:
                self._scan(table)
        self.write_catalog()
        self.reconcile(PARTITION_COLUMN)
        self._write_endpoints()

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

    def reconcile(self, tables: Iterable[str]) -> None:
        """Mark every date whose lake row count differs from the warehouse's for rewriting."""
        for table in tables:
            col = PARTITION_COLUMN[table]
            counts = dict(
                self._con.execute(
                    f"SELECT epoch_us({col}) // {DAY_US} AS day, count(*) FROM {table} "
                    "GROUP BY day"
                ).fetchall()
            )
            parts = self._parts[table]
            for day in set(counts) | set(parts):
                if counts.get(day, 0) != sum(parts.get(day, {}).values()):
                    self._dirty.add((table, int(day)))

    # -- appends -----------------------------------------------------------------------
    def add(self, table: str, rows: pa.Table) -> None:
        """Queue rows just committed to ``table`` for the next snapshot."""
        if table == "endpoints":
            self._endpoints_dirty = True
        elif rows.num_rows:
            self._pending[table].append(rows)

    def snapshot(self) -> None:
        """Write queued rows as new parts and schedule compactions."""
        today = int(self._now().timestamp()) // 86_400
        for table, tables in list(self._pending.items()):
            if not tables:
                continue
            self._pending[table] = []
            batch = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            col = PARTITION_COLUMN[table]
            self._con.register("lake_batch", batch)
            try:
                days = [
                    int(d)
                    for (d,) in self._con.execute(
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
                        self._dirty.add((table, day))  # rewritten from the warehouse later
            finally:
                self._con.unregister("lake_batch")
        for table, parts in self._parts.items():
            for day, seqs in parts.items():
                if len(seqs) > MAX_PARTS or (day < today and len(seqs) > 1):
                    self._dirty.add((table, day))
        if self._endpoints_dirty:
            self._write_endpoints()

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
        row = self._con.execute(
            f"COPY ({select}) TO {_sql_str(tmp)} (FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()
        os.replace(tmp, final)
        return int(row[0]) if row else 0

    def _write_endpoints(self) -> None:
        self._copy("SELECT * FROM endpoints ORDER BY id", self.dir / "endpoints" / "part.parquet")
        self._endpoints_dirty = False

    # -- rewrites ----------------------------------------------------------------------
    @property
    def has_work(self) -> bool:
        return bool(self._dirty)

    def work_one(self) -> bool:
        """Rewrite one stale date partition from the warehouse; False when none is left."""
        if not self._dirty:
            return False
        table, day = min(self._dirty)
        self._dirty.discard((table, day))
        self.rewrite(table, day)
        return True

    def rewrite(self, table: str, day: int) -> None:
        """Replace every part of one date partition with one part read from the warehouse."""
        if self._pending.get(table):
            self.snapshot()  # queued rows are in the warehouse: write them before replacing
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
