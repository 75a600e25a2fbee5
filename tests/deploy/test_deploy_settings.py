"""Every ``ROUTER_*`` variable that deploy/ (and docs/operations.md) mentions is a real
setting of the sidecar, derived by walking its settings model the way
``collector.settings.settings_reference`` does."""

from __future__ import annotations

from pathlib import Path

from deploy_checks import DEPLOY, REPO, router_env_names, setting_env_names, settings_class

DOCS = REPO / "docs" / "operations.md"


def deploy_texts() -> list[Path]:
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    return sorted(files + ([DOCS] if DOCS.is_file() else []))


def test_settings_class_is_the_sidecars() -> None:
    cls, name = settings_class()
    assert name == "serving.settings.ServingSettings", f"fell back to {name}"
    assert {"ROUTER_HOST", "ROUTER_TOKENS", "ROUTER_WAREHOUSE__PATH"} <= setting_env_names(cls)


def test_every_router_variable_in_deploy_is_a_setting() -> None:
    cls, name = settings_class()
    valid = setting_env_names(cls)
    used = router_env_names(deploy_texts())
    assert len(used) >= 10, f"expected the examples to use settings, found {sorted(used)}"
    unknown = {k: v for k, v in used.items() if k not in valid}
    assert unknown == {}, f"not settings of {name}: {unknown}"


def test_checker_flags_a_misspelt_variable(tmp_path: Path) -> None:
    cls, _ = settings_class()
    bad = tmp_path / "bad.yaml"
    bad.write_text("env:\n  - name: ROUTER_WAREHOUSE__PATHH\n  - name: ROUTER_HOST\n")
    used = router_env_names([bad])
    assert set(used) == {"ROUTER_WAREHOUSE__PATHH", "ROUTER_HOST"}
    assert set(used) - setting_env_names(cls) == {"ROUTER_WAREHOUSE__PATHH"}
