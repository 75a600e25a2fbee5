"""Fixtures of the sidecar tests: a real simulator on loopback, a real DuckDB file in tmp_path,
the real VW bandit, and the app served by ``aiohttp_client`` on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bandit.config import BanditConfig
from bandit.service import RouterService as BanditService
from collector.http import make_session
from collector.simulator import RunningSimulator, SimConfig, SimProfile, run_simulator
from serving.app import create_app
from serving.bandit_router import BanditRouter
from serving.metrics import Metrics
from serving.proxy import Cooldowns
from serving.settings import ProxyConfig, RateLimitConfig, ServingSettings, TokenConfig
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint, WireFormat
from warehouse.store import Warehouse

ROUTE_TOKEN = "route-token-0123456789"
FEEDBACK_TOKEN = "feedback-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"
BOTH_TOKEN = "both-token-0123456789"
TOKENS = (
    TokenConfig(name="router", token=ROUTE_TOKEN, scopes=frozenset({"route"})),  # type: ignore[arg-type]
    TokenConfig(name="judge", token=FEEDBACK_TOKEN, scopes=frozenset({"feedback"})),  # type: ignore[arg-type]
    TokenConfig(name="ops", token=ADMIN_TOKEN, scopes=frozenset({"admin"})),  # type: ignore[arg-type]
    TokenConfig(name="app", token=BOTH_TOKEN, scopes=frozenset({"route", "feedback"})),  # type: ignore[arg-type]
)


def auth(token: str = BOTH_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def profile(
    endpoint_id: str,
    *,
    ttft_ms: float = 25.0,
    gap_ms: float = 3.0,
    wire_format: WireFormat = WireFormat.OPENAI,
    price: float = 1.0,
) -> SimProfile:
    return SimProfile(
        endpoint_id=endpoint_id,
        wire_format=wire_format,
        ttft_ms_median=ttft_ms,
        ttft_sigma=0.0,
        gap_ms_median=gap_ms,
        gap_sigma=0.0,
        tokens_per_chunk=(1, 2),
        output_tokens=(8, 12),
        price_in_per_mtok=price,
        price_out_per_mtok=2 * price,
    )


def sim_profiles() -> tuple[SimProfile, ...]:
    return (
        profile("fast-a@alpha", ttft_ms=20.0),
        profile("fast-b@beta", ttft_ms=25.0),
        profile("mid-c@gamma", ttft_ms=40.0, price=0.5),
        profile("claude-d@anthro", ttft_ms=30.0, wire_format=WireFormat.ANTHROPIC, price=3.0),
    )


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    config = SimConfig(profiles=sim_profiles(), seed=3, day_offset_h=0.0, hang_max_s=10.0)
    async with run_simulator(config, host="127.0.0.1", port=0) as running:
        yield running


async def sim_fail(sim: RunningSimulator, endpoint_id: str, kind: str,
                   retry_after_s: float | None = None) -> None:  # fmt: skip
    """Force a failure kind on a simulated endpoint through its control API."""
    body: dict[str, object] = {"endpoint_id": endpoint_id, "kind": kind}
    if retry_after_s is not None:
        body["retry_after_s"] = retry_after_s
    async with aiohttp.ClientSession() as s, s.post(f"{sim.url}/_sim/fail", json=body) as r:
        assert r.status == 200, await r.text()


def make_settings(tmp_path: Path, **overrides: object) -> ServingSettings:
    base: dict[str, object] = {
        "warehouse": WarehouseConfig(path=tmp_path / "wh.duckdb", flush_interval_s=0.1),
        "bandit": BanditConfig(checkpoint_path=tmp_path / "bandit.ckpt", seed=5),
        "tokens": TOKENS,
        "proxy": ProxyConfig(ttft_timeout_s=1.0, total_timeout_s=10.0, connect_timeout_s=1.0),
        "rate_limit": RateLimitConfig(requests_per_s=10_000, burst=10_000),
        "collect": False,
    }
    base.update(overrides)
    return ServingSettings.model_validate(base)


@dataclass
class Stack:
    """Everything one test app is made of."""

    client: TestClient
    app: web.Application
    warehouse: Warehouse
    service: BanditService
    router: BanditRouter
    endpoints: list[Endpoint]
    settings: ServingSettings
    cooldowns: Cooldowns

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient]],
) -> AsyncIterator[MakeStack]:
    """Build the real stack on a catalog: ``await make_stack(endpoints, **settings)``;
    ``api_keys`` maps key variable names to provider keys (as a secrets file would)."""
    sessions: list[aiohttp.ClientSession] = []
    clients: list[TestClient] = []

    async def build(
        endpoints: list[Endpoint], *, api_keys: dict[str, str] | None = None, **overrides: object
    ) -> Stack:
        settings = make_settings(tmp_path, **overrides)
        warehouse = Warehouse(settings.warehouse, lake=False)
        session = make_session()
        sessions.append(session)
        cooldowns = Cooldowns()
        service = BanditService(settings.bandit, warehouse, endpoints, cooldowns=cooldowns)
        router = BanditRouter(service)
        app = create_app(
            settings,
            warehouse=warehouse,
            router_service=router,
            session=session,
            metrics=Metrics(live=warehouse.live.all),
            cooldowns=cooldowns,
            api_keys=api_keys,
        )
        client = await aiohttp_client(app)
        clients.append(client)
        return Stack(client, app, warehouse, service, router, endpoints, settings, cooldowns)

    yield build
    for client in clients:
        await client.close()
    for session in sessions:
        await session.close()


@pytest.fixture
async def stack(sim: RunningSimulator, make_stack: MakeStack) -> Stack:
    return await make_stack(sim.catalog())
