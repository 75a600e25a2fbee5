"""Smoke test of the one-process deployment: ``switchyard up`` as a subprocess.

Embedded simulator, local DuckDB file, real VW: it becomes ready, routes, proxies, and on
SIGTERM lets the stream in flight finish, then checkpoints and flushes before exiting 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import duckdb
import pytest

from collector.sse import SSEParser

REPO = Path(__file__).resolve().parents[2]
TOKEN = "smoke-token-0123456789"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def up_command() -> list[str]:
    """``python -m serving up`` once the CLI has it; until then, run_up directly."""
    try:
        from serving.__main__ import build_parser

        sub = next(a for a in build_parser()._actions if a.dest == "command")
        has_up = "up" in (sub.choices or {})  # type: ignore[operator]
    except (ImportError, AttributeError, StopIteration):  # the CLI is being wired
        has_up = False
    if has_up:
        return [sys.executable, "-m", "serving", "up"]
    script = (
        "import logging; from collector.settings import load_settings; "
        "from serving.settings import ServingSettings; from serving.up import run; "
        "logging.basicConfig(level='WARNING'); "
        "raise SystemExit(run(load_settings(ServingSettings)))"
    )
    return [sys.executable, "-c", script]


def idle_threads(pid: int) -> int:
    """Threads of ``pid`` under SCHED_IDLE."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            n += os.sched_getscheduler(int(tid)) == os.SCHED_IDLE
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    return n


@pytest.mark.slow
async def test_up_serves_then_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "ROUTER_PORT": str(port),
            "ROUTER_WAREHOUSE__PATH": str(tmp_path / "up.duckdb"),
            "ROUTER_BANDIT__CHECKPOINT_PATH": str(tmp_path / "bandit.ckpt"),
            "ROUTER_COLLECTOR__INTERVAL_S": "1",
            "ROUTER_COLLECTOR__JITTER_S": "0.1",
            "ROUTER_TOKENS": json.dumps(
                [{"name": "smoke", "token": TOKEN, "scopes": ["route", "feedback", "admin"]}]
            ),
        }
    )
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        up_command(), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert proc.poll() is None, (tmp_path / "up.log").read_text()
                try:
                    async with s.get(f"{url}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "not healthy in time"
                await asyncio.sleep(0.2)
            async with s.get(f"{url}/readyz") as r:
                ready = await r.json()
                assert r.status == 200 and ready["endpoints"] >= 8
            if hasattr(os, "SCHED_IDLE"):
                # Linux: the warehouse writer and lake threads (and for a moment at start the
                # short-lived threads they spawn, which inherit their priority)
                idle_by = time.monotonic() + 20
                while (idle := idle_threads(proc.pid)) != 2 and time.monotonic() < idle_by:
                    await asyncio.sleep(0.1)
                assert idle == 2
            async with s.post(f"{url}/v1/route", json={"prompt": "hi"}, headers=headers) as r:
                assert r.status == 200
                event_id = (await r.json())["event_id"]
            body = {"model": "gpt-4o-mini@openai", "stream": True, "max_tokens": 40,
                    "messages": [{"role": "user", "content": "Count to forty."}]}  # fmt: skip
            async with s.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200
                first = await r.content.readany()  # the answer has started...
                proc.send_signal(signal.SIGTERM)  # ...when the stop signal arrives
                rest = await r.read()
            parser = SSEParser()
            events = parser.feed(first + rest) + parser.close()
            assert events[-1].data == "[DONE]"  # the stream in flight was drained, not cut
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert "READY http://127.0.0.1:" in output
    assert (tmp_path / "bandit.ckpt").exists()
    con = duckdb.connect(str(tmp_path / "up.duckdb"), read_only=True)
    try:
        decided = con.execute("SELECT count(*) FROM decisions WHERE event_id = ?", [event_id])
        assert decided.fetchone() == (1,)
        sources = dict(con.execute("SELECT source, count(*) FROM probes GROUP BY 1").fetchall())
        assert sources.get("traffic", 0) >= 1 and sources.get("probe", 0) >= 1
    finally:
        con.close()
