"""The trade-off graph: frontier table, PNG, and the HTML page in a real headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.tradeoff_plot import frontier_table, render_html, render_png, router_strings

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")

DATA: dict[str, object] = {
    "endpoints": [
        {"endpoint": "big@p", "quality": 0.9, "cost_per_1k": 5.0, "ttft_ms": 400.0},
        {"endpoint": "small@p", "quality": 0.6, "cost_per_1k": 0.2, "ttft_ms": 150.0},
    ],
    "routers": [
        {"router": "router@q:1|c:0.01", "quality": 0.88, "cost_per_1k": 2.0, "ttft_ms": 300.0,
         "shares": {"big@p": 0.4, "small@p": 0.6}, "axis": "cost", "frontier": True},
        {"router": "router@q:1|c:0.1", "quality": 0.7, "cost_per_1k": 0.8, "ttft_ms": 200.0,
         "shares": {"big@p": 0.1, "small@p": 0.9}, "axis": "cost", "frontier": True},
        {"router": "router@q:1|c:0.001", "quality": 0.85, "cost_per_1k": 4.0, "ttft_ms": 380.0,
         "shares": {"big@p": 0.8, "small@p": 0.2}, "axis": "cost", "frontier": False},
        {"router": "router@q:1|t:0.001", "quality": 0.8, "cost_per_1k": 3.0, "ttft_ms": 250.0,
         "shares": {"big@p": 0.5, "small@p": 0.5}, "axis": "ttft", "frontier": True},
    ],
    "heldout": 200,
}


def test_frontier_table_lists_frontier_stars_cheapest_first() -> None:
    text = frontier_table(DATA)
    lines = text.splitlines()
    assert lines[0] == "frontier, quality vs cost (200 held-out prompts):"
    assert lines[2].endswith("router@q:1|c:0.1") and lines[3].endswith("router@q:1|c:0.01")
    assert "router@q:1|c:0.001" not in text  # dominated
    assert "frontier, quality vs TTFT" in text and "router@q:1|t:0.001" in text
    assert text.splitlines()[-2].endswith("small@p") and "0.600" in text.splitlines()[-2]
    assert router_strings(DATA)[0] == "router@q:1|c:0.01"


def test_png_is_a_png() -> None:
    png = render_png(DATA, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_html_is_self_contained_and_escaped() -> None:
    hostile = {**DATA, "endpoints": [{"endpoint": "</script><b>x@p", "quality": 0.5,
                                      "cost_per_1k": 1.0, "ttft_ms": 1.0}]}
    page = render_html(hostile, title="<run & co>")
    assert "&lt;run &amp; co&gt;" in page and "</script><b>" not in page
    assert "<script src" not in page and "https://" not in page and "<link" not in page


def test_html_switches_axis_and_copies_a_router_string(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (set SWITCHYARD_CHROMIUM)")
    page_file = tmp_path / "graph.html"
    page_file.write_text(render_html(DATA))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            cost_stars = page.locator("path.star").evaluate_all(
                "els => els.map(e => e.dataset.router)")
            assert sorted(cost_stars) == ["router@q:1|c:0.001", "router@q:1|c:0.01",
                                          "router@q:1|c:0.1"]
            assert page.locator("circle").count() == 2
            assert page.locator("text", has_text="USD per 1,000 requests").count() == 1
            page.check("input[value=ttft]")
            assert page.locator("path.star").evaluate_all(
                "els => els.map(e => e.dataset.router)") == ["router@q:1|t:0.001"]
            assert page.locator("text", has_text="TTFT (ms)").count() == 1
            page.locator("path.star").first.click()
            # the toast follows the clipboard's promise: wait for it (up to 5 s)
            sync_api.expect(page.locator("#toast")).to_have_text(
                "copied router@q:1|t:0.001", timeout=5000)
            assert errors == []
        finally:
            browser.close()
