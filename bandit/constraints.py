"""Hard constraints: which endpoints may serve a request at all (pure).

Checked for every endpoint, in this order, before the policy sees any candidate:

1. the request's allow list (endpoint ids) and deny list;
2. the router string's filters: ``endpoints``/``models``/``providers`` and their ``skip_`` forms;
3. the context window: ``context_window >= prompt_tokens + max_tokens``;
4. price: the blended price of this call, ``(in * price_in + out * price_out) / (in + out)``
   in USD per million tokens, must be below the request's ``max_price_per_mtok`` and the
   router string's ``c<`` threshold;
5. cooldown: endpoints whose cooldown (``endpoint id -> until``, owned by the caller, e.g. set
   after a 429 with Retry-After) has not yet passed;
6. failing: live error rate (decayed when available) >= ``max_error_rate`` over at least
   ``min_error_samples`` samples, and the router string's ``err<`` threshold;
7. the router string's latency thresholds ``ttft<`` and ``itl<`` on the live p50 figures
   (an endpoint without samples passes: it cannot be judged yet).

``screen`` returns the survivors sorted by endpoint id and the reason for each rejection;
``NoCandidateError`` (HTTP 422) is raised by the caller when none survives, naming them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bandit.errors import NoCandidateError
from bandit.reward import blended_price
from bandit.router_string import Objective, Threshold
from warehouse.models import Endpoint, LiveStat


class LiveStatsSource(Protocol):
    """Where live figures come from (``Warehouse.live`` has this shape)."""

    def get(self, endpoint_id: str) -> LiveStat | None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request hard limits given by the caller (in addition to the router string)."""

    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    max_price_per_mtok: float | None = None


@dataclass(frozen=True, slots=True)
class Screening:
    """The outcome of ``screen``: allowed endpoints (sorted by id) and rejected ones."""

    allowed: list[Endpoint]
    rejected: dict[str, str] = field(default_factory=dict)
    listed: frozenset[str] = frozenset()  # rejected by an allow, deny or router list

    def require(self) -> list[Endpoint]:
        """The allowed endpoints, or ``NoCandidateError`` naming every rejection."""
        if not self.allowed:
            reasons = "; ".join(f"{eid}: {why}" for eid, why in sorted(self.rejected.items()))
            raise NoCandidateError(f"no endpoint satisfies the constraints ({reasons or 'none'})")
        return self.allowed


def _error_rate(stat: LiveStat) -> float:
    return stat.error_rate_ewma if stat.error_rate_ewma is not None else stat.error_rate


def _size_or_price(e: Endpoint, prompt_tokens: int, max_tokens: int, max_price: float | None,
                   th_price: Threshold | None) -> str | None:
    """Checks 3 and 4, the only ones that depend on the size of the request."""
    need = prompt_tokens + max_tokens
    if e.context_window < need:
        return f"context window {e.context_window} < {need} tokens"
    if max_price is not None or th_price is not None:
        price = blended_price(e.price_in_per_mtok, e.price_out_per_mtok, prompt_tokens, max_tokens)
        if max_price is not None and price > max_price:
            return f"price {price:.4g} USD/Mtok above the request's {max_price:g}"
        if th_price is not None and not th_price.allows(price):
            return f"price {price:.4g} USD/Mtok fails the router's {th_price}"
    return None


def screen_size(
    base: Screening,
    endpoints: Iterable[Endpoint],
    *,
    objective: Objective,
    prompt_tokens: int,
    max_tokens: int,
    limits: Limits,
    min_context_window: int | None = None,
) -> Screening:
    """``screen`` of a request of this size, from ``base``, the same endpoints screened with
    ``sizes=False`` (one such screening serves every request with the same objective and
    limits). ``base`` itself when no endpoint fails the context window or price checks;
    otherwise their reasons replace those of the later checks, as in ``screen``.
    ``min_context_window`` (the catalog's smallest) skips the loop for requests without a
    price limit that fit every window."""
    max_price = limits.max_price_per_mtok
    th_price = objective.threshold("c")
    if max_price is None and th_price is None and min_context_window is not None:
        if prompt_tokens + max_tokens <= min_context_window:
            return base
    failed = {
        e.id: why
        for e in endpoints
        if e.id not in base.listed
        and (why := _size_or_price(e, prompt_tokens, max_tokens, max_price, th_price)) is not None
    }
    if not failed:
        return base
    rejected = {}
    for e in endpoints:
        why = failed.get(e.id) or base.rejected.get(e.id)
        if why is not None:
            rejected[e.id] = why
    return Screening([e for e in base.allowed if e.id not in failed], rejected, base.listed)


def screen(
    endpoints: Iterable[Endpoint],
    *,
    objective: Objective,
    now: datetime,
    prompt_tokens: int,
    max_tokens: int,
    live: LiveStatsSource | None = None,
    cooldowns: Mapping[str, datetime] | None = None,
    limits: Limits | None = None,
    max_error_rate: float = 0.5,
    min_error_samples: int = 5,
    sizes: bool = True,
) -> Screening:
    """Split endpoints into allowed (sorted by id) and rejected-with-reason; without
    ``sizes``, checks 3 and 4 are left to ``screen_size``."""
    limits = limits or Limits()
    cooldowns = cooldowns or {}
    max_price = limits.max_price_per_mtok
    th_price = objective.threshold("c")
    th_err = objective.threshold("err")
    th_ttft = objective.threshold("ttft")
    th_itl = objective.threshold("itl")
    o = objective

    lists = bool(limits.allow is not None or limits.deny or o.endpoints or o.models or o.providers
                 or o.skip_endpoints or o.skip_models or o.skip_providers)

    def reason(e: Endpoint) -> str | None:
        """Checks 3-7 (``listed`` is checked first, by the loop below)."""
        eid = e.id
        if sizes:
            why = _size_or_price(e, prompt_tokens, max_tokens, max_price, th_price)
            if why is not None:
                return why
        until = cooldowns.get(eid)
        if until is not None and until > now:
            return f"cooling down until {until.isoformat()}"
        stat = live.get(eid) if live is not None else None
        if stat is None:
            return None
        rate = _error_rate(stat)
        if stat.samples >= min_error_samples and rate >= max_error_rate:
            return f"failing: error rate {rate:.2f} >= {max_error_rate:g}"
        if th_err is not None and stat.samples and not th_err.allows(rate):
            return f"error rate {rate:.2f} fails the router's {th_err}"
        if th_ttft is not None:
            ttft = stat.ttft_ms_p50 if stat.ttft_ms_p50 is not None else stat.ttft_ms_ewma
            if ttft is not None and not th_ttft.allows(ttft):
                return f"live TTFT p50 {ttft:.0f} ms fails the router's {th_ttft}"
        if th_itl is not None:
            itl = stat.itl_ms_p50 if stat.itl_ms_p50 is not None else stat.itl_ms_ewma
            if itl is not None and not th_itl.allows(itl):
                return f"live ITL p50 {itl:.1f} ms fails the router's {th_itl}"
        return None

    def listed(e: Endpoint) -> str | None:
        """Allow and deny lists of the request and the router (checked only when any is set)."""
        eid = e.id
        if limits.allow is not None and eid not in limits.allow:
            return "not in the request's allow list"
        if eid in limits.deny:
            return "in the request's deny list"
        if o.endpoints and eid not in o.endpoints:
            return "not in the router's endpoints"
        if o.models and e.model not in o.models:
            return f"model {e.model} not in the router's models"
        if o.providers and e.provider not in o.providers:
            return f"provider {e.provider} not in the router's providers"
        if eid in o.skip_endpoints:
            return "skipped by the router"
        if o.skip_models and e.model in o.skip_models:
            return f"model {e.model} skipped by the router"
        if o.skip_providers and e.provider in o.skip_providers:
            return f"provider {e.provider} skipped by the router"
        return None

    allowed: list[Endpoint] = []
    rejected: dict[str, str] = {}
    listed_ids: set[str] = set()
    for e in endpoints:
        why = listed(e) if lists else None
        if why is not None:
            listed_ids.add(e.id)
        else:
            why = reason(e)
        if why is None:
            allowed.append(e)
        else:
            rejected[e.id] = why
    allowed.sort(key=lambda e: e.id)
    return Screening(allowed, rejected, frozenset(listed_ids))
