"""``switchyard train``: the training file, the run against the real simulator, resuming."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import duckdb
import pytest

from bandit.config import BanditConfig
from bandit.features import Arm
from bandit.policy import RouteContext
from bandit.quality import QualityModel
from bandit.router_string import parse_router
from bandit.tradeoff import EndpointFacts, choose
from bandit.trained import TrainedPolicy
from collector.catalog import Catalog
from collector.simulator import (
    InjectedLog,
    SimConfig,
    SimProfile,
    SimulatorProcess,
    run_simulator,
)
from collector.simulator.answers import true_answer
from serving.scoring import Scorer, exact_match, numeric_match
from serving.train import Progress, Trainer, TrainOptions, default_run_id, split
from serving.train_calls import EndpointCaller
from serving.train_data import TrainDataError, load_dataset
from warehouse.config import WarehouseConfig
from warehouse.models import WireFormat, utcnow
from warehouse.store import Warehouse
from warehouse.training import TrainingStore, prompt_id

STRONG, CHEAP, JUDGE = "strong@big", "cheap@small", "judge@grader"


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# -- the training file --------------------------------------------------------------------
@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "prompts.jsonl:2: not valid JSON"),
    ("[1, 2]", "prompts.jsonl:2: each line must be a JSON object"),
    ('{"ref_answer": "x"}', 'prompts.jsonl:2: "prompt" must be a non-empty string'),
    ('{"prompt": "   "}', 'prompts.jsonl:2: "prompt" must be a non-empty string'),
    ('{"prompt": 5}', 'prompts.jsonl:2: "prompt" must be a non-empty string'),
    ('{"prompt": "q", "ref_anwser": "x"}', 'prompts.jsonl:2: unknown field "ref_anwser"'),
    ('{"prompt": "q", "ref_answer": true}', 'prompts.jsonl:2: "ref_answer" must be a string'),
    ('{"prompt": "q", "ref_answer": ""}', 'prompts.jsonl:2: "ref_answer" must not be empty'),
    ('{"prompt": "q", "scores": {"a@x": 1}}', 'prompts.jsonl:2: has "scores" but line 1'),
])
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "What is 1 + 1?"}, line])
    with pytest.raises(TrainDataError) as err:
        load_dataset(path)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(("scores", "message"), [
    ({}, '"scores" must be a non-empty object'),
    ({"a@x": 1.5}, '"scores"."a@x" must be a number in [0, 1]'),
    ({"a@x": "yes"}, '"scores"."a@x" must be a number in [0, 1]'),
    ({" ": 1}, '"scores" has an empty endpoint id'),
])
def test_bad_scores(tmp_path: Path, scores: dict[str, object], message: str) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"prompt": "q", "scores": scores}])
    with pytest.raises(TrainDataError, match=r"^s\.jsonl:1: " + ".*" + message[:12].replace(
            "[", r"\[").replace(".", r"\.")):
        load_dataset(path)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(TrainDataError, match="cannot read"):
        load_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TrainDataError, match="empty.jsonl: no prompts"):
        load_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(TrainDataError, match="not UTF-8"):
        load_dataset(tmp_path / "latin.jsonl")


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "What is 2 * 3?", "ref_answer": 6}, "",
        {"prompt": "Capital of France?", "ref_answer": "Paris", "id": "q2"},
        {"prompt": "What is 2 * 3?", "ref_answer": 6},
        {"prompt": "Free text"},
    ])
    data = load_dataset(path)
    assert [(p.line, p.ref_answer) for p in data.prompts] == [(1, "6"), (3, "Paris"), (5, None)]
    assert data.duplicates == 1 and not data.precomputed and len(data.sha256) == 64
    assert data.prompts[0].prompt_id == prompt_id("What is 2 * 3?")
    scored = load_dataset(write_jsonl(tmp_path / "s.jsonl", [
        {"prompt": "a", "scores": {"b@y": True, "a@x": 0}},
        {"prompt": "b", "scores": {"c@z": 0.5}},
    ]))
    assert scored.precomputed and scored.endpoints == ("a@x", "b@y", "c@z")
    assert scored.prompts[0].scores == {"b@y": 1.0, "a@x": 0.0}
    assert default_run_id(scored).startswith("s-") and default_run_id(scored)[2:] == \
        scored.sha256[:12]


def test_split_is_seeded_and_leaves_both_parts_non_empty() -> None:
    ids = [f"p{i}" for i in range(50)]
    train, held = split(ids, 0.2, seed=3)
    assert len(held) == 10 and train | held == set(ids) and not train & held
    assert split(list(reversed(ids)), 0.2, seed=3) == (train, held)
    assert split(ids, 0.2, seed=4) != (train, held)
    assert [len(x) for x in split(["a", "b"], 0.9, seed=0)] == [1, 1]
    with pytest.raises(ValueError, match="at least 2"):
        split(["a"], 0.2, seed=0)


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"holdout": 0.0}, "--holdout"), ({"holdout": 1.0}, "--holdout"),
    ({"concurrency": 0}, "--concurrency"), ({"endpoints": ()}, "--endpoints"),
    ({"run_id": "a b"}, "--run-id"), ({"max_tokens": 0}, "--max-tokens"),
])
def test_bad_options_name_the_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        TrainOptions(**kwargs)  # type: ignore[arg-type]


def test_progress_lines_off_a_terminal() -> None:
    out = io.StringIO()
    ticks = iter(range(100))
    progress = Progress(20, 0, out, clock=lambda: float(next(ticks)))
    for k in range(20):
        progress.advance(k + 1, failed=k == 3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("[" + "#" * 30 + "] 20/20 answers 100%")
    assert "failed 1" in lines[-1] and "sent 20" in lines[-1]


# -- training on precomputed outcomes: nothing is called --------------------------------------
def open_wh(path: Path) -> Warehouse:
    wh = Warehouse(WarehouseConfig(path=path), lake=False)
    wh.open()
    return wh


async def test_precomputed_scores_train_without_any_call(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        rows.append({"prompt": f"What is {i} + {i + 2}?", "scores": {"a@x": 1, "b@y": 1}})
        rows.append({"prompt": f"Write a sonnet about ship {i}.", "scores": {"a@x": 0, "b@y": 1}})
    data = load_dataset(write_jsonl(tmp_path / "logged.jsonl", rows))
    wh = open_wh(tmp_path / "w.duckdb")
    try:
        store = TrainingStore(wh)
        trainer = Trainer(store, [], caller=None, options=TrainOptions(seed=1),
                          out_dir=tmp_path / "out", progress=None)
        result = await trainer.run(data)
        assert result.sent == 0 and result.endpoints == ("a@x", "b@y")
        assert (result.train_prompts, result.heldout_prompts) == (64, 16)
        assert store.answers(result.run_id) == []
        active = store.active_model()
        assert active is not None and active.model_id == result.model_id == "quality-v1"
        assert active.tradeoff == result.tradeoff.to_json()
        model = QualityModel.from_bytes(store.load_model(result.model_id))
        poem = model.predict("Write a sonnet about ship 99.")
        assert poem["b@y"] > 0.7 > 0.3 > poem["a@x"]
        assert result.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = result.html_path.read_text()
        assert "a@x" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
        assert store.get_run(result.run_id).status == "done"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="--endpoints: 'c@z' is not scored"):
            await Trainer(store, [], caller=None, options=TrainOptions(endpoints=("a@x", "c@z")),
                          out_dir=tmp_path, progress=None).run(data)
    finally:
        wh.close()


# -- the end-to-end run against the simulator -------------------------------------------------
def profiles() -> list[SimProfile]:
    common = {"ttft_sigma": 0.0, "gap_ms_median": 1.0, "gap_sigma": 0.0}
    return [
        # strong and expensive, Anthropic wire format: right on both kinds
        SimProfile(endpoint_id=STRONG, wire_format=WireFormat.ANTHROPIC, ttft_ms_median=12,
                   price_in_per_mtok=10, price_out_per_mtok=30,
                   accuracy={"math": 0.95, "general": 0.95}, **common),  # type: ignore[arg-type]
        # cheap: as good at arithmetic, hopeless at the rest
        SimProfile(endpoint_id=CHEAP, ttft_ms_median=6, price_in_per_mtok=0.1,
                   price_out_per_mtok=0.2, accuracy={"math": 0.95, "general": 0.05},
                   **common),  # type: ignore[arg-type]
        SimProfile(endpoint_id=JUDGE, ttft_ms_median=4, price_in_per_mtok=1,
                   price_out_per_mtok=1, accuracy={"judge": 1.0},
                   **common),  # type: ignore[arg-type]
    ]


def math_prompt(i: int) -> str:
    return f"What is {i + 3} * {7 * i + 11}?"


def general_prompt(i: int) -> str:
    return f"Which word hides in archive entry {i} of the old library?"


def prompts_file(tmp_path: Path, n: int = 40) -> Path:
    rows = []
    for i in range(n):
        for p in (math_prompt(i), general_prompt(i)):
            rows.append({"prompt": p, "ref_answer": true_answer(p)})
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def sent_pairs(sim_log: list[dict[str, object]]) -> list[tuple[str, str]]:
    return [(str(r["prompt_sha256"]), str(r["endpoint_id"])) for r in sim_log]


async def injected(session: aiohttp.ClientSession, url: str, since: int) -> list[dict[str, object]]:
    async with session.get(f"{url}/_sim/injected", params={"since": str(since)}) as resp:
        return (await resp.json())["items"]


async def settled(log: InjectedLog) -> int:
    """The simulator's request count once no request has arrived for 0.2 s (calls cut by a
    cancellation may still land just after it)."""
    last, quiet = log.last_seq, 0
    for _ in range(500):
        await asyncio.sleep(0.02)
        quiet = quiet + 1 if log.last_seq == last else 0
        last = log.last_seq
        if quiet >= 10:
            break
    return last


def without_ttft(data: dict) -> dict:  # type: ignore[type-arg]
    """The trade-off JSON minus what depends on measured TTFT (it differs between runs)."""
    return {
        "endpoints": [{k: v for k, v in e.items() if k != "ttft_ms"} for e in data["endpoints"]],
        "routers": [{k: v for k, v in r.items() if k != "ttft_ms"}
                    for r in data["routers"] if r["axis"] == "cost"],
        "heldout": data["heldout"],
    }


async def train_once(store: TrainingStore, catalog: list, session: aiohttp.ClientSession,
                     data_path: Path, out: Path, *, concurrency: int = 4):  # noqa: ANN202
    caller = EndpointCaller(session, catalog, concurrency=concurrency, max_tokens=64,
                            backoff_base_s=0.01, backoff_max_s=0.05)
    options = TrainOptions(endpoints=(STRONG, CHEAP), concurrency=concurrency, seed=7)
    trainer = Trainer(store, catalog, caller=caller, options=options, out_dir=out,
                      progress=None)
    return await trainer.run(load_dataset(data_path))


async def test_train_interrupt_resume_equals_a_full_run_and_routes(tmp_path: Path) -> None:
    data_path = prompts_file(tmp_path)
    dataset = load_dataset(data_path)
    total = len(dataset.prompts) * 2
    async with run_simulator(SimConfig(seed=11, profiles=profiles())) as sim, \
            aiohttp.ClientSession() as session:
        catalog = sim.catalog()
        wh = open_wh(tmp_path / "resumed.duckdb")
        try:
            store = TrainingStore(wh)
            # 1. interrupted part-way, like Ctrl-C: the task is cancelled mid-flight
            task = asyncio.create_task(
                train_once(store, catalog, session, data_path, tmp_path / "out"))
            for _ in range(2000):
                if sim.state.log.last_seq >= total // 3:
                    break
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            boundary = await settled(sim.state.log)
            run_id = default_run_id(dataset)
            done = store.done_pairs(run_id)
            assert 0 < len(done) < total
            assert store.get_run(run_id).status == "calling"  # type: ignore[union-attr]
            # every answer received was stored: at most the calls in flight were lost
            assert boundary - len(done) <= 4
            # 2. resumed: only the pairs without a stored answer are sent, each once
            resumed = await train_once(store, catalog, session, data_path, tmp_path / "out")
            again = sent_pairs(await injected(session, sim.url, boundary))
            assert not set(again) & done, "a finished (prompt, endpoint) pair was sent again"
            every = {(p.prompt_id, e) for p in dataset.prompts for e in (STRONG, CHEAP)}
            assert sorted(again) == sorted(every - done)
            assert resumed.sent == len(again) and resumed.resumed == len(done)
            assert resumed.failed == 0 and len(store.done_pairs(run_id)) == total
            resumed_rows = {(a.prompt_id, a.endpoint_id, a.answer, a.score, a.tokens_out)
                            for a in store.answers(run_id)}
            model_bytes = store.load_model(resumed.model_id)
        finally:
            wh.close()
        # 3. a full run from scratch in another warehouse gives the same answers and table
        wh = open_wh(tmp_path / "full.duckdb")
        try:
            store = TrainingStore(wh)
            full = await train_once(store, catalog, session, data_path, tmp_path / "full")
            full_rows = {(a.prompt_id, a.endpoint_id, a.answer, a.score, a.tokens_out)
                         for a in store.answers(full.run_id)}
        finally:
            wh.close()
    assert resumed_rows == full_rows
    assert without_ttft(resumed.tradeoff.to_json()) == without_ttft(full.tradeoff.to_json())
    # the scores are the scorers' verdicts on the simulator's answers
    for pid, endpoint, answer, score, _ in resumed_rows:
        prompt = next(p for p in dataset.prompts if p.prompt_id == pid)
        truth = true_answer(prompt.prompt)
        check = numeric_match if prompt.prompt.startswith("What is") else exact_match
        assert score == check(answer, truth), (prompt.prompt, endpoint, answer)
    # 4. the trained model routes: arithmetic to the cheap endpoint, the rest to the strong one
    model = QualityModel.from_bytes(model_bytes)
    new_math, new_general = math_prompt(500), general_prompt(500)
    q_math, q_general = model.predict(new_math), model.predict(new_general)
    assert q_math[CHEAP] > 0.7 and q_general[STRONG] > 0.7 > 0.3 > q_general[CHEAP]
    router = "router@q:1|c:0.01"  # quality-heavy
    objective = parse_router(router)
    facts = {e.id: EndpointFacts(e.id, e.price_in_per_mtok, e.price_out_per_mtok, 10.0)
             for e in catalog if e.id in (STRONG, CHEAP)}
    assert choose(q_math, facts, objective, 20, 5) == CHEAP
    assert choose(q_general, facts, objective, 20, 5) == STRONG
    policy = TrainedPolicy(BanditConfig(epsilon=0.001), quality=model)
    arms = [Arm.build(e.id, {"model": e.model, "provider": e.provider,
                             "price_in": e.price_in_per_mtok, "price_out": e.price_out_per_mtok})
            for e in catalog if e.id in (STRONG, CHEAP)]
    for prompt, expected in ((new_math, CHEAP), (new_general, STRONG)):
        ctx = RouteContext.build(prompt, objective=objective, router=router, now=utcnow())
        assert policy.pull(ctx, arms).chosen == expected
    # the quality-heavy end of the cost frontier beats the strong endpoint alone on cost
    data: dict = resumed.tradeoff.to_json()  # type: ignore[type-arg]
    top = max((r for r in data["routers"] if r["axis"] == "cost"),
              key=lambda r: (r["quality"], -r["cost_per_1k"]))
    strong_dot = next(e for e in data["endpoints"] if e["endpoint"] == STRONG)
    assert top["quality"] >= strong_dot["quality"] - 0.05
    assert top["cost_per_1k"] < strong_dot["cost_per_1k"]


async def test_a_judge_scores_answers_without_a_reference(tmp_path: Path) -> None:
    rows = [{"prompt": p} for i in range(8) for p in (math_prompt(i), general_prompt(i))]
    data = load_dataset(write_jsonl(tmp_path / "free.jsonl", rows))
    async with run_simulator(SimConfig(seed=5, profiles=profiles())) as sim, \
            aiohttp.ClientSession() as session:
        catalog = sim.catalog()
        wh = open_wh(tmp_path / "j.duckdb")
        try:
            store = TrainingStore(wh)
            caller = EndpointCaller(session, catalog, concurrency=4, max_tokens=64)
            with pytest.raises(TrainDataError, match="free.jsonl:1: .*--judge"):
                await Trainer(store, catalog, caller=caller,
                              options=TrainOptions(endpoints=(STRONG, CHEAP)),
                              out_dir=tmp_path, progress=None).run(data)
            assert caller.sent == 0 and store.list_runs() == []
            defaults = Trainer(store, catalog, caller=caller, options=TrainOptions(judge=JUDGE),
                               out_dir=tmp_path, progress=None)
            assert defaults.candidates(data) == (CHEAP, STRONG)  # the judge is no candidate
            options = TrainOptions(endpoints=(STRONG, CHEAP), judge=JUDGE, scorer=Scorer.AUTO)
            result = await Trainer(store, catalog, caller=caller, options=options,
                                   out_dir=tmp_path, progress=None).run(data)
            answers = store.answers(result.run_id)
        finally:
            wh.close()
    assert len(answers) == 32 and caller.sent == 64  # every answer, then its verdict
    by_id = {p.prompt_id: p.prompt for p in data.prompts}
    for a in answers:
        truth = true_answer(by_id[a.prompt_id])
        right = max(numeric_match(a.answer or "", truth), exact_match(a.answer or "", truth))
        assert (a.scorer, a.score) == ("judge", right)
    assert {a.score for a in answers} == {0.0, 1.0}


# -- the command line ---------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, **kw: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-m", "serving", "train", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]


def test_cli_bad_file_and_bad_option_exit_2(tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "ok"}] * 11 + [{"prompt": ""}])
    proc = cli(str(bad), "--db", str(tmp_path / "w.duckdb"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert 'prompts.jsonl:12: "prompt" must be a non-empty string' in err
    assert "Traceback" not in err and not (tmp_path / "w.duckdb").exists()
    proc = cli(str(bad), "--holdout", "1.5")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--holdout must be between 0 and 1" in err


@pytest.mark.slow
def test_cli_sigint_then_resume_pays_for_nothing_twice(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) part-way through `switchyard train`, then the same command again."""
    data_path = prompts_file(tmp_path, n=60)
    dataset = load_dataset(data_path)
    slow = [p.model_copy(update={"ttft_ms_median": 40.0}) for p in profiles()]
    with SimulatorProcess(SimConfig(seed=3, profiles=slow)) as sim:
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(Catalog(endpoints=tuple(sim.catalog())).dump_toml())
        db, out = tmp_path / "cli.duckdb", tmp_path / "graphs"
        args = (str(data_path), "--catalog", str(catalog), "--db", str(db), "--out", str(out),
                "--endpoints", f"{STRONG},{CHEAP}", "--concurrency", "3", "--seed", "7")
        proc = cli(*args)
        assert proc.stderr is not None
        for line in proc.stderr:  # one progress line per 10 %
            if " 30%" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "run the same command again to resume" in err
        con = duckdb.connect(str(db), read_only=True)
        try:
            done = set(con.execute("SELECT prompt_id, endpoint_id FROM train_answers "
                                   "WHERE outcome = 'ok'").fetchall())
        finally:
            con.close()
        total = len(dataset.prompts) * 2
        assert 0 < len(done) < total
        with urllib.request.urlopen(f"{sim.url}/_sim/health") as resp:  # noqa: S310 - loopback
            boundary = json.load(resp)["requests"]
        proc = cli(*args)
        stdout, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        url = f"{sim.url}/_sim/injected?since={boundary}"
        with urllib.request.urlopen(url) as resp:  # noqa: S310 - loopback
            again = sent_pairs(json.load(resp)["items"])
    assert again and not set(again) & done
    assert f"{len(again)} requests sent, {len(done)} answers reused" in stdout
    assert "graph: " in stdout and "router@q:" in stdout
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"


# -- manners: Retry-After, retries, no retry of a refused request ---------------------------
async def test_caller_honours_retry_after_and_gives_up_politely() -> None:
    async with run_simulator(SimConfig(seed=1, profiles=profiles())) as sim, \
            aiohttp.ClientSession() as session:
        catalog = sim.catalog()
        fail = {"endpoint_id": CHEAP, "kind": "http_429", "retry_after_s": 0.3}
        async with session.post(f"{sim.url}/_sim/fail", json=fail) as resp:
            assert resp.status == 200
        caller = EndpointCaller(session, catalog, max_attempts=3, backoff_base_s=0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await caller.ask(CHEAP, math_prompt(1))
        took = loop.time() - started
        assert not reply.ok and reply.text is None and reply.attempts == 3
        assert reply.result.outcome.value == "http_429" and reply.result.retry_after_s == 0.3
        assert took >= 0.6 and caller.sent == 3  # waited Retry-After before each retry
        # the endpoint stays paused for its Retry-After: the next call waits before sending
        started = loop.time()
        task = asyncio.create_task(caller.ask(CHEAP, math_prompt(2)))
        await asyncio.sleep(0.05)
        assert caller.sent == 3  # still waiting
        async with session.post(f"{sim.url}/_sim/fail",
                                json={"endpoint_id": CHEAP, "kind": "none"}) as resp:
            assert resp.status == 200
        reply = await task
        assert reply.ok and reply.attempts == 1 and reply.text and caller.sent == 4
        assert loop.time() - started >= 0.25
        # a fresh caller meets the 429, waits, and is answered on its second attempt
        async with session.post(f"{sim.url}/_sim/fail", json=fail) as resp:
            assert resp.status == 200
        fresh = EndpointCaller(session, catalog, max_attempts=3)
        task = asyncio.create_task(fresh.ask(CHEAP, math_prompt(3)))
        for _ in range(500):  # until the first attempt met the 429
            if fresh.manners.paused():
                break
            await asyncio.sleep(0.005)
        async with session.post(f"{sim.url}/_sim/fail",
                                json={"endpoint_id": CHEAP, "kind": "none"}) as resp:
            assert resp.status == 200
        reply = await task
        assert reply.ok and reply.attempts == 2 and fresh.retried == 1
        # a request the endpoint refuses (404: no such model) is not retried
        gone = catalog[0].model_copy(update={"id": "nosuch@big", "model_name": "nosuch"})
        refused = EndpointCaller(session, [gone], max_attempts=4)
        reply = await refused.ask("nosuch@big", "hi")
        assert reply.result.outcome.value == "http_4xx" and reply.attempts == 1
        assert refused.sent == 1
        with pytest.raises(KeyError):
            await refused.ask("other@x", "hi")
        with pytest.raises(ValueError, match="concurrency"):
            EndpointCaller(session, catalog, concurrency=0)
