"""The CLI's commands beyond ``collect``: demo, reports, training and warehouse maintenance."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collector.__main__ import run_collect
from collector.settings import CollectorSettings, load_settings
from warehouse.config import WarehouseConfig
from warehouse.store import Warehouse

if TYPE_CHECKING:
    from serving.train import TrainOptions
    from serving.train_data import Dataset


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
    print(f"deleted {moved} raw probe rows older than {days} days (their minute rollups stay)")
    return 0


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=float, default=30.0, help="days of history (default 30)")
    parser.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between probes")
    parser.add_argument("--seed", type=int, default=7, help="random seed")


def seed(args: argparse.Namespace) -> int:
    """Write a realistic history drawn from the simulator's profiles."""
    from collector.seed import seed_history
    from collector.simulator import default_profiles

    if args.days <= 0 or args.days > 3650:
        raise ValueError(f"--days must be in (0, 3650] (got {args.days:g})")
    if args.interval <= 0:
        raise ValueError(f"--interval must be positive (got {args.interval:g})")
    profiles = default_profiles()
    config = _warehouse_config(args.db)
    with Warehouse(config) as wh:
        wh.upsert_endpoints(
            [p.to_endpoint("http://127.0.0.1:0") for p in profiles]
        )
        total = seed_history(
            profiles, wh.add_probes, days=args.days, interval_s=args.interval, seed=args.seed,
            progress=lambda ep, n: print(f"  {ep:<34} {n:>8} rows", flush=True),
        )
        wh.flush()
    print(f"seeded {total} probe rows over {args.days:g} days into {config.path}")
    return 0


def _parse_when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not an ISO date or datetime") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_tod_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", choices=["ttft", "itl", "tps", "errors"], default="ttft")
    parser.add_argument("--tz", default="UTC", help="IANA time zone of the hours, e.g. Europe/Paris")
    parser.add_argument("--endpoint", action="append", help="endpoint id (repeatable)")
    parser.add_argument("--since", help="ISO date/time (UTC unless it has an offset)")
    parser.add_argument("--until", help="ISO date/time (UTC unless it has an offset)")
    parser.add_argument("--source", choices=["probe", "traffic", "all"], default="probe")
    parser.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")
    parser.add_argument("--out", type=Path, default=Path("var/reports"), help="output folder")


def report_tod(args: argparse.Namespace) -> int:
    """Hour-of-day analysis: text tables on stdout, heatmap PNG and HTML files."""
    import duckdb

    from warehouse.heatmap import render_text
    from warehouse.store import open_read_only
    from warehouse.tod import run_tod_report

    config = _warehouse_config(args.db)
    since = _parse_when(args.since, "--since")
    until = _parse_when(args.until, "--until")
    db: Path = config.path
    if not db.is_file():
        raise ValueError(f"{db}: no warehouse here; run `switchyard collect` or "
                         "`switchyard warehouse seed` first, or pass --db")
    try:
        open_read_only(db).close()
    except duckdb.IOException:
        # The service holds the file: read its read-only snapshot instead.
        snapshot = Warehouse(config).read_path
        if not snapshot.is_file():
            raise ValueError(f"{db} is in use and has no snapshot at {snapshot} yet") from None
        db = snapshot
    args.out.mkdir(parents=True, exist_ok=True)
    report, png, html = run_tod_report(
        db, metric=args.metric, tz=args.tz, endpoint=args.endpoint, since=since, until=until,
        out_dir=args.out, source=None if args.source == "all" else args.source,
    )
    print(render_text(report))
    print(f"\nheatmap: {png}\n         {html}")
    return 0


def up(args: argparse.Namespace) -> int:
    """The all-in-one sidecar process."""
    import logging

    from serving.settings import ServingSettings
    from serving.up import run

    settings = load_settings(
        ServingSettings, args.config, catalog=args.catalog, host=args.host, port=args.port
    )
    if args.db is not None:
        settings = settings.model_copy(
            update={"warehouse": settings.warehouse.model_copy(update={"path": args.db})}
        )
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per probe otherwise
    return run(settings)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from serving.evaluate import add_arguments

    add_arguments(parser)


def evaluate(args: argparse.Namespace) -> int:
    """Offline policy evaluation over the warehouse's logged decisions."""
    from serving.evaluate import render, run
    from serving.settings import ServingSettings

    settings = load_settings(ServingSettings)
    bandit_config = settings.bandit
    if args.checkpoint is not None:
        bandit_config = bandit_config.model_copy(update={"checkpoint_path": args.checkpoint})
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0 (got {args.bootstrap})")
    estimates = run(
        _warehouse_config(args.db), bandit_config, since=_parse_when(args.since, "--since"),
        routers=args.router, epsilons=args.epsilon, bootstrap=args.bootstrap,
    )
    print(render(estimates))
    return 0


DEFAULT_TRAIN_OUT = Path("var/train")


def _endpoint_list(text: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of endpoint ids")
    return items


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from serving.scoring import Scorer
    from serving.train_calls import DEFAULT_CONCURRENCY, DEFAULT_MAX_TOKENS

    parser.add_argument("prompts", type=Path, metavar="PROMPTS.jsonl",
                        help='one JSON object per line: {"prompt": ..., "ref_answer": ...} or '
                        '{"prompt": ..., "scores": {"endpoint@provider": 0..1, ...}}')
    parser.add_argument("--endpoints", type=_endpoint_list, metavar="A,B",
                        help="candidate endpoint ids (default: every catalog endpoint, or every "
                        "endpoint scored in the file)")
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="share of prompts held out to draw the trade-off (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"calls in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--judge", metavar="ENDPOINT",
                        help="endpoint that grades answers without a reference (or all, with "
                        "--scorer judge)")
    parser.add_argument("--scorer", choices=[s.value for s in Scorer], default="auto",
                        help="auto: numeric for numeric references, else exact; the judge "
                        "without a reference (default auto)")
    parser.add_argument("--run-id", help="name of the run; rerun with it to resume (default: "
                        "the file's name and hash, so rerunning the same file resumes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the model")
    parser.add_argument("--out", type=Path, default=DEFAULT_TRAIN_OUT,
                        help=f"folder for the PNG and HTML graphs (default {DEFAULT_TRAIN_OUT})")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                        help=f"output-token cap of each answer (default {DEFAULT_MAX_TOKENS})")
    parser.add_argument("--no-activate", action="store_true",
                        help="store the model without making it the active one")
    parser.add_argument("--catalog", type=Path, help="endpoint catalog (default: the simulator)")
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")


def train(args: argparse.Namespace) -> int:
    """``switchyard train``: answers, a quality model and its trade-off graph (resumable)."""
    from serving.scoring import Scorer
    from serving.train import TrainOptions
    from serving.train_data import load_dataset

    settings = load_settings(CollectorSettings, args.config, catalog=args.catalog)
    if args.db is not None:
        settings = settings.model_copy(
            update={"warehouse": settings.warehouse.model_copy(update={"path": args.db})}
        )
    options = TrainOptions(
        endpoints=args.endpoints, holdout=args.holdout, concurrency=args.concurrency,
        judge=args.judge, scorer=Scorer(args.scorer), run_id=args.run_id, seed=args.seed,
        max_tokens=args.max_tokens, activate=not args.no_activate,
    )  # fmt: skip
    dataset = load_dataset(args.prompts)
    try:
        return asyncio.run(_train(settings, dataset, options, args.out))
    except KeyboardInterrupt:
        print("\ninterrupted: every answer received so far is stored; run the same command "
              "again to resume", file=sys.stderr, flush=True)  # fmt: skip
        raise


async def _train(settings: CollectorSettings, dataset: Dataset, options: TrainOptions,
                 out_dir: Path) -> int:  # fmt: skip
    from collector.__main__ import catalog_or_simulator
    from collector.catalog import load_catalog
    from collector.http import make_session
    from collector.settings import load_secrets
    from serving.tradeoff_plot import frontier_table
    from serving.train import Trainer
    from serving.train_calls import EndpointCaller
    from warehouse.training import TrainingStore

    api_keys = {k: v.get_secret_value() for k, v in load_secrets(settings.secrets_file).items()}
    async with contextlib.AsyncExitStack() as stack:
        if dataset.precomputed:  # nothing is called: the catalog only supplies prices
            endpoints = list(load_catalog(settings.catalog).endpoints) if settings.catalog else []
        else:
            catalog = await stack.enter_async_context(catalog_or_simulator(settings))
            endpoints = list(catalog.endpoints)
        warehouse = Warehouse(settings.warehouse)
        await warehouse.start()
        stack.push_async_callback(warehouse.aclose)
        caller = None
        if not dataset.precomputed:
            session = await stack.enter_async_context(
                make_session(limit=2 * options.concurrency)
            )
            caller = EndpointCaller(session, endpoints, concurrency=options.concurrency,
                                    max_tokens=options.max_tokens, api_keys=api_keys)
        trainer = Trainer(TrainingStore(warehouse), endpoints, caller=caller, options=options,
                          out_dir=out_dir)  # fmt: skip
        result = await trainer.run(dataset)
    n = len(dataset.prompts)
    print(f"run {result.run_id}: {n} prompts x {len(result.endpoints)} endpoints"
          + ("" if dataset.precomputed else
             f"; {result.sent} requests sent, {result.resumed} answers reused from before, "
             f"{result.failed} failed"))  # fmt: skip
    if dataset.duplicates:
        print(f"skipped {dataset.duplicates} repeated prompts")
    if result.dropped:
        print(f"{len(result.dropped)} prompts without any score left out "
              f"(first: {result.dropped[0]})")  # fmt: skip
    unpriced = sorted(set(result.endpoints) - {e.id for e in endpoints})
    if unpriced:
        print(f"no catalog prices for {', '.join(unpriced)}: their cost counts as 0 "
              "(pass --catalog with these endpoints to draw the cost trade-off)")
    state = "active" if options.activate else "stored, not active"
    print(f"model {result.model_id} ({state}): trained on {result.train_prompts} prompts, "
          f"evaluated on {result.heldout_prompts} held-out prompts")
    print(f"graph: {result.png_path}\n       {result.html_path}\n")
    print(frontier_table(result.tradeoff.to_json()))
    return 0
