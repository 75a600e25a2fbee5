"""The README stays true: its catalog parses, its SQL runs, its settings table is current."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from bandit.config import BanditConfig
from bandit.service import RouteRequest, RouterService
from collector.catalog import load_catalog
from collector.seed import seed_history
from collector.simulator import default_profiles
from warehouse.config import WarehouseConfig
from warehouse.models import Feedback
from warehouse.store import Warehouse

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def test_catalog_example_loads(tmp_path: Path) -> None:
    (example,) = [b for b in blocks("toml") if "[[endpoints]]" in b]
    path = tmp_path / "catalog.toml"
    path.write_text(example)
    catalog = load_catalog(path)
    assert [e.wire_format.value for e in catalog.endpoints] == ["openai", "anthropic", "openai"]
    assert catalog.endpoints[2].api_model == "llama-3.1-8b-instant"


@pytest.fixture(scope="module")
def read_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("readme") / "switchyard.duckdb"
    with Warehouse(WarehouseConfig(path=db)) as wh:
        endpoints = [p.to_endpoint("http://127.0.0.1:0") for p in default_profiles()]
        wh.upsert_endpoints(endpoints)
        seed_history(default_profiles(), wh.add_probes, days=1, seed=3, now=datetime.now(UTC))
        wh.flush()
        # decisions, as the router logs them
        router = RouterService(BanditConfig(checkpoint_path=db.parent / "bandit.ckpt"), wh,
                               endpoints)
        for i, prompt in enumerate(("What is the capital of France?",
                                    "Write a haiku about rain.") * 10):  # fmt: skip
            team = {"team": ("search", "docs")[i % 2]} if i % 4 < 3 else {}
            routed = router.route(RouteRequest(prompt=prompt, metadata=team))
            if i % 3 == 0:
                wh.add_feedback(Feedback(event_id=routed.decision.event_id, score=float(i % 2)))
        wh.flush()
        wh.snapshot()
        return wh.read_path


def test_sql_examples_run_on_the_read_only_catalog(read_catalog: Path) -> None:
    examples = blocks("sql")
    assert len(examples) >= 3
    con = duckdb.connect(str(read_catalog), read_only=True)
    try:
        for sql in examples:
            rows = con.execute(sql).fetchall()
            assert rows, f"README example returned no rows:\n{sql}"
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM probes")  # read-only: no way to change data
    finally:
        con.close()


def test_readme_documents_every_cli_command() -> None:
    from serving.__main__ import build_parser

    text = README.read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"switchyard {name}" in text, f"`switchyard {name}` is not in the README"


def test_settings_reference_is_current() -> None:
    from serving.docs import README as DOCS_README
    from serving.docs import updated

    text = DOCS_README.read_text()
    assert updated(text) == text, "README settings reference is stale: run python -m serving.docs"


def test_every_setting_has_a_description() -> None:
    from pydantic import BaseModel

    from serving.settings import ServingSettings

    def walk(model: type[BaseModel], path: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                missing += walk(ann, f"{path}{name}.")
            elif not field.description:
                missing.append(path + name)
        return missing

    assert walk(ServingSettings, "") == []


def test_router_strings_in_the_readme_parse() -> None:
    from bandit.router_string import parse_router

    text = README.read_text().replace("\\|", "|")  # pipes escaped inside Markdown tables
    found = set(re.findall(r"router@[^\s`'\"]+", text))
    assert len(found) >= 3
    for router in found:
        parse_router(router)  # raises RouterStringError on anything the README gets wrong
