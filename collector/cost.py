"""What the configured probing costs per day, at catalog prices.

Input tokens per probe are estimated as ``ceil(characters / 4)`` of each prompt (plus a few
tokens of chat framing), averaged over the prompts the collector rotates through; output tokens
are the per-probe cap, which is an upper bound. Probes per day are ``86400 / interval_s``, or the
endpoint's hourly budget times 24 when that is lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from collector.catalog import ProbePromptSpec
from collector.config import CollectorConfig
from warehouse.models import Endpoint

DAY_S = 86_400.0
CHAT_FRAMING_TOKENS = 8


def estimate_tokens(text: str) -> int:
    """A provider-independent token estimate: about four characters per token."""
    return math.ceil(len(text) / 4) + CHAT_FRAMING_TOKENS


@dataclass(frozen=True)
class EndpointCost:
    endpoint_id: str
    probes_per_day: float
    input_tokens_per_probe: float
    output_tokens_per_probe: int
    usd_per_day: float


def probing_cost(
    endpoints: Sequence[Endpoint], prompts: Sequence[ProbePromptSpec], config: CollectorConfig
) -> list[EndpointCost]:
    """Cost per endpoint per day of probing as configured, most expensive first."""
    if not prompts:
        raise ValueError("no probe prompts configured")
    mean_in = sum(estimate_tokens(p.text) for p in prompts) / len(prompts)
    rows = []
    for ep in endpoints:
        per_day = DAY_S / config.interval_s
        if ep.probes_per_hour is not None:
            per_day = min(per_day, ep.probes_per_hour * 24)
        out = min(config.max_tokens, ep.max_tokens_per_probe or config.max_tokens)
        usd = per_day * ep.cost_usd(0, out) + per_day * mean_in * ep.price_in_per_mtok / 1e6
        rows.append(EndpointCost(ep.id, per_day, mean_in, out, usd))
    return sorted(rows, key=lambda r: (-r.usd_per_day, r.endpoint_id))


def render_cost(rows: Sequence[EndpointCost]) -> str:
    """A plain-text table with a total line."""
    width = max([len("endpoint"), *(len(r.endpoint_id) for r in rows)])
    lines = [
        f"{'endpoint':<{width}}  {'probes/day':>10}  {'in tok':>7}  {'out tok':>7}  {'USD/day':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r.endpoint_id:<{width}}  {r.probes_per_day:>10.0f}  "
            f"{r.input_tokens_per_probe:>7.0f}  {r.output_tokens_per_probe:>7d}  "
            f"{r.usd_per_day:>10.4f}"
        )
    total = sum(r.usd_per_day for r in rows)
    lines.append(f"{'total':<{width}}  {'':>10}  {'':>7}  {'':>7}  {total:>10.4f}")
    lines.append(f"(about {total * 30:.2f} USD per 30 days; output tokens at the per-probe cap)")
    return "\n".join(lines)
