"""A realistic probe history from the simulator's profiles, without any HTTP.

``switchyard warehouse seed --days 30`` draws one probe per endpoint per interval over the last
``days`` days with the same pure sampling the simulator serves (``SimProfile.sample``): daily
drift at each row's UTC hour, step changes, outage windows, 429 bursts, drops and error events.
The rows are what the collector would have recorded, so the time-of-day report shows real
structure on a fresh install.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from collector.simulator import SampledCall, SimOutcome, SimProfile, call_rng
from warehouse.models import Outcome, ProbeResult, Source

SEED_MAX_TOKENS = 24
SEED_INPUT_TOKENS = 24
STATUS = {SimOutcome.HTTP_429: 429, SimOutcome.HTTP_500: 500}
DETAIL = {
    SimOutcome.HTTP_429: "HTTP 429: rate limited (seeded history)",
    SimOutcome.HTTP_500: "HTTP 500: server error (seeded history)",
    SimOutcome.HANG: "no first token before the deadline (seeded history)",
    SimOutcome.REFUSE: "connection refused (seeded history)",
    SimOutcome.DROP: "stream ended before its terminal event (seeded history)",
    SimOutcome.ERROR_EVENT: "overloaded_error inside a 200 stream (seeded history)",
    SimOutcome.MALFORMED: "invalid JSON in a data line (seeded history)",
}
TIMEOUT_MS = 30_000.0


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def to_result(profile: SimProfile, call: SampledCall, started_at: datetime) -> ProbeResult:
    """The row the collector would have recorded for ``call``."""
    n = call.chunks_sent
    gaps = list(call.sent_gaps_ms)
    tokens = call.sent_tokens
    base = {
        "endpoint_id": profile.endpoint_id,
        "started_at": started_at,
        "source": Source.PROBE,
        "prompt_name": "seed",
        "outcome": call.outcome,
        "status_code": STATUS.get(call.kind, 200 if n else None),
        "detail": DETAIL.get(call.kind, ""),
        "conn_reused": True,
    }
    if call.kind is SimOutcome.HANG:
        return ProbeResult(**base, e2e_ms=TIMEOUT_MS)
    if n == 0:
        return ProbeResult(
            **base,
            e2e_ms=call.stream_ms,
            retry_after_s=call.retry_after_s if call.kind is SimOutcome.HTTP_429 else None,
        )
    itl = (
        {
            "itl_ms_mean": statistics.fmean(gaps),
            "itl_ms_p50": statistics.median(gaps),
            "itl_ms_p90": _quantile(gaps, 0.9),
            "itl_ms_max": max(gaps),
        }
        if gaps
        else {}
    )
    tpot = sum(gaps) / (tokens - 1) if tokens > 1 and gaps else None
    ok = call.outcome is Outcome.OK
    return ProbeResult(
        **base,
        ttft_ms=call.ttft_ms,
        e2e_ms=call.stream_ms,
        tpot_ms=tpot,
        chunks=n,
        tokens_per_chunk=tokens / n,
        input_tokens=SEED_INPUT_TOKENS if ok else None,
        output_tokens=tokens,
        usage_reported=ok,
        **itl,
    )


def seed_history(
    profiles: Sequence[SimProfile],
    sink: Callable[[list[ProbeResult]], None],
    *,
    days: float,
    interval_s: float = 60.0,
    seed: int = 0,
    now: datetime | None = None,
    batch: int = 20_000,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """Write ``days`` of probes per profile through ``sink`` (e.g. ``Warehouse.add_probes``).

    Returns the number of rows. Deterministic for a given ``seed`` and ``now``.
    """
    if days <= 0:
        raise ValueError(f"days must be positive (got {days:g})")
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive (got {interval_s:g})")
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    steps = int(days * 86_400 / interval_s)
    rows: list[ProbeResult] = []
    written = 0
    for p_index, profile in enumerate(profiles):
        offset = (p_index * 7.0) % interval_s  # endpoints are not probed in lockstep
        if progress is not None and p_index:
            progress(profiles[p_index - 1].endpoint_id, steps)
        for k in range(steps):
            elapsed = k * interval_s + offset
            at = start + timedelta(seconds=elapsed)
            hour = at.hour + at.minute / 60.0
            call = profile.sample(call_rng(seed, profile.endpoint_id, k), hour, elapsed,
                                  SEED_MAX_TOKENS)
            rows.append(to_result(profile, call, at))
            if len(rows) >= batch:
                sink(rows)
                written += len(rows)
                rows = []
    if rows:
        sink(rows)
        written += len(rows)
    if progress is not None and profiles:
        progress(profiles[-1].endpoint_id, steps)
    return written
