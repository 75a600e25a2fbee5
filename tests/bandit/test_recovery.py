"""Kill -9 loses no learning the warehouse holds: a subprocess routes, learns and checkpoints,
is killed with SIGKILL, and a new service recovers a model equal to one trained on every event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bandit.config import BanditConfig
from bandit.policy import VWPolicy
from bandit.reward import compute_reward
from bandit.router_string import Objective
from bandit.service import RouterService
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint
from warehouse.store import Warehouse

REPO = Path(__file__).resolve().parents[2]
N_EVENTS = 40
CHECKPOINT_AT = 15
WITHOUT_FEEDBACK = 5

CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from bandit.config import BanditConfig
    from bandit.service import RouteRequest, RouterService
    from warehouse.config import WarehouseConfig
    from warehouse.models import Endpoint, Feedback, Outcome, ProbeResult, Source
    from warehouse.store import Warehouse

    tmp = Path(sys.argv[1])
    ticks = [0]
    def clock():
        ticks[0] += 1
        return datetime(2025, 7, 1, tzinfo=UTC) + timedelta(seconds=ticks[0])

    class NoLive:
        def get(self, endpoint_id):
            return None

    endpoints = [
        Endpoint(id=f"m{k}@p{k}", base_url="https://x.test/v1", wire_format="openai",
                 price_in_per_mtok=1.0 + k, price_out_per_mtok=2.0 + k, context_window=64000)
        for k in range(3)
    ]
    config = BanditConfig(checkpoint_path=tmp / "bandit.ckpt", bits=16, seed=1,
                          feedback_window_s=1e6)
    wh = Warehouse(WarehouseConfig(path=tmp / "w.duckdb"), now=clock, lake=False)
    wh.open()
    svc = RouterService(config, wh, endpoints, clock=clock, live=NoLive())
    for k in range(N_EVENTS):
        d = svc.route(RouteRequest(prompt=f"question {k} about topic {k % 5}?")).decision
        svc.record_outcome(ProbeResult(
            endpoint_id=d.chosen, started_at=d.created_at, source=Source.TRAFFIC,
            outcome=Outcome.OK, ttft_ms=100.0 + 37.3 * k, itl_ms_p50=10.0 + k / 7,
            input_tokens=20 + k, output_tokens=30, event_id=d.event_id))
        if k < N_EVENTS - WITHOUT_FEEDBACK:
            svc.record_feedback(Feedback(event_id=d.event_id, score=(k % 3) / 2))
        if k == CHECKPOINT_AT:
            svc.checkpoint()
    wh.flush()
    print("READY", svc.policy.model.learned, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.slow
def test_kill_9_then_recover_equals_training_on_every_event(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(
        f"N_EVENTS = {N_EVENTS}\nCHECKPOINT_AT = {CHECKPOINT_AT}\n"
        f"WITHOUT_FEEDBACK = {WITHOUT_FEEDBACK}\n" + CHILD
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("READY"), child.stderr.read() if child.stderr else line
        assert int(line.split()[1]) == N_EVENTS - WITHOUT_FEEDBACK
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    config = BanditConfig(checkpoint_path=tmp_path / "bandit.ckpt", bits=16, seed=1,
                          feedback_window_s=1e6)
    wh = Warehouse(WarehouseConfig(path=tmp_path / "w.duckdb"),
                   now=lambda: datetime(2025, 7, 1, 1, tzinfo=UTC), lake=False)
    wh.open()
    try:
        endpoints = [Endpoint(id=f"m{k}@p{k}", base_url="https://x.test/v1",
                              wire_format="openai", price_in_per_mtok=1.0 + k,
                              price_out_per_mtok=2.0 + k, context_window=64000)
                     for k in range(3)]
        later = datetime(2025, 7, 1, 1, tzinfo=UTC)
        svc = RouterService(config, wh, endpoints, clock=lambda: later)
        report = svc.recover()
        assert report.restored
        assert report.relearned == N_EVENTS - WITHOUT_FEEDBACK - (CHECKPOINT_AT + 1)
        assert report.pending == WITHOUT_FEEDBACK
        assert isinstance(svc.policy, VWPolicy)

        # the reference: a fresh model trained on every logged event with feedback, in order
        reference = VWPolicy(config)
        decisions = wh.decisions_since(datetime(1970, 1, 1, tzinfo=UTC), unlearned_only=False)
        assert len(decisions) == N_EVENTS
        feedback, outcomes = svc._joined(datetime(1970, 1, 1, tzinfo=UTC))
        for d in decisions:
            if d.event_id not in feedback:
                continue
            objective = Objective(q=float(d.context["r.q"]), c=float(d.context["r.c"]),
                                  t=float(d.context["r.t"]), i=float(d.context["r.i"]))
            reward = compute_reward(d, objective, config,
                                    feedback_score=feedback[d.event_id].score,
                                    outcome=outcomes[d.event_id])
            reference.update(d, reward)
        assert reference.model.learned == svc.policy.model.learned == N_EVENTS - WITHOUT_FEEDBACK
        assert svc.policy.model.weights_json() == reference.model.weights_json()
        learned = {row[0] for row in wh.query("SELECT event_id FROM learned")}
        assert learned == set(feedback)
        reference.close()
        svc.close()
    finally:
        wh.close()
