"""The ``switchyard`` command line: one entry point for every job.

    switchyard demo                      simulator + collector on loopback, live figures
    switchyard collect [--catalog F]     probe every endpoint into DuckDB, continuously
    switchyard collect --cost            what the configured probing costs per day
    switchyard report tod [...]          hour-of-day analysis, heatmap PNG + HTML
    switchyard train PROMPTS.jsonl       train a router on your prompts, draw its trade-off
    switchyard warehouse seed --days 30  realistic history from the simulator's profiles
    switchyard warehouse export DIR      Parquet, partitioned by date
    switchyard warehouse rollup          apply retention: drop raw probes, keep minute rollups

This module is the composition root of the CLI: it builds objects from settings and flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from collector.__main__ import add_collect_arguments, collect_command
from bandit.errors import BanditError
from collector.errors import CollectorError
from collector.settings import CollectorSettings, load_settings
from serving import commands
from serving.errors import ServingError
from warehouse.errors import WarehouseError

DEMO_INTERVAL_S = 5.0
DEMO_DAY_S = 1440.0  # one simulated day per 24 minutes: drift shows while you watch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchyard", description="Switchyard: an LLM router sidecar."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="the sidecar: collector, warehouse, bandit and HTTP API")
    up.add_argument("--config", type=Path, help="TOML settings file")
    up.add_argument("--catalog", type=Path, help="endpoint catalog (default: the simulator)")
    up.add_argument("--host", help="bind address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="HTTP port (default 8080)")
    up.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")

    demo = sub.add_parser("demo", help="simulated providers + collector, live figures")
    demo.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--interval", type=float, default=DEMO_INTERVAL_S)

    collect = sub.add_parser("collect", help="probe every endpoint into DuckDB, continuously")
    add_collect_arguments(collect)

    train = sub.add_parser(
        "train", help="train a router on your prompts and draw its trade-off graph",
        description="Send every prompt to every candidate endpoint (resumable), score the "
        "answers, train a quality model, and draw quality against cost and TTFT for a sweep "
        "of router strings on held-out prompts.",
    )
    commands.add_train_arguments(train)

    report = sub.add_parser("report", help="analyses of the warehouse")
    report_sub = report.add_subparsers(dest="report", required=True, metavar="REPORT")
    tod = report_sub.add_parser("tod", help="which endpoint is fastest at which hour")
    commands.add_tod_arguments(tod)

    bandit = sub.add_parser("bandit", help="the routing model")
    bandit_sub = bandit.add_subparsers(dest="action", required=True, metavar="ACTION")
    evaluate = bandit_sub.add_parser(
        "evaluate", help="estimate other policies on logged decisions (IPS, SNIPS, DR)"
    )
    commands.add_evaluate_arguments(evaluate)

    wh = sub.add_parser("warehouse", help="warehouse maintenance")
    wh_sub = wh.add_subparsers(dest="action", required=True, metavar="ACTION")
    seed = wh_sub.add_parser("seed", help="write a realistic history from the simulator")
    commands.add_seed_arguments(seed)
    export = wh_sub.add_parser("export", help="export probes to Parquet partitioned by date")
    export.add_argument("dest", type=Path)
    export.add_argument("--db", type=Path)
    rollup = wh_sub.add_parser("rollup", help="apply retention: delete raw probes past it, keep minute rollups")
    rollup.add_argument("--db", type=Path)
    rollup.add_argument("--days", type=int, help="retention in days (default from settings)")
    return parser


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "up":
        return commands.up(args)
    if args.command == "collect":
        return collect_command(args)
    if args.command == "demo":
        settings = load_settings(CollectorSettings)
        updates: dict[str, object] = {
            "collector": settings.collector.model_copy(
                update={"interval_s": args.interval, "jitter_s": min(1.0, args.interval / 5)}
            ),
            "simulator": settings.simulator.model_copy(update={"day_seconds": DEMO_DAY_S}),
            "catalog": None,
        }
        if args.db is not None:
            updates["warehouse"] = settings.warehouse.model_copy(update={"path": args.db})
        settings = settings.model_copy(update=updates)
        return commands.demo(settings, duration_s=args.duration)
    if args.command == "bandit":
        return commands.evaluate(args)
    if args.command == "report":
        return commands.report_tod(args)
    if args.command == "train":
        return commands.train(args)
    if args.command == "warehouse":
        if args.action == "seed":
            return commands.seed(args)
        if args.action == "export":
            return commands.export(args)
        if args.action == "rollup":
            return commands.rollup(args)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return dispatch(args)
    except (BanditError, CollectorError, WarehouseError, ServingError, ValueError) as exc:
        print(f"switchyard {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
