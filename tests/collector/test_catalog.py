from __future__ import annotations

from pathlib import Path

import pytest

from collector.catalog import Catalog, load_catalog
from collector.errors import CatalogError

GOOD_TOML = """
[[endpoints]]
id = "gpt-4o-mini@openai"
base_url = "https://api.openai.com/v1/"
wire_format = "openai"
api_key_env = "OPENAI_API_KEY"
price_in_per_mtok = 0.15
price_out_per_mtok = 0.6
context_window = 128000
tags = ["small"]

[[endpoints]]
id = "claude-3-5-haiku@anthropic"
base_url = "https://api.anthropic.com/v1"
wire_format = "anthropic"
api_key_env = "ANTHROPIC_API_KEY"
price_in_per_mtok = 0.8
price_out_per_mtok = 4
context_window = 200000
probes_per_hour = 30
max_tokens_per_probe = 32

[[probe_prompts]]
name = "short"
text = "Say hi."
"""

GOOD_YAML = """
endpoints:
  - id: llama-3-8b@groq
    base_url: https://api.groq.com/openai/v1
    wire_format: openai
    price_in_per_mtok: 0.05
    price_out_per_mtok: 0.08
    context_window: 8192
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_catalog_loads(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, "catalog.toml", GOOD_TOML))
    assert [e.id for e in cat.endpoints] == ["gpt-4o-mini@openai", "claude-3-5-haiku@anthropic"]
    first = cat.endpoints[0]
    assert first.base_url == "https://api.openai.com/v1"  # trailing slash removed
    assert first.provider == "openai" and first.model == "gpt-4o-mini"
    assert cat.endpoints[1].probes_per_hour == 30
    assert [p.name for p in cat.probe_prompts] == ["short"]


def test_yaml_catalog_loads_with_default_prompts(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, "catalog.yaml", GOOD_YAML))
    assert cat.endpoints[0].id == "llama-3-8b@groq"
    assert {p.name for p in cat.probe_prompts} == {"short", "long"}


def test_round_trip_through_toml(tmp_path: Path) -> None:
    cat = load_catalog(write(tmp_path, "catalog.toml", GOOD_TOML))
    again = load_catalog(write(tmp_path, "again.toml", cat.dump_toml()))
    assert again == cat


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD_TOML.replace("price_in_per_mtok = 0.8", "price_in_per_mtok = -1"),
         "endpoints[1].price_in_per_mtok: Input should be greater than or equal to 0 (got -1)"),
        (GOOD_TOML.replace('id = "gpt-4o-mini@openai"', 'id = "gpt-4o-mini"'),
         "endpoints[0].id: endpoint id 'gpt-4o-mini' must look like model@provider"),
        (GOOD_TOML.replace('wire_format = "anthropic"', 'wire_format = "grpc"'),
         "endpoints[1].wire_format: Input should be 'openai' or 'anthropic'"),
        (GOOD_TOML.replace("context_window = 8192", "").replace("context_window = 128000", ""),
         "endpoints[0].context_window: Field required"),
        (GOOD_TOML.replace('api_key_env = "OPENAI_API_KEY"', 'api_key_env = "sk-live-123"'),
         "endpoints[0].api_key_env: api_key_env 'sk-live-123' must be the NAME"),
        (GOOD_TOML + '\n[[endpoints]]\nid = "gpt-4o-mini@openai"\nbase_url = "http://x"\n'
         'wire_format = "openai"\nprice_in_per_mtok = 1\nprice_out_per_mtok = 1\n'
         "context_window = 10\n", "duplicate endpoint id 'gpt-4o-mini@openai'"),
        (GOOD_TOML.replace("tags = [\"small\"]", "tags = [\"small\"]\ncolour = \"red\""),
         "endpoints[0].colour: Extra inputs are not permitted"),
        ('endpoints = []', "endpoints: Tuple should have at least 1 item"),
    ],
)
def test_bad_catalog_names_file_field_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"bad\.toml: not valid TOML"):
        load_catalog(write(tmp_path, "bad.toml", "[[endpoints]\n"))
    with pytest.raises(CatalogError, match=r"bad\.yaml: not valid YAML"):
        load_catalog(write(tmp_path, "bad.yaml", "endpoints: [\n"))
    with pytest.raises(CatalogError, match="cannot read catalog"):
        load_catalog(tmp_path / "missing.toml")
    with pytest.raises(CatalogError, match="unknown catalog format"):
        load_catalog(write(tmp_path, "cat.ini", "x"))
    with pytest.raises(CatalogError, match="top level must be a table"):
        load_catalog(write(tmp_path, "list.yaml", "- 1\n- 2\n"))


def test_catalog_get() -> None:
    cat = Catalog.model_validate(
        {"endpoints": [{"id": "a@b", "base_url": "http://127.0.0.1:1/v1", "wire_format": "openai",
                        "price_in_per_mtok": 1, "price_out_per_mtok": 2, "context_window": 10}]}
    )
    assert cat.get("a@b").price_out_per_mtok == 2
    with pytest.raises(KeyError):
        cat.get("nope@x")
