"""The VW wrapper: same answers as the public API, and the measured crashes guarded."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path

import pytest
import vowpalwabbit

from bandit.errors import ModelStateError, NoCandidateError
from bandit.vw import VWModel, validate_label

ARGS = "--cb_explore_adf --cb_type mtr --epsilon 0.1 -b 16 --interactions SA --quiet " \
       "--random_seed 3"


def _example(rng: random.Random, n: int = 4) -> tuple[str, list[str]]:
    shared = f"shared |S u{rng.randrange(5)} v:{rng.random():.3f}"
    actions = [f"|A e{k} |X t:{rng.random():.3f}" for k in range(n)]
    return shared, actions


def test_fast_path_matches_the_public_workspace_api() -> None:
    rng = random.Random(0)
    ours = VWModel(ARGS)
    public = vowpalwabbit.Workspace(ARGS)
    for _ in range(200):
        shared, actions = _example(rng)
        k = rng.randrange(len(actions))
        cost, prob = rng.random(), 0.25
        ours.learn(shared, actions, chosen=k, cost=cost, prob=prob)
        labelled = list(actions)
        labelled[k] = f"0:{cost!r}:{prob!r} {labelled[k]}"
        public.learn([shared, *labelled])
    for _ in range(50):
        shared, actions = _example(rng)
        expected = public.predict([shared, *actions])
        assert ours.predict(shared, actions) == expected
        assert ours.predict_joined(shared, "\n".join(actions), len(actions)) == expected
    assert ours.weights_json() == public.json_weights()
    public.finish()
    ours.close()


def test_zero_actions_never_reach_vw() -> None:
    with VWModel(ARGS) as m:
        m.learn("shared |S a", ["|A x", "|A y"], chosen=0, cost=0.1, prob=0.5)
        with pytest.raises(NoCandidateError):
            m.predict("shared |S a", [])
        with pytest.raises(NoCandidateError):
            m.learn("shared |S a", [], chosen=0, cost=0.1, prob=0.5)
        with pytest.raises(NoCandidateError):
            m.predict_joined("shared |S a", "", 0)
        with pytest.raises(ValueError, match="parsed 3 lines, expected 4"):  # refused whole
            m.predict_joined("shared |S a", "|A x\n|A y", 2 + 1)
        assert len(m.predict("shared |S a", ["|A x"])) == 1  # still alive


@pytest.mark.parametrize(
    ("cost", "prob"),
    [(math.inf, 0.5), (math.nan, 0.5), (-math.inf, 0.5), (1e9, 0.5), (0.1, 0.0), (0.1, 1.5),
     (0.1, math.nan), (0.1, -0.2)],
)
def test_bad_labels_are_refused_and_the_model_stays_sane(cost: float, prob: float) -> None:
    with VWModel(ARGS) as m:
        with pytest.raises(ValueError):
            m.learn("shared |S a", ["|A x", "|A y"], chosen=1, cost=cost, prob=prob)
        pmf = m.predict("shared |S a", ["|A x", "|A y"])
        assert all(math.isfinite(p) for p in pmf) and abs(sum(pmf) - 1) < 1e-6
    validate_label(0.5, 1.0)


def test_malformed_lines_are_refused() -> None:
    with VWModel(ARGS) as m:
        with pytest.raises(ValueError):
            m.predict("shared |S a\n|A z", ["|A x"])
        with pytest.raises(ValueError):
            m.predict("|S not shared", ["|A x"])
        with pytest.raises(ValueError):
            m.predict_joined("shared |S a\n|A z", "|A x", 1)
        with pytest.raises(ValueError):
            m.learn("shared |S a", ["|A x"], chosen=3, cost=0.1, prob=0.5)


def test_save_load_and_copy_resume_identically(tmp_path: Path) -> None:
    rng = random.Random(1)
    a = VWModel(ARGS)
    for _ in range(100):
        shared, actions = _example(rng)
        a.learn(shared, actions, chosen=rng.randrange(4), cost=rng.random(), prob=0.25)
    a.save(tmp_path / "m.vw")
    b = VWModel(ARGS, model_path=tmp_path / "m.vw")
    c = a.copy()
    for _ in range(100):
        shared, actions = _example(rng)
        k, cost = rng.randrange(4), rng.random()
        for m in (a, b, c):
            m.learn(shared, actions, chosen=k, cost=cost, prob=0.25)
    assert a.weights_json() == b.weights_json() == c.weights_json()
    for m in (a, b, c):
        m.close()


def test_closed_model_refuses_work_and_close_is_idempotent() -> None:
    m = VWModel(ARGS)
    m.close()
    m.close()
    with pytest.raises(ModelStateError):
        m.predict("shared |S a", ["|A x"])


def test_bad_arguments_are_a_model_state_error() -> None:
    with pytest.raises(ValueError):
        VWModel("--quiet")
    with pytest.raises(ModelStateError):
        VWModel("--cb_explore_adf --no_such_option_xyz")


def test_concurrent_callers_are_serialised() -> None:
    m = VWModel(ARGS)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(200):
                shared, actions = _example(rng)
                pmf = m.predict(shared, actions)
                m.learn(shared, actions, chosen=0, cost=rng.random(), prob=pmf[0])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert m.learned == 800
    m.close()
