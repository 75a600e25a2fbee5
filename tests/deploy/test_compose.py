"""deploy/compose.yaml: valid against the Compose specification (the schema that
``check-jsonschema`` vendors, read offline), and wired the way a pod is: the app shares the
sidecar's network namespace, the sidecar's catalog is the simulator's, keys and tokens agree.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploy_checks import DEPLOY, compose_interpolate

from collector.catalog import load_catalog
from collector.settings import load_settings
from collector.simulator import SimConfig, default_profiles

COMPOSE = DEPLOY / "compose.yaml"
Service = dict[str, object]


def compose() -> dict[str, object]:
    return cast(dict[str, object], yaml.safe_load(COMPOSE.read_text()))


def services() -> dict[str, Service]:
    return cast(dict[str, Service], compose()["services"])


def env_of(service: Service, shell: dict[str, str] | None = None) -> dict[str, str]:
    raw = cast(dict[str, object], service.get("environment") or {})
    return {k: compose_interpolate(str(v), shell) for k, v in raw.items()}


def compose_validator() -> jsonschema.protocols.Validator:
    schema_file = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    )
    schema = json.loads(schema_file.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cast(jsonschema.protocols.Validator, cls(schema, format_checker=cls.FORMAT_CHECKER))


def test_compose_file_matches_the_compose_spec() -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in compose_validator().iter_errors(compose())]
    assert errors == []


def test_compose_schema_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(compose())
    cast(dict[str, Service], broken["services"])["switchyard"]["enviroment"] = {"A": "1"}
    errors = [e.message for e in compose_validator().iter_errors(broken)]
    assert any("enviroment" in e for e in errors), errors


def test_app_shares_the_sidecars_network_and_reaches_it_on_loopback() -> None:
    from serving.settings import ServingSettings

    svc = services()
    app, sidecar = svc["app"], svc["switchyard"]
    assert app["network_mode"] == "service:switchyard"
    settings_env = env_of(sidecar)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in settings_env.items():
            if k.startswith("ROUTER_"):
                mp.setenv(k, v)
        settings = load_settings(ServingSettings)
    assert settings.host == "127.0.0.1"
    url = urlsplit(env_of(app)["SWITCHYARD_URL"])
    assert (url.hostname, url.port) == ("127.0.0.1", settings.port)
    token = env_of(app)["SWITCHYARD_TOKEN"]
    match = [t for t in settings.tokens if t.token.get_secret_value() == token]
    assert match and {"route", "feedback"} <= {s.value for s in match[0].scopes}
    # the same default token on both sides also when the shell overrides it
    shell = {"SWITCHYARD_APP_TOKEN": "from-the-shell-0123456789abcdef"}
    assert shell["SWITCHYARD_APP_TOKEN"] in env_of(sidecar, shell)["ROUTER_TOKENS"]
    assert env_of(app, shell)["SWITCHYARD_TOKEN"] == shell["SWITCHYARD_APP_TOKEN"]


def test_catalog_is_the_simulators_and_keys_agree() -> None:
    svc = services()
    sim, sidecar = svc["simulator"], svc["switchyard"]
    args = [*cast(list[str], sim["entrypoint"]), *cast(list[str], sim["command"])]
    assert args[:3] == ["python", "-m", "collector.simulator"]
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 (inside its container)
    port = int(args[args.index("--port") + 1])
    env = env_of(sidecar)
    mounts = {m.split(":")[1]: m.split(":")[0] for m in cast(list[str], sidecar["volumes"])}
    source = mounts[env["ROUTER_CATALOG"]]
    catalog = load_catalog((COMPOSE.parent / source).resolve())
    expected = SimConfig(profiles=default_profiles()).catalog(
        f"http://simulator:{port}", api_key_env="SIM_API_KEY"
    )
    assert list(catalog.endpoints) == expected, (
        "deploy/catalog.simulator.toml is stale: regenerate it (command in its header)"
    )
    assert env["SIM_API_KEY"] == env_of(sim)["SIM_REQUIRE_KEY"]
    assert mounts.get("/data") == "switchyard-data"
    assert Path(env["ROUTER_WAREHOUSE__PATH"]).parent == Path("/data")


def test_services_run_hardened() -> None:
    for name, svc in services().items():
        assert svc.get("read_only") is True, name
        assert svc.get("cap_drop") == ["ALL"], name
        assert str(svc.get("user", "")).split(":")[0] not in ("", "0", "root"), name
        assert "no-new-privileges:true" in cast(list[str], svc.get("security_opt") or []), name
