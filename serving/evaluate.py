"""``switchyard bandit evaluate``: what other policies would have earned on the logged traffic.

Reads the warehouse's decisions with their feedback and outcomes, rewards each with its own
objective (``bandit.reward``), and estimates with IPS, SNIPS and doubly robust (``bandit.ope``)
the mean reward per decision of: the logging policy as it ran, the current model (the
checkpoint), uniform random, "always endpoint X" for every endpoint seen, other exploration
(``--epsilon``) and other objectives (``--router``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bandit.config import BanditConfig
from bandit.ope import (
    EpsilonTarget,
    Estimate,
    FixedTarget,
    ObjectiveTarget,
    PolicyTarget,
    TargetPolicy,
    UniformTarget,
    evaluate,
)
from bandit.policy import Policy
from bandit.router_string import parse_router
from bandit.service import RouterService
from warehouse.config import WarehouseConfig
from warehouse.models import Endpoint, WireFormat
from warehouse.store import Warehouse


class _Logged:
    """The logging policy itself: each decision's own logged distribution."""

    name = "logged"

    def probabilities(self, decision: object) -> Sequence[float]:
        return decision.probabilities  # type: ignore[attr-defined,no-any-return]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="DuckDB file (default var/switchyard.duckdb)")
    parser.add_argument("--since", help="only decisions from this ISO date/time on")
    parser.add_argument("--router", action="append", default=[],
                        help="also evaluate this objective, e.g. 'router@q:1|c:0.01' (repeatable)")
    parser.add_argument("--epsilon", type=float, action="append", default=[],
                        help="also evaluate the current model with this exploration (repeatable)")
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (default from settings)")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for CIs")


def _endpoints(wh: Warehouse) -> list[Endpoint]:
    rows = wh.query("SELECT id, base_url, wire_format, price_in_per_mtok, price_out_per_mtok, "
                    "context_window FROM endpoints ORDER BY id")
    return [
        Endpoint(id=str(r[0]), base_url=str(r[1]), wire_format=WireFormat(str(r[2])),
                 price_in_per_mtok=float(r[3]), price_out_per_mtok=float(r[4]),  # type: ignore[arg-type]
                 context_window=int(r[5]))  # type: ignore[call-overload]
        for r in rows
    ]


def run(
    warehouse_config: WarehouseConfig,
    bandit_config: BanditConfig,
    *,
    since: datetime | None,
    routers: Sequence[str],
    epsilons: Sequence[float],
    bootstrap: int = 0,
) -> list[Estimate]:
    """Estimates for every target policy, over the decisions logged since ``since``."""
    for eps in epsilons:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"--epsilon must be in [0, 1] (got {eps:g})")
    objectives = [(text, parse_router(text)) for text in routers]
    with Warehouse(warehouse_config, lake=False) as wh:
        endpoints = _endpoints(wh)
        if not endpoints:
            raise ValueError(f"{warehouse_config.path}: no endpoints and no decisions logged yet")
        service = RouterService(bandit_config, wh, endpoints)
        logged = service.rewarded_decisions(since or datetime(1970, 1, 1, tzinfo=UTC))
        if not logged:
            raise ValueError("no decisions with feedback or outcomes to evaluate on yet")
        targets: list[TargetPolicy] = [_Logged(), UniformTarget()]  # type: ignore[list-item]
        checkpoint = bandit_config.checkpoint_path
        if checkpoint.is_file():
            model = Policy.load(checkpoint)
            targets.append(PolicyTarget(model, name=f"current model ({model.version})"))
            targets += [EpsilonTarget(PolicyTarget(model), eps) for eps in epsilons]
        seen = sorted({d.chosen for d, _ in logged})
        targets += [FixedTarget(ep) for ep in seen]
        targets += [ObjectiveTarget(obj, config=bandit_config, name=text) for text, obj in objectives]
        return evaluate(logged, targets, bootstrap=bootstrap)


def render(estimates: Sequence[Estimate]) -> str:
    width = max(len("policy"), *(len(e.policy) for e in estimates))
    lines = [f"{'policy':<{width}}  {'estimator':<9}  {'value':>9}  {'95% interval':>21}  "
             f"{'n':>6}  {'eff. n':>8}"]
    for e in estimates:
        lines.append(f"{e.policy:<{width}}  {e.estimator:<9}  {e.value:>9.4f}  "
                     f"[{e.low:>9.4f}, {e.high:>9.4f}]  {e.n:>6}  {e.effective_n:>8.1f}")
    lines.append("value = estimated mean reward per decision (higher is better; see README: reward)")
    return "\n".join(lines)
