"""Benchmark helper: run ``switchyard up`` (``serving.up.run_up``) as a subprocess.

    with SidecarProcess(catalog_toml, tmp_dir, env={"ROUTER_COLLECTOR__INTERVAL_S": "5"}) as sc:
        sc.url, sc.token

The process gets its own DuckDB file and checkpoint in ``tmp_dir``, one admin token, and a
rate limit high enough for load tests. It is stopped with SIGTERM (drain, checkpoint, flush).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from collector.simulator.app import stop_process, wait_ready  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
SCRIPT = (
    "import logging; from collector.settings import load_settings; "
    "from serving.settings import ServingSettings; from serving.up import run; "
    "logging.basicConfig(level='WARNING'); "
    "raise SystemExit(run(load_settings(ServingSettings)))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SidecarProcess:
    """``switchyard up`` on a free loopback port for the body of a ``with`` block."""

    def __init__(
        self,
        catalog: Path | None,
        work_dir: Path,
        *,
        env: dict[str, str] | None = None,
        startup_timeout_s: float = 90.0,
    ) -> None:
        self.catalog = catalog
        self.work_dir = work_dir
        self.extra_env = env or {}
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = TOKEN
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SidecarProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "ROUTER_PORT": str(self.port),
                "ROUTER_WAREHOUSE__PATH": str(self.work_dir / "bench.duckdb"),
                "ROUTER_BANDIT__CHECKPOINT_PATH": str(self.work_dir / "bandit.ckpt"),
                "ROUTER_RATE_LIMIT__REQUESTS_PER_S": "0",
                "ROUTER_TOKENS": json.dumps(
                    [{"name": "bench", "token": TOKEN, "scopes": ["admin"]}]
                ),
                **self.extra_env,
            }
        )
        if self.catalog is not None:
            env["ROUTER_CATALOG"] = str(self.catalog)
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", SCRIPT],
            cwd=self.work_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=(self.work_dir / "sidecar.err").open("w"),
            text=True,
        )
        if wait_ready(self.proc, self.startup_timeout_s) is not None:
            return self
        self.__exit__(None, None, None)
        err = (self.work_dir / "sidecar.err").read_text()[-3000:]
        raise RuntimeError(f"sidecar did not start: {err}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout_s=60.0)  # drain, checkpoint, flush
