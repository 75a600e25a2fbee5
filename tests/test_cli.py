"""The `switchyard` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parent.parent


def switchyard(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd or REPO, env=env_for(env),
    )


def env_for(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def count_rows(db: Path, table: str = "probes") -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def test_cost_report_lists_every_endpoint_and_a_total() -> None:
    out = switchyard("collect", "--cost")
    assert out.returncode == 0, out.stderr
    assert "gpt-4-turbo@openai" in out.stdout and "total" in out.stdout
    assert "USD per 30 days" in out.stdout


def test_bad_catalog_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.toml"
    bad.write_text('[[endpoints]]\nid = "m@p"\nbase_url = "ftp://x"\nwire_format = "openai"\n'
                   "price_in_per_mtok = 1\nprice_out_per_mtok = 1\ncontext_window = 10\n")
    out = switchyard("collect", "--catalog", str(bad), "--once")
    assert out.returncode == 2
    assert f"{bad}: endpoints[0].base_url" in out.stderr
    assert "must start with http://" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    out = switchyard("collect", "--once", env={"ROUTER_COLLECTOR__MAX_TOKENS": "lots"})
    assert out.returncode == 2
    assert "ROUTER_COLLECTOR__MAX_TOKENS" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_demo_probes_the_simulator_into_duckdb(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    out = switchyard("demo", "--duration", "7", "--interval", "1", "--db", str(db), timeout=90)
    assert out.returncode == 0, out.stderr
    assert "ttft p50" in out.stdout and "gpt-4o-mini@openai" in out.stdout
    assert "every row flushed" in out.stdout
    rows = count_rows(db)
    assert rows >= 8  # every endpoint at least once
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT DISTINCT endpoint_id FROM probes").fetchall()}
    con.close()
    assert len(ids) == 8


@pytest.mark.slow
def test_sigterm_flushes_every_probe(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving", "collect", "--interval", "0.5", "--db", str(db),
         "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env_for(),
    )
    try:
        assert proc.stdout is not None
        started = proc.stdout.readline()  # printed once the scheduler runs
        assert started.startswith("probing 8 endpoints"), started
        # 5 s: after 3 s some runs had only 15 (a start-up stall, not traced; ~30/s after it)
        time.sleep(5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    fired = int(re.search(r"stopped after (\d+) probes; every row flushed", stdout)[1])  # type: ignore[index]
    assert fired >= 16  # 8 endpoints, several rounds
    assert count_rows(db) == fired  # none lost at shutdown


@pytest.mark.slow
def test_seed_then_time_of_day_report(tmp_path: Path) -> None:
    db = tmp_path / "seeded.duckdb"
    out = switchyard("warehouse", "seed", "--days", "2", "--db", str(db), timeout=120)
    assert out.returncode == 0, out.stderr
    assert count_rows(db) == 8 * 2 * 1440
    report_dir = tmp_path / "reports"
    out = switchyard("report", "tod", "--db", str(db), "--tz", "America/New_York",
                     "--out", str(report_dir), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "significant" in out.stdout
    pngs = list(report_dir.glob("*.png"))
    htmls = list(report_dir.glob("*.html"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(htmls) == 1 and "gpt-4o-mini@openai" in htmls[0].read_text()


def test_report_errors_are_clear(tmp_path: Path) -> None:
    out = switchyard("report", "tod", "--db", str(tmp_path / "none.duckdb"))
    assert out.returncode == 2 and "no warehouse here" in out.stderr
    out = switchyard("report", "tod", "--db", str(tmp_path / "none.duckdb"), "--since", "yesterday")
    assert out.returncode == 2 and "--since: 'yesterday' is not an ISO date" in out.stderr
