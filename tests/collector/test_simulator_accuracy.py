"""Simulated endpoints that answer right or wrong with a configured accuracy per prompt kind."""

from __future__ import annotations

import json

import aiohttp
import pytest
from pydantic import ValidationError

from collector.simulator import SimConfig, SimProfile, run_simulator
from collector.simulator.answers import (
    answer_text,
    arithmetic,
    options,
    parse_judge_prompt,
    prompt_kind,
    true_answer,
    wrong_answer,
)
from serving.scoring import exact_match, judge_prompt, numeric_match

MATH = [f"What is {a} * {b}?" for a, b in [(17, 23), (12, 12), (301, 7), (45, 67), (9, 81)]]
GENERAL = ["What is the capital of France?", "Name a colour of the sky.", "Who wrote Hamlet?"]


def profile(eid: str, accuracy: dict[str, float], **kw: object) -> SimProfile:
    return SimProfile(endpoint_id=eid, ttft_ms_median=5, gap_ms_median=1, ttft_sigma=0,
                      gap_sigma=0, price_in_per_mtok=1, price_out_per_mtok=2,
                      accuracy=accuracy, **kw)  # type: ignore[arg-type]


def test_kinds_and_true_answers_are_computable() -> None:
    assert [prompt_kind(p) for p in ("What is 17 * 23?", "Compute 2 + 3 * 4.")] == ["math"] * 2
    assert true_answer("What is 17 * 23?") == "391"
    assert true_answer("Compute (2 + 3) * 4.") == "20"
    assert true_answer("What is 7 / 2?") == "3.5"
    assert true_answer("What is 10 - 25?") == "-15"
    assert arithmetic("no numbers here") is None
    choice = "Which is a mammal?\nA. shark\nB. whale\nC. trout\nD. eel"
    assert prompt_kind(choice) == "choice" and options(choice) == ["A", "B", "C", "D"]
    assert true_answer(choice) in "ABCD"
    assert prompt_kind("Write a Python function that sorts a list.") == "code"
    assert prompt_kind(GENERAL[0]) == "general"
    token = true_answer(GENERAL[0])
    assert token == true_answer(GENERAL[0]) and len(token.split()) == 2
    assert token != true_answer(GENERAL[1])


@pytest.mark.parametrize("prompt", MATH[:2] + GENERAL[:2] + ["Pick one:\n(A) x\n(B) y\n(C) z"])
def test_wrong_answers_differ_from_the_truth_and_are_stable(prompt: str) -> None:
    wrong = {wrong_answer(prompt, endpoint_id=f"m{i}@p", seed=3) for i in range(6)}
    assert true_answer(prompt) not in wrong
    assert wrong_answer(prompt, endpoint_id="m0@p", seed=3) == wrong_answer(
        prompt, endpoint_id="m0@p", seed=3)


def test_accuracy_is_the_share_of_right_answers_and_reproducible() -> None:
    prompts = [f"What is {a} + {a * 3 + 1}?" for a in range(400)]

    def share(acc: float, eid: str) -> float:
        right = 0
        for p in prompts:
            text = answer_text(p, endpoint_id=eid, seed=5, accuracy={"math": acc})
            right += int(numeric_match(text, true_answer(p)))
        return right / len(prompts)

    assert share(1.0, "a@x") == 1.0 and share(0.0, "a@x") == 0.0
    assert 0.25 < share(0.3, "a@x") < 0.35
    assert share(0.3, "a@x") == share(0.3, "a@x")
    # an answer is scored right by the serving scorers whatever its wording
    for p in GENERAL:
        assert exact_match(answer_text(p, endpoint_id="w@x", seed=1, accuracy={"general": 1}),
                           true_answer(p)) == 1.0


def test_the_judge_prompt_is_recognised_and_judged() -> None:
    prompt = judge_prompt("What is 17 * 23?", "Answer: 391", "391")
    assert prompt_kind(prompt) == "judge"
    assert parse_judge_prompt(prompt) == ("What is 17 * 23?", "391", "Answer: 391")
    assert parse_judge_prompt(judge_prompt("Q?", "a", None)) == ("Q?", None, "a")
    perfect = {"judge": 1.0}
    verdict = answer_text(prompt, endpoint_id="j@x", seed=0, accuracy=perfect)
    assert verdict == "VERDICT: CORRECT"
    wrong = judge_prompt("What is 17 * 23?", "392", None)
    assert answer_text(wrong, endpoint_id="j@x", seed=0, accuracy=perfect) == "VERDICT: INCORRECT"
    assert answer_text(wrong, endpoint_id="j@x", seed=0, accuracy={"judge": 0.0}) \
        == "VERDICT: CORRECT"
    token_q = GENERAL[1]
    right = judge_prompt(token_q, f"The answer is {true_answer(token_q).upper()}.", None)
    assert answer_text(right, endpoint_id="j@x", seed=0, accuracy=perfect) == "VERDICT: CORRECT"


def test_profile_accuracy_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown kind"):
        profile("m@p", {"poetry": 0.5})
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        profile("m@p", {"math": 1.5})


async def _ask(session: aiohttp.ClientSession, url: str, model: str, prompt: str,
               stream: bool) -> tuple[str, dict[str, object]]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 64, "stream": stream}
    async with session.post(f"{url}/chat/completions", json=body) as resp:
        assert resp.status == 200
        if not stream:
            data = await resp.json()
            return data["choices"][0]["message"]["content"], data["usage"]
        text = ""
        for line in (await resp.text()).splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
        return text, {}


async def test_the_server_answers_with_its_accuracy_streaming_or_not() -> None:
    config = SimConfig(seed=2, profiles=[profile("good@p", {"math": 1.0}),
                                         profile("bad@p", {"math": 0.0}),
                                         SimProfile(endpoint_id="filler@p", ttft_ms_median=5,
                                                    gap_ms_median=1, price_in_per_mtok=0,
                                                    price_out_per_mtok=0)])
    async with run_simulator(config) as sim, aiohttp.ClientSession() as session:
        base = sim.base_url("good@p")
        for prompt in MATH[:3]:
            for stream in (False, True):
                good, usage = await _ask(session, base, "good", prompt, stream)
                bad, _ = await _ask(session, base, "bad", prompt, stream)
                assert numeric_match(good, true_answer(prompt)) == 1.0, good
                assert numeric_match(bad, true_answer(prompt)) == 0.0, bad
                assert good == answer_text(prompt, endpoint_id="good@p", seed=2,
                                           accuracy={"math": 1.0})
                if usage:
                    assert usage["completion_tokens"] == len(good.split())
        filler, _ = await _ask(session, base, "filler", MATH[0], False)
        assert len(filler.split()) >= 20 and "391" not in filler  # unchanged behaviour
