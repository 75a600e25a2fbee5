"""Sidecar settings: secure, loopback defaults; environment parsing; validation messages."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from collector.settings import SettingsError, load_settings, settings_reference
from serving.settings import Scope, ServingSettings


def test_defaults_bind_loopback_and_need_tokens() -> None:
    s = ServingSettings()
    assert s.host == "127.0.0.1" and s.port == 8080
    assert s.tokens == () and s.insecure_no_auth is False
    assert s.body_limit_bytes == 1024 * 1024 and s.rate_limit.requests_per_s > 0


def test_environment_tokens_and_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [
        {"name": "app", "token": "a" * 24, "scopes": ["route", "feedback"]},
        {"name": "ops", "token": "b" * 24, "scopes": ["admin"]},
    ]
    monkeypatch.setenv("ROUTER_TOKENS", json.dumps(tokens))
    monkeypatch.setenv("ROUTER_PROXY__TTFT_TIMEOUT_S", "2.5")
    monkeypatch.setenv("ROUTER_RATE_LIMIT__BURST", "7")
    monkeypatch.setenv("ROUTER_BANDIT__EPSILON", "0.1")
    s = load_settings(ServingSettings)
    assert [t.name for t in s.tokens] == ["app", "ops"]
    assert s.tokens[0].scopes == frozenset({Scope.ROUTE, Scope.FEEDBACK})
    assert "a" * 24 not in repr(s)  # SecretStr
    assert s.proxy.ttft_timeout_s == 2.5 and s.rate_limit.burst == 7 and s.bandit.epsilon == 0.1


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_TOKENS", json.dumps([{"name": "x", "token": "short", "scopes": []}]))
    with pytest.raises(SettingsError, match="ROUTER_TOKENS"):
        load_settings(ServingSettings)
    monkeypatch.delenv("ROUTER_TOKENS")
    monkeypatch.setenv("ROUTER_PROXY__TOTAL_TIMEOUT_S", "1")
    with pytest.raises(SettingsError, match="total_timeout_s"):
        load_settings(ServingSettings)


def test_insecure_mode_only_on_loopback() -> None:
    assert ServingSettings(insecure_no_auth=True, host="::1").insecure_no_auth
    with pytest.raises(ValueError, match="loopback"):
        ServingSettings(insecure_no_auth=True, host="0.0.0.0")  # noqa: S104
    with pytest.raises(ValueError, match="unique"):
        ServingSettings(tokens=[{"name": "a", "token": "x" * 20, "scopes": ["route"]},
                                {"name": "a", "token": "y" * 20, "scopes": ["route"]}])  # fmt: skip


def test_every_setting_is_described_and_in_the_reference() -> None:
    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann)

    walk(ServingSettings)
    table = settings_reference(ServingSettings)
    for var in ("ROUTER_HOST", "ROUTER_TOKENS", "ROUTER_INSECURE_NO_AUTH",
                "ROUTER_PROXY__TTFT_TIMEOUT_S", "ROUTER_RATE_LIMIT__REQUESTS_PER_S",
                "ROUTER_BANDIT__FEEDBACK_WINDOW_S", "ROUTER_BODY_LIMIT_BYTES"):  # fmt: skip
        assert f"`{var}`" in table
