"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Playwright for
Python) against a running sidecar whose collector probes the provider simulator.

The page loads with no console error, the endpoint table fills, a slowdown set through the
simulator's control API shows on the page within seconds, the event lookup explains a decision
the proxy really made, and a screenshot is saved (path printed). Skipped, with the reason,
where Chromium or Playwright is missing (``apt-get install chromium``; ``pip install
playwright``; never ``playwright install``: the system browser is used).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bandit.service import RouterService as BanditService
from collector.catalog import Catalog
from collector.config import CollectorConfig
from collector.http import make_session
from collector.schedule import Collector
from collector.simulator import RunningSimulator
from serving.app import create_app
from serving.bandit_router import BanditRouter
from serving.metrics import Metrics
from serving.proxy import Cooldowns
from tests.serving.conftest import ADMIN_TOKEN, ROUTE_TOKEN, auth, make_settings
from warehouse.config import WarehouseConfig
from warehouse.models import ProbeResult
from warehouse.store import Warehouse

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SWITCHYARD_ARTIFACTS", REPO / "var" / "test-artifacts"))
SLOW_FACTOR = 20.0
SLOWDOWN_DEADLINE_S = 10.0

playwright_api = pytest.importorskip(
    "playwright.async_api",
    reason="Playwright for Python is not installed (pip install playwright; the system "
    "chromium is used, no `playwright install`)",
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set "
                "SWITCHYARD_CHROMIUM)", allow_module_level=True)


@dataclass
class Live:
    client: TestClient
    sim: RunningSimulator
    warehouse: Warehouse

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


@pytest.fixture
async def live(
    sim: RunningSimulator, tmp_path: Path, aiohttp_client: Callable[..., object]
) -> AsyncIterator[Live]:
    """The sidecar with its collector probing every simulated endpoint twice a second, and
    live stats over a 4 s window (so a slowdown shows in seconds)."""
    settings = make_settings(
        tmp_path,
        warehouse=WarehouseConfig(path=tmp_path / "wh.duckdb", flush_interval_s=0.1,
                                  live_window_s=4.0, live_half_life_s=2.0),
        collector=CollectorConfig(interval_s=0.5, jitter_s=0.05, backoff_base_s=1.0,
                                  backoff_max_s=2.0),
        collect=True,
    )
    warehouse = Warehouse(settings.warehouse, lake=False)
    metrics = Metrics(live=warehouse.live.all)
    cooldowns = Cooldowns()
    endpoints = sim.catalog()

    def sink(result: ProbeResult) -> None:
        warehouse.add_probe(result)
        metrics.observe_probe(result)

    async with make_session() as session:
        catalog = Catalog(endpoints=tuple(endpoints))
        collector = Collector(catalog.endpoints, catalog.probe_prompts,
                              config=settings.collector, session=session, sink=sink, seed=1)
        service = BanditService(settings.bandit, warehouse, endpoints, cooldowns=cooldowns)
        app = create_app(settings, warehouse=warehouse, router_service=BanditRouter(service),
                         session=session, collector=collector, metrics=metrics,
                         cooldowns=cooldowns)
        client = await aiohttp_client(app)  # type: ignore[operator]
        yield Live(client, sim, warehouse)  # type: ignore[arg-type]
        await client.close()  # type: ignore[attr-defined]


async def sim_scale(sim: RunningSimulator, endpoint_id: str, ttft_factor: float) -> None:
    async with aiohttp.ClientSession() as s, s.post(
        f"{sim.url}/_sim/scale", json={"endpoint_id": endpoint_id, "ttft_factor": ttft_factor}
    ) as r:
        assert r.status == 200, await r.text()


async def wait_js(page: Page, expr: str, arg: object, timeout_s: float,
                  errors: list[str]) -> None:  # fmt: skip
    """``page.wait_for_function``; a timeout fails with the page's errors so far."""
    try:
        await page.wait_for_function(expr, arg=arg, timeout=timeout_s * 1000)
    except playwright_api.TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {expr.strip()[:70]!r};"
                             f" page errors: {errors}") from None


def cell(endpoint_id: str, col: str) -> str:
    return f'#now-table tr[data-endpoint="{endpoint_id}"] td[data-col="{col}"]'


async def test_dashboard_in_chromium(live: Live) -> None:
    errors: list[str] = []
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1366, "height": 768},
                http_credentials={"username": "ops", "password": ADMIN_TOKEN, "send": "always"},
            )
            page = await context.new_page()
            page.on("console", lambda m: errors.append(
                f"console {m.type}: {m.text} ({m.location.get('url')})")
                if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}")
                    if "/ui/api/stream" not in r.url else None)
            foreign: list[str] = []
            page.on("request", lambda r: foreign.append(r.url)
                    if not r.url.startswith((live.url, "data:")) else None)

            response = await page.goto(f"{live.url}/ui")
            assert response is not None and response.status == 200

            # the endpoint table fills: one row per endpoint, each with a measured TTFT
            ids = sorted(e.id for e in live.sim.catalog())
            await wait_js(page, """ids => ids.every(id => {
                    const c = document.querySelector(
                        `#now-table tr[data-endpoint="${id}"] td[data-col="ttft_ms_p50"]`);
                    return c && c.textContent !== "-";
                })""", ids, 15.0, errors)
            rows = await page.eval_on_selector_all(
                "#now-table tbody tr", "rs => rs.map(r => r.dataset.endpoint)")
            assert sorted(rows) == ids
            assert await page.text_content("#conn") == "●"
            assert "live" in (await page.get_attribute("#conn", "class") or "")
            target = "fast-a@alpha"
            before = float(await page.text_content(cell(target, "ttft_ms_p50")) or "nan")
            assert before < 100.0, before  # the simulator's 20 ms profile, plus overhead

            # a simulated slowdown shows within seconds, on that endpoint only
            await sim_scale(live.sim, target, SLOW_FACTOR)
            started = time.monotonic()
            await wait_js(page, """([sel, limit]) => {
                    const c = document.querySelector(sel);
                    return c && parseFloat(c.textContent) > limit;
                }""", [cell(target, "ttft_ms_p50"), before * SLOW_FACTOR / 3],
                SLOWDOWN_DEADLINE_S, errors)
            shown_after_s = time.monotonic() - started
            other = float(await page.text_content(cell("fast-b@beta", "ttft_ms_p50")) or "nan")
            assert other < 100.0
            print(f"\nslowdown of {target} shown after {shown_after_s:.1f} s")
            await sim_scale(live.sim, target, 1.0)

            # a real decision through the proxy, then looked up on the page
            async with aiohttp.ClientSession() as s, s.post(
                f"{live.url}/v1/chat/completions", headers=auth(ROUTE_TOKEN),
                json={"model": "router@q:1|t:0.001", "metadata": {"team": "<i>i18n</i>"},
                      "messages": [{"role": "user", "content": "Translate 'merci' to English"}]},
            ) as r:
                assert r.status == 200, await r.text()
                event_id = r.headers["x-switchyard-event-id"]
                served = r.headers["x-switchyard-endpoint"]
            await live.warehouse.aflush()
            await page.fill("#event-id", event_id)
            await page.click("#event-form button")
            chosen_row = page.locator("#event-candidates tr.chosen")
            await chosen_row.wait_for(timeout=5_000)
            assert await chosen_row.get_attribute("data-endpoint") == served
            n_candidates = await page.locator("#event-candidates tbody tr").count()
            assert n_candidates == len(ids)
            detail = await page.text_content("#event-detail") or ""
            assert "translate" in detail and "ok" in detail  # prompt task; the outcome row
            # the caller's metadata, as text (never as markup)
            assert "Metadata" in detail and "<i>i18n</i>" in detail

            assert errors == [], errors

            # an unknown id is explained too, in words (Chromium logs the 404 it fetched)
            unknown = "0" * 32
            await page.fill("#event-id", unknown)
            await page.click("#event-form button")
            await page.wait_for_selector("#event-error")
            assert "unknown event id" in (await page.text_content("#event-error") or "")

            # the other panels drew something
            assert await page.locator("#traffic-tiles .tile").count() == 5
            assert await page.locator("#tradeoff-chart circle").count() == len(ids)
            assert await page.locator("#tod-grid table, #tod-grid p").count() == 1

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "ui-dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
            assert all(f"/ui/api/event/{unknown}" in e and "404" in e for e in errors), errors
            assert foreign == [], foreign  # nothing fetched from anywhere but the sidecar
            await context.close()
        finally:
            await browser.close()
    assert shown_after_s < SLOWDOWN_DEADLINE_S
