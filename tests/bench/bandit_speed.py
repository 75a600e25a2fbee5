"""Speed of the bandit in-process: one decision, and learning throughput.

One decision = screen 20 endpoints (constraints), build features of a 2,000-token prompt,
reuse the cached endpoint lines, VW predict, sample: ``VWPolicy.pull`` as the service calls it.
Learning = reward from the decision and its outcome, then ``Policy.update`` as the service
calls it (``learn_per_s``: the policy that decided keeps the VW text of its recent decisions);
``relearn_per_s`` is the restart path, where a fresh policy rebuilds every example from the
logged ``Decision.context``. Same 20 endpoints and prompt size; the model is warmed up on 2,000
events first. Prints one JSON object as its last line: ``decide_p50_ms``, ``decide_p99_ms``
(wall clock), ``decide_cpu_p99_ms`` (thread CPU time: the same without the time the process
waited for a core), ``learn_per_s``, ``relearn_per_s``, the 1-minute load average and the
set-up. Wall-clock tails depend on what else runs on the machine: compare with the load.

    python tests/bench/bandit_speed.py [--decisions 5000] [--learn 5000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bandit.config import BanditConfig  # noqa: E402
from bandit.constraints import screen  # noqa: E402
from bandit.features import ArmCache  # noqa: E402
from bandit.policy import RouteContext, VWPolicy  # noqa: E402
from bandit.reward import compute_reward  # noqa: E402
from bandit.router_string import parse_router  # noqa: E402
from warehouse.models import Decision, Endpoint, LiveStat, Outcome, ProbeResult  # noqa: E402

N_ENDPOINTS = 20
PROMPT_TOKENS = 2000
T0 = datetime(2025, 4, 1, 8, tzinfo=UTC)
VOCAB = (
    "the of and to in is that for it with as was on are be this which by an or from model "
    "latency token request server network python function return value error test data "
    "system memory cache query index table result process thread async await loop state "
    "compute matrix vector gradient loss train batch layer weight bias neural graph node edge "
    "price cost quality answer question explain summarize translate write code debug fix"
).split()


def make_prompt(rng: random.Random, tokens: int) -> str:
    words = [rng.choice(VOCAB) + (str(rng.randrange(50)) if rng.random() < 0.2 else "")
             for _ in range(int(tokens * 0.75))]
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines)[: tokens * 4] + "\nWhat does this code do?"


def make_endpoints() -> list[Endpoint]:
    return [
        Endpoint(id=f"model{k % 7}-v{k}@provider{k % 5}", base_url="https://x.test/v1",
                 wire_format="openai", price_in_per_mtok=0.2 + k, price_out_per_mtok=0.6 + 2 * k,
                 context_window=128_000)
        for k in range(N_ENDPOINTS)
    ]


def make_stats(rng: random.Random, endpoints: list[Endpoint], now: datetime) -> dict[str, LiveStat]:
    return {
        e.id: LiveStat(endpoint_id=e.id, samples=50, ttft_ms_p50=rng.uniform(100, 900),
                       ttft_ms_p90=rng.uniform(900, 2000), itl_ms_p50=rng.uniform(5, 40),
                       itl_ms_p90=rng.uniform(40, 90), tokens_per_s=rng.uniform(20, 150),
                       error_rate=rng.uniform(0, 0.05), rate_429=0.0, newest_at=now)
        for e in endpoints
    }


class Live:
    def __init__(self, stats: dict[str, LiveStat]) -> None:
        self.stats = stats

    def get(self, endpoint_id: str) -> LiveStat | None:
        return self.stats.get(endpoint_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--learn", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                        help="leave the start-up objects to the cyclic GC")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    config = BanditConfig(seed=args.seed)
    objective = parse_router(config.default_router)
    endpoints = make_endpoints()
    live = Live(make_stats(rng, endpoints, T0))
    prompts = [make_prompt(rng, PROMPT_TOKENS) for _ in range(50)]
    policy = VWPolicy(config)
    cache = ArmCache()

    def decide(k: int, now: datetime) -> Decision:
        allowed = screen(endpoints, objective=objective, now=now, prompt_tokens=PROMPT_TOKENS,
                         max_tokens=512, live=live).require()
        arms = [cache.get(e, live.get(e.id), now) for e in allowed]
        ctx = RouteContext.build(prompts[k % len(prompts)], objective=objective,
                                 router=config.default_router, now=now, max_tokens=512,
                                 max_words=config.max_prompt_features)
        return policy.pull(ctx, arms)

    def outcome(d: Decision) -> ProbeResult:
        return ProbeResult(endpoint_id=d.chosen, started_at=d.created_at, outcome=Outcome.OK,
                           ttft_ms=rng.uniform(100, 900), itl_ms_p50=rng.uniform(5, 40),
                           input_tokens=PROMPT_TOKENS, output_tokens=300)

    # warm up: learn 2,000 events so the model is not empty
    for k in range(2000):
        now = T0 + timedelta(seconds=k)
        d = decide(k, now)
        policy.update(d, compute_reward(d, objective, config, feedback_score=rng.random(),
                                        outcome=outcome(d)))

    timings: list[int] = []
    cpu: list[int] = []
    logged: list[Decision] = []
    gc.collect()
    if args.gc_freeze:
        gc.freeze()  # what a long-running service does after start-up
    for k in range(args.decisions):
        now = T0 + timedelta(seconds=3000 + k * 0.05)
        if k % 100 == 0:  # the warehouse refreshes one endpoint's live stat now and then
            e = endpoints[(k // 100) % N_ENDPOINTS]
            live.stats[e.id] = live.stats[e.id].model_copy(update={"newest_at": now})
        c = time.thread_time_ns()
        t = time.perf_counter_ns()
        d = decide(k, now)
        timings.append(time.perf_counter_ns() - t)
        cpu.append(time.thread_time_ns() - c)
        logged.append(d)
    timings.sort()
    cpu.sort()
    gc.unfreeze()

    pairs = [(d, outcome(d), rng.random()) for d in logged[: args.learn]]
    t = time.perf_counter_ns()
    for d, out, score in pairs:
        policy.update(d, compute_reward(d, objective, config, feedback_score=score, outcome=out))
    learn_s = (time.perf_counter_ns() - t) / 1e9
    policy.close()

    # recovery path: a fresh policy relearns logged decisions, rebuilding each VW example
    # from Decision.context (as after a restart)
    fresh = VWPolicy(config)
    t = time.perf_counter_ns()
    for d, out, score in pairs:
        fresh.update(d, compute_reward(d, objective, config, feedback_score=score, outcome=out))
    relearn_s = (time.perf_counter_ns() - t) / 1e9
    fresh.close()

    def pct(q: float, values: list[int] = timings) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] / 1e6, 4)

    print(json.dumps({
        "decide_p50_ms": pct(0.50),
        "decide_p99_ms": pct(0.99),
        "decide_max_ms": round(timings[-1] / 1e6, 4),
        "decide_cpu_p99_ms": pct(0.99, cpu),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "gc_freeze": args.gc_freeze,
        "learn_per_s": round(len(pairs) / learn_s, 1),
        "relearn_per_s": round(len(pairs) / relearn_s, 1),
        "endpoints": N_ENDPOINTS,
        "prompt_tokens": PROMPT_TOKENS,
        "decisions": args.decisions,
        "vw_args": config.vw_args,
    }))


if __name__ == "__main__":
    main()
