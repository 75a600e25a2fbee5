"""The chat-completions proxy against the real simulator: streaming, translation, failover,
cooldowns, clean mid-stream errors, measurements, and provider keys kept out of sight."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from collector.simulator import RunningSimulator, SimConfig, run_simulator
from collector.sse import SSEParser
from serving.proxy import ENDPOINT_HEADER, EVENT_HEADER
from serving.schemas import ChatCompletion
from serving.settings import ProxyConfig
from tests.serving.conftest import MakeStack, Stack, auth, sim_fail, sim_profiles
from warehouse.models import Outcome, Source

MESSAGES = [{"role": "user", "content": "Tell me a short story."}]


async def chat(stack: Stack, **body: object) -> aiohttp.ClientResponse:
    payload = {"messages": MESSAGES, "max_tokens": 10, **body}
    return await stack.client.post("/v1/chat/completions", json=payload, headers=auth())


async def sse_events(resp: aiohttp.ClientResponse) -> list[str]:
    parser = SSEParser()
    events = parser.feed(await resp.read()) + parser.close()
    return [e.data for e in events]


async def traffic_rows(stack: Stack, event_id: str) -> list[tuple[object, ...]]:
    await stack.warehouse.aflush()
    return await stack.warehouse.aquery(
        "SELECT endpoint_id, outcome, ttft_ms, status_code, source FROM probes "
        "WHERE event_id = ? ORDER BY started_at", [event_id]
    )  # fmt: skip


async def injected(sim: RunningSimulator, endpoint_id: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(
        f"{sim.url}/_sim/injected", params={"endpoint": endpoint_id}
    ) as r:
        return len((await r.json())["items"])


async def test_stream_passthrough_renames_model_and_measures(stack: Stack) -> None:
    r = await chat(stack, model="fast-a@alpha", stream=True)
    assert r.status == 200 and r.content_type == "text/event-stream"
    assert r.headers[ENDPOINT_HEADER] == "fast-a@alpha"
    event_id = r.headers[EVENT_HEADER]
    data = await sse_events(r)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["model"] == "fast-a@alpha" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip()
    assert not any("usage" in c and c["usage"] for c in chunks)  # not asked for, not sent
    rows = await traffic_rows(stack, event_id)
    assert len(rows) == 1
    eid, outcome, ttft, status, source = rows[0]
    assert (eid, outcome, status, source) == ("fast-a@alpha", "ok", 200, Source.TRAFFIC.value)
    assert ttft is not None and 15 <= ttft < 500  # the profile's 20 ms TTFT, measured
    decision = await stack.warehouse.aget_decision(event_id)
    assert decision is not None and decision.chosen == "fast-a@alpha"
    assert decision.probabilities == (1.0,)
    metrics = await (await stack.client.get("/metrics")).text()
    assert ('switchyard_probe_outcomes_total{endpoint="fast-a@alpha",outcome="ok",'
            'source="traffic"} 1.0') in metrics  # fmt: skip
    assert 'switchyard_live_ttft_ms{endpoint="fast-a@alpha",q="p50"}' in metrics
    assert 'switchyard_proxy_ttft_seconds_count{endpoint="fast-a@alpha"} 1.0' in metrics


async def test_non_stream_openai_and_anthropic(stack: Stack) -> None:
    for endpoint in ("fast-b@beta", "claude-d@anthro"):
        r = await chat(stack, model=endpoint)
        assert r.status == 200, await r.text()
        body = ChatCompletion.model_validate(await r.json())
        assert body.model == endpoint
        assert body.choices[0].message["content"]
        assert body.choices[0].finish_reason in ("stop", "length")
        assert body.usage is not None and body.usage.completion_tokens > 0
        rows = await traffic_rows(stack, r.headers[EVENT_HEADER])
        assert [row[1] for row in rows] == ["ok"]


async def test_anthropic_stream_is_translated(stack: Stack) -> None:
    r = await chat(stack, model="claude-d@anthro", stream=True,
                   stream_options={"include_usage": True},
                   messages=[{"role": "system", "content": "Be brief."}, *MESSAGES])  # fmt: skip
    assert r.status == 200
    data = await sse_events(r)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_model_name_and_router_string_are_routed(stack: Stack) -> None:
    r = await chat(stack, model="mid-c")
    assert r.status == 200 and r.headers[ENDPOINT_HEADER] == "mid-c@gamma"
    r = await chat(stack, model="router@t:1|providers:beta")
    assert r.status == 200 and r.headers[ENDPOINT_HEADER] == "fast-b@beta"
    r = await chat(stack, model="no-such-model")
    assert r.status == 400 and "router" in (await r.json())["error"]


async def test_metadata_is_stored_with_routed_and_pinned_decisions(stack: Stack) -> None:
    for model in ("router@t:1|providers:beta", "fast-a@alpha"):
        r = await chat(stack, model=model, metadata={"team": "search", "model": model})
        assert r.status == 200, await r.text()
        decision = await stack.warehouse.aget_decision(r.headers[EVENT_HEADER])
        assert decision is not None and decision.metadata == {"team": "search", "model": model}
    r = await chat(stack, model="fast-a@alpha", metadata={"team": 1})
    body = await r.json()
    assert r.status == 422 and body["error"].startswith("metadata.team:"), body


async def test_failover_to_the_healthy_endpoint(sim: RunningSimulator, stack: Stack) -> None:
    await sim_fail(sim, "fast-a@alpha", "http_500")
    await sim_fail(sim, "fast-b@beta", "refuse")
    await sim_fail(sim, "claude-d@anthro", "http_500")
    failovers = 0
    for i in range(6):
        r = await chat(stack, model="router@t:1", stream=bool(i % 2))
        assert r.status == 200, await r.text()
        assert r.headers[ENDPOINT_HEADER] == "mid-c@gamma"
        await r.read()
        rows = await traffic_rows(stack, r.headers[EVENT_HEADER])
        assert rows[-1][0] == "mid-c@gamma" and rows[-1][1] == "ok"
        for endpoint_id, outcome, *_ in rows[:-1]:
            expected = "connect_error" if endpoint_id == "fast-b@beta" else "http_5xx"
            assert outcome == expected
        decision = await stack.warehouse.aget_decision(r.headers[EVENT_HEADER])
        assert decision is not None
        failovers += decision.chosen != "mid-c@gamma"
    assert failovers >= 1


async def test_429_sets_a_cooldown_from_retry_after(sim: RunningSimulator, stack: Stack) -> None:
    await sim_fail(sim, "fast-a@alpha", "http_429", retry_after_s=30)
    r = await chat(stack, model="fast-a@alpha")
    body = await r.json()
    assert r.status == 429 and body["status"] == 429
    assert int(r.headers["Retry-After"]) >= 29 and EVENT_HEADER in r.headers
    # the endpoint is not called again while it cools down
    r = await chat(stack, model="fast-a@alpha")
    assert r.status == 503 and "cooling down" in (await r.json())["error"]
    assert await injected(sim, "fast-a@alpha") == 1
    # the router leaves it out, the catalog shows it
    r = await stack.client.post("/v1/route", json={"prompt": "x", "router": "router@t:1"},
                                headers=auth())  # fmt: skip
    assert "fast-a@alpha" not in (await r.json())["probabilities"]
    r = await stack.client.get("/v1/endpoints", headers=auth())
    view = {e["id"]: e for e in (await r.json())["endpoints"]}
    assert view["fast-a@alpha"]["cooldown_s"] > 25 and view["fast-b@beta"]["cooldown_s"] is None


async def test_hang_times_out_and_fails_over(sim: RunningSimulator, make_stack: MakeStack) -> None:
    stack = await make_stack(
        sim.catalog(),
        proxy=ProxyConfig(ttft_timeout_s=0.3, total_timeout_s=5, failure_cooldown_s=0),
    )
    await sim_fail(sim, "fast-a@alpha", "hang")
    r = await chat(stack, model="fast-a@alpha", stream=True)
    body = await r.json()
    assert r.status == 504 and "ttft_timeout_s=0.3" in body["error"]
    rows = await traffic_rows(stack, r.headers[EVENT_HEADER])
    assert [row[1] for row in rows] == ["timeout"]


async def test_drop_after_first_bytes_ends_with_a_clean_error_event(
    sim: RunningSimulator, stack: Stack
) -> None:
    await sim_fail(sim, "fast-b@beta", "drop")
    seen_error = False
    for _ in range(8):  # a drop may come before the first chunk (then it fails over)
        r = await chat(stack, model="fast-b@beta", stream=True, max_tokens=12)
        if r.status != 200:
            assert r.status == 502
            continue
        data = await sse_events(r)
        assert data[-1] != "[DONE]"
        last = json.loads(data[-1])
        assert last["error"]["code"] == "truncated"
        rows = await traffic_rows(stack, r.headers[EVENT_HEADER])
        assert [row[1] for row in rows] == ["truncated"]
        seen_error = True
        break
    assert seen_error
    r = await chat(stack, model="fast-b@beta", max_tokens=12)  # non-streaming: a 502
    assert r.status == 502 and (await r.json())["status"] == 502


async def test_provider_key_is_sent_and_never_shown(tmp_path: Path, make_stack: MakeStack) -> None:
    key = "sk-sim-secret-0123456789abcdef"
    config = SimConfig(profiles=sim_profiles()[:2], seed=1, day_offset_h=0.0,
                       require_key=SecretStr(key))  # fmt: skip
    async with run_simulator(config) as sim:
        good, bad = sim.catalog(api_key_env="SIM_KEY")
        bad = bad.model_copy(update={"api_key_env": "OTHER_KEY"})
        stack = await make_stack(
            [good, bad], api_keys={"SIM_KEY": key, "OTHER_KEY": "wrong-key-000000"}
        )
        r = await chat(stack, model=good.id)
        assert r.status == 200
        r = await chat(stack, model=bad.id)
        body = await r.text()
        assert r.status == 502 and "http_4xx" in body
        await stack.warehouse.aflush()
        dump = json.dumps(
            await stack.warehouse.aquery("SELECT * FROM probes"), default=str
        ) + json.dumps(await stack.warehouse.aquery("SELECT * FROM decisions"), default=str)
        assert key not in dump and "wrong-key-000000" not in dump and key not in body
        outcomes = await stack.warehouse.aquery(
            "SELECT endpoint_id, outcome, status_code FROM probes WHERE source = 'traffic' "
            "ORDER BY started_at"
        )  # fmt: skip
        assert outcomes == [(good.id, Outcome.OK.value, 200), (bad.id, "http_4xx", 401)]
