"""Scoring an endpoint's answer against a reference: exact, numeric, or by a judge endpoint.

- **exact**: normalised text match. Both sides lose a leading ``Answer:`` (or "the answer
  is"), case, punctuation, the articles *a/an/the* and extra whitespace; an option letter
  written ``B``, ``B.``, ``B)``, ``B:`` or ``(B)`` matches the same letter, and ``(B) Paris``
  matches either ``B`` or ``Paris``.
- **numeric**: the last number in the answer equals the reference's number within a relative
  tolerance of 1e-6 (commas, decimals, signs, exponents, ``3/4`` and ``\\frac{3}{4}``).
- **judge**: :func:`judge_prompt` asks another endpoint, sent through the same call path as
  every answer (an injected :data:`Ask`), and :func:`parse_verdict` reads its reply to [0, 1].
- **auto**: judge without a reference; numeric when the reference is a number; exact for
  short references (or when no judge is configured); the judge for free-text references
  longer than ``FREE_TEXT_WORDS`` words when one is configured.

    >>> exact_match("Answer: (B)", "b"), numeric_match("so it is 1,234.0 apples", "1234")
    (1.0, 1.0)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

#: A reference with more words than this counts as free text (``auto`` then asks the judge).
FREE_TEXT_WORDS = 5
#: Relative tolerance of the numeric match.
NUMERIC_REL_TOL = 1e-6

#: (endpoint id, prompt) -> the endpoint's answer text, or None when the call failed.
Ask = Callable[[str, str], Awaitable[str | None]]


class Scorer(StrEnum):
    """How answers are scored (``--scorer``)."""

    AUTO = "auto"
    EXACT = "exact"
    NUMERIC = "numeric"
    JUDGE = "judge"


# -- exact ---------------------------------------------------------------------------------
_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+|correct\s+)?answer\b\s*(?:is\b)?\s*[:\-=]?\s*", re.IGNORECASE
)
_OPTION = re.compile(r"^(?:\(([A-Za-z])\)|([A-Za-z])[.):])(?:\s+|$)|^([A-Za-z])$")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def strip_answer_prefix(text: str) -> str:
    """``text`` without a leading "Answer:" / "The answer is" and surrounding whitespace."""
    return _PREFIX.sub("", text.strip(), count=1).strip()


def split_option(text: str) -> tuple[str | None, str]:
    """(option letter in lower case, the rest) for "(B) rest", "B. rest", "B"; else (None, text)."""
    m = _OPTION.match(text)
    if m is None:
        return None, text
    letter = next(g for g in m.groups() if g is not None)
    return letter.lower(), text[m.end():].strip()


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (no "Answer:" prefix)."""
    text = strip_answer_prefix(text).lower()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, reference: str) -> float:
    """1.0 when the answer says the reference (see the module doc), else 0.0."""
    a, r = strip_answer_prefix(answer), strip_answer_prefix(reference)
    if normalise(a) == normalise(r) and normalise(r):
        return 1.0
    a_letter, a_rest = split_option(a)
    r_letter, r_rest = split_option(r)
    if r_letter is not None:
        if a_letter is not None:
            return 1.0 if a_letter == r_letter else 0.0
        if not r_rest:
            return 0.0
        return 1.0 if normalise(a) == normalise(r_rest) and normalise(a) else 0.0
    if a_letter is not None and a_rest:
        return 1.0 if normalise(a_rest) == normalise(r) and normalise(r) else 0.0
    return 0.0


# -- numeric -------------------------------------------------------------------------------
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+"
_NUMBER = re.compile(
    r"\\[dt]?frac\{\s*(-?\d+(?:\.\d+)?)\s*\}\{\s*(-?\d+(?:\.\d+)?)\s*\}"
    rf"|(?<![\w.])(-?(?:{_NUM}))(?:\s*/\s*(-?(?:{_NUM})))?"
)
_WHOLE_NUMBER = re.compile(
    rf"^\$?\s*(?:\\[dt]?frac\{{\s*-?\d+(?:\.\d+)?\s*\}}\{{\s*-?\d+(?:\.\d+)?\s*\}}"
    rf"|-?(?:{_NUM})(?:\s*/\s*-?(?:{_NUM}))?)\s*%?\.?$"
)


def _to_number(text: str) -> Fraction | float:
    cleaned = text.replace(",", "")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return float(cleaned)


def last_number(text: str) -> Fraction | float | None:
    """The last number written in ``text`` (a fraction counts as one number), or None."""
    found: Fraction | float | None = None
    for m in _NUMBER.finditer(text):
        num, den = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        try:
            value = _to_number(num)
            if den is not None:
                d = _to_number(den)
                if d == 0:
                    continue
                value = value / d
        except (ValueError, OverflowError):
            continue
        found = value
    return found


def is_number(reference: str) -> bool:
    """Whether the reference is just a number (``42``, ``-3.5``, ``1,000``, ``3/4``, ``$5``)."""
    return bool(_WHOLE_NUMBER.match(strip_answer_prefix(reference)))


def numeric_match(answer: str, reference: str, rel_tol: float = NUMERIC_REL_TOL) -> float:
    """1.0 when the last number of the answer equals the reference's number, else 0.0."""
    a, r = last_number(answer), last_number(reference)
    if a is None or r is None:
        return 0.0
    if a == r:
        return 1.0
    fa, fr = float(a), float(r)
    if not (math.isfinite(fa) and math.isfinite(fr)):
        return 0.0
    return 1.0 if math.isclose(fa, fr, rel_tol=rel_tol, abs_tol=1e-12) else 0.0


# -- judge ---------------------------------------------------------------------------------
#: The judge prompt. ``collector.simulator`` recognises it by these section headers.
JUDGE_TEMPLATE = """You are grading an answer to a question.

### Question
{question}

### Reference answer
{reference}

### Candidate answer
{answer}

### Instructions
Decide whether the candidate answer is correct{against}. Reply with one line:
VERDICT: CORRECT or VERDICT: INCORRECT"""

NO_REFERENCE = "(none)"
_VERDICT = re.compile(
    r"\bverdict\s*[:=]?\s*\**\s*(correct|incorrect|right|wrong|yes|no|partial(?:ly correct)?)\b"
    r"|\bscore\s*[:=]\s*([01](?:\.\d+)?)\b",
    re.IGNORECASE,
)
_BARE = {"correct": 1.0, "yes": 1.0, "right": 1.0, "1": 1.0,
         "incorrect": 0.0, "no": 0.0, "wrong": 0.0, "0": 0.0}  # fmt: skip


def judge_prompt(question: str, answer: str, reference: str | None) -> str:
    """The prompt that asks a judge endpoint whether ``answer`` answers ``question``."""
    return JUDGE_TEMPLATE.format(
        question=question.strip(),
        reference=reference.strip() if reference else NO_REFERENCE,
        answer=answer.strip(),
        against=", comparing it with the reference answer" if reference else "",
    )


def parse_verdict(text: str) -> float | None:
    """The judge's reply as a score in [0, 1]; None when it gives no verdict.

    Reads the last ``VERDICT: CORRECT|INCORRECT|PARTIAL`` or ``SCORE: x``, else a reply that
    is only "correct", "incorrect", "yes", "no", "1" or "0".
    """
    matches = list(_VERDICT.finditer(text))
    if matches:
        m = matches[-1]
        if m.group(2) is not None:
            value = float(m.group(2))
            return value if 0.0 <= value <= 1.0 else None
        word = m.group(1).lower()
        if word.startswith("partial"):
            return 0.5
        return _BARE[word]
    return _BARE.get(normalise(text))


class Judge:
    """Scores answers by asking ``endpoint_id`` through ``ask`` (the training call path)."""

    def __init__(self, endpoint_id: str, ask: Ask) -> None:
        if not endpoint_id:
            raise ValueError("the judge endpoint id must not be empty")
        self.endpoint_id = endpoint_id
        self.ask = ask

    async def score(self, question: str, answer: str, reference: str | None) -> float | None:
        """The judge's score of ``answer``, or None when the call failed or had no verdict."""
        reply = await self.ask(self.endpoint_id, judge_prompt(question, answer, reference))
        return parse_verdict(reply) if reply is not None else None


# -- choosing and applying a scorer --------------------------------------------------------
def resolve_scorer(scorer: Scorer, reference: str | None, *, has_judge: bool) -> Scorer:
    """The concrete scorer for one prompt (never AUTO). ValueError when it needs a judge that
    is not configured or a reference that is missing."""
    if scorer is Scorer.JUDGE or (scorer is Scorer.AUTO and reference is None):
        if not has_judge:
            raise ValueError("scoring without a ref_answer needs a judge endpoint (--judge)")
        return Scorer.JUDGE
    if reference is None:
        raise ValueError(f"the {scorer.value} scorer needs a ref_answer")
    if scorer is not Scorer.AUTO:
        return scorer
    if is_number(reference):
        return Scorer.NUMERIC
    if has_judge and len(normalise(reference).split()) > FREE_TEXT_WORDS:
        return Scorer.JUDGE
    return Scorer.EXACT


@dataclass(frozen=True, slots=True)
class Scored:
    """A score in [0, 1] (None: could not be scored) and the scorer that gave it."""

    score: float | None
    scorer: Scorer


async def score_answer(
    question: str,
    answer: str,
    reference: str | None,
    *,
    scorer: Scorer = Scorer.AUTO,
    judge: Judge | None = None,
) -> Scored:
    """Score one answer with the scorer :func:`resolve_scorer` picks."""
    chosen = resolve_scorer(scorer, reference, has_judge=judge is not None)
    if chosen is Scorer.JUDGE:
        assert judge is not None  # noqa: S101 - resolve_scorer checked it
        return Scored(await judge.score(question, answer, reference), chosen)
    assert reference is not None  # noqa: S101 - resolve_scorer checked it
    if chosen is Scorer.NUMERIC:
        return Scored(numeric_match(answer, reference), chosen)
    return Scored(exact_match(answer, reference), chosen)
