"""Router strings: the caller's objective and candidate filters in one line.

    router@q:1|c:4.65e-03|t:2.08e-05|i:2.07e-03|providers:openai,groq|ttft<500|c<5

Parts are separated by ``|`` after ``router@``:

- weights ``q`` (quality), ``c`` (price, per USD per million tokens), ``t`` (TTFT, per ms) and
  ``i`` (inter-token latency, per ms); non-negative numbers, at least one positive. Weights
  left out are 0, except that a string with no weight at all takes the default's weights.
  See ``bandit.reward`` for how they form the reward.
- filters ``models:``, ``providers:``, ``endpoints:`` (allow lists) and ``skip_models:``,
  ``skip_providers:``, ``skip_endpoints:`` (deny lists), comma-separated names.
- thresholds ``name<value`` or ``name<=value`` on ``c`` (blended price, USD per million
  tokens), ``ttft`` (live TTFT p50, ms), ``itl`` (live ITL p50, ms) and ``err`` (live error
  rate, 0..1). ``t`` and ``i`` are accepted for ``ttft`` and ``itl``.

>>> obj = parse_router("router@q:1|c:0.01|skip_providers:slowco|ttft<500")
>>> obj.q, obj.c, obj.skip_providers, obj.thresholds[0].name
(1.0, 0.01, ('slowco',), 'ttft')
>>> format_router(obj)
'router@q:1.0|c:0.01|skip_providers:slowco|ttft<500.0'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from bandit.errors import RouterStringError, RouterStringPartError

PREFIX = "router"
WEIGHT_KEYS = ("q", "c", "t", "i")
LIST_KEYS = ("models", "providers", "endpoints", "skip_models", "skip_providers", "skip_endpoints")
THRESHOLD_KEYS = ("c", "ttft", "itl", "err")
_THRESHOLD_ALIASES = {"t": "ttft", "i": "itl", "cost": "c", "error": "err"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-@]*$")
_THRESHOLD_RE = re.compile(r"^([a-z_]+)\s*(<=|<)\s*(.+)$")


@dataclass(frozen=True, slots=True)
class Threshold:
    """An upper bound on one per-endpoint figure: ``name < value`` (or ``<=``)."""

    name: str
    value: float
    inclusive: bool = False

    def allows(self, x: float) -> bool:
        return x <= self.value if self.inclusive else x < self.value

    def __str__(self) -> str:
        return f"{self.name}{'<=' if self.inclusive else '<'}{self.value!r}"


@dataclass(frozen=True, slots=True)
class Objective:
    """A parsed router string. Lists are sorted and deduplicated; equal strings give equal
    objectives whatever the order of their parts."""

    q: float = 0.0
    c: float = 0.0
    t: float = 0.0
    i: float = 0.0
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    skip_models: tuple[str, ...] = ()
    skip_providers: tuple[str, ...] = ()
    skip_endpoints: tuple[str, ...] = ()
    thresholds: tuple[Threshold, ...] = field(default=())

    @property
    def weights(self) -> tuple[float, float, float, float]:
        return (self.q, self.c, self.t, self.i)

    @property
    def needs_feedback(self) -> bool:
        """True when quality counts, so an event waits for its feedback before learning."""
        return self.q > 0

    def threshold(self, name: str) -> Threshold | None:
        for th in self.thresholds:
            if th.name == name:
                return th
        return None

    def with_weights(self, q: float, c: float, t: float, i: float) -> Objective:
        return replace(self, q=q, c=c, t=t, i=i)


def _fail(message: str, part: str, position: int) -> RouterStringPartError:
    return RouterStringPartError(message, part=part, position=position)


def _number(text: str, part: str, position: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(f"{text!r} is not a number", part, position) from None
    if not math.isfinite(value) or value < 0:
        raise _fail(f"{text!r} must be a finite number >= 0", part, position)
    return value


def _names(text: str, part: str, position: int) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(",")]
    for name in names:
        if not _NAME_RE.match(name):
            raise _fail(f"{name!r} is not a valid name", part, position)
    return tuple(sorted(set(names)))


@lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[dict[str, float], dict[str, tuple[str, ...]], tuple[Threshold, ...]]:
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if stripped in ("", PREFIX, PREFIX + "@"):
        return {}, {}, ()
    if not stripped.startswith(PREFIX + "@"):
        raise _fail("a router string starts with 'router@'", stripped[:20], offset)
    body_start = offset + len(PREFIX) + 1
    weights: dict[str, float] = {}
    lists: dict[str, tuple[str, ...]] = {}
    thresholds: dict[str, Threshold] = {}
    position = body_start
    for raw in stripped[len(PREFIX) + 1 :].split("|"):
        part = raw.strip()
        pos = position + (len(raw) - len(raw.lstrip()))
        position += len(raw) + 1
        if not part:
            raise _fail("empty part", raw, pos)
        match = _THRESHOLD_RE.match(part)
        if match:
            key = _THRESHOLD_ALIASES.get(match.group(1), match.group(1))
            if key not in THRESHOLD_KEYS:
                raise _fail(f"unknown threshold {match.group(1)!r}", part, pos)
            if key in thresholds:
                raise _fail(f"threshold {key!r} given twice", part, pos)
            value = _number(match.group(3).strip(), part, pos)
            thresholds[key] = Threshold(key, value, match.group(2) == "<=")
            continue
        key, sep, value_text = part.partition(":")
        key = key.strip()
        if not sep:
            raise _fail("expected key:value or name<value", part, pos)
        if key in WEIGHT_KEYS:
            if key in weights:
                raise _fail(f"weight {key!r} given twice", part, pos)
            weights[key] = _number(value_text.strip(), part, pos)
        elif key in LIST_KEYS:
            if key in lists:
                raise _fail(f"filter {key!r} given twice", part, pos)
            lists[key] = _names(value_text, part, pos)
        else:
            raise _fail(f"unknown key {key!r}", part, pos)
    if weights and not any(v > 0 for v in weights.values()):
        raise RouterStringError(f"router string {text!r}: at least one weight must be > 0")
    ordered = tuple(thresholds[k] for k in THRESHOLD_KEYS if k in thresholds)
    return weights, lists, ordered


def parse_router(text: str, default: Objective | None = None) -> Objective:
    """Parse a router string; weights come from ``default`` when the string gives none.

    Raises ``RouterStringError`` (a ``ValueError``, HTTP 400) naming the offending part and
    its position.
    """
    if not isinstance(text, str):
        raise RouterStringError(f"a router string must be a str, got {type(text).__name__}")
    return _parse_router(text, default)


@lru_cache(maxsize=1024)
def _parse_router(text: str, default: Objective | None) -> Objective:
    # pure, and objectives are frozen: a router parses each string once (errors are not kept)
    weights, lists, thresholds = _parse(text)
    if not weights:
        if default is None:
            raise RouterStringError(f"router string {text!r} gives no weights and no default")
        base = default.weights
    else:
        base = tuple(weights.get(k, 0.0) for k in WEIGHT_KEYS)  # type: ignore[assignment]
    q, c, t, i = base
    return Objective(q=q, c=c, t=t, i=i, thresholds=thresholds, **lists)


def format_router(obj: Objective) -> str:
    """The canonical router string of an objective: ``parse_router(format_router(o)) == o``."""
    parts = [f"{k}:{v!r}" for k, v in zip(WEIGHT_KEYS, obj.weights, strict=True) if v > 0]
    for key in LIST_KEYS:
        names: tuple[str, ...] = getattr(obj, key)
        if names:
            parts.append(f"{key}:{','.join(names)}")
    parts += [str(th) for th in obj.thresholds]
    return PREFIX + "@" + "|".join(parts)
