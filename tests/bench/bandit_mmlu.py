"""Quality routing on real data: replay RouteLLM's MMLU correctness as a thumbs stream.

Reads ``../shared/data/routellm-mmlu`` (skips with a message when absent), drops the prompts
listed in ``contaminated_prompts.jsonl`` and shuffles the rest with ``--seed``. Two endpoints:
GPT-4 (``gpt-4-1106-preview``, $10/$30 per million tokens) and Mixtral-8x7B ($0.6/$0.6). For
each question the policy sees only the prompt text (``bandit.features``), decides, the decision
is counted, then the chosen model's correctness comes back as a thumb (1 or 0) and is learned:
one online pass from an empty model, exactly as the service learns.

The objective is ``router@q:1|c:<w>``: reward = correct - w * price (USD per million tokens,
see ``bandit.reward``). One pass per cost weight ``w`` traces strong-call share against
accuracy; PGR = (acc - acc_weak) / (acc_strong - acc_weak); APGR is the area under PGR over
strong-call share (trapezoids through the measured points, with (0, 0) and (1, 1) added);
CPT(p) is the share where the curve first reaches PGR p (linear between points), as in the
RouteLLM paper. Baselines on the same stream: ``random_apgr`` (random routing at each share)
and ``length_apgr`` (strong for the longest prompts, threshold swept).

Prints one JSON object as its last line: ``apgr``, ``cpt50``, ``cpt80`` (fractions),
``random_apgr``, ``length_apgr``, the curve, and ``apgr_by_seed`` with ``--seeds``.

    python tests/bench/bandit_mmlu.py [--seed 1] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bandit.config import BanditConfig  # noqa: E402
from bandit.features import Arm  # noqa: E402
from bandit.policy import RouteContext  # noqa: E402
from bandit.trained import make_policy  # noqa: E402
from bandit.reward import compute_reward  # noqa: E402
from bandit.router_string import parse_router  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routellm-mmlu"
STRONG, WEAK = "gpt-4-1106-preview@openai", "mixtral-8x7b-instruct@together"
WEAK_COLUMN, STRONG_COLUMN = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
PRICES = {STRONG: (10.0, 30.0), WEAK: (0.6, 0.6)}
COST_WEIGHTS = (0.0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.011,
                0.012, 0.0135, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.06)
MAX_TOKENS = 4  # an MMLU answer is one letter
T0 = datetime(2025, 1, 6, 9, tzinfo=UTC)

#: The bandit configuration of this benchmark: ``BanditConfig.stationary_quality`` (SquareCB,
#: decaying learning rate, importance weights capped at 1/0.3) plus ``--config`` overrides.
MMLU_CONFIG: dict[str, object] = {}
PROFILES = {"quality": BanditConfig.quality_routing, "vw": BanditConfig.stationary_quality}
PROFILE = ["quality"]


def make_config(seed: int) -> BanditConfig:
    return PROFILES[PROFILE[0]](seed=seed, **MMLU_CONFIG)


Row = tuple[str, bool, bool]  # prompt, weak correct, strong correct


def load_rows() -> list[Row]:
    contaminated: set[str] = set()
    with open(DATA / "contaminated_prompts.jsonl") as fh:
        for line in fh:
            if line.strip():
                item = json.loads(line)
                contaminated.update(str(item[k]) for k in ("eval_prompt", "train_prompt")
                                    if k in item)
    rows: list[Row] = []
    for path in sorted(DATA.glob("mmlu_*.csv")):
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                if r["prompt"] in contaminated:
                    continue
                rows.append((r["prompt"], r[WEAK_COLUMN] == "True", r[STRONG_COLUMN] == "True"))
    return rows


def area(points: list[tuple[float, float]]) -> float:
    pts = sorted([(0.0, 0.0), *points, (1.0, 1.0)])
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False))


def cpt(points: list[tuple[float, float]], target: float) -> float:
    pts = sorted([(0.0, 0.0), *points, (1.0, 1.0)])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if y1 >= target:
            if y1 == y0:
                return x1
            return x0 + (x1 - x0) * max(0.0, target - y0) / (y1 - y0)
    return 1.0


def replay(rows: list[Row], cost_weight: float, seed: int) -> tuple[float, float]:
    """One online pass; returns (strong share, accuracy)."""
    config = make_config(seed)
    router = f"router@q:1|c:{cost_weight!r}" if cost_weight > 0 else "router@q:1"
    objective = parse_router(router)
    policy = make_policy(config)
    arms = [Arm.build(e, {"model": e.split("@")[0], "provider": e.split("@")[1],
                          "price_in": p[0], "price_out": p[1], "ctx": 128_000.0})
            for e, p in PRICES.items()]
    strong = correct = 0
    for k, (prompt, weak_ok, strong_ok) in enumerate(rows):
        ctx = RouteContext.build(prompt, objective=objective, router=router,
                                 now=T0 + timedelta(seconds=k), max_tokens=MAX_TOKENS,
                                 max_words=config.max_prompt_features)
        d = policy.pull(ctx, arms)
        ok = strong_ok if d.chosen == STRONG else weak_ok
        strong += d.chosen == STRONG
        correct += ok  # counted before its feedback is learned
        policy.update(d, compute_reward(d, objective, config, feedback_score=float(ok)))
    policy.close()
    return strong / len(rows), correct / len(rows)


def curve(rows: list[Row], seed: int) -> list[tuple[float, float, float]]:
    acc_weak = sum(r[1] for r in rows) / len(rows)
    acc_strong = sum(r[2] for r in rows) / len(rows)
    out = []
    for w in COST_WEIGHTS:
        share, acc = replay(rows, w, seed)
        out.append((w, share, (acc - acc_weak) / (acc_strong - acc_weak)))
    return out


def scored_apgr(rows: list[Row], scores: list[float]) -> float:
    """APGR of a router that sends the highest-scored prompts to the strong model."""
    acc_weak = sum(r[1] for r in rows) / len(rows)
    acc_strong = sum(r[2] for r in rows) / len(rows)
    order = sorted(range(len(rows)), key=lambda i: -scores[i])
    points = []
    for step in range(1, 20):
        k = len(rows) * step // 20
        top = set(order[:k])
        acc = sum(r[2] if i in top else r[1] for i, r in enumerate(rows)) / len(rows)
        points.append((k / len(rows), (acc - acc_weak) / (acc_strong - acc_weak)))
    return area(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", default="", help="comma-separated extra seeds to check")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N questions")
    parser.add_argument("--config", default="{}", help="JSON overrides of MMLU_CONFIG")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quality",
                        help="quality: BanditConfig.quality_routing (the quality policy); "
                        "vw: BanditConfig.stationary_quality (one VW model, whole reward)")
    args = parser.parse_args()
    PROFILE[0] = args.profile
    MMLU_CONFIG.update(json.loads(args.config))
    if not DATA.is_dir():
        print(f"SKIP: {DATA} is absent; nothing to replay")
        print(json.dumps({"skipped": True, "reason": f"{DATA} is absent"}))
        return
    started = time.perf_counter()
    all_rows = load_rows()

    def stream(seed: int) -> list[Row]:
        rows = list(all_rows)
        random.Random(seed).shuffle(rows)
        return rows[: args.limit] if args.limit else rows

    rows = stream(args.seed)
    points = curve(rows, args.seed)
    pgr_points = [(share, pgr) for _, share, pgr in points]
    rng = random.Random(args.seed)
    by_seed = {args.seed: round(area(pgr_points), 4)}
    for extra in (int(s) for s in args.seeds.split(",") if s.strip()):
        if extra not in by_seed:
            by_seed[extra] = round(area([(s, p) for _, s, p in curve(stream(extra), extra)]), 4)
    result = {
        "apgr": round(area(pgr_points), 4),
        "cpt50": round(cpt(pgr_points, 0.5), 4),
        "cpt80": round(cpt(pgr_points, 0.8), 4),
        "random_apgr": round(scored_apgr(rows, [rng.random() for _ in rows]), 4),
        "length_apgr": round(scored_apgr(rows, [len(r[0]) + rng.random() for r in rows]), 4),
        "apgr_by_seed": by_seed,
        "apgr_mean": round(sum(by_seed.values()) / len(by_seed), 4),
        "curve": [{"c": w, "strong_share": round(s, 4), "pgr": round(p, 4)} for w, s, p in points],
        "questions": len(rows),
        "accuracy_weak": round(sum(r[1] for r in rows) / len(rows), 4),
        "accuracy_strong": round(sum(r[2] for r in rows) / len(rows), 4),
        "vw_args": make_config(args.seed).vw_args,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
