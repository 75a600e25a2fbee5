from __future__ import annotations

from pathlib import Path

import pytest

from collector.settings import CollectorSettings, SettingsError, load_secrets, load_settings


def test_defaults_bind_nothing_and_use_simulator() -> None:
    s = load_settings(CollectorSettings)
    assert s.catalog is None
    assert s.collector.interval_s == 60
    assert str(s.warehouse.path).endswith("switchyard.duckdb")


def test_env_overrides_file_and_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text("[collector]\ninterval_s = 30\nmax_tokens = 16\n")
    monkeypatch.setenv("ROUTER_COLLECTOR__INTERVAL_S", "12")
    s = load_settings(CollectorSettings, cfg)
    assert s.collector.interval_s == 12  # environment beats the file
    assert s.collector.max_tokens == 16  # the file beats the default


def test_bad_settings_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_COLLECTOR__MAX_CONCURRENCY", "0")
    with pytest.raises(SettingsError, match="ROUTER_COLLECTOR__MAX_CONCURRENCY.*greater than 0"):
        load_settings(CollectorSettings)


def test_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[collector\n")
    with pytest.raises(SettingsError, match="bad.toml: not valid TOML"):
        load_settings(CollectorSettings, bad)
    with pytest.raises(SettingsError, match="config file not found"):
        load_settings(CollectorSettings, tmp_path / "nope.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[collector]\nintervall_s = 3\n")
    with pytest.raises(SettingsError, match="collector.intervall_s"):
        load_settings(CollectorSettings, unknown)


def test_secrets_file_and_directory(tmp_path: Path) -> None:
    f = tmp_path / "keys.env"
    f.write_text("# provider keys\nOPENAI_API_KEY=sk-abc\nexport GROQ_KEY='gk-1'\n")
    keys = load_secrets(f)
    assert keys["OPENAI_API_KEY"].get_secret_value() == "sk-abc"
    assert keys["GROQ_KEY"].get_secret_value() == "gk-1"
    assert "sk-abc" not in repr(keys)
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "ANTHROPIC_API_KEY").write_text("ak-9\n")
    assert load_secrets(d)["ANTHROPIC_API_KEY"].get_secret_value() == "ak-9"
    bad = tmp_path / "bad.env"
    bad.write_text("OPENAI_API_KEY sk-oops\n")
    with pytest.raises(SettingsError) as info:
        load_secrets(bad)
    assert "bad.env:1" in str(info.value) and "sk-oops" not in str(info.value)
