"""The provider simulator: wire formats, failures, control API, determinism and timing.

Every test talks to a real server on 127.0.0.1 with a plain aiohttp client reading raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from collector.simulator import (
    LLMPERF_STATS,
    RunningSimulator,
    SimConfig,
    SimOutcome,
    SimProfile,
    SimulatorProcess,
    call_rng,
    default_profiles,
    llmperf_stats,
    profiles_from_llmperf,
    run_simulator,
)
from warehouse.models import Outcome, WireFormat

LLMPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "llmperf-leaderboard"
PROMPT = [{"role": "user", "content": "How far is the moon? Answer briefly please."}]  # 44 chars


def prof(endpoint_id: str = "fast@acme", **kw: object) -> SimProfile:
    fields: dict[str, object] = {
        "endpoint_id": endpoint_id,
        "ttft_ms_median": 20.0,
        "ttft_sigma": 0.0,
        "gap_ms_median": 4.0,
        "gap_sigma": 0.0,
        "tokens_per_chunk": (1, 3),
        "output_tokens": (12, 12),
        "price_in_per_mtok": 1.0,
        "price_out_per_mtok": 2.0,
    }
    fields.update(kw)
    return SimProfile.model_validate(fields)


def config(*profiles: SimProfile, **kw: object) -> SimConfig:
    data: dict[str, object] = {"profiles": profiles or (prof(),), "day_offset_h": 0.0, **kw}
    return SimConfig.model_validate(data)


@asynccontextmanager
async def served(cfg: SimConfig) -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession]]:
    async with run_simulator(cfg) as sim, aiohttp.ClientSession() as session:
        yield sim, session


def events(raw: bytes) -> list[str]:
    """SSE events (blank-line separated), comments and all."""
    return [e for e in raw.decode().split("\n\n") if e]


def data_of(event: str) -> str:
    line = next(x for x in event.split("\n") if x.startswith("data:"))
    return line[5:].lstrip(" ")


async def post(
    session: aiohttp.ClientSession,
    sim: RunningSimulator,
    endpoint_id: str,
    *,
    stream: bool = True,
    max_tokens: int | None = 64,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> tuple[int, dict[str, str], bytes]:
    profile = sim.config.profile(endpoint_id)
    path = "messages" if profile.wire_format is WireFormat.ANTHROPIC else "chat/completions"
    body: dict[str, object] = {"model": profile.model, "messages": PROMPT, "stream": stream}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(extra)
    async with session.post(f"{sim.base_url(endpoint_id)}/{path}", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def injected(session: aiohttp.ClientSession, sim: RunningSimulator, **q: str) -> list[dict]:
    async with session.get(f"{sim.url}/_sim/injected", params=q) as r:
        assert r.status == 200
        return (await r.json())["items"]


async def control(session: aiohttp.ClientSession, sim: RunningSimulator, what: str, **body: object):
    async with session.post(f"{sim.url}/_sim/{what}", json=body) as r:
        return r.status, await r.json()


# --- wire formats -------------------------------------------------------------------------


async def test_openai_stream_shape_with_usage() -> None:
    async with served(config()) as (sim, session):
        status, headers, raw = await post(
            session, sim, "fast@acme", stream_options={"include_usage": True}
        )
        assert status == 200
        assert headers["Content-Type"].startswith("text/event-stream")
        evs = events(raw)
        assert evs[-1] == "data: [DONE]"
        chunks = [json.loads(data_of(e)) for e in evs[:-1]]
        role_only = {"role": "assistant", "content": "", "refusal": None}
        assert chunks[0]["choices"][0]["delta"] == role_only
        content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
        finish, usage = chunks[-2], chunks[-1]
        assert finish["choices"][0]["delta"] == {}
        assert finish["choices"][0]["finish_reason"] == "stop"
        assert usage["choices"] == []
        assert all(c["usage"] is None for c in chunks[:-1])
        [rec] = await injected(session, sim)
        assert rec["request_id"] == headers["x-sim-request-id"]
        assert len(content) == len(rec["tokens_per_chunk"])
        words = "".join(c["choices"][0]["delta"]["content"] for c in content).split()
        assert len(words) == rec["output_tokens"] == 12
        assert usage["usage"] == {
            "prompt_tokens": math.ceil(44 / 4),
            "completion_tokens": 12,
            "total_tokens": 23,
        }


async def test_openai_stream_without_usage_and_max_tokens_cap() -> None:
    async with served(config()) as (sim, session):
        _, _, raw = await post(session, sim, "fast@acme", max_tokens=5)
        evs = events(raw)
        chunks = [json.loads(data_of(e)) for e in evs[:-1]]
        assert all("usage" not in c and c["choices"] for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert len(text.split()) == 5


async def test_anthropic_event_sequence() -> None:
    cfg = config(prof("claude-x@anth", wire_format="anthropic"))
    async with served(cfg) as (sim, session):
        status, _, raw = await post(session, sim, "claude-x@anth")
        assert status == 200
        evs = events(raw)
        names = [e.split("\n")[0].removeprefix("event: ") for e in evs]
        deltas = names.count("content_block_delta")
        assert deltas >= 4
        assert names == [
            "message_start", "content_block_start", "ping",
            *["content_block_delta"] * deltas,
            "content_block_stop", "message_delta", "message_stop",
        ]  # fmt: skip
        payloads = [json.loads(data_of(e)) for e in evs]
        assert [p["type"] for p in payloads] == names
        assert payloads[0]["message"]["usage"]["input_tokens"] == 11
        assert payloads[3]["delta"]["type"] == "text_delta"
        assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
        assert payloads[-2]["usage"]["output_tokens"] == 12
        text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
        assert len(text.split()) == 12


async def test_non_streaming_json_both_formats() -> None:
    cfg = config(prof(), prof("claude-x@anth", wire_format="anthropic"))
    async with served(cfg) as (sim, session):
        status, _, raw = await post(session, sim, "fast@acme", stream=False, max_tokens=7)
        body = json.loads(raw)
        assert status == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["finish_reason"] == "length"
        assert len(body["choices"][0]["message"]["content"].split()) == 7
        assert body["usage"]["completion_tokens"] == 7
        status, _, raw = await post(session, sim, "claude-x@anth", stream=False)
        body = json.loads(raw)
        assert status == 200 and body["type"] == "message"
        assert body["stop_reason"] == "end_turn" and body["usage"]["output_tokens"] == 12


async def test_quirks_keepalive_comments_and_data_without_space() -> None:
    cfg = config(
        prof(quirks=True, output_tokens=(200, 200), tokens_per_chunk=(1, 1), gap_ms_median=0.2)
    )
    async with served(cfg) as (sim, session):
        _, _, raw = await post(session, sim, "fast@acme", max_tokens=500)
        assert b"\n\n: keep-alive\n\n" in raw
        assert b"\ndata:{" in raw and b"\ndata: {" in raw
        assert raw.endswith(b"data: [DONE]\n\n")


# --- errors ---------------------------------------------------------------------------------


async def test_404_400_and_401_in_provider_shapes() -> None:
    cfg = config(prof(), prof("claude-x@anth", wire_format="anthropic"), require_key="sk-sim")
    async with served(cfg) as (sim, session):
        key = {"Authorization": "Bearer sk-sim"}
        url = sim.base_url("fast@acme")
        unknown = {"model": "nope", "messages": PROMPT}
        async with session.post(f"{url}/chat/completions", json=unknown, headers=key) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "model_not_found"
        wrong_format = {"model": "fast", "messages": PROMPT, "max_tokens": 5}
        async with session.post(f"{url}/messages", json=wrong_format, headers=key) as r:
            assert r.status == 404  # wrong format for this endpoint
            assert (await r.json())["type"] == "error"
        async with session.post(f"{url}/chat/completions", data=b"{not json", headers=key) as r:
            assert r.status == 400
            assert (await r.json())["error"]["type"] == "invalid_request_error"
        status, _, raw = await post(session, sim, "claude-x@anth", headers={"x-api-key": "wrong"})
        assert status == 401
        assert json.loads(raw)["error"]["type"] == "authentication_error"
        status, _, raw = await post(session, sim, "fast@acme")
        assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, _ = await post(session, sim, "claude-x@anth", headers={"x-api-key": "sk-sim"})
        assert status == 200
        assert (await post(session, sim, "fast@acme", headers=key))[0] == 200
        status, _, raw = await post(session, sim, "claude-x@anth", max_tokens=None, headers=key)
        assert status == 400 and "max_tokens" in raw.decode()


async def test_429_in_burst_window_and_forced_via_control() -> None:
    cfg = config(prof(), prof("lim@host", rate_limit_bursts=[(0, 30)]))
    async with served(cfg) as (sim, session):
        status, headers, raw = await post(session, sim, "lim@host")
        assert status == 429
        assert 29 <= int(headers["Retry-After"]) <= 30
        assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
        assert (await post(session, sim, "fast@acme"))[0] == 200
        status, _ = await control(
            session, sim, "fail", endpoint_id="fast@acme", kind="http_429", retry_after_s=2
        )
        assert status == 200
        status, headers, _ = await post(session, sim, "fast@acme")
        assert status == 429 and headers["Retry-After"] == "2"
        await control(session, sim, "fail", endpoint_id="fast@acme", kind="none")
        assert (await post(session, sim, "fast@acme"))[0] == 200


async def test_http_500_by_probability_and_outage_window() -> None:
    cfg = config(prof(p_500=1.0), prof("down@host", outages=[(0, 60, "http_500")]))
    async with served(cfg) as (sim, session):
        for eid in ("fast@acme", "down@host"):
            status, _, raw = await post(session, sim, eid)
            assert status == 500
            assert json.loads(raw)["error"]["type"] == "server_error"
        assert {r["outcome"] for r in await injected(session, sim)} == {"http_500"}


async def test_drop_mid_stream_has_no_terminal_event() -> None:
    cfg = config(prof(p_drop=1.0, tokens_per_chunk=(1, 1), output_tokens=(10, 10)))
    async with served(cfg) as (sim, session):
        url = sim.base_url("fast@acme") + "/chat/completions"
        received = b""
        body = {"model": "fast", "messages": PROMPT, "stream": True}
        async with session.post(url, json=body) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for part in r.content.iter_any():
                    received += part
        assert b"[DONE]" not in received and b"finish_reason\":\"stop" not in received
        [rec] = await injected(session, sim)
        assert rec["outcome"] == "drop"
        content = [e for e in events(received) if '"content":"' in e and '"role"' not in e]
        assert 1 <= len(content) == len(rec["tokens_per_chunk"]) < 10


async def test_error_event_inside_200_stream_both_formats() -> None:
    cfg = config(
        prof(p_error_event=1.0),
        prof("claude-x@anth", wire_format="anthropic", p_error_event=1.0),
    )
    async with served(cfg) as (sim, session):
        status, _, raw = await post(session, sim, "fast@acme")
        assert status == 200
        last = json.loads(data_of(events(raw)[-1]))
        assert set(last) == {"error"} and b"[DONE]" not in raw
        status, _, raw = await post(session, sim, "claude-x@anth")
        assert status == 200
        evs = events(raw)
        assert evs[-1].startswith("event: error\n")
        assert json.loads(data_of(evs[-1]))["error"]["type"] == "overloaded_error"
        assert b"message_stop" not in raw
        status, _, raw = await post(session, sim, "claude-x@anth", stream=False)
        assert status == 529 and json.loads(raw)["error"]["type"] == "overloaded_error"


async def test_refuse_closes_the_connection() -> None:
    async with served(config()) as (sim, session):
        await control(session, sim, "fail", endpoint_id="*", kind="refuse")
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, sim, "fast@acme")
        await control(session, sim, "fail", endpoint_id="*", kind="none")
        assert (await post(session, sim, "fast@acme"))[0] == 200


async def test_hang_times_out_the_client_and_ends_server_side() -> None:
    async with served(config()) as (sim, session):
        await control(session, sim, "fail", endpoint_id="fast@acme", kind="hang")
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            async with session.post(
                sim.base_url("fast@acme") + "/chat/completions",
                json={"model": "fast", "messages": PROMPT},
                timeout=aiohttp.ClientTimeout(total=0.3),
            ) as r:
                await r.read()
        assert time.perf_counter() - started < 2
        for _ in range(40):  # the handler notices the client left
            [rec] = await injected(session, sim)
            if rec["done"]:
                break
            await asyncio.sleep(0.05)
        assert rec["outcome"] == "hang" and rec["done"]


# --- determinism, drift, steps ----------------------------------------------------------


def test_sample_is_pure_and_seeded() -> None:
    p = prof(ttft_sigma=0.5, gap_sigma=0.5, output_tokens=(5, 50), p_drop=0.3, p_500=0.1)
    first = [p.sample(call_rng(7, p.endpoint_id, i), 3.0, 10.0, 40) for i in range(50)]
    again = [p.sample(call_rng(7, p.endpoint_id, i), 3.0, 10.0, 40) for i in range(50)]
    other = [p.sample(call_rng(8, p.endpoint_id, i), 3.0, 10.0, 40) for i in range(50)]
    assert first == again and first != other
    assert all(c.output_tokens <= 40 and sum(c.tokens_per_chunk) == c.output_tokens for c in first)
    assert all(len(c.gaps_ms) == len(c.tokens_per_chunk) - 1 for c in first)
    kinds = {c.kind for c in first}
    assert {SimOutcome.OK, SimOutcome.DROP} <= kinds
    assert SimOutcome.DROP.outcome is Outcome.TRUNCATED
    assert SimOutcome.HANG.outcome is Outcome.TIMEOUT


async def test_same_seed_same_injected_values_over_http() -> None:
    async def run(seed: int) -> list[tuple]:
        cfg = config(prof(ttft_sigma=0.4, gap_sigma=0.4, output_tokens=(5, 30)), seed=seed)
        async with served(cfg) as (sim, session):
            for _ in range(4):
                await post(session, sim, "fast@acme")
            recs = await injected(session, sim)
            keys = ("injected_ttft_ms", "injected_gaps_ms", "tokens_per_chunk")
            return [tuple(r[k] for k in keys) for r in recs]

    a, b, c = await run(3), await run(3), await run(4)
    assert a == b and a != c and len(a) == 4


def test_drift_peak_vs_trough_matches_amplitude() -> None:
    p = prof(drift_amplitude=0.3, drift_peak_hour=15.0, ttft_ms_median=100.0)
    peak = p.sample(random.Random(1), 15.0, 0.0, 50)
    trough = p.sample(random.Random(1), 3.0, 0.0, 50)
    assert peak.ttft_ms == pytest.approx(130.0) and trough.ttft_ms == pytest.approx(70.0)
    assert peak.gaps_ms[0] / trough.gaps_ms[0] == pytest.approx(1.3 / 0.7)
    cfg = config(day_seconds=240.0)
    assert cfg.sim_hour(60.0, start_hour=22.0) == pytest.approx(4.0)  # 60 s = 6 sim hours


def test_steps_windows_and_periods() -> None:
    p = prof(steps=[(10, 2.0), (20, 0.5)], outages=[[5, 6, "hang"]], rate_limit_bursts=[(1, 2)],
             window_period_s=100)  # fmt: skip
    assert [p.step_factor(t) for t in (0, 10, 19.9, 25)] == [1.0, 2.0, 2.0, 0.5]
    assert p.sample(random.Random(0), 0, 25, 10).ttft_ms == pytest.approx(10.0)
    assert p.outage_at(105.5) is not None and p.outage_at(106.5) is None
    assert p.sample(random.Random(0), 0, 101.5, 10).kind is SimOutcome.HTTP_429
    assert p.sample(random.Random(0), 0, 105.5, 10).kind is SimOutcome.HANG
    with pytest.raises(ValueError):
        prof(outages=[(5, 4, "hang")])
    with pytest.raises(ValueError):
        prof(outages=[(1, 4, "ok")])
    with pytest.raises(ValueError):
        config(prof(), prof())


async def test_runtime_scale_changes_injected_and_observed_ttft() -> None:
    async with served(config(prof(ttft_ms_median=10.0))) as (sim, session):
        await post(session, sim, "fast@acme")
        eid = "fast@acme"
        status, body = await control(session, sim, "scale", endpoint_id=eid, ttft_factor=8.0)
        assert status == 200 and body["scales"]["fast@acme"]["ttft_factor"] == 8.0
        started = time.perf_counter()
        await post(session, sim, "fast@acme")
        assert time.perf_counter() - started >= 0.08
        await control(session, sim, "scale", endpoint_id="fast@acme", ttft_factor=1.0)
        await post(session, sim, "fast@acme")
        ttfts = [r["injected_ttft_ms"] for r in await injected(session, sim)]
        assert ttfts == pytest.approx([10.0, 80.0, 10.0])
        assert (await control(session, sim, "scale", endpoint_id="x@y", ttft_factor=2))[0] == 404
        assert (await control(session, sim, "scale", endpoint_id=eid, ttft_factor=-1))[0] == 400
        assert (await control(session, sim, "fail", endpoint_id=eid, kind="bogus"))[0] == 400


async def test_control_listing_health_and_injected_filters() -> None:
    async with served(config(prof(), prof("b@other"))) as (sim, session):
        for eid in ("fast@acme", "b@other", "fast@acme"):
            await post(session, sim, eid)
        async with session.get(f"{sim.url}/_sim/profiles") as r:
            body = await r.json()
        assert [p["endpoint_id"] for p in body["profiles"]] == ["fast@acme", "b@other"]
        async with session.get(f"{sim.url}/_sim/health") as r:
            assert (await r.json())["requests"] == 3
        recs = await injected(session, sim, endpoint="fast@acme")
        assert [r["seq"] for r in recs] == [1, 3] and [r["counter"] for r in recs] == [0, 1]
        assert [r["seq"] for r in await injected(session, sim, since="1")] == [2, 3]
        async with session.get(f"{sim.base_url('b@other')}/models") as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["b"]


# --- timing ---------------------------------------------------------------------------------


async def timed_stream(session: aiohttp.ClientSession, url: str) -> tuple[str, float, list[float]]:
    """(request id, TTFT ms, arrival offsets ms of content chunks), all at the client."""
    body = {"model": "fast", "messages": PROMPT, "stream": True, "max_tokens": 100}
    sent = time.perf_counter()
    arrivals: list[float] = []
    async with session.post(url, json=body) as r:
        rid = r.headers["x-sim-request-id"]
        async for part in r.content.iter_any():
            now = (time.perf_counter() - sent) * 1000
            arrivals += [now] * part.count(b'"delta":{"content":')
    return rid, arrivals[0] if arrivals else math.nan, arrivals


async def test_20_concurrent_streams_keep_their_injected_schedule() -> None:
    cfg = config(prof(ttft_ms_median=60.0, ttft_sigma=0.3, gap_ms_median=10.0, gap_sigma=0.4,
                      tokens_per_chunk=(1, 1), output_tokens=(40, 40)))  # fmt: skip
    async with served(cfg) as (sim, session):
        url = sim.base_url("fast@acme") + "/chat/completions"
        await asyncio.gather(*(timed_stream(session, url) for _ in range(20)))  # warm connections
        results = await asyncio.gather(*(timed_stream(session, url) for _ in range(20)))
        recs = {r["request_id"]: r for r in await injected(session, sim)}
    for rid, _, arrivals in results:
        rec = recs[rid]
        injected_gaps, sent = rec["injected_gaps_ms"], rec["sent_ms"]
        assert len(arrivals) == len(sent) == 40  # every chunk, none merged away or lost
        # Causality, whatever the load: no chunk leaves or arrives before its injected time,
        # and deadlines are absolute (chunk i is due at ttft + sum of the first i gaps).
        due = [rec["injected_ttft_ms"]]
        for gap in injected_gaps:
            due.append(due[-1] + gap)
        assert all(s >= d - 0.01 for s, d in zip(sent, due, strict=True))
        assert all(a >= d - 0.01 for a, d in zip(arrivals, due, strict=True))
    # Precision (how close to due) is measured by tests/bench/collector_fidelity.py, not here.


# --- defaults, catalog, subprocess -------------------------------------------------------


def test_default_profiles_cover_the_brief() -> None:
    profiles = default_profiles()
    assert 6 <= len(profiles) <= 10
    assert {p.wire_format for p in profiles} == {WireFormat.OPENAI, WireFormat.ANTHROPIC}
    assert len({p.provider for p in profiles}) >= 5
    prices = sorted(p.price_out_per_mtok for p in profiles)
    assert prices[-1] >= 10 * prices[0]
    assert any(p.rate_limit_bursts for p in profiles)
    assert any(p.ttft_sigma > 1.0 for p in profiles)  # a high TTFT tail
    assert any(p.quirks for p in profiles)
    large = [p.drift_amplitude for p in profiles if "large" in p.tags]
    small = [p.drift_amplitude for p in profiles if "small" in p.tags and p.provider != "openai"]
    assert max(large) < min(small)
    assert SimConfig().profiles == tuple(profiles)


@pytest.mark.skipif(not LLMPERF.exists(), reason=f"reference data absent: {LLMPERF}")
def test_embedded_llmperf_numbers_match_the_csv() -> None:
    derived = {s.run: s for s in llmperf_stats(LLMPERF)}
    for run, embedded in LLMPERF_STATS.items():
        for field in embedded._fields[1:]:
            expected = pytest.approx(getattr(derived[run], field), abs=0.01, rel=0.01)
            assert getattr(embedded, field) == expected, (run, field)
    profiles = profiles_from_llmperf(LLMPERF)
    assert len(profiles) == 19
    lepton = next(p for p in profiles if p.endpoint_id == "llama-2-70b@lepton")
    assert lepton.p_429 == pytest.approx(130 / 150)


async def test_catalog_points_at_the_running_server() -> None:
    async with run_simulator(SimConfig(seed=1)) as sim:
        catalog = sim.catalog()
        assert [e.id for e in catalog] == [p.endpoint_id for p in default_profiles()]
        claude = next(e for e in catalog if e.wire_format is WireFormat.ANTHROPIC)
        assert sim.url.startswith("http://127.0.0.1:")
        assert claude.base_url == f"{sim.url}/anthropic/v1"
        assert all("simulated" in e.tags for e in catalog)


def test_main_loads_a_profile_list_and_flags_override(tmp_path: Path) -> None:
    from collector.simulator.__main__ import _parser, load_config

    path = tmp_path / "profiles.json"
    path.write_text(json.dumps([prof().model_dump(mode="json")]))
    cfg = load_config(_parser().parse_args(["--profiles", str(path), "--seed", "5",
                                            "--day-seconds", "600"]))  # fmt: skip
    assert (cfg.seed, cfg.day_seconds) == (5, 600.0)
    assert cfg.profiles == (prof(),)


@pytest.mark.slow
def test_subprocess_runner_starts_serves_and_stops() -> None:
    cfg = config(prof(), require_key="sk-proc")
    with SimulatorProcess(cfg) as sim:
        assert sim.url.startswith("http://127.0.0.1:")

        async def probe() -> tuple[int, bytes]:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{sim.url}/_sim/health") as r:
                    assert (await r.json())["ok"] is True
                async with session.post(
                    sim.base_url("fast@acme") + "/chat/completions",
                    json={"model": "fast", "messages": PROMPT, "stream": True},
                    headers={"x-api-key": "sk-proc"},
                ) as r:
                    return r.status, await r.read()

        status, raw = asyncio.run(probe())
        assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
        url = sim.url

    async def after() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"{url}/_sim/health")

    asyncio.run(after())
