"""``switchyard train``: answers from every candidate endpoint, a quality model, its trade-off.

:class:`Trainer` runs one training run over a loaded :class:`serving.train_data.Dataset`:

1. **Answers.** Every prompt goes to every candidate endpoint through
   :class:`serving.train_calls.EndpointCaller` (the proxy's client code, bounded concurrency,
   Retry-After and backoff), each answer is scored (:mod:`serving.scoring`) and stored as one
   ``train_answers`` row, committed before the next step (:mod:`warehouse.training`). The run
   is resumable: its id defaults to the file's name and hash, and a rerun (after Ctrl-C or a
   crash) sends only the (prompt, endpoint) pairs without a stored answer. A file of
   precomputed ``scores`` skips this step: nothing is called.
2. **Split.** The prompts are shuffled with ``seed`` and ``holdout`` of them held out.
3. **Fit.** A ``bandit.quality.QualityModel`` learns every endpoint's score from the
   training part (in a worker thread).
4. **Trade-off.** ``bandit.tradeoff.tradeoff`` replays the held-out prompts for a sweep of
   router strings, with the run's measured tokens, prices and TTFT; the graph is drawn
   (:mod:`serving.tradeoff_plot`), and model, trade-off JSON, PNG and HTML are stored as the
   next ``router_models`` version (made active unless told otherwise) and written to
   ``out_dir``.

A progress line on stderr (plain text) shows pairs done, sent, failed and the rate.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bandit.quality import Example, QualityModel
from bandit.tradeoff import EndpointFacts, HeldOut, Tradeoff, tradeoff
from serving.scoring import Judge, Scorer, resolve_scorer, score_answer
from serving.train_calls import DEFAULT_CONCURRENCY, DEFAULT_MAX_TOKENS, EndpointCaller, Reply
from serving.train_data import Dataset, TrainDataError, TrainPrompt
from serving.tradeoff_plot import render_html, render_png
from warehouse.models import Endpoint
from warehouse.training import TrainAnswer, TrainingStore, TrainRun

MODEL_KIND = "quality"
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """The options of one run; invalid values raise ValueError naming the CLI flag."""

    endpoints: tuple[str, ...] | None = None
    holdout: float = 0.2
    concurrency: int = DEFAULT_CONCURRENCY
    judge: str | None = None
    scorer: Scorer = Scorer.AUTO
    run_id: str | None = None
    seed: int = 0
    max_tokens: int = DEFAULT_MAX_TOKENS
    activate: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"--holdout must be between 0 and 1 (exclusive), got {self.holdout}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.max_tokens < 1:
            raise ValueError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.endpoints is not None and not self.endpoints:
            raise ValueError("--endpoints must name at least one endpoint")
        if self.run_id is not None and not self.run_id.replace("-", "").replace("_", "")\
                .replace(".", "").isalnum():
            raise ValueError(f"--run-id may hold letters, digits, '-', '_' and '.', "
                             f"got {self.run_id!r}")  # fmt: skip

    def as_json(self) -> dict[str, object]:
        return {"endpoints": list(self.endpoints or []), "holdout": self.holdout,
                "judge": self.judge, "scorer": self.scorer.value, "seed": self.seed,
                "max_tokens": self.max_tokens}  # fmt: skip


@dataclass(slots=True)
class TrainResult:
    """What a run produced."""

    run_id: str
    model_id: str
    tradeoff: Tradeoff
    png_path: Path
    html_path: Path
    endpoints: tuple[str, ...]
    train_prompts: int
    heldout_prompts: int
    sent: int = 0  # requests sent by this invocation (retries and judge calls included)
    resumed: int = 0  # pairs already answered by an earlier invocation
    failed: int = 0  # pairs without an answer after every attempt
    dropped: list[str] = field(default_factory=list)  # prompts no endpoint could be scored on


class Progress:
    """A plain-text progress line on a stream (rewritten in place on a terminal)."""

    def __init__(self, total: int, done: int, out: TextIO | None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.total, self.done, self.out, self.clock = total, done, out, clock
        self.failed = 0
        self.started = clock()
        self._start_done = done
        self._last = -math.inf
        self._tty = bool(out is not None and getattr(out, "isatty", lambda: False)())
        self._step = max(1, total // 10)

    def line(self, sent: int) -> str:
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        rate = (self.done - self._start_done) / max(1e-9, self.clock() - self.started)
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} answers "
                f"{100 * self.done / max(1, self.total):3.0f}%  sent {sent}  failed "
                f"{self.failed}  {rate:.1f}/s")  # fmt: skip

    def advance(self, sent: int, *, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        if self.out is None:
            return
        now = self.clock()
        if self._tty and (now - self._last >= PROGRESS_EVERY_S or self.done == self.total):
            self._last = now
            self.out.write("\r" + self.line(sent))
            self.out.flush()
        elif not self._tty and (self.done % self._step == 0 or self.done == self.total):
            self.out.write(self.line(sent) + "\n")
            self.out.flush()

    def finish(self) -> None:
        if self.out is not None and self._tty:
            self.out.write("\n")
            self.out.flush()


def default_run_id(dataset: Dataset) -> str:
    """``<file stem>-<first 12 hex of its SHA-256>``: the same file resumes the same run."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in dataset.path.stem)[:40]
    return f"{stem or 'train'}-{dataset.sha256[:12]}"


def split(prompt_ids: Sequence[str], holdout: float, seed: int) -> tuple[set[str], set[str]]:
    """(train, held-out) prompt ids: a ``random.Random(seed)`` shuffle of the sorted ids, the
    first ``round(holdout * n)`` (at least one, and leaving one) held out."""
    ids = sorted(set(prompt_ids))
    if len(ids) < 2:
        raise ValueError(f"training needs at least 2 scored prompts, got {len(ids)}")
    random.Random(seed).shuffle(ids)
    n = min(len(ids) - 1, max(1, round(holdout * len(ids))))
    return set(ids[n:]), set(ids[:n])


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class Trainer:
    """One training run (see the module docstring).

        store = TrainingStore(warehouse)
        trainer = Trainer(store, catalog, caller=EndpointCaller(session, catalog), options=opts,
                          out_dir=Path("var/train"))
        result = await trainer.run(load_dataset("prompts.jsonl"))
    """

    def __init__(
        self,
        store: TrainingStore,
        catalog: Sequence[Endpoint],
        *,
        caller: EndpointCaller | None,
        options: TrainOptions,
        out_dir: Path,
        progress: TextIO | None = sys.stderr,
    ) -> None:
        self.store = store
        self.catalog = {e.id: e for e in catalog}
        self.caller = caller
        self.options = options
        self.out_dir = Path(out_dir)
        self.progress_out = progress
        if options.judge is not None and options.judge not in self.catalog:
            raise ValueError(f"--judge: unknown endpoint {options.judge!r}; "
                             f"the catalog has {', '.join(sorted(self.catalog))}")  # fmt: skip

    # -- which endpoints ----------------------------------------------------------------
    def candidates(self, dataset: Dataset) -> tuple[str, ...]:
        known = set(dataset.endpoints) if dataset.precomputed else set(self.catalog)
        what = f"scored in {dataset.path.name}" if dataset.precomputed else "in the catalog"
        if self.options.endpoints is None:  # every endpoint, but not the judge
            chosen = sorted(known - {self.options.judge} if len(known) > 2 else known)
        else:
            unknown = [e for e in self.options.endpoints if e not in known]
            if unknown:
                raise ValueError(f"--endpoints: {unknown[0]!r} is not {what} "
                                 f"({', '.join(sorted(known))})")  # fmt: skip
            chosen = list(dict.fromkeys(self.options.endpoints))
        if len(chosen) < 2:
            raise ValueError(f"training needs at least 2 candidate endpoints, got {chosen}")
        return tuple(chosen)

    def check_scoring(self, dataset: Dataset) -> None:
        """Fail before any call when some prompt cannot be scored (names its line)."""
        for item in dataset.prompts:
            try:
                resolve_scorer(self.options.scorer, item.ref_answer,
                               has_judge=self.options.judge is not None)  # fmt: skip
            except ValueError as exc:
                raise TrainDataError(f"{dataset.where(item)}: {exc}") from None

    # -- the run ------------------------------------------------------------------------
    async def run(self, dataset: Dataset) -> TrainResult:
        endpoints = self.candidates(dataset)
        run_id = self.options.run_id or default_run_id(dataset)
        if not dataset.precomputed:
            self.check_scoring(dataset)
            if self.caller is None:
                raise ValueError("a file of prompts to send needs an EndpointCaller")
        await self._open_run(run_id, dataset, endpoints)
        result_counts = {"sent": 0, "resumed": 0, "failed": 0}
        if dataset.precomputed:
            scores = {i.prompt_id: dict(i.scores or {}) for i in dataset.prompts}
            answers: dict[str, dict[str, TrainAnswer]] = {}
        else:
            result_counts = await self._collect(run_id, dataset, endpoints)
            answers = {}
            for a in await asyncio.to_thread(self.store.answers, run_id):
                answers.setdefault(a.prompt_id, {})[a.endpoint_id] = a
            scores = {pid: {e: a.score for e, a in by.items()
                            if a.score is not None and e in endpoints}
                      for pid, by in answers.items()}  # fmt: skip
        await asyncio.to_thread(self.store.set_status, run_id, "training")
        by_id = {i.prompt_id: i for i in dataset.prompts}
        usable = [pid for pid in by_id if scores.get(pid)]
        dropped = [dataset.where(by_id[pid]) for pid in by_id if not scores.get(pid)]
        train_ids, held_ids = split(usable, self.options.holdout, self.options.seed)
        train = [Example(by_id[p].prompt, {e: s for e, s in scores[p].items() if e in endpoints})
                 for p in usable if p in train_ids]  # fmt: skip
        model = QualityModel(endpoints, seed=self.options.seed)
        await asyncio.to_thread(model.fit, train)
        heldout = [self._heldout(by_id[p], scores[p], answers.get(p, {}))
                   for p in usable if p in held_ids]  # fmt: skip
        facts = self._facts(endpoints, answers)
        graph = await asyncio.to_thread(tradeoff, model, heldout, facts)
        data = graph.to_json()
        title = f"Trade-off of run {run_id}"
        png = await asyncio.to_thread(render_png, data, title=title)
        page = render_html(data, title=title)
        model_id = await asyncio.to_thread(
            lambda: self.store.save_model(run_id=run_id, kind=MODEL_KIND,
                                          model=model.to_bytes(), tradeoff=data, plot_png=png,
                                          html=page, activate=self.options.activate)
        )  # fmt: skip
        model.close()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        png_path = self.out_dir / f"tradeoff-{run_id}-{model_id}.png"
        html_path = self.out_dir / f"tradeoff-{run_id}-{model_id}.html"
        png_path.write_bytes(png)
        html_path.write_text(page, encoding="utf-8")
        await asyncio.to_thread(self.store.set_status, run_id, "done")
        return TrainResult(run_id, model_id, graph, png_path, html_path, endpoints, len(train),
                           len(heldout), dropped=dropped, **result_counts)  # fmt: skip

    async def _open_run(self, run_id: str, dataset: Dataset, endpoints: Sequence[str]) -> None:
        existing = await asyncio.to_thread(self.store.get_run, run_id)
        if existing is None:
            run = TrainRun.new(run_id, str(dataset.path), dataset.sha256, endpoints,
                               self.options.as_json())  # fmt: skip
            await asyncio.to_thread(self.store.create_run, run)
            return
        if existing.dataset_sha256 != dataset.sha256:
            raise ValueError(
                f"--run-id {run_id}: that run was started on another file "
                f"({existing.dataset_path}, sha256 {existing.dataset_sha256[:12]}); "
                "choose another --run-id"
            )
        await asyncio.to_thread(self.store.set_status, run_id, "calling")

    async def _collect(self, run_id: str, dataset: Dataset,
                       endpoints: Sequence[str]) -> dict[str, int]:  # fmt: skip
        """Ask for every pair not answered yet; each answer is stored as it arrives."""
        caller = self.caller
        assert caller is not None  # noqa: S101 - run() checked it
        done = await asyncio.to_thread(self.store.done_pairs, run_id)
        todo = [(item, e) for item in dataset.prompts for e in endpoints
                if (item.prompt_id, e) not in done]  # fmt: skip
        total = len(dataset.prompts) * len(endpoints)
        progress = Progress(total, total - len(todo), self.progress_out)
        judge = Judge(self.options.judge, caller.ask_text) if self.options.judge else None
        queue: asyncio.Queue[tuple[TrainPrompt, str]] = asyncio.Queue()
        for pair in todo:
            queue.put_nowait(pair)
        sent_before = caller.sent
        failed = 0
        writes: set[asyncio.Future[None]] = set()

        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                item, endpoint_id = queue.get_nowait()
                reply = await caller.ask(endpoint_id, item.prompt)
                row = await self._answer_row(run_id, item, reply, judge)
                # a received answer is stored even when the run is cancelled meanwhile
                write = asyncio.ensure_future(self.store.aadd_answers([row]))
                writes.add(write)
                write.add_done_callback(writes.discard)
                await asyncio.shield(write)
                failed += int(not reply.ok)
                progress.advance(caller.sent - sent_before, failed=not reply.ok)

        workers = [asyncio.create_task(worker()) for _ in range(self.options.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if writes:  # durable before the run ends, however it ends
                await asyncio.gather(*list(writes), return_exceptions=True)
            progress.finish()
        return {"sent": caller.sent - sent_before, "resumed": total - len(todo), "failed": failed}

    async def _answer_row(self, run_id: str, item: TrainPrompt, reply: Reply,
                          judge: Judge | None) -> TrainAnswer:  # fmt: skip
        r = reply.result
        endpoint = self.catalog[reply.endpoint_id]
        score: float | None = None
        scorer = resolve_scorer(self.options.scorer, item.ref_answer, has_judge=judge is not None)
        if reply.ok and reply.text is not None:
            scored = await score_answer(item.prompt, reply.text, item.ref_answer,
                                        scorer=self.options.scorer, judge=judge)  # fmt: skip
            score, scorer = scored.score, scored.scorer
        tokens_in = r.input_tokens if r.input_tokens is not None else estimate_tokens(item.prompt)
        tokens_out = r.output_tokens
        cost = endpoint.cost_usd(tokens_in, tokens_out or 0) if reply.ok else None
        return TrainAnswer(run_id=run_id, prompt_id=item.prompt_id, endpoint_id=endpoint.id,
                           answer=reply.text, score=score, scorer=scorer.value,
                           tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
                           ttft_ms=r.ttft_ms, latency_ms=r.e2e_ms, outcome=r.outcome.value,
                           ts=r.started_at)  # fmt: skip

    # -- held-out rows and endpoint facts -------------------------------------------------
    @staticmethod
    def _heldout(item: TrainPrompt, scores: dict[str, float],
                 answers: dict[str, TrainAnswer]) -> HeldOut:  # fmt: skip
        ok = {e: a for e, a in answers.items() if a.ok}
        ins = [a.tokens_in for a in ok.values() if a.tokens_in is not None]
        return HeldOut(
            prompt=item.prompt, scores=scores,
            tokens_in=round(statistics.median(ins)) if ins else estimate_tokens(item.prompt),
            tokens_out={e: a.tokens_out for e, a in ok.items() if a.tokens_out is not None},
            ttft_ms={e: a.ttft_ms for e, a in ok.items() if a.ttft_ms is not None},
        )  # fmt: skip

    def _facts(self, endpoints: Sequence[str],
               answers: dict[str, dict[str, TrainAnswer]]) -> list[EndpointFacts]:  # fmt: skip
        facts = []
        for e in endpoints:
            ttfts = [by[e].ttft_ms for by in answers.values()
                     if e in by and by[e].ok and by[e].ttft_ms is not None]  # fmt: skip
            known = self.catalog.get(e)
            facts.append(EndpointFacts(
                endpoint=e,
                price_in_per_mtok=known.price_in_per_mtok if known else 0.0,
                price_out_per_mtok=known.price_out_per_mtok if known else 0.0,
                ttft_ms=float(statistics.median(ttfts)) if ttfts else 0.0,  # type: ignore[type-var]
            ))  # fmt: skip
        return facts

