from __future__ import annotations

from datetime import UTC, datetime

from collector.config import CollectorConfig
from collector.manners import Manners
from warehouse.models import Endpoint, Outcome, ProbeResult


class FakeClock:
    """A settable monotonic clock (a seam of Manners, not a patch)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ep(**kw: object) -> Endpoint:
    base = dict(id="m@p", base_url="http://127.0.0.1:9/v1", wire_format="openai",
                price_in_per_mtok=1, price_out_per_mtok=1, context_window=100)
    base.update(kw)
    return Endpoint.model_validate(base)


def result(outcome: Outcome, retry_after: float | None = None) -> ProbeResult:
    return ProbeResult(endpoint_id="m@p", started_at=datetime.now(UTC), outcome=outcome,
                       retry_after_s=retry_after)


def test_retry_after_pauses_until_then() -> None:
    clock = FakeClock()
    m = Manners(CollectorConfig(), clock=clock)
    m.record(result(Outcome.HTTP_429, retry_after=12))
    assert "Retry-After 12s" in (m.skip_reason(ep()) or "")
    clock.t += 11.9
    assert m.skip_reason(ep()) is not None
    clock.t += 0.2
    assert m.skip_reason(ep()) is None


def test_failures_back_off_exponentially_and_reset_on_success() -> None:
    clock = FakeClock()
    cfg = CollectorConfig(backoff_base_s=10, backoff_max_s=35)
    m = Manners(cfg, clock=clock)
    pauses = []
    for _ in range(4):
        m.record(result(Outcome.TIMEOUT))
        pauses.append(m.state("m@p").paused_until - clock.t)
    assert pauses == [10, 20, 35, 35]
    clock.t += 40
    assert m.skip_reason(ep()) is None
    m.record(result(Outcome.OK))
    assert m.state("m@p").consecutive_failures == 0
    m.record(result(Outcome.HTTP_5XX))
    assert m.state("m@p").paused_until - clock.t == 10


def test_429_without_retry_after_backs_off() -> None:
    clock = FakeClock()
    m = Manners(CollectorConfig(backoff_base_s=7), clock=clock)
    m.record(result(Outcome.HTTP_429))
    assert m.state("m@p").paused_until - clock.t == 7


def test_hourly_budget() -> None:
    clock = FakeClock()
    m = Manners(CollectorConfig(), clock=clock)
    endpoint = ep(probes_per_hour=3)
    for _ in range(3):
        assert m.skip_reason(endpoint) is None
        m.started("m@p")
        clock.t += 60
    assert "budget of 3 probes per hour" in (m.skip_reason(endpoint) or "")
    clock.t += 3600 - 3 * 60 + 1  # the first probe leaves the sliding hour
    assert m.skip_reason(endpoint) is None


def test_max_tokens_per_probe_caps_output() -> None:
    m = Manners(CollectorConfig(max_tokens=64))
    assert m.max_tokens_for(ep()) == 64
    assert m.max_tokens_for(ep(max_tokens_per_probe=16)) == 16
    assert m.max_tokens_for(ep(max_tokens_per_probe=500)) == 64
