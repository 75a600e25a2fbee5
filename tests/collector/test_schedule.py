"""The scheduler against the real provider simulator on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from collector.catalog import ProbePromptSpec
from collector.config import CollectorConfig
from collector.http import make_session
from collector.schedule import Collector
from collector.simulator import RunningSimulator, SimConfig, SimOutcome, SimProfile, run_simulator
from warehouse.models import Outcome, ProbeResult

PROMPTS = [ProbePromptSpec(name="short", text="Say something short.")]


def fast(endpoint_id: str, **kw: object) -> SimProfile:
    base: dict[str, object] = dict(
        endpoint_id=endpoint_id, ttft_ms_median=15, ttft_sigma=0.1, gap_ms_median=2,
        gap_sigma=0.1, tokens_per_chunk=(1, 2), output_tokens=(6, 10),
        price_in_per_mtok=1.0, price_out_per_mtok=2.0,
    )
    base.update(kw)
    return SimProfile.model_validate(base)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    profiles = [fast(f"m{i}@p{i}") for i in range(8)] + [
        fast("slow@slowhost", ttft_ms_median=60, gap_ms_median=25, output_tokens=(20, 20)),
        fast("claude@anth", wire_format="anthropic"),
    ]
    async with run_simulator(SimConfig(profiles=profiles, seed=3)) as running:
        yield running


async def force(sim: RunningSimulator, endpoint_id: str, kind: str, retry_after_s: float = 1.0) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{sim.url}/_sim/fail", json={"endpoint_id": endpoint_id, "kind": kind,
                                                        "retry_after_s": retry_after_s}) as r:
            assert r.status == 200, await r.text()


def collector_for(sim: RunningSimulator, session: aiohttp.ClientSession, sink: list[ProbeResult],
                  ids: list[str] | None = None, **cfg: object) -> Collector:
    endpoints = [e for e in sim.catalog() if ids is None or e.id in ids]
    config = CollectorConfig.model_validate(
        {"interval_s": 0.3, "jitter_s": 0.0, "ttft_timeout_s": 0.5, "total_timeout_s": 2.0,
         "backoff_base_s": 0.2, "backoff_max_s": 1.0, **cfg}
    )
    return Collector(endpoints, PROMPTS, config=config, session=session, sink=sink.append, seed=1)


async def test_every_failure_class_becomes_a_row(sim: RunningSimulator) -> None:
    expected = {
        "m0@p0": Outcome.OK,
        "m1@p1": Outcome.HTTP_429,
        "m2@p2": Outcome.HTTP_5XX,
        "m3@p3": Outcome.TIMEOUT,
        "m4@p4": Outcome.CONNECT_ERROR,
        "m5@p5": Outcome.TRUNCATED,
        "m6@p6": Outcome.STREAM_ERROR,
        "m7@p7": Outcome.MALFORMED,
        "claude@anth": Outcome.STREAM_ERROR,
    }
    kinds = {"m1@p1": "http_429", "m2@p2": "http_500", "m3@p3": "hang", "m4@p4": "refuse",
             "m5@p5": "drop", "m6@p6": "error_event", "m7@p7": "malformed",
             "claude@anth": "error_event"}
    for endpoint_id, kind in kinds.items():
        await force(sim, endpoint_id, kind, retry_after_s=7)
    rows: list[ProbeResult] = []
    async with make_session() as session:
        collector = collector_for(sim, session, rows, ids=list(expected))
        results = await collector.run_round()
    assert {r.endpoint_id: r.outcome for r in results} == expected
    key = lambda r: r.endpoint_id  # noqa: E731
    assert sorted(rows, key=key) == sorted(results, key=key)  # every probe reached the sink
    by_id = {r.endpoint_id: r for r in results}
    assert by_id["m1@p1"].retry_after_s == 7 and by_id["m1@p1"].status_code == 429
    assert by_id["m2@p2"].status_code == 500
    assert by_id["m0@p0"].ttft_ms is not None and by_id["m0@p0"].output_tokens
    assert all(r.detail for r in results if r.outcome is not Outcome.OK)
    failures = {i: collector.manners.state(i).consecutive_failures for i in expected}
    assert failures == {i: int(i != "m0@p0") for i in expected}


async def test_runs_on_schedule_without_overlap_under_the_limit(sim: RunningSimulator) -> None:
    rows: list[ProbeResult] = []
    ids = ["slow@slowhost", "m0@p0", "m1@p1", "m2@p2", "claude@anth"]
    async with make_session() as session:
        collector = collector_for(sim, session, rows, ids=ids, interval_s=0.25,
                                  max_concurrency=2, total_timeout_s=3.0)
        await collector.start()
        await asyncio.sleep(2.5)
        await collector.stop()
    assert all(r.outcome is Outcome.OK for r in rows)
    counts = {i: sum(r.endpoint_id == i for r in rows) for i in ids}
    assert all(n >= 3 for n in counts.values()), counts
    # The slow endpoint takes ~0.55 s per probe, longer than its interval: never two at once.
    spans = [(r.started_at, r.started_at + timedelta(milliseconds=r.e2e_ms or 0))
             for r in rows]
    slow = sorted(s for r, s in zip(rows, spans, strict=True) if r.endpoint_id == "slow@slowhost")
    assert all(a[1] <= b[0] + timedelta(milliseconds=5) for a, b in zip(slow, slow[1:]))
    assert counts["slow@slowhost"] < counts["m0@p0"]
    # Never more than max_concurrency probes in flight at once.
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    depth = peak = 0
    for _, step in edges:
        depth += step
        peak = max(peak, depth)
    assert peak <= 2
    assert collector.lag_p99_s() is not None and collector.lag_p99_s() < 0.5


async def test_retry_after_pauses_and_schedule_resumes(sim: RunningSimulator) -> None:
    rows: list[ProbeResult] = []
    await force(sim, "m1@p1", "http_429", retry_after_s=1.2)
    async with make_session() as session:
        collector = collector_for(sim, session, rows, ids=["m1@p1"], interval_s=0.1)
        await collector.start()
        await asyncio.sleep(0.6)
        await force(sim, "m1@p1", "none")
        await asyncio.sleep(1.4)
        await collector.stop()
    assert rows[0].outcome is Outcome.HTTP_429
    assert rows[0].retry_after_s == pytest.approx(1.2)
    assert sum(r.outcome is Outcome.HTTP_429 for r in rows) == 1  # paused, not hammered
    nxt = rows[1]
    assert (nxt.started_at - rows[0].started_at).total_seconds() >= 1.15
    assert nxt.outcome is Outcome.OK  # resumed on recovery
    assert collector.skipped["paused"] >= 5


async def test_repeated_failures_back_off_exponentially(sim: RunningSimulator) -> None:
    rows: list[ProbeResult] = []
    await force(sim, "m2@p2", "http_500")
    async with make_session() as session:
        collector = collector_for(sim, session, rows, ids=["m2@p2"], interval_s=0.05,
                                  backoff_base_s=0.15, backoff_max_s=10)
        await collector.start()
        await asyncio.sleep(1.6)
        await collector.stop()
    starts = [r.started_at for r in rows]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    # pauses 0.15, 0.3, 0.6: at most 4 probes in 1.6 s where 32 were scheduled
    assert 3 <= len(rows) <= 4, gaps
    assert all(g2 > g1 * 1.5 for g1, g2 in zip(gaps, gaps[1:])), gaps
    assert all(r.outcome is Outcome.HTTP_5XX for r in rows)


async def test_api_key_from_environment_is_sent_and_never_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("SIM_PROVIDER_KEY", secret)
    config = SimConfig(profiles=[fast("m@p")], seed=1, require_key=secret)
    rows: list[ProbeResult] = []
    async with run_simulator(config) as running, make_session() as session:
        endpoints = running.catalog(api_key_env="SIM_PROVIDER_KEY")
        collector = Collector(endpoints, PROMPTS, config=CollectorConfig(), session=session,
                              sink=rows.append)
        ok = await collector.run_round()
        monkeypatch.delenv("SIM_PROVIDER_KEY")
        denied = await collector.run_round()
    assert ok[0].outcome is Outcome.OK
    assert denied[0].outcome is Outcome.HTTP_4XX and denied[0].status_code == 401
    assert all(secret not in r.model_dump_json() for r in rows)


def test_constructor_rejects_empty_inputs() -> None:
    with pytest.raises(ValueError, match="at least one endpoint"):
        Collector([], PROMPTS, config=CollectorConfig(), session=None, sink=print)  # type: ignore[arg-type]


async def test_stop_lets_probes_in_flight_finish_into_the_sink(sim: RunningSimulator) -> None:
    rows: list[ProbeResult] = []
    async with make_session() as session:
        collector = collector_for(sim, session, rows, ids=["slow@slowhost", "m0@p0"],
                                  interval_s=0.2, total_timeout_s=3.0)
        await collector.start()
        await asyncio.sleep(0.45)  # the slow endpoint's probe (~0.55 s) is mid-stream
        await collector.stop()
    assert collector.fired >= 2
    assert len(rows) == collector.fired
    assert all(r.outcome is Outcome.OK for r in rows)
