"""Scorers: normalised exact match, numeric match, the judge prompt and verdicts, auto."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.scoring import (
    Judge,
    Scorer,
    exact_match,
    is_number,
    judge_prompt,
    last_number,
    normalise,
    numeric_match,
    parse_verdict,
    resolve_scorer,
    score_answer,
)


@pytest.mark.parametrize(("answer", "reference"), [
    ("Paris", "paris"),
    ("  The   Eiffel Tower! ", "eiffel tower"),
    ("Answer: Paris.", "Paris"),
    ("The answer is Paris", "paris"),
    ("answer:paris", "Paris"),
    ("B", "B"), ("B.", "B"), ("(B)", "b"), ("B)", "B"), ("Answer: (B)", "B"),
    ("(B) Paris", "B"), ("(B) Paris", "paris"), ("B", "(B) Paris"), ("Paris", "(B) Paris"),
    ("A", "A"), ("an apple", "apple"), ("rock-and-roll", "rock and roll"),
    ("Ça va?", "ça va"),
])
def test_exact_match_accepts(answer: str, reference: str) -> None:
    assert exact_match(answer, reference) == 1.0


@pytest.mark.parametrize(("answer", "reference"), [
    ("London", "Paris"), ("(C)", "B"), ("C. Paris", "B"), ("B", "C"), ("", ""),
    ("Paris is not it", "Paris"), ("A dog", "B"), ("the", "the"), ("Answering", "ing"),
])
def test_exact_match_rejects(answer: str, reference: str) -> None:
    assert exact_match(answer, reference) == 0.0


def test_normalise() -> None:
    assert normalise("  Answer:  The QUICK, brown fox!! ") == "quick brown fox"


@pytest.mark.parametrize(("text", "value"), [
    ("so it is 1,234.0 apples", 1234), ("x = -6", -6), ("from 10-20", 20), ("3/4", 0.75),
    ("\\frac{3}{4}", 0.75), ("it is 1e3", 1000), ("$1,234.50", 1234.5), ("about .5", 0.5),
    ("first 3 then 391.", 391), ("ratio 1/0 then 7", 7),
])
def test_last_number(text: str, value: float) -> None:
    found = last_number(text)
    assert found is not None and float(found) == pytest.approx(value)


def test_last_number_without_a_number() -> None:
    assert last_number("no digits here") is None


def test_numeric_match_tolerance() -> None:
    assert numeric_match("The answer is 391.", "391") == 1.0
    assert numeric_match("0.3333333", "1/3") == 1.0  # relative error 1e-7
    assert numeric_match("0.3334", "1/3") == 0.0
    assert numeric_match("1000000.5", "1000000") == 1.0  # 5e-7 relative
    assert numeric_match("1000002", "1000000") == 0.0
    assert numeric_match("12,000", "12000") == 1.0
    assert numeric_match("no number", "5") == 0.0
    assert numeric_match("5", "five") == 0.0


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_numeric_match_any_integer_in_a_sentence(n: int) -> None:
    assert numeric_match(f"After some work: the result is {n:,}.", str(n)) == 1.0
    off = n + max(1, abs(n) // 100_000)  # beyond the 1e-6 relative tolerance
    assert numeric_match(f"the result is {off}", str(n)) == 0.0


def test_is_number() -> None:
    assert all(is_number(r) for r in ("42", "-3.5", "1,000", "3/4", "$5", "50%", "391."))
    assert not any(is_number(r) for r in ("B", "forty", "3 apples", "1, 2"))


def test_verdicts() -> None:
    assert parse_verdict("VERDICT: CORRECT") == 1.0
    assert parse_verdict("Thinking... verdict: incorrect") == 0.0
    assert parse_verdict("VERDICT: CORRECT\nwait, VERDICT: INCORRECT") == 0.0  # the last one
    assert parse_verdict("**Verdict:** INCORRECT") == 0.0
    assert parse_verdict("Verdict: partial") == 0.5
    assert parse_verdict("SCORE: 0.7") == 0.7
    assert parse_verdict("Yes.") == 1.0 and parse_verdict("no") == 0.0
    assert parse_verdict("I cannot tell") is None


def test_judge_prompt_carries_question_answer_and_reference() -> None:
    text = judge_prompt(" What is 2 + 2? ", "4", "four")
    assert "### Question\nWhat is 2 + 2?\n" in text
    assert "### Reference answer\nfour\n" in text and "### Candidate answer\n4\n" in text
    assert "VERDICT: CORRECT" in text and "comparing it with the reference" in text
    assert "### Reference answer\n(none)\n" in judge_prompt("Q", "A", None)


def test_resolve_scorer() -> None:
    assert resolve_scorer(Scorer.AUTO, "391", has_judge=False) is Scorer.NUMERIC
    assert resolve_scorer(Scorer.AUTO, "Paris", has_judge=True) is Scorer.EXACT
    long_ref = "The mitochondria is the powerhouse of the cell because it makes ATP"
    assert resolve_scorer(Scorer.AUTO, long_ref, has_judge=False) is Scorer.EXACT
    assert resolve_scorer(Scorer.AUTO, long_ref, has_judge=True) is Scorer.JUDGE
    assert resolve_scorer(Scorer.AUTO, None, has_judge=True) is Scorer.JUDGE
    assert resolve_scorer(Scorer.EXACT, "391", has_judge=False) is Scorer.EXACT
    with pytest.raises(ValueError, match="--judge"):
        resolve_scorer(Scorer.AUTO, None, has_judge=False)
    with pytest.raises(ValueError, match="--judge"):
        resolve_scorer(Scorer.JUDGE, "x", has_judge=False)
    with pytest.raises(ValueError, match="needs a ref_answer"):
        resolve_scorer(Scorer.NUMERIC, None, has_judge=True)


async def test_score_answer_with_a_judge_goes_through_ask() -> None:
    asked: list[tuple[str, str]] = []

    async def ask(endpoint_id: str, prompt: str) -> str | None:
        asked.append((endpoint_id, prompt))
        return "VERDICT: CORRECT" if "### Candidate answer\n4\n" in prompt else "VERDICT: INCORRECT"

    judge = Judge("judge@p", ask)
    right = await score_answer("What is 2+2?", "4", None, judge=judge)
    wrong = await score_answer("What is 2+2?", "5", None, judge=judge)
    assert (right.score, right.scorer, wrong.score) == (1.0, Scorer.JUDGE, 0.0)
    assert [e for e, _ in asked] == ["judge@p", "judge@p"]
    exact = await score_answer("Capital?", "Answer: Paris", "paris", judge=judge)
    assert (exact.score, exact.scorer) == (1.0, Scorer.EXACT) and len(asked) == 2

    async def fails(endpoint_id: str, prompt: str) -> str | None:
        return None

    failed = await score_answer("Q?", "A", None, judge=Judge("judge@p", fails))
    assert failed.score is None and failed.scorer is Scorer.JUDGE
    with pytest.raises(ValueError):
        Judge("", ask)
