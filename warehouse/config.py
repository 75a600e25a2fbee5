"""Configuration of the warehouse (plain pydantic; the process settings compose it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DB_PATH = Path("var/switchyard.duckdb")
DEFAULT_FLUSH_INTERVAL_S = 0.5
DEFAULT_BATCH_ROWS = 5_000
DEFAULT_THREADS = 1
DEFAULT_LIVE_WINDOW_S = 15 * 60.0
DEFAULT_LIVE_HALF_LIFE_S = 5 * 60.0
DEFAULT_RETENTION_DAYS = 30
DEFAULT_SNAPSHOT_INTERVAL_S = 30.0
DEFAULT_ROLLUP_GRACE_S = 120.0
# Under DuckDB's row group (122,880 rows): larger appends are written as row groups of their
# own that made later checkpoints (which block commits) several times slower.
DEFAULT_ROLLUP_SLICE_ROWS = 100_000


class WarehouseConfig(BaseModel):
    """Where the DuckDB file lives and how rows reach it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path = Field(default=DEFAULT_DB_PATH, description="DuckDB file of the warehouse.")
    flush_interval_s: float = Field(
        default=DEFAULT_FLUSH_INTERVAL_S,
        gt=0,
        le=1.0,
        description="Seconds between batch writes; a kill -9 loses at most this much.",
    )
    batch_rows: int = Field(
        default=DEFAULT_BATCH_ROWS, gt=0, description="Rows that trigger an early write."
    )
    threads: int = Field(
        default=DEFAULT_THREADS,
        ge=1,
        le=1024,
        description="DuckDB worker threads for the warehouse file (its `threads` setting). "
        "One keeps batch writes from taking a second core away from the event loop in bursts; "
        "read-only connections (reports, analysts) keep DuckDB's default.",
    )
    live_window_s: float = Field(
        default=DEFAULT_LIVE_WINDOW_S, gt=0, description="Sliding window of the live stats."
    )
    live_half_life_s: float = Field(
        default=DEFAULT_LIVE_HALF_LIFE_S,
        gt=0,
        description="Half-life of the exponentially decayed live estimates.",
    )
    retention_days: int = Field(
        default=DEFAULT_RETENTION_DAYS,
        gt=0,
        description="Raw probe rows older than this many days are deleted; their per-minute "
        "rollups (probes_minute) are kept.",
    )
    snapshot_interval_s: float = Field(
        default=DEFAULT_SNAPSHOT_INTERVAL_S,
        gt=0,
        le=60,
        description="Seconds between read-only snapshots that analysts may open any time.",
    )
    rollup_grace_s: float = Field(
        default=DEFAULT_ROLLUP_GRACE_S,
        ge=0,
        description="A minute is rolled up into probes_minute once its end is this many "
        "seconds in the past (later rows for it are folded in as they arrive).",
    )
    rollup_slice_rows: int = Field(
        default=DEFAULT_ROLLUP_SLICE_ROWS,
        gt=0,
        description="Raw rows one rollup step aggregates at most (about): catching up on a "
        "large file runs in such steps between flushes.",
    )
