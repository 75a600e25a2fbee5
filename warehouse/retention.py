"""Retention: roll raw probe rows older than a cutoff up to one row per endpoint, source, minute.

The rollup is one transaction on the writer connection: aggregate the old raw rows with
``warehouse.schema.MINUTE_AGG_SQL`` (the very SQL the ``probe_minutes`` view applies to raw
rows), append the result to ``probes_minute``, delete the raw rows. The cutoff is floored to a
whole UTC minute, so a minute is never split between the two tables, and running it again
finds nothing to do.

A raw row that arrives later than the cutoff of an earlier rollup (more than ``retention_days``
late) lands in a minute that is already rolled up; the next rollup merges the two rows of that
minute: counts and sums exactly, percentiles as an ``n_ok``-weighted mean of the two (the only
approximation, and only for such very late rows).
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from warehouse.schema import MINUTE_COLUMNS, minute_agg_sql

_KEY = ("endpoint_id", "source", "minute")
_PERCENTILES = ("ttft_ms_p50", "ttft_ms_p90", "itl_ms_p50", "itl_ms_p90", "tps_p50", "tps_p90")


def floor_minute_us(ts: datetime) -> int:
    """Epoch microseconds of ``ts`` floored to the whole minute."""
    us = int(ts.timestamp() * 1_000_000)
    return us - us % 60_000_000


def _merge_sql() -> str:
    cols: list[str] = list(_KEY)
    for c in ("n", "n_ok", "n_429", "n_error", "n_ttft"):
        cols.append(f"CAST(sum({c}) AS INTEGER) AS {c}")
    cols.append("sum(ttft_ms_sum) AS ttft_ms_sum")
    for c in _PERCENTILES:
        cols.append(
            f"CAST(sum({c} * n_ok) / nullif(sum(n_ok) FILTER (WHERE {c} IS NOT NULL), 0) "
            f"AS FLOAT) AS {c}"
        )
    by_name = {c.rsplit(" AS ", 1)[-1]: c for c in cols}
    select = ", ".join(by_name[c] for c in MINUTE_COLUMNS)
    return (
        f"SELECT {select} FROM (SELECT * FROM rollup_new UNION ALL BY NAME "
        "SELECT pm.* FROM probes_minute AS pm SEMI JOIN rollup_new USING (endpoint_id, source, "
        "minute)) GROUP BY endpoint_id, source, minute"
    )


def rollup(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> int:
    """Move raw probes started before ``cutoff`` (floored to the minute) into ``probes_minute``.

    Returns the number of raw rows rolled up (0 when there was nothing to do).
    """
    cut = f"make_timestamptz({floor_minute_us(cutoff)})"
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(f"SELECT count(*) FROM probes WHERE started_at < {cut}").fetchone()
        moved = int(row[0]) if row else 0
        if moved:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE rollup_new AS "
                + minute_agg_sql(where=f"started_at < {cut}")
            )
            overlap = con.execute(
                "SELECT count(*) FROM rollup_new SEMI JOIN probes_minute "
                "USING (endpoint_id, source, minute)"
            ).fetchone()
            cols = ", ".join(MINUTE_COLUMNS)
            if overlap and overlap[0]:
                con.execute("CREATE OR REPLACE TEMP TABLE rollup_merged AS " + _merge_sql())
                con.execute(
                    "DELETE FROM probes_minute AS pm USING rollup_new AS r WHERE "
                    "pm.endpoint_id = r.endpoint_id AND pm.source = r.source "
                    "AND pm.minute = r.minute"
                )
                con.execute(
                    f"INSERT INTO probes_minute ({cols}) SELECT {cols} FROM rollup_merged"
                )
                con.execute("DROP TABLE rollup_merged")
            else:
                con.execute(f"INSERT INTO probes_minute ({cols}) SELECT {cols} FROM rollup_new")
            con.execute("DROP TABLE rollup_new")
            con.execute(f"DELETE FROM probes WHERE started_at < {cut}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return moved
