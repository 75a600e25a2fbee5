"""`switchyard bandit evaluate` over a warehouse filled by the real router service."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

from bandit.config import BanditConfig
from bandit.schemas import RouteRequest
from bandit.service import RouterService
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint, Feedback
from warehouse.store import Warehouse

REPO = Path(__file__).resolve().parent.parent


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(id=f"{m}@sim", base_url="http://127.0.0.1:9/v1", wire_format="openai",
                 price_in_per_mtok=p, price_out_per_mtok=p, context_window=32_000)
        for m, p in (("good", 1.0), ("bad", 1.0), ("mid", 1.0))
    ]


def test_evaluate_ranks_the_better_fixed_policy_first(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    ckpt = tmp_path / "model.ckpt"
    config = BanditConfig(checkpoint_path=ckpt, epsilon=0.3)
    rng = random.Random(2024)  # not the policy's seed: its draws would correlate with ours
    truth = {"good@sim": 0.9, "mid@sim": 0.5, "bad@sim": 0.1}
    with Warehouse(WarehouseConfig(path=db), lake=False) as wh:
        eps = endpoints()
        wh.upsert_endpoints(eps)
        service = RouterService(config, wh, eps)
        for i in range(300):
            result = service.route(RouteRequest(prompt=f"question {i}", router="router@q:1"))
            score = 1.0 if rng.random() < truth[result.decision.chosen] else 0.0
            service.record_feedback(Feedback(event_id=result.decision.event_id, score=score))
        service.checkpoint()
        service.close()
        wh.flush()
    out = subprocess.run(
        [sys.executable, "-m", "serving", "bandit", "evaluate", "--db", str(db),
         "--checkpoint", str(ckpt), "--epsilon", "0.5", "--router", "router@q:1|c:0.5"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(.*?)\s{2,}snips\s+(-?[\d.]+)", line)
        if m:
            values[m[1].strip()] = float(m[2])
    good, mid, bad = (values[f"always {e}@sim"] for e in ("good", "mid", "bad"))
    assert good > mid > bad
    assert abs(good - 0.9) < 0.15 and abs(bad - 0.1) < 0.2
    assert "current" in out.stdout and "dr" in out.stdout and "ips" in out.stdout


def test_evaluate_on_an_empty_warehouse_says_so(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    with Warehouse(WarehouseConfig(path=db), lake=False):
        pass
    out = subprocess.run(
        [sys.executable, "-m", "serving", "bandit", "evaluate", "--db", str(db)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 2 and "no endpoints and no decisions" in out.stderr
