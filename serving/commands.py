"""The CLI's commands beyond ``collect``: demo, reports and warehouse maintenance."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from collector.__main__ import run_collect
from collector.settings import CollectorSettings, load_settings
from warehouse.config import WarehouseConfig
from warehouse.store import Warehouse


def _warehouse_config(db: Path | None) -> WarehouseConfig:
    settings = load_settings(CollectorSettings)
    if db is None:
        return settings.warehouse
    return settings.warehouse.model_copy(update={"path": db})


def demo(settings: CollectorSettings, *, duration_s: float | None) -> int:
    """Simulated providers on loopback, probed into a local DuckDB file, live figures printed."""
    print(
        "Switchyard demo: simulated providers on 127.0.0.1, probes every "
        f"{settings.collector.interval_s:g}s into {settings.warehouse.path}",
        flush=True,
    )
    return asyncio.run(
        run_collect(
            settings,
            duration_s=duration_s,
            print_every_s=max(2.0, settings.collector.interval_s),
        )
    )


def export(args: argparse.Namespace) -> int:
    with Warehouse(_warehouse_config(args.db)) as wh:
        written = wh.export_parquet(args.dest)
    print(f"exported to {args.dest} ({written})")
    return 0


def rollup(args: argparse.Namespace) -> int:
    config = _warehouse_config(args.db)
    days = args.days if args.days is not None else config.retention_days
    if days <= 0:
        raise ValueError(f"--days must be positive (got {days})")
    with Warehouse(config) as wh:
        moved = wh.rollup(older_than_days=days)
    print(f"rolled up {moved} raw probe rows older than {days} days", file=sys.stdout)
    return 0
