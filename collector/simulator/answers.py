"""What a simulated endpoint answers, when its profile has an ``accuracy`` per kind of prompt.

Every prompt has one deterministic "true" answer, computable by a test: the value of an
arithmetic prompt ("What is 17 * 23?" -> ``391``), an option letter for a multiple-choice
prompt, otherwise two words derived from a hash of the prompt (:func:`true_answer`). An
endpoint answers a prompt of kind ``k`` correctly with probability ``accuracy[k]``, decided by
a hash of (seed, endpoint, prompt), so reruns give the same answers; a wrong answer is another
deterministic value (:func:`wrong_answer`). The wording varies ("391", "Answer: 391", "The
answer is 391.") as real models' does.

Only questions are answered so (:func:`is_question`: a grading prompt, arithmetic, multiple
choice, or a prompt ending in a question mark); any other request (the collector's probes:
"Count from one to twenty...", "Summarise the following passage...") streams the profile's
usual filler, so that giving the default profiles an accuracy changes no latency figure.

Kinds (:func:`prompt_kind`): ``judge`` (the grading prompt of ``serving.scoring``, recognised
by its section headers), ``math``, ``choice``, ``code``, ``general``. As a judge an endpoint
compares the candidate answer with :func:`true_answer` of the question and returns the right
verdict with probability ``accuracy["judge"]``.

    >>> true_answer("What is 17 * 23?"), prompt_kind("What is 17 * 23?")
    ('391', 'math')
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from fractions import Fraction

KINDS = ("math", "code", "choice", "general", "judge")
#: Accuracy of a kind missing from the profile's mapping (after falling back to "general").
DEFAULT_ACCURACY = 0.5

_WORDS = (
    "amber birch cobalt delta ember falcon granite harbor indigo juniper kestrel lantern "
    "meadow nickel orchid pepper quartz raven saffron timber umber violet willow xenon yarrow "
    "zephyr anchor beacon cedar dune"
).split()
_EXPR = re.compile(r"[-(]*\s*\d[\d\s.+\-*/×÷()]*")
_OPTION_LINE = re.compile(r"(?:^|\s)\(?([A-J])[).]\s+\S", re.MULTILINE)
_CODE = re.compile(
    r"```|\bdef |\bfunction\b|\bpython\b|\bjavascript\b|\bcode\b|\bprogram\b|\bSQL\b|"
    r"\bregex\b|\bcompile", re.IGNORECASE
)
_MATH_WORDS = re.compile(r"\b(?:calculate|compute|solve|how many|how much|sum of|product of)\b",
                         re.IGNORECASE)  # fmt: skip
_JUDGE = re.compile(
    r"### Question\n(?P<question>.*?)\n\n### Reference answer\n(?P<reference>.*?)\n\n"
    r"### Candidate answer\n(?P<answer>.*?)\n\n### Instructions\n",
    re.DOTALL,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _hash(*parts: object) -> int:
    text = "\x00".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by ``parts``."""
    return _hash(*parts) / 2**64


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right  # ZeroDivisionError for x / 0
    raise ValueError("not arithmetic")


def arithmetic(prompt: str) -> Fraction | None:
    """The value of the first arithmetic expression with an operator in ``prompt``, or None."""
    for m in _EXPR.finditer(prompt):
        expr = m.group(0).replace("×", "*").replace("÷", "/").strip().rstrip(".")
        if not re.search(r"\d\s*[-+*/]\s*[-(]*\d", expr):
            continue
        try:
            return _eval(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
            continue
    return None


def format_number(value: Fraction) -> str:
    """An integer as such, anything else with 10 significant digits."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def options(prompt: str) -> list[str]:
    """The option letters of a multiple-choice prompt ("A. ...", "(B) ...", "C) ...")."""
    letters = list(dict.fromkeys(_OPTION_LINE.findall(prompt)))
    return letters if len(letters) >= 2 else []


def parse_judge_prompt(prompt: str) -> tuple[str, str | None, str] | None:
    """(question, reference or None, candidate answer) of a judge prompt, else None."""
    m = _JUDGE.search(prompt)
    if m is None:
        return None
    reference = m.group("reference").strip()
    return m.group("question").strip(), None if reference == "(none)" else reference, \
        m.group("answer").strip()


def prompt_kind(prompt: str) -> str:
    """One of ``KINDS``, from the prompt's text."""
    if parse_judge_prompt(prompt) is not None:
        return "judge"
    if arithmetic(prompt) is not None or _MATH_WORDS.search(prompt):
        return "math"
    if options(prompt):
        return "choice"
    if _CODE.search(prompt):
        return "code"
    return "general"


def is_question(prompt: str) -> bool:
    """Whether an answering endpoint answers ``prompt`` briefly (see the module doc)."""
    if parse_judge_prompt(prompt) is not None or arithmetic(prompt) is not None:
        return True
    return bool(options(prompt)) or prompt.rstrip().endswith("?")


def true_answer(prompt: str) -> str:
    """The simulator's correct answer to ``prompt`` (see the module doc)."""
    kind = prompt_kind(prompt)
    if kind == "math":
        value = arithmetic(prompt)
        return format_number(value) if value is not None else str(_hash("math", prompt) % 1000)
    if kind == "choice":
        letters = options(prompt)
        return letters[_hash("choice", prompt) % len(letters)]
    h = _hash("token", prompt)
    return f"{_WORDS[h % len(_WORDS)]} {_WORDS[(h // len(_WORDS)) % len(_WORDS)]}"


def wrong_answer(prompt: str, *, endpoint_id: str, seed: int) -> str:
    """A deterministic answer of ``endpoint_id`` that differs from :func:`true_answer`."""
    truth = true_answer(prompt)
    h = _hash("wrong", seed, endpoint_id, prompt)
    kind = prompt_kind(prompt)
    if kind == "math":
        delta = 1 + h % 9
        return format_number(Fraction(truth) + (delta if h & 1024 else -delta))
    if kind == "choice":
        others = [x for x in options(prompt) if x != truth]
        return others[h % len(others)]
    words = [w for w in _WORDS if w not in truth.split()]
    return f"{words[h % len(words)]} {words[(h // 7) % len(words)]}"


def accuracy_for(accuracy: Mapping[str, float], kind: str) -> float:
    return accuracy.get(kind, accuracy.get("general", DEFAULT_ACCURACY))


def answers_correctly(prompt: str, *, endpoint_id: str, seed: int, accuracy: float) -> bool:
    """Whether ``endpoint_id`` gets ``prompt`` right: a fixed draw below ``accuracy``."""
    return _unit("correct", seed, endpoint_id, prompt) < accuracy


def _same(candidate: str, truth: str) -> bool:
    """The simulated judge's own comparison: last number, or letters and words."""
    if _NUMBER.fullmatch(truth):
        found = _NUMBER.findall(candidate.replace(",", ""))
        return bool(found) and abs(float(found[-1]) - float(truth)) <= 1e-6 * max(1, abs(
            float(truth)))
    def words(text: str) -> list[str]:
        text = re.sub(r"^\s*(?:the\s+)?answer\b\s*(?:is\b)?\s*:?", "", text, flags=re.I)
        return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()

    return words(candidate) == words(truth)


def _phrase(answer: str, style: int, kind: str) -> str:
    if kind == "choice":
        return (f"({answer})", f"{answer}.", f"Answer: {answer}")[style % 3]
    if kind == "math":
        return (answer, f"Answer: {answer}", f"The answer is {answer}.")[style % 3]
    return (answer, f"Answer: {answer}", f"{answer.title()}.")[style % 3]


def answer_text(prompt: str, *, endpoint_id: str, seed: int,
                accuracy: Mapping[str, float]) -> str:  # fmt: skip
    """What ``endpoint_id`` answers to ``prompt``, right or wrong as its accuracy decides."""
    kind = prompt_kind(prompt)
    right = answers_correctly(prompt, endpoint_id=endpoint_id, seed=seed,
                              accuracy=accuracy_for(accuracy, kind))  # fmt: skip
    if kind == "judge":
        parsed = parse_judge_prompt(prompt)
        assert parsed is not None  # noqa: S101 - prompt_kind found it
        question, _, candidate = parsed
        correct = _same(candidate, true_answer(question))
        return "VERDICT: CORRECT" if correct == right else "VERDICT: INCORRECT"
    answer = true_answer(prompt) if right else wrong_answer(prompt, endpoint_id=endpoint_id,
                                                             seed=seed)  # fmt: skip
    return _phrase(answer, _hash("style", endpoint_id, prompt), kind)
