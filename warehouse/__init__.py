"""The DuckDB warehouse: probes, decisions and feedback; live stats; time-of-day analysis.

    from warehouse import Warehouse, WarehouseConfig
    with Warehouse(WarehouseConfig(path="var/switchyard.duckdb")) as wh:
        wh.add_probe(result)
        wh.live.get("gpt-4o-mini@openai")

The analysis lives in ``warehouse.tod`` (imported on demand: it pulls in matplotlib).
"""

from __future__ import annotations

from warehouse.config import WarehouseConfig
from warehouse.errors import (
    SchemaVersionError,
    WarehouseClosedError,
    WarehouseConfigError,
    WarehouseError,
)
from warehouse.live import LiveStats
from warehouse.models import (
    Decision,
    Endpoint,
    Feedback,
    LiveStat,
    Outcome,
    ProbeResult,
    Source,
    WireFormat,
)
from warehouse.store import Warehouse

__all__ = [
    "Decision",
    "Endpoint",
    "Feedback",
    "LiveStat",
    "LiveStats",
    "Outcome",
    "ProbeResult",
    "SchemaVersionError",
    "Source",
    "Warehouse",
    "WarehouseClosedError",
    "WarehouseConfig",
    "WarehouseConfigError",
    "WarehouseError",
    "WireFormat",
]
