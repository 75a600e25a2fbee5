"""The VW wrapper: same answers as the public API, and the measured crashes guarded."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path

import pytest
import vowpalwabbit

from bandit import vw
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


@pytest.mark.parametrize("explore", ["--epsilon 0.1", "--squarecb", "--cover 3"])
def test_kept_action_examples_predict_as_if_parsed_afresh(explore: str) -> None:
    """predict_joined parses each action set once and reuses its examples: over hundreds of
    predictions, with learning in between, the PMFs equal the public API's, parsing all."""
    args = f"--cb_explore_adf --cb_type mtr {explore} -b 16 --interactions SA --interactions " \
           "TX --quiet --random_seed 3"
    rng = random.Random(4)
    ours = VWModel(args)
    public = vowpalwabbit.Workspace(args)
    sets = [_example(rng, n)[1] for n in (2, 4, 7)]
    for step in range(600):
        shared = f"{_example(rng)[0]} |T h{rng.randrange(24)}"
        actions = sets[step % len(sets)]
        expected = public.predict([shared, *actions])
        assert ours.predict_joined(shared, "\n".join(actions), len(actions)) == expected
        if step % 3 == 0:  # learning moves the weights that the kept examples meet
            k, cost = rng.randrange(len(actions)), rng.random()
            ours.learn(shared, actions, chosen=k, cost=cost, prob=0.5)
            labelled = list(actions)
            labelled[k] = f"0:{cost!r}:0.5 {labelled[k]}"
            public.learn([shared, *labelled])
    assert ours.kept_action_sets == len(sets)
    assert ours.weights_json() == public.json_weights()
    ours.close()
    assert ours.kept_action_sets == 0  # finished before the Workspace
    with pytest.raises(ModelStateError):
        ours.predict_joined("shared |S a", "|A x", 1)
    public.finish()


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def test_kept_action_sets_are_bounded_and_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_KEPT_ACTION_SETS the least recently used set is finished: cycling through
    more sets than are kept neither grows the memory (an unfinished example leaks) nor
    changes a prediction."""
    monkeypatch.setattr(vw, "MAX_KEPT_ACTION_SETS", 2)
    rng = random.Random(5)
    m = VWModel(ARGS)
    sets = [_example(rng, 12)[1] for _ in range(3)]
    expected = [m.predict("shared |S u1", actions) for actions in sets]
    texts = ["\n".join(actions) for actions in sets]

    def cycle(rounds: int) -> None:
        for r in range(rounds):
            k = r % len(sets)  # three sets, two kept: every call parses and finishes one
            assert m.predict_joined("shared |S u1", texts[k], len(sets[k])) == expected[k]

    cycle(2000)  # warm-up: VW's example pool and the allocator settle
    before = _rss_mb()
    cycle(20000)  # unfinished, these would leak hundreds of MB
    assert _rss_mb() - before < 30
    assert m.kept_action_sets == 2
    with pytest.raises(ValueError, match="parsed 12 lines, expected 13"):
        m.predict_joined("shared |S u1", texts[0] + "\n", 13)  # not kept, all finished
    assert m.kept_action_sets == 2
    m.close()


def test_zero_actions_never_reach_vw() -> None:
    with VWModel(ARGS) as m:
        m.learn("shared |S a", ["|A x", "|A y"], chosen=0, cost=0.1, prob=0.5)
        with pytest.raises(NoCandidateError):
            m.predict("shared |S a", [])
        with pytest.raises(NoCandidateError):
            m.learn("shared |S a", [], chosen=0, cost=0.1, prob=0.5)
        with pytest.raises(NoCandidateError):
            m.predict_joined("shared |S a", "", 0)
        with pytest.raises(ValueError, match="parsed 2 lines, expected 3"):  # refused whole
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
    fixed = [_example(random.Random(9), n)[1] for n in (3, 5)]

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(200):
                shared, actions = _example(rng)
                pmf = m.predict(shared, actions)
                m.learn(shared, actions, chosen=0, cost=rng.random(), prob=pmf[0])
                kept = fixed[i % len(fixed)]  # kept examples are shared by every thread
                assert len(m.predict_joined(shared, "\n".join(kept), len(kept))) == len(kept)
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
