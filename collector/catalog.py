"""The endpoint catalog: a TOML or YAML file listing endpoints and probe prompts.

A catalog looks like this (TOML)::

    [[endpoints]]
    id = "gpt-4o-mini@openai"
    base_url = "https://api.openai.com/v1"
    wire_format = "openai"
    api_key_env = "OPENAI_API_KEY"
    price_in_per_mtok = 0.15
    price_out_per_mtok = 0.60
    context_window = 128000
    tags = ["small"]

    [[probe_prompts]]
    name = "short"
    text = "Count from one to twenty in words."

A file that cannot be loaded raises :class:`collector.errors.CatalogError` whose message names the
file, the field (``endpoints[2].price_in_per_mtok``) and what is wrong.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from collector.errors import CatalogError
from warehouse.models import Endpoint

DEFAULT_PROBE_PROMPTS: tuple[tuple[str, str], ...] = (
    ("short", "Count from one to twenty in words, separated by spaces."),
    (
        "long",
        "Summarise the following passage in two sentences.\n\n"
        + " ".join(
            "The quick brown fox jumps over the lazy dog while the river runs to the sea."
            for _ in range(60)
        ),
    ),
)


class ProbePromptSpec(BaseModel):
    """A prompt the collector sends to every endpoint, by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    text: str = Field(min_length=1)


class Catalog(BaseModel):
    """Endpoints plus the probe prompts sent to them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoints: tuple[Endpoint, ...] = Field(min_length=1)
    probe_prompts: tuple[ProbePromptSpec, ...] = Field(
        default_factory=lambda: tuple(
            ProbePromptSpec(name=n, text=t) for n, t in DEFAULT_PROBE_PROMPTS
        )
    )

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        seen: set[str] = set()
        for i, ep in enumerate(self.endpoints):
            if ep.id in seen:
                raise ValueError(f"endpoints[{i}].id: duplicate endpoint id {ep.id!r}")
            seen.add(ep.id)
        names = [p.name for p in self.probe_prompts]
        if len(set(names)) != len(names):
            raise ValueError("probe_prompts: prompt names must be unique")
        return self

    def get(self, endpoint_id: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.id == endpoint_id:
                return ep
        raise KeyError(endpoint_id)

    def dump_toml(self) -> str:
        """The catalog as TOML text (round-trips through :func:`load_catalog`)."""
        out: list[str] = []
        for ep in self.endpoints:
            out.append("[[endpoints]]")
            for key, value in ep.model_dump(mode="json", exclude_none=True).items():
                out.append(f"{key} = {json.dumps(value)}")
            out.append("")
        for p in self.probe_prompts:
            out.append("[[probe_prompts]]")
            out.append(f"name = {json.dumps(p.name)}")
            out.append(f"text = {json.dumps(p.text)}")
            out.append("")
        return "\n".join(out)


def _loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: ``file: field.path: message (got value)``."""
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{source}: {_loc(err['loc'])}: {msg}{shown}")
    return "\n".join(lines)


def parse_catalog(data: object, source: str = "<catalog>") -> Catalog:
    """Validate already-parsed catalog data; errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: the top level must be a table with an 'endpoints' list")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(format_validation_error(source, exc)) from None


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a ``.toml``, ``.yaml``/``.yml`` or ``.json`` catalog file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: object = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(raw)
        elif suffix == ".json":
            data = json.loads(raw)
        else:
            raise CatalogError(f"{path}: unknown catalog format {suffix!r}; use .toml or .yaml")
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not UTF-8 text") from None
    return parse_catalog(data, str(path))
