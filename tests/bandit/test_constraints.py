"""Hard constraints, one reason each (the random-request property is in test_policy_checks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit.constraints import Limits, screen, screen_size
from bandit.errors import NoCandidateError
from bandit.router_string import parse_router
from warehouse.models import Endpoint, LiveStat

NOW = datetime(2025, 8, 1, tzinfo=UTC)


def _e(eid: str, price: float = 1.0, window: int = 8_000) -> Endpoint:
    return Endpoint(id=eid, base_url="https://x.test/v1", wire_format="openai",
                    price_in_per_mtok=price, price_out_per_mtok=price, context_window=window)


class Live:
    def __init__(self, **stats: LiveStat) -> None:
        self.stats = {s.endpoint_id: s for s in stats.values()}

    def get(self, endpoint_id: str) -> LiveStat | None:
        return self.stats.get(endpoint_id)


CATALOG = [_e("a@x"), _e("b@y", price=20.0), _e("c@z", window=1_000), _e("d@x"), _e("e@w")]


def _screen(router: str = "router@t:1", **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {"objective": parse_router(router), "now": NOW,
                               "prompt_tokens": 500, "max_tokens": 600}
    args.update(kw)
    return screen(CATALOG, **args)  # type: ignore[arg-type]


def test_everything_allowed_sorted_by_id() -> None:
    s = _screen(prompt_tokens=100, max_tokens=100)
    assert [e.id for e in s.allowed] == ["a@x", "b@y", "c@z", "d@x", "e@w"]
    assert s.rejected == {}


def test_each_constraint_names_its_reason() -> None:
    live = Live(
        d=LiveStat(endpoint_id="d@x", samples=10, error_rate=0.7),
        e=LiveStat(endpoint_id="e@w", samples=10, ttft_ms_p50=900.0),
    )
    s = _screen(
        "router@t:1|skip_providers:q|ttft<500|c<10",
        live=live,
        cooldowns={"a@x": NOW + timedelta(seconds=5)},
    )
    assert s.allowed == []
    assert "cooling down" in s.rejected["a@x"]
    assert "price" in s.rejected["b@y"]
    assert "context window 1000 < 1100" in s.rejected["c@z"]
    assert "failing" in s.rejected["d@x"]
    assert "TTFT" in s.rejected["e@w"]
    with pytest.raises(NoCandidateError) as info:
        s.require()
    assert "cooling down" in str(info.value) and info.value.status == 422


def test_allow_deny_and_router_filters() -> None:
    s = _screen(limits=Limits(allow=frozenset({"a@x", "b@y", "d@x"}), deny=frozenset({"b@y"})),
                prompt_tokens=10, max_tokens=10)
    assert [e.id for e in s.allowed] == ["a@x", "d@x"]
    s = _screen("router@t:1|providers:x|skip_endpoints:d@x", prompt_tokens=10, max_tokens=10)
    assert [e.id for e in s.allowed] == ["a@x"]
    s = _screen("router@t:1|models:e", prompt_tokens=10, max_tokens=10)
    assert [e.id for e in s.allowed] == ["e@w"]


def test_expired_cooldown_and_few_error_samples_do_not_exclude() -> None:
    live = Live(a=LiveStat(endpoint_id="a@x", samples=2, error_rate=1.0))
    s = _screen(live=live, cooldowns={"a@x": NOW - timedelta(seconds=1)}, prompt_tokens=10,
                max_tokens=10)
    assert "a@x" in [e.id for e in s.allowed]


def test_request_price_limit_and_unknown_ttft_passes() -> None:
    s = _screen("router@t:1|ttft<100", limits=Limits(max_price_per_mtok=5.0), prompt_tokens=10,
                max_tokens=10)
    assert "b@y" in s.rejected and "a@x" not in s.rejected


@given(
    router=st.sampled_from(["router@t:1", "router@t:1|c<5", "router@q:1|c<15|skip_endpoints:a@x",
                            "router@t:1|providers:x,z", "router@c:1|err<0.2"]),
    prompt_tokens=st.integers(0, 9_000),
    max_tokens=st.integers(1, 2_000),
    max_price=st.one_of(st.none(), st.floats(0.0, 30.0)),
    deny=st.sets(st.sampled_from([e.id for e in CATALOG]), max_size=2),
    cooling=st.sets(st.sampled_from([e.id for e in CATALOG]), max_size=2),
)
def test_size_checks_on_a_kept_screening_give_the_full_screening(
    router: str, prompt_tokens: int, max_tokens: int, max_price: float | None, deny: set[str],
    cooling: set[str],
) -> None:
    """``screen_size`` over one screening made without the size checks (what the router keeps
    for every request with the same objective and limits) equals ``screen`` of the request."""
    objective = parse_router(router)
    limits = Limits(deny=frozenset(deny), max_price_per_mtok=max_price)
    live = Live(d=LiveStat(endpoint_id="d@x", samples=10, error_rate=0.9),
                e=LiveStat(endpoint_id="e@w", samples=10, error_rate=0.3))
    common: dict[str, object] = {
        "objective": objective, "now": NOW, "prompt_tokens": prompt_tokens,
        "max_tokens": max_tokens, "live": live, "limits": limits,
        "cooldowns": {eid: NOW + timedelta(seconds=5) for eid in cooling},
    }
    full = screen(CATALOG, **common)  # type: ignore[arg-type]
    base = screen(CATALOG, **common, sizes=False)  # type: ignore[arg-type]
    sized = screen_size(base, CATALOG, objective=objective, prompt_tokens=prompt_tokens,
                        max_tokens=max_tokens, limits=limits,
                        min_context_window=min(e.context_window for e in CATALOG))
    assert [e.id for e in sized.allowed] == [e.id for e in full.allowed]
    assert sized.rejected == full.rejected and sized.listed == full.listed
