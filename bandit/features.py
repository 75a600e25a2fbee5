"""Features: prompt text and endpoint figures in, Vowpal Wabbit example text out (pure).

One decision is one multi-line VW example: a ``shared`` line describing the request and one
line per candidate endpoint. Namespaces (VW names them by first letter; interactions such as
``PM`` in ``BanditConfig.interactions`` cross them):

    shared |P the prompt's distinct words (ASCII letters and digits, stop words dropped), the
              first and last ``max_prompt_features / 2`` of them
           |L prompt shape: length buckets, language, code/math/structured/units markers,
              task type, multiple-choice options (count, option and stem length, numeric
              options, roman-numbered statements), share of digits
           |T hour of day as sin/cos
           |W the caller's objective: each weight's share of the reward scale
    action |A endpoint, model and provider ids
           |M model id alone (crossed with P and L: prompt-dependent model quality)
           |X price, context window and live stats (TTFT and ITL p50/p90, tokens/s, error and
              429 rates, age of the newest sample), scaled to about 0..2

Everything a decision used is flattened into ``Decision.context`` (``p.*`` prompt, ``r.*``
request, ``a.<endpoint id>.<name>`` per candidate), and ``shared_line``/``action_line``
rebuild the exact same text from that mapping, so a logged decision can be learned (or
evaluated) again after a restart, bit for bit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta

from bandit.errors import NoCandidateError
from warehouse.convert import ArmRef, arm_ref, compact_json, joined_context
from warehouse.models import Endpoint, LiveStat

Value = float | str
Context = dict[str, Value]

CHARS_PER_TOKEN = 4.0  # prompt tokens are estimated from characters when not given
SCAN_CHARS = 1_000  # words and markers come from at most this many characters at each end
PRICE_REF_PER_MTOK = 10.0  # reward scale references (see bandit.reward)
TTFT_REF_MS = 1_000.0
ITL_REF_MS = 50.0

_OPTION_RE = re.compile(r"(?m)^[ \t]*\(?([A-Ha-h])[.)][ \t]+(.*)$")
_NUMERIC_OPTION_RE = re.compile(r"^[-+$€£]?[0-9][0-9.,/%: ]*\S{0,6}$")
_CODE_LINE_RE = re.compile(
    r"(?m)^[ \t]*(?:def|class|import|from|function|const|let|var|public|#include)[ (]"
)
_ARITH_RE = re.compile(r"[0-9] ?[-+*/^=] ?[0-9]")
_MATH_MARKS = ("\\frac", "\\sqrt", "sqrt(", "∫", "∑", "√", "≤", "≥", "≠", "π", "$$")
_CODE_MARKS = ("```", ";\n", "{\n", "}\n", "=>", "();")
_OPTION_HINTS = ("A.", "A)", "a.", "a)")
_ROMAN_RE = re.compile(r"(?m)^[ \t]*(?:I|II|III|IV)[.)] ")
_UNIT_WORDS = frozenset("kg mol ms hz nm km cm mm ev kj joules newtons volts ohm watts".split())
_STRUCT_WORDS = frozenset("json yaml csv xml table schema bullet bullets markdown".split())
_TASK_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("translate", frozenset("translate translation translated translating".split())),
    ("summarize", frozenset("summarize summarise summary tldr".split())),
    ("classify", frozenset("classify categorize categorise label sentiment".split())),
    ("extract", frozenset("extract".split())),
    ("write", frozenset("write draft compose rewrite".split())),
)
_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("cjk", re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
)
# every byte that is not an ASCII letter or digit becomes a space before splitting
_SPLIT = bytes(c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
_DIGITS = b"0123456789"
_EN_WORDS = frozenset(
    "the of and to in is that for it with as was on are be this which by an or from".split()
)
_STOP = _EN_WORDS | frozenset("a at its their what following these those not".split())
_BAD_NAME = re.compile(r"[^A-Za-z0-9._@/\-]")

#: Numeric action features, in line order: (context name, VW name).
ACTION_NUMERIC: tuple[tuple[str, str], ...] = (
    ("price_in", "pin"),
    ("price_out", "pout"),
    ("ctx", "ctx"),
    ("ttft_p50", "t50"),
    ("ttft_p90", "t90"),
    ("itl_p50", "i50"),
    ("itl_p90", "i90"),
    ("tps", "tps"),
    ("err", "err"),
    ("r429", "r429"),
    ("age_s", "age"),
)
_SCALE: dict[str, Callable[[float], float]] = {
    "price_in": lambda v: math.log1p(v) / 4.0,
    "price_out": lambda v: math.log1p(v) / 4.0,
    "ctx": lambda v: math.log2(max(v, 1.0)) / 20.0,
    "ttft_p50": lambda v: v / 1000.0,
    "ttft_p90": lambda v: v / 1000.0,
    "itl_p50": lambda v: v / 50.0,
    "itl_p90": lambda v: v / 50.0,
    "tps": lambda v: v / 100.0,
    "err": lambda v: v,
    "r429": lambda v: v,
    "age_s": lambda v: math.log1p(v / 60.0) / 5.0,
}


def vw_name(text: str) -> str:
    """A string made safe as a VW feature name (no spaces, ``|`` or ``:``)."""
    return _BAD_NAME.sub("_", text) or "_"


def _num(x: float) -> str:
    """A feature value as VW text; magnitudes below 1e-9 are written as 0 (VW's float32
    parser turns them into denormals, which SquareCB answers with NaN, measured)."""
    return f"{x:.6g}" if abs(x) >= 1e-9 else "0"


def estimate_tokens(text: str) -> int:
    """Prompt tokens estimated from characters (about four per token)."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def _language(text: str, words: Sequence[str]) -> str:
    if not text.isascii():
        counts = {name: len(rx.findall(text)) for name, rx in _SCRIPTS}
        name, n = max(counts.items(), key=lambda kv: kv[1])
        if n > 0.2 * len(text) or (n > 20 and name == "cjk"):
            return name
    if not words:
        return "other"
    en = sum(1 for w in words[:200] if w in _EN_WORDS)
    return "en" if en >= 0.08 * min(len(words), 200) else "latin"


def _task(wordset: set[str], scan: str, n_options: int, code: bool, math_: bool) -> str:
    if n_options >= 2:
        return "choice"
    for name, keys in _TASK_WORDS:
        if not keys.isdisjoint(wordset):
            return name
    if code:
        return "code"
    if math_:
        return "math"
    return "qa" if "?" in scan[-300:] else "chat"


def _select_words(words: Sequence[str], cap: int) -> list[str]:
    unique = [w for w in dict.fromkeys(words) if w not in _STOP]
    if len(unique) <= cap:
        return unique
    half = cap // 2
    return unique[:half] + unique[-(cap - half) :]


def prompt_context(text: str, *, max_words: int, prompt_tokens: int | None = None) -> Context:
    """The ``p.*`` features of a prompt (pure). Words and markers come from the first and
    last ``SCAN_CHARS`` characters, so the cost does not grow with the prompt (~0.1 ms)."""
    if len(text) > 2 * SCAN_CHARS:
        tail = text[-SCAN_CHARS:]
        scan = text[:SCAN_CHARS].lower() + " \n " + tail.lower()
    else:
        tail = text
        scan = text.lower()
    raw = scan.encode()
    words = raw.translate(_SPLIT).decode("ascii").split()
    wordset = set(words)
    has_options = any(m in tail for m in _OPTION_HINTS)
    options = _OPTION_RE.findall(tail) if has_options else []
    option_texts = [o[1].strip() for o in options]
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    code = any(m in scan for m in _CODE_MARKS) or _CODE_LINE_RE.search(scan) is not None
    math_ = any(m in scan for m in _MATH_MARKS) or (
        digits > 1 and _ARITH_RE.search(scan[:1000]) is not None
    )
    tokens = prompt_tokens if prompt_tokens is not None else estimate_tokens(text)
    ctx: Context = {
        "p.words": " ".join(_select_words(words, max_words)) if max_words else "",
        "p.tokens": float(tokens),
        "p.lang": _language(scan, words),
        "p.code": 1.0 if code else 0.0,
        "p.math": 1.0 if math_ else 0.0,
        "p.struct": 0.0 if _STRUCT_WORDS.isdisjoint(wordset) else 1.0,
        "p.task": _task(wordset, scan, len(options), code, math_),
        "p.options": float(len(options)),
        "p.digits": digits / max(1, len(raw)),
    }
    if "I" in tail and _ROMAN_RE.search(tail):
        ctx["p.roman"] = 1.0
    if not _UNIT_WORDS.isdisjoint(wordset):
        ctx["p.units"] = 1.0
    if options:
        ctx["p.option_chars"] = sum(len(o) for o in option_texts) / len(option_texts)
        first = tail.find(options[0][1]) if options[0][1] else -1
        stem_chars = len(text) - len(tail) + first if first >= 0 else len(text)
        ctx["p.stem_chars"] = float(stem_chars)
        ctx["p.numeric_options"] = float(
            sum(1 for o in option_texts if _NUMERIC_OPTION_RE.match(o)) * 2 >= len(options)
        )
    return ctx


def request_context(
    now: datetime, weights: tuple[float, float, float, float], max_tokens: int
) -> Context:
    """The ``r.*`` features: hour of day (UTC), the objective's weights, max_tokens."""
    hour = now.hour + now.minute / 60.0 + now.second / 3600.0
    q, c, t, i = weights
    return {
        "r.hour": round(hour, 4),
        "r.q": q,
        "r.c": c,
        "r.t": t,
        "r.i": i,
        "r.max_tokens": float(max_tokens),
    }


def reward_scale(q: float, c: float, t: float, i: float) -> float:
    """The objective's natural scale: quality 1, $10/Mtok, 1 s TTFT and 50 ms ITL weighed."""
    return q + c * PRICE_REF_PER_MTOK + t * TTFT_REF_MS + i * ITL_REF_MS


def _bucket(x: float, per_octave: int = 1) -> int:
    return int(per_octave * math.log2(x + 1.0))


def _num_of(ctx: Mapping[str, Value], key: str) -> float:
    value = ctx.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def prompt_namespaces(ctx: Mapping[str, Value]) -> str:
    """The ``|P`` (words) and ``|L`` (shape) namespaces of a context mapping's ``p.*`` keys."""

    def num(key: str) -> float:
        return _num_of(ctx, key)

    tokens = num("p.tokens")
    shape = [
        f"lb{_bucket(tokens, 2)}",
        f"ln:{_num(math.log2(tokens + 1.0) / 16.0)}",
        f"lang={vw_name(str(ctx.get('p.lang', 'other')))}",
        f"task={vw_name(str(ctx.get('p.task', 'chat')))}",
        f"db{min(5, int(num('p.digits') * 50))}",
    ]
    for flag in ("code", "math", "struct", "roman", "units"):
        if num(f"p.{flag}") > 0:
            shape.append(flag)
    n_options = int(num("p.options"))
    if n_options:
        shape.append(f"opts{min(n_options, 8)}")
        shape.append(f"ob{_bucket(num('p.option_chars'), 2)}")
        shape.append(f"sb{_bucket(num('p.stem_chars'), 2)}")
        if num("p.numeric_options") > 0:
            shape.append("numopt")
    words = str(ctx.get("p.words", ""))
    return f"{'|P ' + words + ' ' if words else ''}|L {' '.join(shape)}"


def shared_line(ctx: Mapping[str, Value]) -> str:
    """The VW ``shared`` line of a context mapping (``p.*`` and ``r.*`` keys; missing keys
    take neutral defaults, so decisions logged by older versions still rebuild)."""

    def num(key: str) -> float:
        return _num_of(ctx, key)

    return (
        f"shared {prompt_namespaces(ctx)}{_time_namespace(num('r.hour'))}"
        f"{_weights_namespace(num('r.q'), num('r.c'), num('r.t'), num('r.i'))}"
    )


@lru_cache(maxsize=1024)
def _time_namespace(hour: float) -> str:
    # the hour is logged to 4 decimals: consecutive requests share it, and this text
    angle = 2.0 * math.pi * hour / 24.0
    return f" |T hs:{_num(math.sin(angle))} hc:{_num(math.cos(angle))}"


@lru_cache(maxsize=1024)
def _weights_namespace(q: float, c: float, t: float, i: float) -> str:
    # one text per objective
    scale = reward_scale(q, c, t, i) or 1.0
    w = (q / scale, c * PRICE_REF_PER_MTOK / scale, t * TTFT_REF_MS / scale, i * ITL_REF_MS / scale)
    return f" |W q:{_num(w[0])} c:{_num(w[1])} t:{_num(w[2])} i:{_num(w[3])}"


def action_line(endpoint_id: str, feats: Mapping[str, Value]) -> str:
    """The VW line of one candidate from its (unprefixed) action features."""
    model = vw_name(str(feats["model"]))
    parts = [
        f"|A e={vw_name(endpoint_id)} m={model} p={vw_name(str(feats['provider']))}",
        f"|M {model}",
        "|X",
    ]
    for name, short in ACTION_NUMERIC:
        value = feats.get(name)
        if value is None:
            if name in ("ttft_p50", "itl_p50"):
                parts.append(f"{short}_na")
            continue
        parts.append(f"{short}:{_num(_SCALE[name](float(value)))}")
    return " ".join(parts)


def _sig(value: float) -> float:
    """``value`` to 4 significant digits: live figures are estimates, and each decision logs
    them for every candidate (``207.49139528992097`` ms would cost 18 bytes, ``207.5`` 5)."""
    return float(f"{value:.4g}")


def action_features(endpoint: Endpoint, stat: LiveStat | None, now: datetime) -> Context:
    """Unprefixed action features of one endpoint and its live stat (``None``: no samples);
    live figures to 4 significant digits."""
    feats: Context = {
        "model": endpoint.model,
        "provider": endpoint.provider,
        "price_in": float(endpoint.price_in_per_mtok),
        "price_out": float(endpoint.price_out_per_mtok),
        "ctx": float(endpoint.context_window),
    }
    if stat is None:
        return feats
    pairs = (
        ("ttft_p50", stat.ttft_ms_p50 if stat.ttft_ms_p50 is not None else stat.ttft_ms_ewma),
        ("ttft_p90", stat.ttft_ms_p90),
        ("itl_p50", stat.itl_ms_p50 if stat.itl_ms_p50 is not None else stat.itl_ms_ewma),
        ("itl_p90", stat.itl_ms_p90),
        ("tps", stat.tokens_per_s if stat.tokens_per_s is not None else stat.tokens_per_s_ewma),
    )
    for name, value in pairs:
        if value is not None:
            feats[name] = _sig(value)
    if stat.samples:
        feats["err"] = _sig(stat.error_rate)
        feats["r429"] = _sig(stat.rate_429)
    age = stat.age_s(now)
    if age is not None:
        feats["age_s"] = round(age, 1)
    return feats


@dataclass(frozen=True, slots=True)
class Arm:
    """One candidate endpoint as the policy sees it: features, logged form and VW line."""

    endpoint_id: str
    features: Mapping[str, Value]
    line: str
    logged: Mapping[str, Value]  # the features under ``a.<endpoint id>.`` keys
    # (price_in, price_out, ttft_p50 or None, itl_p50 or None) for quick ranking
    figures: tuple[float, float, float | None, float | None] = field(default=(0.0, 0.0, None, None))
    # ``logged_ref``, made once per arm when first logged (by ``Warehouse.add_decision``,
    # on the router's thread; see ``LoggedContext``)
    _ref: list[ArmRef] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def build(cls, endpoint_id: str, features: Mapping[str, Value]) -> Arm:
        prefix = f"a.{endpoint_id}."
        logged = {prefix + k: v for k, v in features.items()}

        def num(name: str) -> float | None:
            value = features.get(name)
            return float(value) if isinstance(value, int | float) else None

        figures = (num("price_in") or 0.0, num("price_out") or 0.0, num("ttft_p50"),
                   num("itl_p50"))
        return cls(endpoint_id, features, action_line(endpoint_id, features), logged, figures)

    @property
    def logged_ref(self) -> ArmRef:
        """``(arm_id, endpoint id, features JSON)``: this arm's ``decision_arms`` row, which
        every decision listing it refers to by ``arm_id`` (``warehouse.convert.stored_parts``)."""
        if not self._ref:  # same value if two threads race here
            self._ref.append(arm_ref(self.endpoint_id, compact_json(self.features)))
        return self._ref[0]


def check_example_lines(lines: Iterable[str]) -> None:
    """``ValueError`` when a VW example line holds a newline (VW would read two lines)."""
    if any("\n" in line or "\r" in line for line in lines):
        raise ValueError("an example line must not contain a newline")


class Candidates(tuple[Arm, ...]):
    """Arms in canonical order (sorted by endpoint id, each once), with what every decision
    over them reuses: their ids, their VW action lines joined and checked, their logged
    features and ``decision_arms`` rows, and their ranking figures.

    ``RouterService`` keeps one while the catalog, the live stats and the cooldowns stand (a
    fraction of a second to seconds), so a decision does not redo this for every candidate.
    It is a tuple of its arms, so policies take it wherever they take a sequence of arms.

    >>> arms = [Arm.build(e, {"model": e[0], "provider": "p"}) for e in ("b@p", "a@p")]
    >>> Candidates(arms).ids
    ('a@p', 'b@p')
    """

    ids: tuple[str, ...]
    lines: tuple[str, ...]
    action_text: str
    logged: tuple[Mapping[str, Value], ...]
    refs: tuple[ArmRef, ...]
    figures: tuple[tuple[float, float, float | None, float | None], ...]
    _by_id: dict[str, Arm]

    def __new__(cls, arms: Iterable[Arm]) -> Candidates:
        ordered = sorted(arms, key=lambda a: a.endpoint_id)
        if not ordered:
            raise NoCandidateError("no candidate endpoint to choose from")
        for prev, cur in zip(ordered, ordered[1:], strict=False):
            if prev.endpoint_id == cur.endpoint_id:
                raise ValueError(f"endpoint {cur.endpoint_id!r} offered twice")
        lines = tuple(a.line for a in ordered)
        check_example_lines(lines)
        self = super().__new__(cls, ordered)
        self.ids = tuple(a.endpoint_id for a in ordered)
        self.lines = lines
        self.action_text = "\n".join(lines)
        self.logged = tuple(a.logged for a in ordered if a.logged)
        self.refs = tuple(a.logged_ref for a in ordered if a.logged)
        self.figures = tuple(a.figures for a in ordered)
        self._by_id = dict(zip(self.ids, ordered, strict=True))
        return self

    def arm_of(self, endpoint_id: str) -> Arm | None:
        """The arm of ``endpoint_id`` (``None``: not a candidate)."""
        return self._by_id.get(endpoint_id)


class LoggedContext(Mapping[str, Value]):
    """A decision's flattened context (``p.*``, ``r.*`` and ``a.<endpoint id>.*`` keys),
    kept cheap for a router deciding a thousand times a second.

    It holds the request's features and each candidate's logged features as they are (the
    ``Arm``'s own dicts, shared while its live stats stand) plus the ``decision_arms`` row
    each arm made once: plain dicts of numbers and strings, which Python's garbage collector
    stops tracking, and tuples of strings and ints. ``stored_parts`` (``Warehouse.add_decision``'s)
    encodes only the request's own keys, the candidates being stored once each; reading a key
    (learning, evaluation, the dashboard) merges the dicts once. A merged 250-key dict per
    decision, held while the decision waits an hour for its feedback, made full collections
    take 400 ms at 1,000 decisions/s.
    """

    __slots__ = ("_features", "_logged", "_merged", "_refs")

    def __init__(self, features: Mapping[str, Value], arms: Sequence[Arm]) -> None:
        self._features = features
        if type(arms) is Candidates:
            self._logged, self._refs = arms.logged, arms.refs
        else:
            self._logged = tuple(arm.logged for arm in arms if arm.logged)
            self._refs = tuple(arm.logged_ref for arm in arms if arm.logged)
        self._merged: dict[str, Value] | None = None

    def _dict(self) -> dict[str, Value]:
        merged = self._merged
        if merged is None:
            merged = dict(self._features)
            for logged in self._logged:
                merged.update(logged)
            self._merged = merged
        return merged

    def __getitem__(self, key: str) -> Value:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return f"LoggedContext({self._dict()!r})"

    def stored_parts(self) -> tuple[str, tuple[ArmRef, ...]]:
        """The JSON text of the request's own keys and the candidates' ``decision_arms``
        rows: the mapping as the warehouse stores it (``warehouse.convert.stored_parts``)."""
        return compact_json(self._features), self._refs

    def json_text(self) -> str:
        """The mapping as compact JSON in its whole stored form, the candidates nested under
        ``"a"`` (``warehouse.convert.stored_context``)."""
        return joined_context(compact_json(self._features), [(r[1], r[2]) for r in self._refs])


class ArmCache:
    """Reuses an endpoint's ``Arm`` until its live stat object, prices or age bucket change.

    Live stats are replaced (not mutated) on refresh, so identity of the ``LiveStat`` object
    plus the age rounded to ``AGE_STEP_S`` identify an unchanged line.
    """

    AGE_STEP_S = 10.0

    def __init__(self) -> None:
        self._arms: dict[str, tuple[Endpoint, LiveStat | None, float, Arm]] = {}

    @classmethod
    def _age_step(cls, stat: LiveStat | None, now: datetime) -> tuple[datetime, int] | None:
        """The time of ``stat``'s newest sample and its age at ``now`` in whole
        ``AGE_STEP_S`` steps (``None``: no samples)."""
        newest = stat.newest_at if stat is not None else None
        if newest is None:
            return None
        return newest, int(max(0.0, (now - newest).total_seconds()) // cls.AGE_STEP_S)

    @classmethod
    def next_step(cls, stat: LiveStat | None, now: datetime) -> datetime | None:
        """When the arm made from ``stat`` at ``now`` is next made afresh, its age having
        moved to the next step (``None``: never, without samples)."""
        aged = cls._age_step(stat, now)
        if aged is None:
            return None
        newest, step = aged
        return newest + timedelta(seconds=(step + 1) * cls.AGE_STEP_S)

    def get(self, endpoint: Endpoint, stat: LiveStat | None, now: datetime) -> Arm:
        aged = self._age_step(stat, now)
        age_key = -1.0 if aged is None else float(aged[1])
        hit = self._arms.get(endpoint.id)
        if hit is not None and hit[0] is endpoint and hit[1] is stat and hit[2] == age_key:
            return hit[3]
        feats = action_features(endpoint, stat, now)
        if aged is not None:
            feats["age_s"] = age_key * self.AGE_STEP_S
        arm = Arm.build(endpoint.id, feats)
        self._arms[endpoint.id] = (endpoint, stat, age_key, arm)
        return arm


#: Every action feature name, in the order logged arms are rebuilt.
ARM_KEYS: tuple[str, ...] = ("model", "provider") + tuple(name for name, _ in ACTION_NUMERIC)


@lru_cache(maxsize=4096)
def _cached_arm(endpoint_id: str, items: tuple[tuple[str, Value], ...]) -> Arm:
    return Arm.build(endpoint_id, dict(items))


def arms_from_context(ctx: Mapping[str, Value], candidates: Iterable[str]) -> list[Arm]:
    """Rebuild the candidates' arms from a logged ``Decision.context`` (lines are memoised:
    most logged arms repeat while an endpoint's live stats stay the same)."""
    out = []
    for eid in candidates:
        prefix = f"a.{eid}."
        items = tuple((k, ctx[prefix + k]) for k in ARM_KEYS if prefix + k in ctx)
        if not items:
            out.append(Arm.build(eid, {"model": eid, "provider": eid}))
        else:
            out.append(_cached_arm(eid, items))
    return out


def shared_from_context(ctx: Mapping[str, Value]) -> Context:
    """The ``p.*`` and ``r.*`` part of a logged context."""
    return {k: v for k, v in ctx.items() if k.startswith(("p.", "r."))}
