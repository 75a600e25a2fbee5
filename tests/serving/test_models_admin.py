"""Trained models in a running sidecar: import, list, activate, and routing with them at once
and after a restart (real app on a socket, real DuckDB files, real VW)."""

from __future__ import annotations

import random
from pathlib import Path

from bandit.quality import Example, QualityConfig, QualityModel
from bandit.trained import TrainedPolicy
from collector.simulator import RunningSimulator
from serving.state import TRADEOFF
from tests.serving.conftest import ADMIN_TOKEN, BOTH_TOKEN, MakeStack, auth
from warehouse.config import WarehouseConfig
from warehouse.store import Warehouse
from warehouse.training import TrainingStore

STRONG, CHEAP = "claude-d@anthro", "mid-c@gamma"  # price 3.0 and 0.5 in the simulator
HARD = "Prove theorem {k} about prime gaps rigorously."
EASY = "What is the capital of country {k}?"
ROUTER = "router@q:1|c:0.02"


def _model_bytes(endpoints: list[str]) -> bytes:
    rng = random.Random(1)
    data = []
    for _ in range(200):
        k = rng.randint(2, 999)
        others = {e: 0.0 for e in endpoints}
        data.append(Example(HARD.format(k=k), {**others, STRONG: 1.0}))
        data.append(Example(EASY.format(k=k), {**{e: 1.0 for e in endpoints}}))
    model = QualityModel(endpoints, config=QualityConfig(bits=16)).fit(data)
    try:
        return model.to_bytes()
    finally:
        model.close()


def _store_model(path: Path, endpoints: list[str]) -> str:
    with Warehouse(WarehouseConfig(path=path), lake=False) as wh:
        tradeoff = {"endpoints": [], "routers": [{"router": ROUTER, "frontier": True}],
                    "heldout": 10}
        return TrainingStore(wh).save_model(run_id="r1", kind="quality",
                                            model=_model_bytes(endpoints), tradeoff=tradeoff,
                                            activate=True)


async def _route(client, prompt: str) -> dict:  # type: ignore[no-untyped-def]
    async with client.post("/v1/route", json={"prompt": prompt, "router": ROUTER},
                           headers=auth(BOTH_TOKEN)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_import_switches_routing_without_restart(sim: RunningSimulator,
                                                       make_stack: MakeStack,
                                                       tmp_path: Path) -> None:
    catalog = sim.catalog()
    train_db = tmp_path / "train.duckdb"
    _store_model(train_db, [e.id for e in catalog])
    st = await make_stack(catalog)
    c = st.client
    async with c.get("/v1/admin/models", headers=auth(ADMIN_TOKEN)) as r:
        assert (await r.json())["models"] == []
    before = await _route(c, HARD.format(k=5))
    assert before["model_version"].startswith("vw-")
    async with c.post("/v1/admin/models/import", json={"db": str(train_db)},
                      headers=auth(ADMIN_TOKEN)) as r:
        body = await r.json()
        assert r.status == 200, body
    model_id = body["model_id"]
    assert isinstance(st.service.policy, TrainedPolicy)
    hard = [await _route(c, HARD.format(k=k)) for k in range(1000, 1012)]
    easy = [await _route(c, EASY.format(k=k)) for k in range(1000, 1012)]
    assert all(h["model_version"].startswith(f"trained-{model_id}") for h in hard)
    assert sum(h["endpoint"]["id"] == STRONG for h in hard) >= 10
    assert sum(e["endpoint"]["id"] != STRONG for e in easy) >= 10
    async with c.get("/v1/admin/models", headers=auth(ADMIN_TOKEN)) as r:
        listing = await r.json()
    assert listing["active"] == listing["routing"] == model_id
    assert listing["models"][0]["frontier"] == [ROUTER]
    async with c.get(f"/v1/admin/models/{model_id}/tradeoff", headers=auth(ADMIN_TOKEN)) as r:
        assert (await r.json())["tradeoff"]["heldout"] == 10
    assert st.app[TRADEOFF]() == {"endpoints": [], "heldout": 10,
                                   "routers": [{"router": ROUTER, "frontier": True}]}


async def test_bad_requests_say_what_is_wrong(sim: RunningSimulator, make_stack: MakeStack,
                                              tmp_path: Path) -> None:
    st = await make_stack(sim.catalog())
    c = st.client
    async with c.post("/v1/admin/models/import", json={"db": str(tmp_path / "none.duckdb")},
                      headers=auth(ADMIN_TOKEN)) as r:
        assert r.status == 422 and "db: no DuckDB file" in (await r.json())["error"]
    async with c.post("/v1/admin/models/import", json={"db": "x", "extra": 1},
                      headers=auth(ADMIN_TOKEN)) as r:
        assert r.status == 422 and "extra" in (await r.json())["error"]
    async with c.post("/v1/admin/models/quality-v9/activate", headers=auth(ADMIN_TOKEN)) as r:
        assert r.status == 404 and "quality-v9" in (await r.json())["error"]
    async with c.get("/v1/admin/models/quality-v9/tradeoff?format=gif",
                     headers=auth(ADMIN_TOKEN)) as r:
        assert r.status == 422 and "format" in (await r.json())["error"]
    async with c.post("/v1/admin/models/quality-v1/activate", headers=auth(BOTH_TOKEN)) as r:
        assert r.status == 403
    async with c.get("/v1/admin/models") as r:
        assert r.status == 401


async def test_the_active_model_routes_after_a_restart(sim: RunningSimulator,
                                                       make_stack: MakeStack,
                                                       tmp_path: Path) -> None:
    catalog = sim.catalog()
    model_id = _store_model(tmp_path / "wh.duckdb", [e.id for e in catalog])  # the sidecar's
    st = await make_stack(catalog)
    assert isinstance(st.service.policy, TrainedPolicy)
    assert st.service.policy.model_id == model_id
    first = await _route(st.client, HARD.format(k=3))
    assert first["endpoint"]["id"] == STRONG
