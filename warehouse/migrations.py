"""Apply the numbered schema steps of ``warehouse.schema`` to a DuckDB connection.

A file records every step applied to it in ``schema_version(version, applied_at)``. Opening a
file migrates it to ``LATEST_VERSION`` in ONE transaction (all pending steps or none), and
refuses a file written by a newer Switchyard instead of guessing at its tables.
``warehouse.store.Warehouse`` calls ``migrate(con)`` on every open: on a new file it returns
``[1, 2, 3, 4, 5, 6]``, on a current one ``[]``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from warehouse.errors import SchemaVersionError
from warehouse.schema import MIGRATIONS, SCHEMA_VERSION_DDL, VIEWS, view_ddl

#: The schema version this code reads and writes.
LATEST_VERSION: int = MIGRATIONS[-1].version


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [name],
    ).fetchone()
    return bool(rows and rows[0])


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The file's schema version: 0 for an empty file.

    Raises ``SchemaVersionError`` for a non-empty file that is not a Switchyard warehouse.
    """
    if not _has_table(con, "schema_version"):
        others = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchone()
        if others and others[0]:
            raise SchemaVersionError(
                "this DuckDB file has tables but no schema_version table: "
                "it is not a Switchyard warehouse"
            )
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def check_version(found: int, *, where: str = "the warehouse file") -> None:
    """Raise ``SchemaVersionError`` when ``found`` is newer than this code knows."""
    if found > LATEST_VERSION:
        raise SchemaVersionError(
            f"{where} was written by a newer Switchyard (schema {found} > {LATEST_VERSION}); "
            "upgrade Switchyard to open it, or point the warehouse at another file"
        )


def migrate(
    con: duckdb.DuckDBPyConnection,
    *,
    target: int | None = None,
    now: datetime | None = None,
    where: str = "the warehouse file",
) -> list[int]:
    """Bring the file to ``target`` (default ``LATEST_VERSION``) in one transaction.

    Returns the versions applied (empty when already current). At ``LATEST_VERSION`` the views
    are recreated too, in the same transaction. ``target`` below the latest exists for tests
    that need a file as an older release wrote it.
    """
    goal = LATEST_VERSION if target is None else target
    if not 0 <= goal <= LATEST_VERSION:
        raise ValueError(f"target must be in [0, {LATEST_VERSION}], got {goal}")
    applied_at = now or datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        found = schema_version(con)
        check_version(found, where=where)
        if found > goal:
            raise SchemaVersionError(f"{where} is at schema {found}, past the target {goal}")
        con.execute(SCHEMA_VERSION_DDL)
        applied: list[int] = []
        for step in MIGRATIONS:
            if found < step.version <= goal:
                try:
                    for statement in step.statements:
                        con.execute(statement)
                except duckdb.Error as exc:
                    raise SchemaVersionError(
                        f"migrating {where} from schema {found} to {goal} failed at step "
                        f"{step.version} ({step.description}): {exc}; the file is unchanged"
                    ) from exc
                con.execute(
                    "INSERT INTO schema_version VALUES (?, ?)", [step.version, applied_at]
                )
                applied.append(step.version)
        if goal == LATEST_VERSION:
            install_views(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return applied


def install_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create every view and macro of ``warehouse.schema.VIEWS`` on ``con``."""
    for view in VIEWS:
        for statement in view_ddl(view):
            con.execute(statement)
