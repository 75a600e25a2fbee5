"""A learned quality model: how likely each endpoint is to answer a prompt well.

``QualityModel`` is one Vowpal Wabbit logistic regression (``bandit.vw.VWRegressor``) over
the prompt's features (``bandit.features``: the ``|P`` words with their bigrams, the ``|L``
shape) crossed with the endpoint (``|E``), so it learns what every endpoint is good at and,
through the uncrossed features, how hard a prompt is for all of them. A score in [0, 1] is
learned as two weighted examples (``1`` with weight ``s``, ``-1`` with weight ``1 - s``), so
thumbs, partial credit and judge scores all fit.

It is trained offline on full-information outcomes (every endpoint's score on every training
prompt, ``fit``; several shuffled passes), then keeps learning online from the feedback on
the endpoint that was chosen (``learn_context``), which is how ``bandit.trained`` uses it.
Features come from the logged context mapping (``p.*`` keys), never from the raw prompt, so a
logged decision can be learned again after a restart. An endpoint it never saw gets the
prompt's general difficulty alone.

>>> m = QualityModel(["big@p", "small@p"], config=QualityConfig(passes=4))
>>> data = [Example("What is 2 + 2?", {"big@p": 1, "small@p": 1}),
...         Example("Prove the Riemann hypothesis.", {"big@p": 1, "small@p": 0})] * 20
>>> q = m.fit(data).predict("Prove the Riemann hypothesis.")
>>> q["big@p"] > 0.5 > q["small@p"]
True
>>> QualityModel.from_bytes(m.to_bytes()).predict("Prove the Riemann hypothesis.") == q
True
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from bandit.errors import ModelStateError
from bandit.features import Value, prompt_context, prompt_namespaces, vw_name
from bandit.vw import VWRegressor

MAGIC = b"SYQM1\n"


class QualityConfig(BaseModel):
    """How the quality model learns (defaults measured on ``tests/bench/train_mmlu.py``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(default=0.2, gt=0, description="VW learning rate (-l).")
    passes: int = Field(default=5, ge=1, le=100, description="Offline passes over the data.")
    bits: int = Field(default=22, ge=12, le=28, description="VW hash bits (-b).")
    ngram: int = Field(default=2, ge=1, le=3, description="Word n-grams of the prompt (1: none).")
    l2: float = Field(default=0.0, ge=0, description="VW L2 regularisation (--l2).")
    max_words: int = Field(default=256, ge=0, le=4096,
                           description="Distinct prompt words used (first and last halves).")

    @classmethod
    def online(cls, **overrides: object) -> QualityConfig:
        """For a model that learns online from scratch (one thumb at a time): single words
        and a higher learning rate, measured best on ``tests/bench/bandit_mmlu.py``."""
        fields: dict[str, object] = {"ngram": 1, "learning_rate": 0.5}
        fields.update(overrides)
        return cls.model_validate(fields)

    @property
    def vw_args(self) -> str:
        parts = ["--loss_function", "logistic", "--link", "logistic", "-l", repr(self.learning_rate),
                 "-b", str(self.bits), "-q", "EP", "-q", "EL", "--quiet"]
        if self.ngram > 1:
            parts += ["--ngram", f"P{self.ngram}"]
        if self.l2 > 0:
            parts += ["--l2", repr(self.l2)]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Example:
    """One prompt and the score (0..1) each endpoint earned on it (missing: unknown)."""

    prompt: str
    scores: Mapping[str, float]


def _check_score(score: float) -> float:
    value = float(score)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a score must be in [0, 1], got {score!r}")
    return value


class QualityModel:
    """Predicted score of each endpoint for a prompt (see the module docstring)."""

    def __init__(self, endpoints: Sequence[str], *, config: QualityConfig | None = None,
                 seed: int = 0, _model: VWRegressor | None = None) -> None:
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("endpoints must be distinct")
        self.endpoints: tuple[str, ...] = tuple(endpoints)
        self.config = config or QualityConfig()
        self.seed = seed
        self.trained_on = 0
        self._vw = _model or VWRegressor(f"{self.config.vw_args} --random_seed {seed}")
        self._names = {e: vw_name(e) for e in self.endpoints}

    # -- features ------------------------------------------------------------------------
    def context(self, prompt: str) -> dict[str, Value]:
        """The ``p.*`` features of ``prompt`` with this model's word budget."""
        return prompt_context(prompt, max_words=self.config.max_words)

    def _line(self, shared: str, endpoint: str) -> str:
        name = self._names.get(endpoint) or vw_name(endpoint)
        return f"{shared} |E e={name}"

    # -- learning ------------------------------------------------------------------------
    def _learn_line(self, line: str, score: float, weight: float) -> None:
        if score > 0.0:
            self._vw.learn(f"1 {score * weight!r} {line}")
        if score < 1.0:
            self._vw.learn(f"-1 {(1.0 - score) * weight!r} {line}")

    def fit(self, examples: Sequence[Example]) -> QualityModel:
        """Learn offline from full-information outcomes: ``config.passes`` shuffled passes
        (blocking; seconds for thousands of prompts). Returns ``self``."""
        rows: list[tuple[str, list[tuple[str, float]]]] = []
        for k, ex in enumerate(examples):
            if not isinstance(ex.prompt, str) or not ex.prompt:
                raise ValueError(f"example {k}: the prompt must be a non-empty string")
            scores = [(e, _check_score(s)) for e, s in ex.scores.items()]
            if scores:
                rows.append((prompt_namespaces(self.context(ex.prompt)), scores))
        rng = random.Random(self.seed)
        order = list(range(len(rows)))
        for _ in range(self.config.passes):
            rng.shuffle(order)
            for k in order:
                shared, scores = rows[k]
                for endpoint, score in scores:
                    self._learn_line(self._line(shared, endpoint), score, 1.0)
        self.trained_on += len(rows)
        return self

    def learn_context(self, ctx: Mapping[str, Value], endpoint: str, score: float,
                      weight: float = 1.0) -> None:
        """Learn one observed score (online feedback) for ``endpoint`` on a logged context."""
        if not weight > 0.0:
            raise ValueError(f"weight must be > 0, got {weight!r}")
        self._learn_line(self._line(prompt_namespaces(ctx), endpoint), _check_score(score), weight)

    # -- prediction ----------------------------------------------------------------------
    def predict_context(self, ctx: Mapping[str, Value],
                        endpoints: Sequence[str] | None = None) -> dict[str, float]:
        """Predicted score per endpoint (default: the trained ones) for a context mapping."""
        shared = prompt_namespaces(ctx)
        return {e: self._vw.predict(self._line(shared, e)) for e in (endpoints or self.endpoints)}

    def predict(self, prompt: str, endpoints: Sequence[str] | None = None) -> dict[str, float]:
        """Predicted score per endpoint for a prompt."""
        return self.predict_context(self.context(prompt), endpoints)

    # -- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model with its endpoints and configuration (``from_bytes`` reads it)."""
        header = json.dumps({"endpoints": list(self.endpoints), "seed": self.seed,
                             "trained_on": self.trained_on, "learned": self._vw.learned,
                             "config": self.config.model_dump(mode="json")}).encode()
        return MAGIC + struct.pack("<I", len(header)) + header + self._vw.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> QualityModel:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            raise ModelStateError("not a Switchyard quality model (bad header)")
        start = len(MAGIC) + 4
        (size,) = struct.unpack("<I", data[len(MAGIC):start])
        try:
            header = json.loads(data[start:start + size])
            config = QualityConfig.model_validate(header["config"])
            endpoints = [str(e) for e in header["endpoints"]]
            seed = int(header["seed"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStateError(f"quality model header unreadable: {exc}") from exc
        vw = VWRegressor(config.vw_args, model=data[start + size:])
        model = cls(endpoints, config=config, seed=seed, _model=vw)
        model.trained_on = int(header.get("trained_on", 0))
        vw.learned = int(header.get("learned", 0))
        return model

    @property
    def learned(self) -> int:
        """VW examples learned so far (offline and online)."""
        return self._vw.learned

    def close(self) -> None:
        self._vw.close()
