"""The warehouse schema: versioned migration steps, the minute rollup and the views, as SQL text.

Tables are data and change only through numbered migrations (``MIGRATIONS``, applied by
``warehouse.migrations``). Views and macros are code: they are dropped and recreated from
``VIEWS`` each time the writer opens a file, so fixing a view never needs a migration.

The per-minute aggregation of raw probe rows is written once, in ``MINUTE_AGG_SQL``. The writer
keeps ``probes_minute`` filled with it continuously (``warehouse.rollup``): every closed minute
before the watermark ``rollup_watermark.rolled_to`` is in ``probes_minute``, and the
``probe_minutes`` view adds the raw rows from the watermark on, aggregated by the same SQL. An
analysis over ``probe_minutes`` therefore gives the same answer whether a minute was rolled up or
not, and reads only the newest raw rows (DuckDB skips older row groups by their zone maps).

All time arithmetic goes through epoch microseconds (``epoch_us``/``make_timestamptz``), so
minute and hour buckets are UTC whatever the session ``TimeZone`` of whoever reads the views.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Columns of ``probes``: exactly the ``ProbeResult`` fields, with their DuckDB types.
PROBE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("endpoint_id", "VARCHAR NOT NULL"),
    ("started_at", "TIMESTAMPTZ NOT NULL"),
    ("source", "VARCHAR NOT NULL"),
    ("outcome", "VARCHAR NOT NULL"),
    ("status_code", "INTEGER"),
    ("detail", "VARCHAR NOT NULL"),
    ("prompt_name", "VARCHAR NOT NULL"),
    ("event_id", "VARCHAR"),
    ("conn_reused", "BOOLEAN"),
    ("connect_ms", "FLOAT"),
    ("ttft_ms", "FLOAT"),
    ("reasoning_ttft_ms", "FLOAT"),
    ("itl_ms_mean", "FLOAT"),
    ("itl_ms_p50", "FLOAT"),
    ("itl_ms_p90", "FLOAT"),
    ("itl_ms_max", "FLOAT"),
    ("tpot_ms", "FLOAT"),
    ("e2e_ms", "FLOAT"),
    ("chunks", "INTEGER NOT NULL"),
    ("tokens_per_chunk", "FLOAT"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("usage_reported", "BOOLEAN NOT NULL"),
    ("retry_after_s", "FLOAT"),
)

#: Columns of ``probes_minute`` and of the ``probe_minutes`` view, in order.
MINUTE_COLUMNS: tuple[str, ...] = (
    "endpoint_id",
    "source",
    "minute",
    "n",
    "n_ok",
    "n_429",
    "n_error",
    "ttft_ms_p50",
    "ttft_ms_p90",
    "itl_ms_p50",
    "itl_ms_p90",
    "tps_p50",
    "tps_p90",
    "ttft_ms_sum",
    "n_ttft",
)

#: The timestamp column each table is partitioned on in the Parquet lake (UTC date).
PARTITION_COLUMN: dict[str, str] = {
    "probes": "started_at",
    "probes_minute": "minute",
    "decisions": "created_at",
    "decision_arms": "first_seen",
    "feedback": "received_at",
    "learned": "learned_at",
}

#: Tables exported to the Parquet lake: those of ``PARTITION_COLUMN`` per UTC date, the others
#: (small) as one whole file.
LAKE_TABLES: tuple[str, ...] = (
    "endpoints",
    "rollup_watermark",
    "probes",
    "probes_minute",
    "decisions",
    "decision_arms",
    "feedback",
    "learned",
)


@dataclass(frozen=True)
class Migration:
    """One schema step: the statements that take a file from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    version=1,
    description="endpoints, raw probes, decisions and feedback",
    statements=(
        """CREATE TABLE endpoints (
            id VARCHAR PRIMARY KEY,
            base_url VARCHAR NOT NULL,
            wire_format VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,
            price_in_per_mtok DOUBLE NOT NULL,
            price_out_per_mtok DOUBLE NOT NULL,
            context_window INTEGER NOT NULL,
            tags VARCHAR[] NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE TABLE probes (\n"
        + ",\n".join(f"    {name} {sql_type}" for name, sql_type in PROBE_COLUMNS)
        + "\n)",
        """CREATE TABLE decisions (
            event_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL,
            router VARCHAR NOT NULL,
            context JSON NOT NULL,
            candidates VARCHAR[] NOT NULL,
            probabilities DOUBLE[] NOT NULL,
            chosen VARCHAR NOT NULL,
            chosen_prob DOUBLE NOT NULL,
            fallbacks VARCHAR[] NOT NULL,
            policy_version VARCHAR NOT NULL,
            shadow BOOLEAN NOT NULL,
            served VARCHAR,
            prompt_tokens INTEGER,
            max_tokens INTEGER
        )""",
        """CREATE TABLE feedback (
            event_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL,
            comment VARCHAR,
            received_at TIMESTAMPTZ NOT NULL
        )""",
    ),
)

_V2 = Migration(
    version=2,
    description="per-minute rollup of old probes, learned-event marks, feedback lookup index",
    statements=(
        """CREATE TABLE probes_minute (
            endpoint_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            minute TIMESTAMPTZ NOT NULL,
            n INTEGER NOT NULL,
            n_ok INTEGER NOT NULL,
            n_429 INTEGER NOT NULL,
            n_error INTEGER NOT NULL,
            ttft_ms_p50 FLOAT,
            ttft_ms_p90 FLOAT,
            itl_ms_p50 FLOAT,
            itl_ms_p90 FLOAT,
            tps_p50 FLOAT,
            tps_p90 FLOAT,
            ttft_ms_sum DOUBLE,
            n_ttft INTEGER NOT NULL
        )""",
        """CREATE TABLE learned (
            event_id VARCHAR PRIMARY KEY,
            learned_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX feedback_event_id ON feedback (event_id)",
    ),
)

#: Epoch microseconds of one minute.
MINUTE_US = 60_000_000

#: Minute bucket of ``started_at`` (UTC, independent of the session time zone).
MINUTE_EXPR = "make_timestamptz((epoch_us(started_at) // 60000000) * 60000000)"

#: THE aggregation of raw probe rows to one row per endpoint, source and UTC minute.
#: Percentiles (``quantile_cont``, linear interpolation) and the ttft sum cover the minute's
#: ``ok`` rows; ``n_error`` counts every non-ok row (429s included); tokens/s is
#: ``1000 / tpot_ms`` per row (rows with ``tpot_ms > 0``). One list-valued quantile per metric
#: and CASE instead of FILTER make it about 3x faster than six scalar quantiles. Fill in
#: ``{source}`` (a relation with the probe columns) and ``{where}`` with ``minute_agg_sql``.
MINUTE_AGG_SQL = f"""
SELECT
    endpoint_id, source, minute, n, n_ok, n_429, n_error,
    CAST(q_ttft[1] AS FLOAT) AS ttft_ms_p50,
    CAST(q_ttft[2] AS FLOAT) AS ttft_ms_p90,
    CAST(q_itl[1] AS FLOAT) AS itl_ms_p50,
    CAST(q_itl[2] AS FLOAT) AS itl_ms_p90,
    CAST(q_tps[1] AS FLOAT) AS tps_p50,
    CAST(q_tps[2] AS FLOAT) AS tps_p90,
    ttft_ms_sum, n_ttft
FROM (
    SELECT
        endpoint_id,
        source,
        {MINUTE_EXPR} AS minute,
        CAST(count(*) AS INTEGER) AS n,
        CAST(count_if(outcome = 'ok') AS INTEGER) AS n_ok,
        CAST(count_if(outcome = 'http_429') AS INTEGER) AS n_429,
        CAST(count_if(outcome <> 'ok') AS INTEGER) AS n_error,
        quantile_cont(CASE WHEN outcome = 'ok' THEN ttft_ms END, [0.5, 0.9]) AS q_ttft,
        quantile_cont(CASE WHEN outcome = 'ok' THEN itl_ms_p50 END, [0.5, 0.9]) AS q_itl,
        quantile_cont(CASE WHEN outcome = 'ok' AND tpot_ms > 0 THEN 1000.0 / tpot_ms END,
                      [0.5, 0.9]) AS q_tps,
        CAST(fsum(CASE WHEN outcome = 'ok' THEN ttft_ms END) AS DOUBLE) AS ttft_ms_sum,
        CAST(count(CASE WHEN outcome = 'ok' THEN ttft_ms END) AS INTEGER) AS n_ttft
    FROM {{source}}
    WHERE {{where}}
    GROUP BY endpoint_id, source, minute
)
"""


def minute_agg_sql(source: str = "probes", where: str = "TRUE") -> str:
    """The per-minute aggregation of ``source`` rows matching ``where`` (SQL text)."""
    return MINUTE_AGG_SQL.format(source=source, where=where)


_KEY = ("endpoint_id", "source", "minute")
_PERCENTILES = ("ttft_ms_p50", "ttft_ms_p90", "itl_ms_p50", "itl_ms_p90", "tps_p50", "tps_p90")


def minute_merge_sql(new: str) -> str:
    """Merge the minute rows of relation ``new`` with the ``probes_minute`` rows of the same keys.

    Used only for minutes whose raw rows are gone (deleted by retention), so they cannot be
    aggregated again: counts and sums add up exactly, percentiles become the ``n_ok``-weighted
    mean of the merged rows' percentiles (an approximation). One row per key, MINUTE_COLUMNS.
    """
    cols: dict[str, str] = {c: c for c in _KEY}
    for c in ("n", "n_ok", "n_429", "n_error", "n_ttft"):
        cols[c] = f"CAST(sum({c}) AS INTEGER) AS {c}"
    cols["ttft_ms_sum"] = "sum(ttft_ms_sum) AS ttft_ms_sum"
    for c in _PERCENTILES:
        cols[c] = (
            f"CAST(sum({c} * n_ok) / nullif(sum(n_ok) FILTER (WHERE {c} IS NOT NULL), 0) "
            f"AS FLOAT) AS {c}"
        )
    select = ", ".join(cols[c] for c in MINUTE_COLUMNS)
    return (
        f"SELECT {select} FROM (SELECT * FROM {new} UNION ALL BY NAME "
        f"SELECT pm.* FROM probes_minute AS pm SEMI JOIN {new} AS nw "
        "ON pm.endpoint_id = nw.endpoint_id AND pm.source = nw.source AND pm.minute = nw.minute)"
        " GROUP BY endpoint_id, source, minute"
    )


# Step 3 uses the aggregation and merge SQL of this release; should either ever change, freeze
# a copy of today's text here.
_V3 = Migration(
    version=3,
    description="continuous minute rollup: the rollup watermark",
    statements=(
        """CREATE TABLE rollup_watermark (
            rolled_to TIMESTAMPTZ,
            raw_from TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        # A v2 file rolled up minutes before some cutoff and deleted their raw rows: both marks
        # start after its newest rolled-up minute (NULL, nothing rolled up, for a v2 file that
        # never ran a rollup).
        f"""INSERT INTO rollup_watermark
            SELECT make_timestamptz(epoch_us(max(minute)) + {MINUTE_US}),
                   make_timestamptz(epoch_us(max(minute)) + {MINUTE_US}), now()
            FROM probes_minute""",
        # Raw rows a v2 rollup had not merged yet (they arrived after it ran, for minutes it had
        # rolled up) are merged now, then deleted, as the v3 writer does with such late rows.
        "CREATE TEMP TABLE v3_late AS "
        + minute_agg_sql(where="started_at < (SELECT raw_from FROM rollup_watermark)"),
        "CREATE TEMP TABLE v3_merged AS " + minute_merge_sql("v3_late"),
        "DELETE FROM probes_minute AS pm USING v3_merged AS m WHERE pm.endpoint_id = "
        "m.endpoint_id AND pm.source = m.source AND pm.minute = m.minute",
        "INSERT INTO probes_minute BY NAME SELECT * FROM v3_merged",
        "DELETE FROM probes WHERE started_at < (SELECT raw_from FROM rollup_watermark)",
        "DROP TABLE v3_late",
        "DROP TABLE v3_merged",
    ),
)

_V4 = Migration(
    version=4,
    description="training runs, their answers, and versioned router models",
    statements=(
        """CREATE TABLE train_runs (
            run_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL,
            dataset_path VARCHAR NOT NULL,
            dataset_sha256 VARCHAR NOT NULL,
            endpoints VARCHAR[] NOT NULL,
            options JSON NOT NULL,
            status VARCHAR NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE train_answers (
            run_id VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            endpoint_id VARCHAR NOT NULL,
            answer VARCHAR,
            score DOUBLE,
            scorer VARCHAR NOT NULL,
            tokens_in INTEGER,
            tokens_out INTEGER,
            cost_usd DOUBLE,
            ttft_ms DOUBLE,
            latency_ms DOUBLE,
            outcome VARCHAR NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (run_id, prompt_id, endpoint_id)
        )""",
        """CREATE TABLE router_models (
            model_id VARCHAR PRIMARY KEY,
            version INTEGER NOT NULL UNIQUE,
            created_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            kind VARCHAR NOT NULL,
            model BLOB NOT NULL,
            tradeoff JSON,
            plot BLOB,
            html VARCHAR,
            active BOOLEAN NOT NULL
        )""",
    ),
)

_V5 = Migration(
    version=5,
    description="each candidate's logged features stored once (decision_arms)",
    statements=(
        # A candidate's features repeat in every decision until its live stats change: ~4.6 of
        # a decision's ~4.9 KB of context with 20 candidates. Decisions now list them by id.
        """CREATE TABLE decision_arms (
            arm_id BIGINT PRIMARY KEY,
            endpoint_id VARCHAR NOT NULL,
            features JSON NOT NULL,
            first_seen TIMESTAMPTZ NOT NULL
        )""",
        # NULL in the rows written before: their context holds the candidates under "a"
        "ALTER TABLE decisions ADD COLUMN arms BIGINT[]",
    ),
)

_V6 = Migration(
    version=6,
    description="the caller's metadata of each decision (decisions.metadata)",
    statements=(
        # NULL in the rows written before, and for decisions without metadata
        "ALTER TABLE decisions ADD COLUMN metadata JSON",
    ),
)

SCHEMA_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
)

#: Every schema step, oldest first. Append only: never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)

#: The watermark as a scalar: minutes before it are in ``probes_minute``; raw rows from it on
#: are aggregated by the view. NULL (nothing rolled up yet) reads as -infinity. DuckDB turns a
#: comparison with it into a dynamic filter on the scan, so older row groups are skipped.
WATERMARK_SQL = (
    "coalesce((SELECT max(rolled_to) FROM rollup_watermark), TIMESTAMPTZ '-infinity')"
)


_MINUTE_COLS = ", ".join(MINUTE_COLUMNS)
_RAW_BETWEEN = f"started_at >= {WATERMARK_SQL} AND started_at >= t0 AND started_at < t1"


@dataclass(frozen=True)
class View:
    """A view (or table macro) recreated on every open, with the comment shown to humans."""

    name: str
    comment: str
    sql: str
    macro: bool = False


#: Views and macros in creation order (later ones read earlier ones).
VIEWS: tuple[View, ...] = (
    View(
        "probe_minutes",
        "One row per endpoint, source and UTC minute: the minutes rolled up into probes_minute "
        "(every closed minute before rollup_watermark.rolled_to) plus the raw probes from the "
        "watermark on, aggregated the same way (MINUTE_AGG_SQL). Read this, not the two "
        "tables, to cover both old and recent data.",
        f"SELECT {_MINUTE_COLS} FROM probes_minute WHERE minute < {WATERMARK_SQL} "
        f"UNION ALL SELECT {_MINUTE_COLS} FROM "
        f"({minute_agg_sql(where=f'started_at >= {WATERMARK_SQL}')})",
    ),
    View(
        "probe_minutes_between",
        "Table macro probe_minutes_between(t0, t1): probe_minutes restricted to minutes in "
        "[t0, t1), with the time filter pushed into both scans.",
        f"SELECT {_MINUTE_COLS} FROM probes_minute "
        f"WHERE minute < {WATERMARK_SQL} AND minute >= t0 AND minute < t1 "
        f"UNION ALL SELECT {_MINUTE_COLS} FROM ({minute_agg_sql(where=_RAW_BETWEEN)})",
        macro=True,
    ),
    View(
        "v_probes",
        "Raw probe rows (kept for retention_days; rollup() deletes older ones, whose minutes "
        "stay in probes_minute) with tokens_per_s = 1000 / tpot_ms.",
        "SELECT *, CASE WHEN tpot_ms > 0 THEN 1000.0 / tpot_ms END AS tokens_per_s FROM probes",
    ),
    View(
        "v_hourly",
        "Per endpoint and UTC hour, from probe_minutes (all sources): n, n_traffic, the "
        "median over the hour's minutes of the per-minute p50/p90 of ttft, itl and tokens/s, "
        "the exact mean ttft, and error and 429 rates (fractions of all calls).",
        """SELECT
            endpoint_id,
            make_timestamptz((epoch_us(minute) // 3600000000) * 3600000000) AS hour,
            CAST((epoch_us(minute) // 3600000000) % 24 AS INTEGER) AS hour_of_day_utc,
            CAST(sum(n) AS BIGINT) AS n,
            CAST(sum(n_ok) AS BIGINT) AS n_ok,
            CAST(coalesce(sum(n) FILTER (WHERE source = 'traffic'), 0) AS BIGINT) AS n_traffic,
            median(ttft_ms_p50) AS ttft_ms_p50,
            median(ttft_ms_p90) AS ttft_ms_p90,
            sum(ttft_ms_sum) / nullif(sum(n_ttft), 0) AS ttft_ms_mean,
            median(itl_ms_p50) AS itl_ms_p50,
            median(itl_ms_p90) AS itl_ms_p90,
            median(tps_p50) AS tps_p50,
            median(tps_p90) AS tps_p90,
            sum(n_error) / sum(n) AS error_rate,
            sum(n_429) / sum(n) AS rate_429
        FROM probe_minutes
        GROUP BY endpoint_id, hour, hour_of_day_utc""",
    ),
    View(
        "v_decisions",
        "Routing decisions with their latest feedback (score, comment, feedback_at, "
        "n_feedback; NULL without feedback) and learned_at when the bandit has learned it.",
        """SELECT d.*, f.score, f.comment, f.feedback_at, coalesce(f.n_feedback, 0) AS n_feedback,
               l.learned_at
        FROM decisions AS d
        LEFT JOIN (
            SELECT event_id,
                   arg_max(score, received_at) AS score,
                   arg_max(comment, received_at) AS comment,
                   max(received_at) AS feedback_at,
                   count(*) AS n_feedback
            FROM feedback GROUP BY event_id
        ) AS f ON f.event_id = d.event_id
        LEFT JOIN learned AS l ON l.event_id = d.event_id""",
    ),
    View(
        "v_decision_arms",
        "One row per decision and candidate: event_id, created_at, position (1-based, in the "
        "order the decision listed its candidates), endpoint_id and features (JSON: what the "
        "router knew of that candidate then). Candidates are stored once in decision_arms and "
        "listed by id in decisions.arms; decisions written before schema 5 hold them in "
        "context->'a' instead, and this view reads both.",
        """SELECT u.event_id, u.created_at, u.position, x.endpoint_id, x.features
        FROM (SELECT event_id, created_at, unnest(arms) AS arm_id,
                     generate_subscripts(arms, 1) AS position
              FROM decisions WHERE arms IS NOT NULL) AS u
        JOIN decision_arms AS x ON x.arm_id = u.arm_id
        UNION ALL
        SELECT d.event_id, d.created_at,
               row_number() OVER (PARTITION BY d.event_id ORDER BY j.id) AS position,
               j.key AS endpoint_id, CAST(j.value AS JSON) AS features
        FROM decisions AS d, json_each(d.context->'a') AS j
        WHERE d.arms IS NULL""",
    ),
)


def view_ddl(view: View) -> list[str]:
    """The statements that (re)create one view or macro, comment included."""
    comment = view.comment.replace("'", "''")
    if view.macro:
        return [
            f"CREATE OR REPLACE MACRO {view.name}(t0, t1) AS TABLE {view.sql}",
            f"COMMENT ON MACRO TABLE {view.name} IS '{comment}'",
        ]
    return [
        f"CREATE OR REPLACE VIEW {view.name} AS {view.sql}",
        f"COMMENT ON VIEW {view.name} IS '{comment}'",
    ]
