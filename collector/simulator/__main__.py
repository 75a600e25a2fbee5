"""Run the provider simulator: ``python -m collector.simulator --port 0 --seed 1``.

Prints one line ``READY http://127.0.0.1:PORT`` once listening, then serves until SIGTERM or
SIGINT. ``--profiles FILE.json`` holds either a list of profiles or a whole ``SimConfig``;
flags given on the command line override the file. The expected API key, if any, comes from
the ``SIM_REQUIRE_KEY`` environment variable, never from a flag or file.

Timer precision decides how faithfully chunk gaps are reproduced. Plain epoll rounds every
wait up to a whole millisecond (chunks leave 0-1 ms late, at random). The default
``--loop precise`` keeps epoll for readiness but waits on the epoll descriptor with
``select()``, whose timeout has microsecond resolution. ``--loop select`` (microseconds, but
O(connections) per wake-up) and ``--loop epoll`` are there for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import selectors
import signal
import sys
from pathlib import Path

from pydantic import SecretStr, ValidationError

from .app import REQUIRE_KEY_ENV, run_simulator
from .profiles import SimConfig


class PreciseEpollSelector(selectors.EpollSelector):
    """Epoll readiness with microsecond timeouts: block in ``select()`` on the epoll fd."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            select.select([self.fileno()], [], [], timeout)
            timeout = 0
        return super().select(timeout)


LOOPS = {
    "precise": PreciseEpollSelector,
    "select": selectors.SelectSelector,
    "epoll": selectors.EpollSelector,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m collector.simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    p.add_argument("--seed", type=int, default=None, help="seed of every random draw")
    p.add_argument("--profiles", type=Path, default=None, help="JSON: profiles or a SimConfig")
    p.add_argument("--day-seconds", type=float, default=None, help="real seconds per sim day")
    p.add_argument("--day-offset-h", type=float, default=None, help="sim UTC hour at start")
    p.add_argument("--latency-scale", type=float, default=None, help="multiplies latencies")
    p.add_argument("--loop", choices=sorted(LOOPS), default="precise", help="event loop timers")
    return p


def load_config(args: argparse.Namespace) -> SimConfig:
    """Build the config from the file (if any), the flags and the environment."""
    data: dict[str, object] = {}
    if args.profiles is not None:
        loaded = json.loads(args.profiles.read_text())
        data = {"profiles": loaded} if isinstance(loaded, list) else dict(loaded)
    for flag, field in (("seed", "seed"), ("day_seconds", "day_seconds"),
                        ("day_offset_h", "day_offset_h"), ("latency_scale", "latency_scale")):
        if getattr(args, flag) is not None:
            data[field] = getattr(args, flag)
    config = SimConfig.model_validate(data)
    key = os.environ.get(REQUIRE_KEY_ENV)
    if key:
        config = config.model_copy(update={"require_key": SecretStr(key)})
    return config


async def _serve(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run_simulator(config, host, port) as sim:
        print(f"READY {sim.url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"simulator: bad configuration: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.SelectorEventLoop(LOOPS[args.loop]())
    try:
        loop.run_until_complete(_serve(config, args.host, args.port))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
