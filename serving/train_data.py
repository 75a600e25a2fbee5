"""The training file of ``switchyard train``: JSONL, one prompt per line, checked line by line.

Two kinds of line, one kind per file:

- ``{"prompt": "What is 17 * 23?", "ref_answer": "391"}``: a prompt to send to every
  candidate endpoint; ``ref_answer`` (a string or a number) is optional, and without it a
  judge endpoint scores the answers;
- ``{"prompt": "...", "scores": {"gpt-4@openai": 1, "mixtral@together": 0}}``: outcomes
  measured elsewhere, one score in [0, 1] (or true/false) per endpoint; nothing is called.

An optional ``"id"`` field is ignored. Every error names the file, the line and the field::

    prompts.jsonl:12: "prompt" must be a non-empty string

Blank lines are skipped; a prompt repeated on a later line is counted and skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.training import prompt_id

FIELDS = ("prompt", "ref_answer", "scores", "id")


class TrainDataError(ValueError):
    """A training file that cannot be used; the message names the file, line and field."""

    status = 400


@dataclass(frozen=True, slots=True)
class TrainPrompt:
    """One line of the file."""

    line: int
    prompt: str
    ref_answer: str | None = None
    scores: Mapping[str, float] | None = None

    @property
    def prompt_id(self) -> str:
        return prompt_id(self.prompt)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded training file: its prompts, its SHA-256 and which kind of lines it holds."""

    path: Path
    sha256: str
    prompts: tuple[TrainPrompt, ...]
    precomputed: bool
    duplicates: int = 0
    endpoints: tuple[str, ...] = field(default=())  # precomputed: every endpoint scored

    def where(self, item: TrainPrompt) -> str:
        return f"{self.path.name}:{item.line}"


def _scores(value: object, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise TrainDataError(f'{where}: "scores" must be a non-empty object of endpoint: score')
    out: dict[str, float] = {}
    for endpoint, score in value.items():
        if not endpoint.strip():
            raise TrainDataError(f'{where}: "scores" has an empty endpoint id')
        if isinstance(score, bool):
            score = float(score)
        if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
            raise TrainDataError(
                f'{where}: "scores"."{endpoint}" must be a number in [0, 1] or true/false, '
                f"got {json.dumps(score)}"
            )
        out[endpoint] = float(score)
    return out


def parse_line(text: str, where: str) -> TrainPrompt | None:
    """One line as a TrainPrompt (None for a blank line); ``where`` is ``file:line``."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise TrainDataError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise TrainDataError(f"{where}: each line must be a JSON object")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise TrainDataError(
            f'{where}: unknown field "{unknown[0]}" (expected {", ".join(FIELDS)})'
        )
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise TrainDataError(f'{where}: "prompt" must be a non-empty string')
    ref = obj.get("ref_answer")
    if ref is not None:
        if isinstance(ref, bool) or not isinstance(ref, str | int | float):
            raise TrainDataError(f'{where}: "ref_answer" must be a string or a number')
        ref = str(ref)
        if not ref.strip():
            raise TrainDataError(f'{where}: "ref_answer" must not be empty (leave it out)')
    line = int(where.rsplit(":", 1)[1])
    if "scores" in obj:
        if ref is not None:
            raise TrainDataError(f'{where}: give "ref_answer" or "scores", not both')
        return TrainPrompt(line, prompt, None, _scores(obj["scores"], where))
    return TrainPrompt(line, prompt, ref)


def load_dataset(path: str | Path) -> Dataset:
    """Read and check a training file (see the module doc)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainDataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    items: list[TrainPrompt] = []
    seen: dict[str, int] = {}
    duplicates = 0
    kind: tuple[bool, int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path.name}:{number}"
        item = parse_line(line, where)
        if item is None:
            continue
        precomputed = item.scores is not None
        if kind is None:
            kind = (precomputed, number)
        elif kind[0] != precomputed:
            first = "scores" if kind[0] else "prompts to send"
            raise TrainDataError(
                f'{where}: {"has" if precomputed else "lacks"} "scores" but line {kind[1]} '
                f"holds {first}: one kind of line per file"
            )
        pid = item.prompt_id
        if pid in seen:
            duplicates += 1
            continue
        seen[pid] = number
        items.append(item)
    if not items:
        raise TrainDataError(f"{path}: no prompts (one JSON object per line)")
    precomputed = bool(kind and kind[0])
    endpoints = sorted({e for i in items for e in (i.scores or {})}) if precomputed else []
    return Dataset(path=path, sha256=hashlib.sha256(raw).hexdigest(), prompts=tuple(items),
                   precomputed=precomputed, duplicates=duplicates,
                   endpoints=tuple(endpoints))  # fmt: skip
