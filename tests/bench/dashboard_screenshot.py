"""Regenerate ``docs/dashboard.png``: the dashboard on demo data, in headless Chromium.

    python tests/bench/dashboard_screenshot.py [--out docs/dashboard.png] [--days 14]
                                               [--traffic-s 150] [--rps 3]

Seeds ``--days`` of simulated probe history (``switchyard warehouse seed``), runs
``switchyard up`` on it (embedded simulator, collector every 5 s), sends ``--rps`` chat
completions per second through the proxy for ``--traffic-s`` seconds with a few router
strings, and leaves thumbs on about half of them. The thumbs are demo data: drawn (seeded) with
a chance of "up" that grows with the endpoint's price, so the trade-off graph has a quality
axis. Then it opens the dashboard at 1366x768, explains the latest decision, and saves a
full-page screenshot. Last stdout line: ``{"screenshot", "requests", "feedback", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_cost import new_page, seed_warehouse, wait_filled  # noqa: E402
from sidecar_proc import SidecarProcess  # noqa: E402

PROMPTS = (
    "What is 17 * 23?",
    "Translate 'good evening, see you tomorrow' into French.",
    "Summarise the plot of Hamlet in two sentences.",
    "Write a Python function that reverses a linked list.",
    "Which is larger, 2**10 or 10**3? Answer with the number.",
    "Classify the sentiment of: 'the update broke my workflow again'.",
    "Extract the dates from: 'shipped 3 May, returned 9 June'.",
    "Explain what a contextual bandit is to a new engineer.",
)
ROUTERS = ("", "router@q:1|c:0.005|t:0.0001", "router@q:1|t:0.001", "router@q:1|c:0.02")
CONCURRENCY = 16
P_UP_MIN, P_UP_MAX = 0.45, 0.9
FEEDBACK_SHARE = 0.5


async def traffic(url: str, token: str, seconds: float, rps: float, seed: int) -> tuple[int, int]:
    """Chat completions through the proxy, and feedback on about half; returns (ok, thumbs)."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/v1/endpoints", headers=headers) as r:
            catalog = (await r.json())["endpoints"]
        top = max(e["price_out_per_mtok"] for e in catalog) or 1.0
        p_up = {e["id"]: P_UP_MIN + (P_UP_MAX - P_UP_MIN) * (e["price_out_per_mtok"] / top) ** 0.5
                for e in catalog}
        gate = asyncio.Semaphore(CONCURRENCY)
        counts = [0, 0]

        async def one(prompt: str, router: str, thumbs_draw: float, fb_draw: float) -> None:
            async with gate:
                body: dict[str, object] = {
                    "model": router or "router@", "max_tokens": 48,
                    "messages": [{"role": "user", "content": prompt}]}
                async with s.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        return
                    event_id = r.headers["x-switchyard-event-id"]
                    served = r.headers["x-switchyard-endpoint"]
                counts[0] += 1
                if fb_draw < FEEDBACK_SHARE:
                    thumbs = "up" if thumbs_draw < p_up.get(served, 0.5) else "down"
                    async with s.post(f"{url}/v1/feedback", headers=headers,
                                      json={"event_id": event_id, "thumbs": thumbs}) as r:
                        counts[1] += r.status == 200

        tasks = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tasks.append(asyncio.create_task(one(rng.choice(PROMPTS), rng.choice(ROUTERS),
                                                 rng.random(), rng.random())))
            await asyncio.sleep(rng.expovariate(rps))
        await asyncio.gather(*tasks)
    return counts[0], counts[1]


async def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    from playwright.async_api import async_playwright

    db = work / "demo.duckdb"
    print(f"seeding {args.days:g} days of history", file=sys.stderr, flush=True)
    seed_warehouse(db, args.days)
    env = {"ROUTER_WAREHOUSE__PATH": str(db), "ROUTER_COLLECTOR__INTERVAL_S": "5",
           "ROUTER_COLLECTOR__JITTER_S": "1"}
    with SidecarProcess(None, work, env=env) as sc:
        print(f"traffic for {args.traffic_s:g} s", file=sys.stderr, flush=True)
        ok, thumbs = await traffic(sc.url, sc.token, args.traffic_s, args.rps, args.seed)
        await asyncio.sleep(6.0)  # a flush, a spark refresh
        async with async_playwright() as pw:
            browser, _, page = await new_page(pw, sc.token)
            try:
                await page.goto(f"{sc.url}/ui")
                await wait_filled(page)
                await page.locator("#recent button").first.click()
                await page.locator("#event-candidates").wait_for()
                await page.wait_for_function(
                    "() => document.querySelectorAll('#tradeoff-chart circle').length > 0")
                await asyncio.sleep(2.5)  # let the TTFT flash fade
                args.out.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(args.out), full_page=True)
            finally:
                await browser.close()
    return {"screenshot": str(args.out), "requests": ok, "feedback": thumbs,
            "days": args.days, "traffic_s": args.traffic_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--traffic-s", type=float, default=150.0)
    parser.add_argument("--rps", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(f"screenshot: {result['screenshot']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
