"""Benchmark: what the dashboard costs, in bytes for the browser and in CPU for the sidecar.

    python tests/bench/dashboard_cost.py [--seconds 60] [--days 14]

Seeds a warehouse with ``--days`` of simulated history (``switchyard warehouse seed``), runs
``switchyard up`` on it (embedded simulator and collector at their default settings, one admin
token), then, in a real headless Chromium driven by Playwright:

- **first load**: the page, its assets and its first API answers, summed from Chromium's own
  network accounting (response headers + bodies as transferred, i.e. gzipped where they were);
  the live event stream, which never finishes, is counted apart: what it sends on connecting,
  then its steady rate per minute over ``--seconds``;
- **CPU**: the sidecar process's CPU time (``/proc/<pid>/stat`` utime + stime) over
  ``--seconds`` with no dashboard, then with one dashboard open, then with none again. The
  idle figure is the mean of the two idle phases. The process also runs the embedded
  simulator and the collector, the same in every phase, so the difference is the dashboard's.

Last stdout line: ``{"first_load_bytes", "requests", "cpu_pct_dashboard", "cpu_pct_idle", ...}``.
Needs Chromium (``apt-get install -y chromium``) and Playwright (``pip install playwright``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidecar_proc import SidecarProcess  # noqa: E402

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}
SETTLE_S = 3.0
STREAM_PATH = "/ui/api/stream"
STREAM_SETTLE_S = 1.0  # what the stream sends in its first second counts as its first load


def seed_warehouse(db: Path, days: float, *, seed: int = 7) -> None:
    """``switchyard warehouse seed`` into ``db`` (a subprocess, like a user would run it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "serving", "warehouse", "seed", "--days", str(days),
         "--db", str(db), "--seed", str(seed)],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def cpu_pct_over(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def new_page(pw: Any, token: str) -> tuple[Any, Any, Any]:
    """A Chromium page that sends the admin token as HTTP Basic credentials."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = await browser.new_context(
        viewport=VIEWPORT,
        http_credentials={"username": "ops", "password": token, "send": "always"},
    )
    return browser, context, await context.new_page()


async def wait_filled(page: Any, timeout_ms: float = 30_000) -> None:
    """Until the endpoint table has rows and the other panels have answered."""
    await page.wait_for_function(
        """() => document.querySelectorAll('#now-table tbody tr').length > 0
                 && document.querySelector('#tod-grid').childElementCount > 0
                 && document.querySelectorAll('#traffic-tiles .tile').length > 0""",
        timeout=timeout_ms,
    )


async def first_load(page: Any, url: str) -> dict[str, object]:
    """Bytes and requests of loading the page until every panel is drawn."""
    finished: list[Any] = []

    def on_finished(request: Any) -> None:
        finished.append(request)

    page.on("requestfinished", on_finished)
    response = await page.goto(f"{url}/ui")
    if response is None or response.status != 200:
        raise RuntimeError(f"the dashboard answered {response and response.status}")
    await wait_filled(page)
    await asyncio.sleep(SETTLE_S)
    page.remove_listener("requestfinished", on_finished)
    total = raw = 0
    by_path: dict[str, int] = {}
    for request in finished:
        sizes = await request.sizes()
        size = sizes["responseHeadersSize"] + sizes["responseBodySize"]
        total += size
        path = request.url.removeprefix(url).split("?")[0]
        by_path[path] = by_path.get(path, 0) + size
        resp = await request.response()
        if resp is not None:
            raw += len(await resp.body())
    return {"first_load_bytes": total, "requests": len(finished),
            "first_load_bytes_decoded": raw, "by_path": by_path}


async def stream_bytes(url: str, token: str, seconds: float) -> tuple[int, float]:
    """Bytes of the live event stream: the first events (sent at once on connecting), then
    the steady rate per minute over ``seconds``."""
    import aiohttp

    got = 0
    async with aiohttp.ClientSession() as s, s.get(
        f"{url}{STREAM_PATH}", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        start = time.monotonic()
        initial = -1
        end = start + STREAM_SETTLE_S + seconds
        while (left := end - time.monotonic()) > 0:
            if initial < 0 and time.monotonic() - start >= STREAM_SETTLE_S:
                initial = got
            try:
                async with asyncio.timeout(min(left, 0.5)):
                    got += len(await r.content.readany())
            except TimeoutError:
                continue
    return initial, (got - initial) * 60.0 / seconds


async def run(seconds: float, days: float, work: Path) -> dict[str, object]:
    from playwright.async_api import async_playwright

    db = work / "demo.duckdb"
    print(f"seeding {days:g} days of history into {db}", file=sys.stderr, flush=True)
    seed_warehouse(db, days)
    with SidecarProcess(None, work, env={"ROUTER_WAREHOUSE__PATH": str(db)}) as sc:
        assert sc.proc is not None
        pid = sc.proc.pid
        async with async_playwright() as pw:
            browser, context, page = await new_page(pw, sc.token)
            try:
                # warm-up: the first load imports what the reports need and fills caches
                await page.goto(f"{sc.url}/ui")
                await wait_filled(page)
                await page.close()
                await asyncio.sleep(10.0)
                print(f"idle {seconds:g} s", file=sys.stderr, flush=True)
                idle_before = await cpu_pct_over(pid, seconds)
                page = await context.new_page()
                load = await first_load(page, sc.url)
                requests_open: list[str] = []
                page.on("request", lambda r: requests_open.append(r.url))
                print(f"dashboard open {seconds:g} s", file=sys.stderr, flush=True)
                open_pct = await cpu_pct_over(pid, seconds)
                await page.close()
                print(f"idle {seconds:g} s", file=sys.stderr, flush=True)
                idle_after = await cpu_pct_over(pid, seconds)
            finally:
                await browser.close()
        print(f"event stream {seconds:g} s", file=sys.stderr, flush=True)
        sse_first, sse_per_min = await stream_bytes(sc.url, sc.token, seconds)
    by_path = load.pop("by_path")
    return {
        **load,
        "cpu_pct_dashboard": round(open_pct, 2),
        "cpu_pct_idle": round((idle_before + idle_after) / 2, 2),
        "cpu_pct_idle_before": round(idle_before, 2),
        "cpu_pct_idle_after": round(idle_after, 2),
        "dashboard_requests_per_min": round(len(requests_open) * 60.0 / seconds, 1),
        "stream_first_bytes": sse_first,
        "stream_bytes_per_min": round(sse_per_min),
        "seconds": seconds,
        "seeded_days": days,
        "bytes_by_path": by_path,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each CPU phase")
    parser.add_argument("--days", type=float, default=14.0, help="seeded history")
    args = parser.parse_args()
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="dashboard-cost-") as tmp:
        result = asyncio.run(run(args.seconds, args.days, Path(tmp)))
    by_path = result.pop("bytes_by_path")
    for path, size in sorted(by_path.items(), key=lambda kv: -kv[1]):  # type: ignore[union-attr]
        print(f"  {size:>8} B  {path}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
