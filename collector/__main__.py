"""``switchyard collect`` / ``python -m collector``: probe every endpoint into DuckDB, continuously.

This module is a composition root: it reads settings, opens the warehouse, starts the embedded
provider simulator when no catalog is configured, and runs the scheduler until SIGTERM/SIGINT,
then flushes every row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from collector.catalog import Catalog, load_catalog
from collector.cost import probing_cost, render_cost
from collector.errors import CollectorError
from collector.http import make_session
from collector.schedule import Collector
from collector.settings import CollectorSettings, load_secrets, load_settings
from collector.simulator import SimConfig, default_profiles, run_simulator
from warehouse.models import LiveStat, utcnow
from warehouse.store import Warehouse

log = logging.getLogger("collector")


@dataclass
class Running:
    """What a running collector is made of (for the all-in-one process, too)."""

    catalog: Catalog
    warehouse: Warehouse
    collector: Collector


@contextlib.asynccontextmanager
async def catalog_or_simulator(settings: CollectorSettings) -> AsyncIterator[Catalog]:
    """The configured catalog, or the embedded simulator's catalog while it runs."""
    if settings.catalog is not None:
        yield load_catalog(settings.catalog)
        return
    config = SimConfig(
        profiles=default_profiles(),
        seed=settings.simulator.seed,
        day_seconds=settings.simulator.day_seconds,
    )
    async with run_simulator(config, host="127.0.0.1", port=settings.simulator.port) as sim:
        log.info("embedded provider simulator on %s", sim.url)
        yield Catalog(endpoints=tuple(sim.catalog()))


def format_live(stats: dict[str, LiveStat], endpoint_ids: Sequence[str] = ()) -> str:
    """The live per-endpoint figures as a compact table; endpoints without samples show '-'."""
    now = utcnow()

    def f(v: float | None, spec: str = ".0f") -> str:
        return "-" if v is None else format(v, spec)

    head = (
        f"{'endpoint':<34} {'n':>5} {'ttft p50':>8} {'p90':>7} {'itl p50':>7} "
        f"{'tok/s':>6} {'err%':>5} {'429%':>5} {'age s':>6}"
    )
    lines = [head]
    for ep_id in sorted(set(stats) | set(endpoint_ids)):
        s = stats.get(ep_id) or LiveStat(endpoint_id=ep_id)
        age = s.age_s(now)
        lines.append(
            f"{ep_id:<34} {s.samples:>5} {f(s.ttft_ms_p50):>8} {f(s.ttft_ms_p90):>7} "
            f"{f(s.itl_ms_p50, '.1f'):>7} {f(s.tokens_per_s):>6} {100 * s.error_rate:>5.1f} "
            f"{100 * s.rate_429:>5.1f} {f(age):>6}"
        )
    return "\n".join(lines)


async def run_collect(
    settings: CollectorSettings,
    *,
    duration_s: float | None = None,
    once: bool = False,
    print_every_s: float | None = None,
    out: object = sys.stdout,
) -> int:
    """Run the collector until a signal (or ``duration_s``); returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    secrets = load_secrets(settings.secrets_file)
    async with catalog_or_simulator(settings) as catalog:
        warehouse = Warehouse(settings.warehouse)
        await warehouse.start()
        try:
            warehouse.upsert_endpoints(list(catalog.endpoints))
            async with make_session(limit=settings.collector.max_concurrency) as session:
                collector = Collector(
                    catalog.endpoints,
                    catalog.probe_prompts,
                    config=settings.collector,
                    session=session,
                    sink=warehouse.add_probe,
                    api_keys={k: v.get_secret_value() for k, v in secrets.items()},
                    seed=settings.seed,
                )
                if once:
                    results = await collector.run_round()
                    for r in results:
                        print(
                            f"{r.endpoint_id:<34} {r.outcome.value:<16} "
                            f"ttft={r.ttft_ms if r.ttft_ms is None else round(r.ttft_ms, 1)} ms",
                            file=out,  # type: ignore[arg-type]
                        )
                    return 0
                await collector.start()
                print(
                    f"probing {len(catalog.endpoints)} endpoints every "
                    f"{settings.collector.interval_s:g}s into {settings.warehouse.path} "
                    "(Ctrl-C to stop)",
                    file=out,  # type: ignore[arg-type]
                    flush=True,
                )
                printer = (
                    asyncio.create_task(
                        _print_live(warehouse, [e.id for e in catalog.endpoints], print_every_s, out)
                    )
                    if print_every_s
                    else None
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=duration_s)
                if printer is not None:
                    printer.cancel()
                await collector.stop()
        finally:
            await warehouse.aclose()
    print(
        f"stopped after {collector.fired} probes; every row flushed",
        file=out,  # type: ignore[arg-type]
        flush=True,
    )
    return 0


async def _print_live(
    warehouse: Warehouse, endpoint_ids: list[str], every_s: float, out: object
) -> None:
    while True:
        await asyncio.sleep(every_s)
        table = format_live(warehouse.live.all(), endpoint_ids)
        print(table + "\n", file=out, flush=True)  # type: ignore[call-overload]


def add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--catalog", type=Path, help="endpoint catalog (.toml/.yaml)")
    parser.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")
    parser.add_argument("--interval", type=float, help="seconds between probes of an endpoint")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--once", action="store_true", help="probe every endpoint once, exit")
    parser.add_argument(
        "--cost", action="store_true", help="print what the probing costs per day, then exit"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print live figures")


def settings_from_args(args: argparse.Namespace) -> CollectorSettings:
    overrides: dict[str, object] = {"catalog": args.catalog}
    base = load_settings(CollectorSettings, args.config, **overrides)
    updates: dict[str, object] = {}
    if args.db is not None:
        updates["warehouse"] = base.warehouse.model_copy(update={"path": args.db})
    if args.interval is not None:
        if args.interval <= 0:
            raise CollectorError(f"--interval must be positive (got {args.interval:g})")
        updates["collector"] = base.collector.model_copy(update={"interval_s": args.interval})
    return base.model_copy(update=updates) if updates else base


def collect_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per probe otherwise
    if args.cost:
        catalog = (
            load_catalog(settings.catalog)
            if settings.catalog
            else Catalog(endpoints=tuple(SimConfig(profiles=default_profiles()).catalog("http://127.0.0.1:0")))
        )
        print(render_cost(probing_cost(catalog.endpoints, catalog.probe_prompts, settings.collector)))
        return 0
    return asyncio.run(
        run_collect(
            settings,
            duration_s=args.duration,
            once=args.once,
            print_every_s=None if args.quiet else max(2.0, min(10.0, settings.collector.interval_s / 2)),
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector", description=__doc__)
    add_collect_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return collect_command(args)
    except (CollectorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
