"""The Kubernetes examples: every manifest against the API schemas (offline, strict), both
kustomizations rendered, and the rules the schema cannot see: probes, limits, security
context, the sidecar on loopback, the stand-alone router on 0.0.0.0 behind tokens.

Schemas come from ``kubernetes-validate`` (bundled JSON schemas, no network). Manifests are
checked against 1.29, the first release with native sidecars on by default, and against the
newest release the package knows.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import cast

import kubernetes_validate
import pytest
import yaml
from deploy_checks import (
    K8S,
    OVERLAYS,
    ROUTER_OVERLAYS,
    EnvResolver,
    KustomizeError,
    Manifest,
    container_env,
    find,
    iter_containers,
    load_yaml_docs,
    manifest_files,
    pod_policy_problems,
    pod_spec,
    render_kustomization,
    sort_key,
)

from collector.catalog import load_catalog
from collector.settings import CollectorSettings, SettingsError, load_settings

MIN_VERSION = "1.29.0"
VERSIONS = (MIN_VERSION, kubernetes_validate.latest_version())
GOOD_TOKEN = "t0ken-for-tests-0123456789abcdef"  # noqa: S105 (a test token)


def rendered(overlay: str) -> list[Manifest]:
    return render_kustomization(K8S / "overlays" / overlay)


def validate(resource: Manifest, version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


# -- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_matches_the_api_schema(path: Path, version: str) -> None:
    docs = load_yaml_docs(path)
    assert docs, f"{path} holds no manifest"
    for doc in docs:
        validate(doc, version)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_matches_the_api_schema(overlay: str) -> None:
    resources = rendered(overlay)
    kinds = sorted(str(r["kind"]) for r in resources)
    assert "ConfigMap" in kinds and "Deployment" in kinds
    for res in resources:
        for version in VERSIONS:
            validate(res, version)


def test_validator_rejects_a_wrong_field_type() -> None:
    deployment = copy.deepcopy(find(rendered("sidecar"), "Deployment", "example-app"))
    spec = cast(dict[str, list[dict[str, object]]], pod_spec(deployment))
    spec["initContainers"][0]["ports"] = [{"containerPort": "eighty"}]
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
        validate(deployment, MIN_VERSION)


def test_validator_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(find(rendered("standalone"), "Deployment", "switchyard"))
    spec = cast(dict[str, list[dict[str, object]]], pod_spec(deployment))
    spec["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(deployment, MIN_VERSION)


# -- kustomize ---------------------------------------------------------------------------------


def kubectl_kustomize() -> tuple[list[str] | None, str]:
    """A command that renders kustomizations with kustomize v4+, or why there is none."""
    if shutil.which("kubectl") is None:
        return None, "no kubectl on PATH"
    try:
        done = subprocess.run(["kubectl", "version", "--client", "-o", "yaml"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, "kubectl version timed out"
    info = yaml.safe_load(done.stdout or "{}") or {}
    kustomize = str(info.get("kustomizeVersion", ""))
    if not kustomize.startswith("v") or int(kustomize[1:].split(".")[0]) < 4:
        return None, f"kubectl has no kustomize v4+ (found {kustomize or 'none'})"
    return ["kubectl", "kustomize"], ""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_minimal_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    cmd, why = kubectl_kustomize()
    if cmd is None:
        pytest.skip(f"cross-check needs kubectl with kustomize: {why}")
    done = subprocess.run([*cmd, str(K8S / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = sorted((d for d in yaml.safe_load_all(done.stdout) if d), key=sort_key)
    ours = sorted(rendered(overlay), key=sort_key)
    assert ours == theirs


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n"
    )
    with pytest.raises(KustomizeError, match="patches"):
        render_kustomization(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match="does not exist"):
        render_kustomization(tmp_path)


def test_images_rule_retags_the_switchyard_image_only() -> None:
    images = {str(c["name"]): str(c["image"]) for c in iter_containers(rendered("sidecar"))}
    assert images["switchyard"] == "switchyard:0.1.0"
    assert images["app"] == "registry.example.com/example-app:1.0.0"


# -- pod rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_have_limits_and_a_locked_down_security_context(overlay: str) -> None:
    problems = [p for res in rendered(overlay) for p in pod_policy_problems(res)]
    assert problems == []


def test_policy_check_catches_a_privileged_root_container() -> None:
    deployment = copy.deepcopy(find(rendered("standalone"), "Deployment", "switchyard"))
    spec = cast(dict[str, object], pod_spec(deployment))
    spec["securityContext"] = {}
    container = cast(list[dict[str, object]], spec["containers"])[0]
    container["securityContext"] = {"privileged": True, "runAsUser": 0}
    del cast(dict[str, object], container["resources"])["limits"]
    problems = "\n".join(pod_policy_problems(deployment))
    for expected in ("no limits.cpu", "no limits.memory", "runAsNonRoot", "UID 0", "writable",
                     "privilege escalation", "privileged", "capabilities"):  # fmt: skip
        assert expected in problems


def switchyard_container(overlay: str) -> tuple[Manifest, dict[str, object], str]:
    """The Deployment, the switchyard container and the pod-spec list it sits in."""
    for res in rendered(overlay):
        spec = pod_spec(res)
        if spec is None:
            continue
        for key in ("initContainers", "containers"):
            for c in cast(list[dict[str, object]], spec.get(key) or []):
                if c["name"] in ("switchyard", "collector"):
                    return res, c, key
    raise AssertionError(f"no switchyard container in {overlay}")


def probe_target(probe: dict[str, object]) -> str:
    """``host:port/path`` a probe asks: httpGet, or the URL in an exec command."""
    if "httpGet" in probe:
        get = cast(dict[str, object], probe["httpGet"])
        return f"pod:{get['port']}{get['path']}"
    command = " ".join(cast(list[str], cast(dict[str, object], probe["exec"])["command"]))
    start = command.index("http://") + len("http://")
    return command[start:].split("'")[0]


def settings_for(container: dict[str, object], secrets: dict[tuple[str, str], str],
                 monkeypatch: pytest.MonkeyPatch) -> object:  # fmt: skip
    """The sidecar's settings as this container's environment gives them."""
    from serving.settings import ServingSettings

    env = EnvResolver(secrets).resolve(container_env(container))
    for name, value in env.items():
        if name.startswith("ROUTER_"):
            monkeypatch.setenv(name, value)
    return load_settings(ServingSettings)


def secrets_from(tokens: dict[str, str]) -> dict[tuple[str, str], str]:
    return {("switchyard-tokens", k): v for k, v in tokens.items()}


GOOD_SECRETS = secrets_from({"app-token": GOOD_TOKEN, "admin-token": GOOD_TOKEN[::-1]})


def test_sidecar_is_native_on_loopback_with_exec_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment, c, where = switchyard_container("sidecar")
    assert where == "initContainers" and c["restartPolicy"] == "Always"
    settings = settings_for(c, GOOD_SECRETS, monkeypatch)
    assert settings.host == "127.0.0.1"  # type: ignore[attr-defined]
    port = settings.port  # type: ignore[attr-defined]
    assert len(settings.tokens) == 2  # type: ignore[attr-defined]
    # kubelet httpGet probes go to the pod IP, which a loopback server never answers
    assert probe_target(c["readinessProbe"]) == f"127.0.0.1:{port}/readyz"  # type: ignore[arg-type]
    assert probe_target(c["livenessProbe"]) == f"127.0.0.1:{port}/healthz"  # type: ignore[arg-type]
    assert probe_target(c["startupProbe"]) == f"127.0.0.1:{port}/readyz"  # type: ignore[arg-type]
    app = next(x for x in iter_containers([deployment]) if x["name"] == "app")
    app_env = container_env(app)
    assert str(app_env["OPENAI_BASE_URL"]).startswith(f"http://127.0.0.1:{port}/")


def test_standalone_binds_all_interfaces_and_requires_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment, c, where = switchyard_container("standalone")
    assert where == "containers"
    env = container_env(c)
    bind_all = "0.0.0.0"  # noqa: S104 (what the manifest must say)
    assert env["ROUTER_HOST"] == bind_all, "the stand-alone router must bind 0.0.0.0 explicitly"
    assert "ROUTER_INSECURE_NO_AUTH" not in env
    settings = settings_for(c, GOOD_SECRETS, monkeypatch)
    assert settings.tokens and not settings.insecure_no_auth  # type: ignore[attr-defined]
    assert probe_target(c["readinessProbe"]) == "pod:http/readyz"  # type: ignore[arg-type]
    assert probe_target(c["livenessProbe"]) == "pod:http/healthz"  # type: ignore[arg-type]
    spec = cast(dict[str, object], deployment["spec"])
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # one writer
    service = find(rendered("standalone"), "Service", "switchyard")
    svc = cast(dict[str, object], service["spec"])
    labels = cast(dict[str, dict[str, object]], spec["template"])["metadata"]["labels"]
    assert cast(dict[str, str], svc["selector"]).items() <= cast(dict[str, str], labels).items()
    ports = {p["name"]: p for p in cast(list[dict[str, object]], c["ports"])}
    target = cast(list[dict[str, object]], svc["ports"])[0]["targetPort"]
    assert target in ports and ports[target]["containerPort"] == settings.port  # type: ignore[attr-defined]


def test_collector_alone_runs_collect_with_its_own_warehouse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serving.__main__ import build_parser

    deployment, c, where = switchyard_container("collector")
    args = cast(list[str], c["args"])
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert where == "containers" and args[0] == "collect" and "collect" in (sub.choices or {})
    build_parser().parse_args(args)  # every flag exists
    for name, value in container_env(c).items():
        if name.startswith("ROUTER_"):
            monkeypatch.setenv(name, str(value))
    settings = load_settings(CollectorSettings)  # the collector's own settings class
    sidecar_env = container_env(switchyard_container("sidecar")[1])
    assert str(settings.warehouse.path) != sidecar_env["ROUTER_WAREHOUSE__PATH"]
    spec = cast(dict[str, object], deployment["spec"])
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}


def test_example_secret_placeholders_cannot_start_a_router(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example tokens are too short on purpose: a pod started with them fails loudly."""
    docs = load_yaml_docs(K8S / "base" / "secrets.example.yaml")
    tokens = cast(dict[str, str], find(docs, "Secret", "switchyard-tokens")["stringData"])
    _, c, _ = switchyard_container("sidecar")
    with pytest.raises(SettingsError, match="at least 16 characters"):
        settings_for(c, secrets_from(tokens), monkeypatch)
    for overlay in OVERLAYS:  # and no kustomization applies the example Secrets
        assert not [r for r in rendered(overlay) if r["kind"] == "Secret"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mounts_back_every_path_setting(overlay: str, tmp_path: Path) -> None:
    deployment, c, _ = switchyard_container(overlay)
    if overlay == "collector":
        assert "ROUTER_BANDIT__CHECKPOINT_PATH" not in container_env(c)
    env = container_env(c)
    spec = cast(dict[str, object], pod_spec(deployment))
    volumes = {str(v["name"]): v for v in cast(list[dict[str, object]], spec["volumes"])}
    mounts = {str(m["mountPath"]): m for m in cast(list[dict[str, object]], c["volumeMounts"])}

    def volume_at(path: str) -> dict[str, object]:
        mount = mounts[str(Path(path).parent)]
        return cast(dict[str, object], volumes[str(mount["name"])])

    # catalog: a ConfigMap key, read-only, and a catalog that loads
    catalog_volume = volume_at(str(env["ROUTER_CATALOG"]))
    cm_name = cast(dict[str, str], catalog_volume["configMap"])["name"]
    cm = find(rendered(overlay), "ConfigMap", cm_name)
    key = Path(str(env["ROUTER_CATALOG"])).name
    catalog_file = tmp_path / key
    catalog_file.write_text(cast(dict[str, str], cm["data"])[key])
    catalog = load_catalog(catalog_file)
    # provider keys: a directory of files named after every api_key_env of the catalog
    keys_mount = mounts[str(env["ROUTER_SECRETS_FILE"])]
    secret_name = cast(dict[str, str], volumes[str(keys_mount["name"])]["secret"])["secretName"]
    example = find(load_yaml_docs(K8S / "base" / "secrets.example.yaml"), "Secret", secret_name)
    needed = {e.api_key_env for e in catalog.endpoints if e.api_key_env}
    assert needed <= set(cast(dict[str, str], example["stringData"]))
    # warehouse and checkpoint on a writable volume; /tmp writable with a read-only root
    for var in ("ROUTER_WAREHOUSE__PATH", "ROUTER_BANDIT__CHECKPOINT_PATH"):
        if var not in env:
            continue
        mount = mounts[str(Path(str(env[var])).parent)]
        assert not mount.get("readOnly"), f"{var} is on a read-only mount"
        volume = volumes[str(mount["name"])]
        assert "emptyDir" in volume or "persistentVolumeClaim" in volume
    tmp = "/tmp"  # noqa: S108 (the container's path, not ours)
    assert tmp in mounts and not mounts[tmp].get("readOnly")


def test_sidecar_grace_period_covers_the_drain() -> None:
    for overlay in ROUTER_OVERLAYS:
        deployment, c, _ = switchyard_container(overlay)
        grace = cast(dict[str, object], pod_spec(deployment))["terminationGracePeriodSeconds"]
        drain = float(str(container_env(c)["ROUTER_SHUTDOWN_TIMEOUT_S"]))
        assert int(cast(int, grace)) >= drain + 10, f"{overlay}: no time left to checkpoint"
