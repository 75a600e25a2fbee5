"""Train a router on half of RouteLLM's MMLU outcomes, evaluate it on the other half.

Reads ``../shared/data/routellm-mmlu`` (skips with a message when absent), drops the prompts in
``contaminated_prompts.jsonl``, and for each of three seeds splits the questions at random into
two halves. The training half is given as precomputed outcomes, exactly what
``switchyard train`` accepts (``{"prompt", "scores": {endpoint: 0 or 1}}``): the router learns
from the prompt text only (``bandit.quality.QualityModel``, fitted offline). On the held-out
half, ``bandit.tradeoff.tradeoff`` sweeps the cost weight of the router string and replays the
trained router's own decision rule (``bandit.tradeoff.choose``) per configuration; each
configuration gives one point (GPT-4 share, PGR), PGR = (acc - acc_weak) / (acc_strong -
acc_weak), and APGR is the area under the curve with (0, 0) and (1, 1) added (trapezoids), as
``../shared/data/README.md`` defines it. CPT(p) is the share where the curve first reaches p.

Baselines on the same held-out halves: ``random_apgr`` (random routing) and ``length_apgr``
(GPT-4 for the longest prompts, threshold swept).

Prints one JSON object as its last line: ``apgr``, ``cpt50``, ``cpt80`` (means over the three
splits), ``random_apgr``, ``length_apgr``, and the per-split figures.

    python tests/bench/train_mmlu.py [--seeds 1,2,3] [--config '{"passes": 5}']
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bandit_mmlu import DATA, PRICES, STRONG, WEAK, Row, area, cpt, load_rows, scored_apgr  # noqa: E402

from bandit.features import estimate_tokens  # noqa: E402
from bandit.quality import Example, QualityConfig, QualityModel  # noqa: E402
from bandit.tradeoff import EndpointFacts, HeldOut, tradeoff  # noqa: E402

STARS = 60  # cost weights swept per split (one point of the curve each)
TTFT_MS = 500.0  # both endpoints alike: only quality and price matter here


def split(rows: list[Row], seed: int) -> tuple[list[Row], list[Row]]:
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half], shuffled[half:]


def evaluate(rows: list[Row], seed: int, config: QualityConfig) -> dict[str, object]:
    train, test = split(rows, seed)
    started = time.perf_counter()
    model = QualityModel([STRONG, WEAK], config=config, seed=seed)
    model.fit([Example(p, {STRONG: float(s), WEAK: float(w)}) for p, w, s in train])
    fit_s = time.perf_counter() - started
    heldout = [HeldOut(p, {STRONG: float(s), WEAK: float(w)}, estimate_tokens(p),
                       {STRONG: 1, WEAK: 1}) for p, w, s in test]
    facts = [EndpointFacts(e, pi, po, TTFT_MS) for e, (pi, po) in PRICES.items()]
    graph = tradeoff(model, heldout, facts, stars=STARS)
    model.close()
    acc_weak = sum(r[1] for r in test) / len(test)
    acc_strong = sum(r[2] for r in test) / len(test)
    points = sorted(
        (p.shares[STRONG], (p.quality - acc_weak) / (acc_strong - acc_weak))
        for p in graph.routers if p.axis == "cost"
    )
    rng = random.Random(seed)
    return {
        "seed": seed,
        "apgr": area(points),
        "cpt50": cpt(points, 0.5),
        "cpt80": cpt(points, 0.8),
        "random_apgr": scored_apgr(test, [rng.random() for _ in test]),
        "length_apgr": scored_apgr(test, [len(r[0]) + rng.random() for r in test]),
        "points": len(points),
        "train": len(train),
        "heldout": len(test),
        "fit_s": round(fit_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated split seeds")
    parser.add_argument("--config", default="{}", help="JSON overrides of QualityConfig")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"SKIP: {DATA} is absent; nothing to train on")
        print(json.dumps({"skipped": True, "reason": f"{DATA} is absent"}))
        return
    config = QualityConfig.model_validate(json.loads(args.config))
    started = time.perf_counter()
    rows = load_rows()
    runs = [evaluate(rows, int(s), config) for s in args.seeds.split(",") if s.strip()]

    def mean(key: str) -> float:
        return round(sum(float(r[key]) for r in runs) / len(runs), 4)  # type: ignore[arg-type]

    result = {
        "apgr": mean("apgr"),
        "cpt50": mean("cpt50"),
        "cpt80": mean("cpt80"),
        "random_apgr": mean("random_apgr"),
        "length_apgr": mean("length_apgr"),
        "by_split": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                     for r in runs],
        "config": config.model_dump(mode="json"),
        "questions": len(rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
