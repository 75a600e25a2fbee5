"""Under fault: one provider hangs, one drops streams mid-way, one is in a 429 storm and one
refuses connections, all in one run with concurrent clients.

Every client request ends with an answer or a clean error; failover happens only before the
first byte reached the client; cooldowns keep the rate-limited and dead endpoints from being
called again; and every decision, outcome and feedback is in the warehouse afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp

from collector.simulator import RunningSimulator, SimConfig, run_simulator
from collector.sse import SSEParser
from serving.proxy import ENDPOINT_HEADER, EVENT_HEADER
from serving.settings import ProxyConfig
from tests.serving.conftest import MakeStack, Stack, auth, profile, sim_fail
from warehouse.models import Endpoint, WireFormat

HANG, DROP, STORM, DEAD, GOOD = (
    "hang-a@hangco", "drop-b@dropco", "storm-c@stormco", "dead-d@deadco", "good-e@goodco",
)  # fmt: skip
EXPECTED_FAILURE = {
    HANG: {"timeout"},
    DROP: {"truncated"},
    STORM: {"http_429"},
    DEAD: {"connect_error"},
}
REQUESTS = 24
MESSAGES = [{"role": "user", "content": "Tell me about rivers."}]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: connections are refused


async def one_call(client: aiohttp.ClientSession, url: str, i: int) -> dict[str, object]:
    stream = i % 2 == 0
    body = {"model": "router@t:1", "messages": MESSAGES, "max_tokens": 12, "stream": stream}
    async with client.post(f"{url}/v1/chat/completions", json=body, headers=auth()) as r:
        raw = await r.read()
        out: dict[str, object] = {
            "status": r.status, "stream": stream, "event_id": r.headers.get(EVENT_HEADER),
            "endpoint": r.headers.get(ENDPOINT_HEADER),
        }  # fmt: skip
        if r.status != 200:
            error = json.loads(raw)
            assert set(error) == {"ok", "error", "status"} and error["status"] == r.status
            out["error"] = error["error"]
        elif stream:
            parser = SSEParser()
            events = [e.data for e in parser.feed(raw) + parser.close()]
            out["ended"] = "done" if events[-1] == "[DONE]" else json.loads(events[-1])["error"]
        else:
            out["model"] = json.loads(raw)["model"]
        return out


async def test_every_request_ends_cleanly_under_four_faults(make_stack: MakeStack) -> None:
    profiles = tuple(profile(e, ttft_ms=20.0) for e in (HANG, DROP, STORM, GOOD))
    config = SimConfig(profiles=profiles, seed=11, day_offset_h=0.0, hang_max_s=5.0)
    async with run_simulator(config) as sim:
        catalog = [*sim.catalog(), Endpoint(
            id=DEAD, base_url=f"http://127.0.0.1:{closed_port()}/v1",
            wire_format=WireFormat.OPENAI, price_in_per_mtok=1, price_out_per_mtok=2,
            context_window=100_000,
        )]  # fmt: skip
        stack = await make_stack(
            catalog,
            proxy=ProxyConfig(ttft_timeout_s=1.0, total_timeout_s=5, connect_timeout_s=1,
                              failure_cooldown_s=30, max_attempts=5),
        )  # fmt: skip
        await sim_fail(sim, HANG, "hang")
        await sim_fail(sim, DROP, "drop")
        await sim_fail(sim, STORM, "http_429", retry_after_s=60)
        await run_and_check(sim, stack)


async def run_and_check(sim: RunningSimulator, stack: Stack) -> None:
    async with aiohttp.ClientSession() as client, asyncio.timeout(60):
        # two waves of concurrent calls: the first meets the faults, the second the cooldowns
        half = REQUESTS // 2
        first = await asyncio.gather(*(one_call(client, stack.url, i) for i in range(half)))
        cooling = stack.cooldowns.snapshot()
        second = await asyncio.gather(
            *(one_call(client, stack.url, i) for i in range(half, REQUESTS))
        )
        results = first + second
        # decision-only callers report their own outcomes
        reported = []
        for i in range(4):
            async with client.post(f"{stack.url}/v1/route", json={"prompt": f"q{i}"},
                                   headers=auth()) as r:  # fmt: skip
                answer = await r.json()
                assert r.status == 200, answer
                event_id = answer["event_id"]
            report = {"event_id": event_id, "ttft_ms": 100.0 + i, "output_tokens": 5}
            async with client.post(f"{stack.url}/v1/outcome", json=report, headers=auth()) as r:
                assert r.status == 200
            reported.append(event_id)
        events = [str(r["event_id"]) for r in results] + reported
        assert all(events) and len(set(events)) == len(events)
        for n, event_id in enumerate(events):
            body = {"event_id": event_id, "score": (n % 5) / 4}
            async with client.post(f"{stack.url}/v1/feedback", json=body, headers=auth()) as r:
                assert r.status == 200, await r.text()

    wh = stack.warehouse
    await wh.aflush()
    attempts: dict[str, list[tuple[str, str]]] = {}
    for event_id, endpoint_id, outcome in await wh.aquery(
        "SELECT event_id, endpoint_id, outcome FROM probes WHERE source = 'traffic' "
        "ORDER BY started_at"
    ):
        attempts.setdefault(str(event_id), []).append((str(endpoint_id), str(outcome)))

    for res in results:
        tried = attempts[str(res["event_id"])]
        for endpoint_id, outcome in tried[:-1]:  # every earlier attempt failed as injected
            assert outcome in EXPECTED_FAILURE.get(endpoint_id, set()), (res, tried)
        last_endpoint, last_outcome = tried[-1]
        if res["status"] == 200:
            assert res["endpoint"] == last_endpoint
            if res["stream"] and res["ended"] != "done":
                # bytes had reached the client: a clean error event and no failover after it
                assert last_endpoint == DROP and last_outcome == "truncated"
                assert res["ended"]["code"] == "truncated"  # type: ignore[index]
            else:
                assert last_outcome == "ok" and last_endpoint == GOOD
        else:
            assert res["status"] in (429, 502, 503, 504), res
    # cooldowns: after the first wave the storm, the dead and the hanging endpoint cool down
    # (Retry-After 60 s, failure_cooldown_s 30 s) and the second wave never calls them
    assert {STORM, DEAD, HANG} <= set(cooling), cooling
    for res in second:
        assert not {e for e, _ in attempts[str(res["event_id"])]} & {STORM, DEAD, HANG}, res
    async with aiohttp.ClientSession() as s, s.get(
        f"{sim.url}/_sim/injected", params={"endpoint": STORM}
    ) as r:
        storm_calls = sum(1 for t in attempts.values() for e, _ in t if e == STORM)
        assert len((await r.json())["items"]) == storm_calls >= 1
    # the endpoint that cuts streams is failing in the live stats, so the router drops it
    live = stack.warehouse.live.get(DROP)
    assert live is not None and live.error_rate == 1.0
    served = [r["endpoint"] for r in second]
    assert served.count(GOOD) >= len(second) // 2, served

    # everything is in the warehouse
    decisions = {str(r[0]) for r in await wh.aquery("SELECT event_id FROM decisions")}
    assert set(events) <= decisions
    feedback = {str(r[0]) for r in await wh.aquery("SELECT event_id FROM feedback")}
    assert set(events) <= feedback
    for event_id in reported:
        assert attempts[event_id][0][1] == "ok"
