"""Routing under drift: five simulated endpoints, a daily cycle and a sudden 5x slowdown.

Latencies come from the project's provider simulator profiles (``collector.simulator``:
lognormal TTFT x daily drift x step changes, the pure ``SimProfile.sample``). Five endpoints;
the two fastest swap places over the day; the best one slows down 5x at request 10,833
(02:00 on day two, when it is the best by far) and recovers at request 13,333 (08:00).
20,000 requests over two simulated days (8.64 s apart) under a latency-only objective
(``router@t:1``). As the collector would, probes measure every endpoint (one probe each per
``--probe-every`` requests); probes and each policy's own traffic feed a
``warehouse.live.LiveStats`` (15-minute window, 5-minute half-life), the source of the live
stats features.

Policies: ``switchyard`` (``VWPolicy``, default ``BanditConfig``), ``oracle`` (knows the true
current medians), ``random``, ``static_best`` (the endpoint best on average in hindsight),
``moving_average`` (``GreedyLatencyPolicy``: epsilon-greedy on its own moving average of
measured TTFT) and ``live_greedy`` (epsilon-greedy on the live TTFT p50).

Prints one JSON object as its last line: ``mean_ttft_ms`` per policy, ``shift_requests``
(after the slowdown, until the slowed endpoint's share of the last 50 requests falls below
10 %), ``recover_requests`` (after its recovery, until it holds the majority of the last 50),
``switchyard_vs_oracle`` (ratio of mean TTFT).

    python tests/bench/bandit_drift.py [--seed 1] [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bandit.config import BanditConfig  # noqa: E402
from bandit.features import ArmCache  # noqa: E402
from bandit.policy import (  # noqa: E402
    GreedyLatencyPolicy,
    Policy,
    RouteContext,
    UniformPolicy,
    VWPolicy,
)
from bandit.reward import compute_reward  # noqa: E402
from bandit.router_string import parse_router  # noqa: E402
from collector.simulator import SimProfile, Step  # noqa: E402
from warehouse.live import LiveStats  # noqa: E402
from warehouse.models import Endpoint, Outcome, ProbeResult, Source  # noqa: E402

ROUTER = "router@t:1"
OBJECTIVE = parse_router(ROUTER)
T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
STEP_S = 8.64  # 20,000 requests = 48 simulated hours
SLOW_AT, RECOVER_AT = 10_833, 13_333  # 02:00 and 08:00 of day two: fast@groq is best then
MAX_TOKENS = 256
PROMPTS = ("Summarize this paragraph.", "Write a haiku about rain.", "What is 17 * 23?",
           "Translate 'good morning' to German.", "Explain TCP slow start briefly.")


def profiles() -> list[SimProfile]:
    slow, back = SLOW_AT * STEP_S, RECOVER_AT * STEP_S

    def p(eid: str, ttft: float, amp: float, peak: float, **kw: object) -> SimProfile:
        return SimProfile(endpoint_id=eid, ttft_ms_median=ttft, ttft_sigma=0.25,
                          gap_ms_median=20.0, drift_amplitude=amp, drift_peak_hour=peak,
                          price_in_per_mtok=1.0, price_out_per_mtok=2.0,
                          **kw)  # type: ignore[arg-type]

    return [
        p("fast@groq", 250.0, 0.5, 16.0, steps=(Step(at_s=slow, factor=5.0),
                                                Step(at_s=back, factor=1.0))),
        p("steady@openai", 350.0, 0.2, 15.0),
        p("mid@together", 420.0, 0.5, 4.0),
        p("slow@replicate", 700.0, 0.3, 10.0),
        p("slower@bedrock", 900.0, 0.2, 20.0),
    ]


def true_median(prof: SimProfile, hour: float, elapsed_s: float) -> float:
    return prof.ttft_ms_median * prof.drift_factor(hour) * prof.step_factor(elapsed_s)


def endpoint_of(prof: SimProfile) -> Endpoint:
    return prof.to_endpoint("http://127.0.0.1:1")


Chooser = Callable[[int, datetime, float, float, LiveStats], str]


def run(
    name: str,
    choose: Chooser,
    learn: Callable[[int, str, ProbeResult], None] | None,
    profs: list[SimProfile],
    n: int,
    seed: int,
    probe_every: int,
) -> list[tuple[str, float]]:
    """One policy over the whole timeline; returns (endpoint, ttft) per request."""
    now_box = [T0]
    live = LiveStats(window_s=900.0, half_life_s=300.0, now=lambda: now_box[0])
    by_id = {p.endpoint_id: p for p in profs}
    call_rng = random.Random(seed * 1_000 + 7)
    probe_rng = random.Random(seed * 1_000 + 11)  # the same probes for every policy
    out: list[tuple[str, float]] = []
    for k in range(n):
        elapsed = k * STEP_S
        now = T0 + timedelta(seconds=elapsed)
        now_box[0] = now
        hour = (elapsed / 3600.0) % 24.0
        if k % probe_every == 0:
            for prof in profs:
                s = prof.sample(probe_rng, hour, elapsed, 16)
                live.add(ProbeResult(endpoint_id=prof.endpoint_id, started_at=now,
                                     source=Source.PROBE, outcome=Outcome.OK, ttft_ms=s.ttft_ms,
                                     itl_ms_p50=prof.gap_ms_median))
        eid = choose(k, now, hour, elapsed, live)
        s = by_id[eid].sample(call_rng, hour, elapsed, MAX_TOKENS)
        result = ProbeResult(endpoint_id=eid, started_at=now, source=Source.TRAFFIC,
                             outcome=Outcome.OK, ttft_ms=s.ttft_ms, itl_ms_p50=20.0,
                             input_tokens=30, output_tokens=s.output_tokens)
        live.add(result)
        if learn is not None:
            learn(k, eid, result)
        out.append((eid, s.ttft_ms))
    return out


def policy_runner(policy: Policy, endpoints: list[Endpoint], config: BanditConfig,
                  ) -> tuple[Chooser, Callable[[int, str, ProbeResult], None]]:
    cache = ArmCache()
    last: dict[str, object] = {}

    def choose(k: int, now: datetime, hour: float, elapsed: float, live: LiveStats) -> str:
        arms = [cache.get(e, live.get(e.id), now) for e in endpoints]
        ctx = RouteContext.build(PROMPTS[k % len(PROMPTS)], objective=OBJECTIVE, router=ROUTER,
                                 now=now, max_tokens=MAX_TOKENS,
                                 max_words=config.max_prompt_features)
        d = policy.pull(ctx, arms)
        last["d"] = d
        return d.chosen

    def learn(k: int, eid: str, result: ProbeResult) -> None:
        d = last["d"]
        reward = compute_reward(d, OBJECTIVE, config, outcome=result)  # type: ignore[arg-type]
        policy.update(d, reward)  # type: ignore[arg-type]

    return choose, learn


def first_index(chosen: list[str], start: int, target: str, test: Callable[[float], bool]) -> int:
    """Requests after ``start`` until the target's share of the last 50 passes ``test``."""
    for j in range(start, len(chosen)):
        window = chosen[max(0, j - 49) : j + 1]
        if test(window.count(target) / len(window)):
            return j - start
    return len(chosen) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--config", default="{}", help="JSON overrides of the BanditConfig")
    args = parser.parse_args()
    started = time.perf_counter()
    profs = profiles()
    endpoints = [endpoint_of(p) for p in profs]
    ids = [p.endpoint_id for p in profs]
    n = args.requests
    config = BanditConfig(**{"seed": args.seed, **json.loads(args.config)})
    results: dict[str, list[tuple[str, float]]] = {}

    vw = VWPolicy(config)
    choose, learn = policy_runner(vw, endpoints, config)
    results["switchyard"] = run("switchyard", choose, learn, profs, n, args.seed,
                                args.probe_every)
    vw.close()

    for name, pol in (
        ("moving_average", GreedyLatencyPolicy(epsilon=0.05, use_live=False, seed=args.seed)),
        ("live_greedy", GreedyLatencyPolicy(epsilon=0.05, use_live=True, seed=args.seed)),
        ("random", UniformPolicy(seed=args.seed)),
    ):
        choose, learn = policy_runner(pol, endpoints, config)
        results[name] = run(name, choose, learn, profs, n, args.seed, args.probe_every)

    def oracle(k: int, now: datetime, hour: float, elapsed: float, live: LiveStats) -> str:
        return min(profs, key=lambda p: true_median(p, hour, elapsed)).endpoint_id

    results["oracle"] = run("oracle", oracle, None, profs, n, args.seed, args.probe_every)

    hindsight = {
        p.endpoint_id: sum(true_median(p, (k * STEP_S / 3600) % 24, k * STEP_S)
                           for k in range(0, n, 10))
        for p in profs
    }
    best = min(ids, key=lambda e: hindsight[e])
    results["static_best"] = run("static_best", lambda *a: best, None, profs, n, args.seed,
                                 args.probe_every)

    mean = {k: round(sum(t for _, t in v) / len(v), 1) for k, v in results.items()}
    chosen = [e for e, _ in results["switchyard"]]
    slowed = profs[0].endpoint_id
    shift = first_index(chosen, SLOW_AT, slowed, lambda share: share < 0.10)
    recover = first_index(chosen, RECOVER_AT, slowed, lambda share: share > 0.50)
    print(json.dumps({
        "mean_ttft_ms": mean,
        "switchyard_vs_oracle": round(mean["switchyard"] / mean["oracle"], 4),
        "shift_requests": shift,
        "recover_requests": recover,
        "static_best_endpoint": best,
        "requests": n,
        "probe_every": args.probe_every,
        "seed": args.seed,
        "latency_model": "collector.simulator.SimProfile.sample",
        "vw_args": config.vw_args,
        "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
