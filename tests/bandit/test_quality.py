"""The quality model: real VW logistic regression learning what each endpoint is good at."""

from __future__ import annotations

import random

import pytest

from bandit.errors import ModelStateError
from bandit.quality import Example, QualityConfig, QualityModel

A, B = "solver@p", "writer@q"
MATH = ["Compute the integral of x^{k} from 0 to {n}.", "What is {n} * {k} minus the square root of {n}?",
        "Solve for x: {k}x + {n} = 0.", "Find the derivative of x^{n} at x = {k}."]
PROSE = ["Write a short poem about the sea in {n} lines.", "Summarize the plot of novel number {k}.",
         "Describe autumn in a village using {n} adjectives.", "Write a friendly letter to aunt {k}."]


def _prompt(rng: random.Random, kind: list[str]) -> str:
    return rng.choice(kind).format(n=rng.randint(2, 99), k=rng.randint(2, 99))


def _data(seed: int, n: int) -> list[Example]:
    """The solver is right on math 90% of the time and on prose 30%; the writer the reverse."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        math_ = rng.random() < 0.5
        p = _prompt(rng, MATH if math_ else PROSE)
        ra, rb = (0.9, 0.3) if math_ else (0.3, 0.9)
        out.append(Example(p, {A: float(rng.random() < ra), B: float(rng.random() < rb)}))
    return out


@pytest.fixture(scope="module")
def model() -> QualityModel:
    m = QualityModel([A, B], config=QualityConfig(bits=18), seed=3)
    return m.fit(_data(1, 600))


def test_learns_who_is_good_at_what_on_unseen_prompts(model: QualityModel) -> None:
    rng = random.Random(99)
    for _ in range(20):
        math_q = model.predict(_prompt(rng, MATH))
        prose_q = model.predict(_prompt(rng, PROSE))
        assert math_q[A] > 0.6 > math_q[B]
        assert prose_q[B] > 0.6 > prose_q[A]


def test_predictions_are_calibrated_near_the_true_rates(model: QualityModel) -> None:
    rng = random.Random(7)
    mean = sum(model.predict(_prompt(rng, MATH))[A] for _ in range(50)) / 50
    assert 0.75 < mean < 0.98  # true rate 0.9


def test_fractional_scores_are_learned_as_such() -> None:
    m = QualityModel([A], config=QualityConfig(bits=16, passes=10))
    m.fit([Example(f"question number {k}", {A: 0.7}) for k in range(200)])
    assert 0.6 < m.predict("question number 5")[A] < 0.8
    m.close()


def test_round_trip_gives_identical_predictions(model: QualityModel) -> None:
    copy = QualityModel.from_bytes(model.to_bytes())
    prompt = "Solve for x: 3x + 4 = 0."
    assert copy.predict(prompt) == model.predict(prompt)
    assert copy.endpoints == (A, B) and copy.config == model.config and copy.trained_on == 600
    copy.close()


def test_online_learning_moves_the_prediction() -> None:
    m = QualityModel([A, B], config=QualityConfig(bits=16)).fit(_data(2, 200))
    ctx = m.context("Write a friendly letter to aunt 12.")
    before = m.predict_context(ctx)[A]
    for _ in range(30):
        m.learn_context(ctx, A, 1.0)
    assert m.predict_context(ctx)[A] > before + 0.1
    m.close()


def test_unknown_endpoint_gets_the_general_difficulty(model: QualityModel) -> None:
    q = model.predict("Solve for x: 5x + 1 = 0.", ["brand-new@r"])
    assert 0.2 < q["brand-new@r"] < 0.9


def test_bad_input_is_refused(model: QualityModel) -> None:
    with pytest.raises(ValueError, match="score must be in"):
        QualityModel([A]).fit([Example("x", {A: 1.5})])
    with pytest.raises(ValueError, match="example 1: the prompt"):
        QualityModel([A]).fit([Example("x", {A: 1.0}), Example("", {A: 1.0})])
    with pytest.raises(ValueError, match="distinct"):
        QualityModel([A, A])
    with pytest.raises(ValueError, match="weight"):
        model.learn_context(model.context("x"), A, 1.0, weight=0.0)
    with pytest.raises(ModelStateError, match="bad header"):
        QualityModel.from_bytes(b"not a model")
