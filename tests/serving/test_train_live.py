"""Issue 7 end to end, the last step: a router trained with ``switchyard train``'s pipeline
against the provider simulator routes LIVE requests through a running sidecar (the proxy's
``/v1/chat/completions``), after the sidecar imports the model without a restart."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from collector.simulator import SimConfig, run_simulator
from collector.simulator.answers import true_answer
from serving.proxy import ENDPOINT_HEADER
from serving.scoring import exact_match, numeric_match
from tests.serving.conftest import ADMIN_TOKEN, BOTH_TOKEN, MakeStack, auth
from tests.serving.test_train import (
    CHEAP,
    STRONG,
    general_prompt,
    math_prompt,
    open_wh,
    profiles,
    prompts_file,
    train_once,
)
from warehouse.training import TrainingStore

ROUTER = "router@q:1|c:0.01"  # quality first, then price


async def test_trained_router_serves_live_requests(tmp_path: Path, make_stack: MakeStack) -> None:
    data_path = prompts_file(tmp_path, n=30)
    async with run_simulator(SimConfig(seed=11, profiles=profiles())) as sim, \
            aiohttp.ClientSession() as session:
        catalog = [e for e in sim.catalog() if e.id in (STRONG, CHEAP)]
        wh = open_wh(tmp_path / "train.duckdb")
        try:
            result = await train_once(TrainingStore(wh), catalog, session, data_path,
                                      tmp_path / "out")
        finally:
            wh.close()  # the training run ends: its file is free for the sidecar to read
        st = await make_stack(catalog)
        c = st.client
        async with c.post("/v1/admin/models/import", json={"db": str(tmp_path / "train.duckdb")},
                          headers=auth(ADMIN_TOKEN)) as r:
            body = await r.json()
            assert r.status == 200, body
        assert body["model_version"].startswith("trained-")
        served: dict[str, list[str]] = {"math": [], "general": []}
        right = 0
        for i in range(500, 510):
            for kind, prompt in (("math", math_prompt(i)), ("general", general_prompt(i))):
                request = {"model": ROUTER, "max_tokens": 32,
                           "messages": [{"role": "user", "content": prompt}]}
                async with c.post("/v1/chat/completions", json=request,
                                  headers=auth(BOTH_TOKEN)) as r:
                    assert r.status == 200, await r.text()
                    completion = await r.json()
                    served[kind].append(r.headers[ENDPOINT_HEADER])
                answer = completion["choices"][0]["message"]["content"]
                check = numeric_match if kind == "math" else exact_match
                right += check(answer, true_answer(prompt)) == 1.0
    # arithmetic goes to the cheap endpoint (as good there), the rest to the strong one
    assert served["math"].count(CHEAP) >= 9, served
    assert served["general"].count(STRONG) >= 9, served
    assert right >= 16  # the simulated endpoints are 95% right where they are sent
    assert result.model_id
