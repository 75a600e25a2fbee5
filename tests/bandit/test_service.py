"""The router service on a real DuckDB warehouse: routing, the feedback join, exactly-once
learning, checkpoints and recovery."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bandit.config import BanditConfig, PastWindowPolicy
from bandit.errors import FeedbackWindowError, NoCandidateError, UnknownEventError
from bandit.policy import Policy, VWPolicy
from bandit.service import FeedbackStatus, OutcomeStatus, RouteRequest, RouterService
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint, Feedback, LiveStat, Outcome, ProbeResult, Source
from warehouse.store import Warehouse

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _endpoints() -> list[Endpoint]:
    def e(eid: str, price: float, window: int = 32_000) -> Endpoint:
        return Endpoint(id=eid, base_url="https://x.test/v1", wire_format="openai",
                        price_in_per_mtok=price, price_out_per_mtok=3 * price,
                        context_window=window)

    return [e("big@alpha", 10.0), e("small@beta", 0.5), e("tiny@gamma", 0.1, window=2_000)]


class StaticLive:
    def __init__(self, stats: dict[str, LiveStat] | None = None) -> None:
        self.stats = stats or {}

    def get(self, endpoint_id: str) -> LiveStat | None:
        return self.stats.get(endpoint_id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def warehouse(tmp_path: Path, clock: Clock) -> Iterator[Warehouse]:
    wh = Warehouse(WarehouseConfig(path=tmp_path / "w.duckdb"), now=clock, lake=False)
    wh.open()
    yield wh
    wh.close()


def _config(tmp_path: Path, **over: object) -> BanditConfig:
    fields: dict[str, object] = {
        "checkpoint_path": tmp_path / "bandit.ckpt", "feedback_window_s": 600.0, "bits": 16,
        "seed": 1,
    }
    fields.update(over)
    return BanditConfig(**fields)  # type: ignore[arg-type]


def _service(tmp_path: Path, warehouse: Warehouse, clock: Clock, **over: object) -> RouterService:
    live = over.pop("live", StaticLive())
    cooldowns = over.pop("cooldowns", None)
    return RouterService(_config(tmp_path, **over), warehouse, _endpoints(), clock=clock,
                         live=live, cooldowns=cooldowns)  # type: ignore[arg-type]


def _learned(service: RouterService) -> int:
    assert isinstance(service.policy, VWPolicy)
    return service.policy.model.learned


def _ok(event_id: str, endpoint: str, ttft: float = 200.0) -> ProbeResult:
    return ProbeResult(endpoint_id=endpoint, started_at=T0, source=Source.TRAFFIC,
                       outcome=Outcome.OK, ttft_ms=ttft, itl_ms_p50=20.0, event_id=event_id,
                       input_tokens=50, output_tokens=30)


def test_route_logs_the_decision(tmp_path: Path, warehouse: Warehouse, clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)
    res = svc.route(RouteRequest(prompt="Explain DNS in one line.", max_tokens=100))
    d = res.decision
    assert res.endpoint == d.chosen and d.chosen in d.candidates
    assert set(d.candidates) == {"big@alpha", "small@beta", "tiny@gamma"}
    assert res.fallbacks and d.chosen not in res.fallbacks
    assert res.expected_ttft_ms == svc.config.unknown_ttft_ms and res.expected_cost_usd > 0
    stored = warehouse.get_decision(d.event_id)
    assert stored is not None and stored.chosen == d.chosen
    assert stored.probabilities == d.probabilities and stored.context == d.context
    svc.policy.close()


def test_expected_figures_are_the_served_endpoints(tmp_path: Path, warehouse: Warehouse,
                                                    clock: Clock) -> None:
    """The expected TTFT, ITL and cost are those of the endpoint that serves, and ``decide``
    (the sidecar's call) answers what ``route`` does."""
    ttft = {"big@alpha": 900.0, "small@beta": 300.0, "tiny@gamma": 120.0}
    live = StaticLive({e: LiveStat(endpoint_id=e, samples=20, ttft_ms_p50=t, itl_ms_p50=t / 10)
                       for e, t in ttft.items()})
    svc = _service(tmp_path, warehouse, clock, live=live, epsilon=0.5)
    by_id = {e.id: e for e in _endpoints()}
    served = set()
    for k in range(30):
        res = svc.route(RouteRequest(prompt=f"Question {k}?", max_tokens=100))
        served.add(res.endpoint)
        assert res.expected_ttft_ms == ttft[res.endpoint]
        assert res.expected_itl_ms == ttft[res.endpoint] / 10
        tokens = res.decision.prompt_tokens
        assert res.expected_cost_usd == by_id[res.endpoint].cost_usd(tokens, 100)
        routed = svc.decide(f"Question {k}?", max_tokens=100)
        again = routed.result()
        assert again.decision is routed.decision and again.endpoint == routed.endpoint
        assert again.fallbacks == routed.decision.fallbacks and again.rejected == res.rejected
        assert again.expected_ttft_ms == ttft[again.endpoint]
        assert again.expected_cost_usd == by_id[again.endpoint].cost_usd(tokens, 100)
    assert len(served) > 1  # exploration served more than one endpoint
    svc.policy.close()


def test_constraints_screen_and_no_candidate(tmp_path: Path, warehouse: Warehouse,
                                              clock: Clock) -> None:
    cooldowns = {"small@beta": T0 + timedelta(seconds=60)}
    live = StaticLive({"big@alpha": LiveStat(endpoint_id="big@alpha", samples=10,
                                             error_rate=0.9)})
    svc = _service(tmp_path, warehouse, clock, cooldowns=cooldowns, live=live)
    res = svc.route(RouteRequest(prompt="hi", max_tokens=10))
    assert res.decision.candidates == ("tiny@gamma",)
    assert "cooling down" in res.rejected["small@beta"]
    assert "failing" in res.rejected["big@alpha"]
    with pytest.raises(NoCandidateError, match="context window"):
        svc.route(RouteRequest(prompt="x" * 20_000, max_tokens=10))
    with pytest.raises(NoCandidateError):
        svc.route(RouteRequest(prompt="hi", router="router@q:1|providers:nobody"))
    clock.advance(61)
    res = svc.route(RouteRequest(prompt="hi", max_tokens=10, deny=("tiny@gamma",)))
    assert res.decision.candidates == ("small@beta",)
    svc.policy.close()


def test_feedback_join_accepted_duplicate_unknown_late(tmp_path: Path, warehouse: Warehouse,
                                                        clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)
    d = svc.route(RouteRequest(prompt="What is a monad?")).decision
    assert svc.record_outcome(_ok(d.event_id, d.chosen)) is OutcomeStatus.ACCEPTED
    assert _learned(svc) == 0  # quality counts: waits for the thumb
    assert svc.record_feedback(Feedback(event_id=d.event_id, score=1.0)) is FeedbackStatus.ACCEPTED
    assert _learned(svc) == 1
    assert svc.record_feedback(Feedback(event_id=d.event_id, score=0.0)) is FeedbackStatus.DUPLICATE
    assert svc.record_outcome(_ok(d.event_id, d.chosen)) is OutcomeStatus.ALREADY_LEARNED
    assert _learned(svc) == 1
    with pytest.raises(UnknownEventError) as unknown:
        svc.record_feedback(Feedback(event_id="no-such-event-id-at-all", score=1.0))
    assert unknown.value.status == 404
    late = svc.route(RouteRequest(prompt="Late one")).decision
    clock.advance(601)
    with pytest.raises(FeedbackWindowError) as too_late:
        svc.record_feedback(Feedback(event_id=late.event_id, score=1.0))
    assert too_late.value.status == 409 and "window" in too_late.value.reason
    assert _learned(svc) == 2  # the late event was settled by the default policy
    with pytest.raises(FeedbackWindowError):
        svc.record_feedback(Feedback(event_id=late.event_id, score=1.0))
    assert _learned(svc) == 2
    warehouse.flush()
    assert [f.score for f in warehouse.feedback_for(d.event_id)] == [1.0]
    svc.policy.close()


@pytest.mark.parametrize("order", list(itertools.permutations(["fb", "fb2", "out", "exp"])))
def test_each_event_is_learned_exactly_once(tmp_path: Path, warehouse: Warehouse, clock: Clock,
                                             order: tuple[str, ...]) -> None:
    svc = _service(tmp_path, warehouse, clock)
    d = svc.route(RouteRequest(prompt="Exactly once?")).decision
    for step in order:
        try:
            if step in ("fb", "fb2"):
                svc.record_feedback(Feedback(event_id=d.event_id, score=0.5))
            elif step == "out":
                svc.record_outcome(_ok(d.event_id, d.chosen))
            else:
                clock.advance(700)
                svc.expire()
        except FeedbackWindowError:
            pass
    assert _learned(svc) == 1
    assert svc.pending_count == 0
    svc.policy.close()


def test_latency_only_objective_learns_on_the_outcome(tmp_path: Path, warehouse: Warehouse,
                                                       clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)
    d = svc.route(RouteRequest(prompt="fast please", router="router@t:1")).decision
    assert svc.record_outcome(_ok(d.event_id, d.chosen)) is OutcomeStatus.ACCEPTED
    assert _learned(svc) == 1
    assert svc.record_outcome(_ok(d.event_id, d.chosen)) is OutcomeStatus.ALREADY_LEARNED
    assert svc.record_feedback(Feedback(event_id=d.event_id, score=1.0)) is FeedbackStatus.ACCEPTED
    assert svc.record_feedback(Feedback(event_id=d.event_id, score=1.0)) is FeedbackStatus.DUPLICATE
    assert _learned(svc) == 1
    with pytest.raises(UnknownEventError):
        svc.record_outcome(_ok("never-routed-event-id", "big@alpha"))
    svc.policy.close()


@pytest.mark.parametrize(
    ("policy", "expected"), [(PastWindowPolicy.LATENCY_COST_ONLY, 3), (PastWindowPolicy.SKIP, 0)]
)
def test_past_window_policy(tmp_path: Path, warehouse: Warehouse, clock: Clock,
                            policy: PastWindowPolicy, expected: int) -> None:
    svc = _service(tmp_path, warehouse, clock, past_window_policy=policy)
    for k in range(3):
        svc.route(RouteRequest(prompt=f"question {k}"))
    clock.advance(300)
    assert svc.expire() == 0
    clock.advance(301)
    assert svc.expire() == 3
    assert _learned(svc) == expected and svc.pending_count == 0
    svc.policy.close()


def test_shadow_mode_serves_the_default_and_learns_it(tmp_path: Path, warehouse: Warehouse,
                                                       clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock, shadow=True, shadow_endpoint="big@alpha")
    res = svc.route(RouteRequest(prompt="shadow me", router="router@t:1"))
    assert res.endpoint == "big@alpha" and res.decision.shadow
    assert res.decision.served == "big@alpha"
    svc.record_outcome(_ok(res.decision.event_id, "big@alpha"))
    assert _learned(svc) == 1
    res = svc.route(RouteRequest(prompt="x", router="router@t:1", default_endpoint="small@beta"))
    assert res.endpoint == "small@beta"
    svc.policy.close()


def test_checkpoint_and_recover_replay_unmarked_events(tmp_path: Path, warehouse: Warehouse,
                                                        clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)
    events = []
    for k in range(6):
        d = svc.route(RouteRequest(prompt=f"prompt {k}")).decision
        events.append(d)
        clock.advance(1)
        if k == 2:
            for e in events:
                svc.record_feedback(Feedback(event_id=e.event_id, score=1.0))
            svc.checkpoint()
    for e in events[3:5]:
        svc.record_feedback(Feedback(event_id=e.event_id, score=0.0))
    warehouse.flush()
    assert isinstance(svc.policy, VWPolicy)
    expected = svc.policy.model.weights_json()
    # a new process: the last checkpoint has 3 events; the warehouse holds 2 more with feedback
    fresh = _service(tmp_path, warehouse, clock)
    report = fresh.recover()
    assert report.restored and report.relearned == 2 and report.pending == 1
    assert isinstance(fresh.policy, VWPolicy)
    assert fresh.policy.model.weights_json() == expected
    with pytest.raises(FeedbackWindowError):
        clock.advance(10_000)
        fresh.record_feedback(Feedback(event_id=events[0].event_id, score=1.0))
    assert warehouse.query("SELECT count(*) FROM learned") == [(5,)]
    svc.policy.close()
    fresh.policy.close()


def test_rewarded_decisions_feed_off_policy_evaluation(tmp_path: Path, warehouse: Warehouse,
                                                       clock: Clock) -> None:
    from bandit.ope import FixedTarget, evaluate

    svc = _service(tmp_path, warehouse, clock)
    for k in range(8):
        d = svc.route(RouteRequest(prompt=f"q{k}", router="router@t:0.001")).decision
        svc.record_outcome(_ok(d.event_id, d.chosen, ttft=100.0 + 10 * k))
    svc.route(RouteRequest(prompt="no outcome, no feedback"))
    warehouse.flush()
    logged = svc.rewarded_decisions()
    assert len(logged) == 8
    assert all(r < 0 for _, r in logged)  # latency costs, no quality weight
    estimates = evaluate(logged, [FixedTarget("big@alpha")])
    assert len(estimates) == 3
    svc.policy.close()


def test_checkpoint_is_atomic_and_loadable(tmp_path: Path, warehouse: Warehouse,
                                           clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)
    svc.route(RouteRequest(prompt="hello"))
    path = svc.checkpoint()
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    loaded = Policy.load(path)
    assert isinstance(loaded, VWPolicy) and loaded.config == svc.config
    loaded.close()
    svc.close()


async def test_async_lifecycle(tmp_path: Path, warehouse: Warehouse, clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock, checkpoint_interval_s=0.05)
    await svc.start()
    res = await svc.aroute(RouteRequest(prompt="async hello", router="router@t:1"))
    assert await svc.arecord_outcome(_ok(res.decision.event_id, res.decision.chosen)) \
        is OutcomeStatus.ACCEPTED
    await svc.aclose()
    assert svc.config.checkpoint_path.exists()
    warehouse.flush()
    assert warehouse.query("SELECT event_id FROM learned") == [(res.decision.event_id,)]


def test_expire_settles_exactly_the_events_past_their_window(tmp_path: Path, warehouse: Warehouse,
                                                             clock: Clock) -> None:
    svc = _service(tmp_path, warehouse, clock)  # window 600 s
    ids = []
    for k in range(5):
        ids.append(svc.route(RouteRequest(prompt=f"question {k}?")).decision.event_id)
        clock.advance(100)
    clock.advance(600 - 500 + 150)  # the first two are past 600 s, the rest are not
    assert svc.expire() == 2 and svc.pending_count == 3
    assert svc.expire() == 0
    clock.advance(300)
    assert svc.expire() == 3 and svc.pending_count == 0
    assert _learned(svc) == 5
    svc.policy.close()


def test_decisions_dropped_from_memory_are_read_back_and_learned_the_same(
    tmp_path: Path, clock: Clock
) -> None:
    """A decision pending longer than pending_in_memory_s leaves memory (the warehouse holds
    it) and is read back when feedback, an outcome or the window's end settles it: the model
    learns exactly what a service holding every decision whole learns."""

    def run(folder: Path, keep_s: float) -> tuple[str, int, int]:
        folder.mkdir()
        with Warehouse(WarehouseConfig(path=folder / "w.duckdb"), now=clock, lake=False) as wh:
            clock.now = T0
            svc = _service(folder, wh, clock, pending_in_memory_s=keep_s)
            quality = [svc.route(RouteRequest(prompt=f"quality {k}")).decision for k in range(4)]
            fast = [svc.route(RouteRequest(prompt=f"fast {k}", router="router@t:1")).decision
                    for k in range(3)]  # fmt: skip
            clock.advance(60)
            svc.expire()  # within the window: nothing settles, old decisions may leave memory
            whole = svc.pending_whole_count
            for d, score in zip(quality[:2], (1.0, 0.0), strict=True):
                assert svc.record_feedback(Feedback(event_id=d.event_id, score=score)) \
                    is FeedbackStatus.ACCEPTED
            assert svc.record_outcome(_ok(fast[0].event_id, fast[0].chosen)) \
                is OutcomeStatus.ACCEPTED
            assert _learned(svc) == 3
            clock.advance(600)
            assert svc.expire() == 4  # two quality and two fast events, learned at the window
            assert _learned(svc) == 7 and svc.pending_count == 0
            with pytest.raises(FeedbackWindowError):
                svc.record_feedback(Feedback(event_id=quality[3].event_id, score=1.0))
            assert isinstance(svc.policy, VWPolicy)
            weights = svc.policy.model.weights_json()
            svc.policy.close()
            return weights, whole, _learned(svc)

    dropped = run(tmp_path / "dropped", 30.0)
    kept = run(tmp_path / "kept", 600.0)  # the feedback window: every decision stays whole
    assert dropped[1] == 0 and kept[1] == 7  # after 60 s: none held whole, or all of them
    assert dropped[0] == kept[0] and dropped[2] == kept[2] == 7


def test_a_dropped_decision_the_warehouse_lacks_is_settled_without_learning(
    tmp_path: Path, warehouse: Warehouse, clock: Clock
) -> None:
    svc = _service(tmp_path, warehouse, clock, pending_in_memory_s=0.0)
    d = svc.route(RouteRequest(prompt="gone?")).decision
    warehouse.flush()
    svc.expire()
    assert svc.pending_whole_count == 0
    # as if the writer had dropped the row: feedback is accepted, nothing can be learned
    warehouse.submit(lambda con: con.execute("DELETE FROM decisions")).result()
    assert svc.record_feedback(Feedback(event_id=d.event_id, score=1.0)) \
        is FeedbackStatus.ACCEPTED
    assert _learned(svc) == 0 and svc.pending_count == 0
    svc.policy.close()


def test_a_failed_checkpoint_keeps_its_learned_ids_for_the_next(tmp_path: Path,
                                                                warehouse: Warehouse,
                                                                clock: Clock) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the checkpoint's folder should be")
    svc = _service(tmp_path, warehouse, clock, checkpoint_path=blocker / "bandit.ckpt")
    d = svc.route(RouteRequest(prompt="Keep me?")).decision
    svc.record_feedback(Feedback(event_id=d.event_id, score=1.0))
    with pytest.raises(OSError):
        svc.checkpoint()
    blocker.unlink()
    path = svc.checkpoint()  # the folder can be made now
    assert d.event_id in Policy.read_extra(path)["learned_ids"]  # type: ignore[operator]
    svc.policy.close()


def test_kept_screening_follows_stats_cooldowns_age_catalog_and_size(
    tmp_path: Path, warehouse: Warehouse, clock: Clock
) -> None:
    """With the warehouse's live stats, one screening serves many requests: every change that
    could alter it (live stats, a cooldown starting or ending, an arm's age step, the catalog,
    a request too large for a window or above a price) gives what a fresh screening gives.
    (With ``live_refresh_s=0``: every change of the live stats is read at once.)"""
    cooldowns: dict[str, datetime] = {}
    svc = _service(tmp_path, warehouse, clock, cooldowns=cooldowns, live=warehouse.live,
                   live_refresh_s=0.0)
    all_three = ("big@alpha", "small@beta", "tiny@gamma")

    def route(**kw: object) -> tuple[tuple[str, ...], dict[str, str], dict[str, object]]:
        res = svc.route(RouteRequest(**{"prompt": "hi", "max_tokens": 10, **kw}))
        return res.decision.candidates, res.rejected, dict(res.decision.context)

    warehouse.add_probe(_ok("", "small@beta"))
    cands, rejected, ctx = route()
    assert cands == all_three and rejected == {}
    assert ctx["a.small@beta.age_s"] == 0.0 and route()[0] == all_three

    clock.advance(10.5)  # the arm's age steps: its logged features follow
    assert route()[2]["a.small@beta.age_s"] == 10.0

    cooldowns["small@beta"] = clock.now + timedelta(seconds=30)  # a cooldown starts ...
    cands, rejected, _ = route()
    assert cands == ("big@alpha", "tiny@gamma") and "cooling down" in rejected["small@beta"]
    clock.advance(31)  # ... and ends by the clock alone
    assert route()[0] == all_three

    for _ in range(6):  # new live stats: big@alpha fails now
        warehouse.add_probe(ProbeResult(endpoint_id="big@alpha", started_at=clock.now,
                                        outcome=Outcome.HTTP_5XX, source=Source.PROBE))
    cands, rejected, _ = route()
    assert cands == ("small@beta", "tiny@gamma") and "failing" in rejected["big@alpha"]

    # the size of a request: too large for tiny@gamma's window, then small again
    cands, rejected, _ = route(prompt_tokens=5_000)
    assert cands == ("small@beta",) and "context window" in rejected["tiny@gamma"]
    assert route()[0] == ("small@beta", "tiny@gamma")
    # a price threshold that rejects one endpoint for this size, then none
    cands, rejected, _ = route(router="router@q:1|c<1")
    assert cands == ("tiny@gamma",) and "price" in rejected["small@beta"]
    assert route(router="router@q:1|c<100")[0] == ("small@beta", "tiny@gamma")

    svc.set_endpoints([e for e in _endpoints() if e.id != "tiny@gamma"])  # a new catalog
    assert route()[0] == ("small@beta",)
    svc.policy.close()


def test_live_stats_are_reread_at_most_every_live_refresh_s(
    tmp_path: Path, warehouse: Warehouse, clock: Clock
) -> None:
    """A change of the live stats alone waits until ``live_refresh_s`` has passed since they
    were last read (the proxy changes them with every call); a cooldown and a new catalog
    apply at once."""
    ticks = [100.0]
    cooldowns: dict[str, datetime] = {}
    svc = RouterService(_config(tmp_path, live_refresh_s=0.5), warehouse, _endpoints(),
                        clock=clock, live=warehouse.live, cooldowns=cooldowns,
                        monotonic=lambda: ticks[0])  # fmt: skip
    all_three = ("big@alpha", "small@beta", "tiny@gamma")

    def route() -> tuple[str, ...]:
        return svc.route(RouteRequest(prompt="hi", max_tokens=10)).decision.candidates

    warehouse.add_probe(_ok("", "small@beta"))
    assert route() == all_three  # the first read
    for _ in range(6):  # big@alpha fails now ...
        warehouse.add_probe(ProbeResult(endpoint_id="big@alpha", started_at=clock.now,
                                        outcome=Outcome.HTTP_5XX, source=Source.PROBE))
    ticks[0] += 0.4
    assert route() == all_three  # ... not read yet: 0.4 s since the last read
    ticks[0] += 0.1
    assert route() == ("small@beta", "tiny@gamma")  # 0.5 s: read again
    cooldowns["tiny@gamma"] = clock.now + timedelta(seconds=30)
    assert route() == ("small@beta",)  # a cooldown applies at once
    for _ in range(7):  # big@alpha recovers (6 errors in 13) ...
        warehouse.add_probe(_ok("", "big@alpha"))
    ticks[0] += 0.1
    assert route() == ("small@beta",)  # ... not read yet
    svc.set_endpoints(_endpoints()[:2])  # a new catalog re-reads the live stats at once
    assert route() == ("big@alpha", "small@beta")
    assert svc._kept_at == ticks[0]
    svc.policy.close()
