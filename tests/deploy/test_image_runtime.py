"""The container's run-time wiring without a container engine: the compose services as
processes on loopback.

The provider simulator runs with the compose command (loopback instead of 0.0.0.0, a free
port), the sidecar runs the image's ENTRYPOINT + CMD with the image's ENV and the compose
service's environment (``/data`` and the catalog mapped into ``tmp_path``), then:

- the Dockerfile's HEALTHCHECK, the compose readiness check and the Kubernetes exec probes,
  run as written, succeed against it (and the HEALTHCHECK fails once it has stopped);
- the example app, as compose runs it, gets routed answers and records feedback;
- SIGTERM stops it cleanly, the warehouse, its lake and the model checkpoint are on the data
  volume, and nothing was written to the working directory or HOME (a read-only root
  filesystem would not have broken it).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml
from deploy_checks import (
    DEPLOY,
    K8S,
    REPO,
    compose_interpolate,
    container_env,
    find,
    iter_containers,
    key_values,
    parse_dockerfile,
    render_kustomization,
)

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + timeout_s
    seen: list[str] = []
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith(prefix):
                return line
    raise AssertionError(f"no {prefix!r} line in time; output: {''.join(seen)[-2000:]}")


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise
    return cast(int, proc.returncode)


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTER_", "SIM_"))}
    env["PYTHONPATH"] = str(REPO)
    env["HOME"] = str(tmp / "home")
    return env


def image_env(tmp: Path) -> dict[str, str]:
    """The final stage's ENV, with /data and /tmp mapped into ``tmp``."""
    ins = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    last = max(i.stage for i in ins)
    out: dict[str, str] = {}
    for i in ins:
        if i.keyword == "ENV" and i.stage == last:
            for key, value in key_values(i.args):
                if key in ("PATH", "HOME"):
                    continue
                image_tmp = "/tmp/"  # noqa: S108 (the image's path, mapped into ours)
                out[key] = value.replace("/data/", f"{tmp}/data/").replace(
                    image_tmp, f"{tmp}/scratch/"
                )
    return out


def dockerfile_cmd() -> list[str]:
    ins = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
    entry = [i for i in ins if i.keyword == "ENTRYPOINT"][-1].exec_form() or []
    cmd = [i for i in ins if i.keyword == "CMD"][-1].exec_form() or []
    assert entry == ["switchyard"]
    return cmd


def healthcheck_cmd() -> list[str]:
    check = [i for i in parse_dockerfile((DEPLOY / "Dockerfile").read_text())
             if i.keyword == "HEALTHCHECK"][-1]  # fmt: skip
    form = check.args[check.args.index("CMD ") + 4 :]
    argv = yaml.safe_load(form)
    assert isinstance(argv, list) and argv[0] == "python"
    return [sys.executable, *argv[1:]]


def up_argv() -> list[str]:
    """``switchyard <CMD>`` as this checkout runs it (``python -m serving``)."""
    from serving.__main__ import build_parser

    cmd = dockerfile_cmd()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    if cmd[0] in (sub.choices or {}):
        return [sys.executable, "-m", "serving", *cmd]
    # `switchyard up` is being wired into the CLI; test_dockerfile.py fails meanwhile
    script = ("from collector.settings import load_settings; "
              "from serving.settings import ServingSettings; from serving.up import run; "
              "raise SystemExit(run(load_settings(ServingSettings)))")  # fmt: skip
    return [sys.executable, "-c", script]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, object]]:
    """Simulator + sidecar as compose wires them, on loopback."""
    for d in ("data", "scratch", "home", "cwd"):
        (tmp_path / d).mkdir()
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    sim_svc, side_svc = services["simulator"], services["switchyard"]

    sim_port = free_port()
    sim_args = [*sim_svc["entrypoint"][1:], *sim_svc["command"]]
    sim_args[sim_args.index("--host") + 1] = "127.0.0.1"
    sim_args[sim_args.index("--port") + 1] = str(sim_port)
    sim_env = base_env(tmp_path)
    sim_env.update({k: compose_interpolate(str(v)) for k, v in sim_svc["environment"].items()})
    simulator = subprocess.Popen(  # noqa: S603
        [sys.executable, *sim_args, "--latency-scale", "0.1"],
        cwd=tmp_path / "cwd", env=sim_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    sidecar: subprocess.Popen[str] | None = None
    try:
        wait_for_line(simulator, "READY ", START_TIMEOUT_S)
        port = free_port()
        side_env = base_env(tmp_path)
        side_env.update(image_env(tmp_path))
        for k, v in side_svc["environment"].items():
            side_env[k] = compose_interpolate(str(v)).replace("/data/", f"{tmp_path}/data/")
        catalog_text = (DEPLOY / "catalog.simulator.toml").read_text()
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(catalog_text.replace("http://simulator:9000",
                                                f"http://127.0.0.1:{sim_port}"))  # fmt: skip
        side_env["ROUTER_CATALOG"] = str(catalog)
        side_env["ROUTER_PORT"] = str(port)
        side_env["ROUTER_COLLECTOR__INTERVAL_S"] = "2"
        side_env["ROUTER_COLLECTOR__JITTER_S"] = "0.2"
        sidecar = subprocess.Popen(  # noqa: S603
            up_argv(), cwd=tmp_path / "cwd", env=side_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_for_line(sidecar, "READY http://127.0.0.1:", START_TIMEOUT_S)
        yield {"tmp": tmp_path, "port": port, "env": side_env, "sidecar": sidecar,
               "app_env": {k: compose_interpolate(str(v))
                           for k, v in services["app"]["environment"].items()}}  # fmt: skip
    finally:
        if sidecar is not None:
            stop(sidecar)
        stop(simulator)


def run_check(argv: list[str], env: dict[str, str]) -> int:
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode  # noqa: S603


@pytest.mark.slow
def test_container_wiring_end_to_end(stack: dict[str, object]) -> None:
    tmp = cast(Path, stack["tmp"])
    port = cast(int, stack["port"])
    env = cast(dict[str, str], stack["env"])
    sidecar = cast(subprocess.Popen[str], stack["sidecar"])

    # the image's HEALTHCHECK, as written, with the container's environment
    assert run_check(healthcheck_cmd(), env) == 0
    # compose's readiness check and the pod's exec probes (their port mapped to ours)
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    compose_check = services["switchyard"]["healthcheck"]["test"][1:]
    probes = [compose_check]
    pod = find(render_kustomization(K8S / "overlays" / "sidecar"), "Deployment", "example-app")
    container = next(c for c in iter_containers([pod]) if c["name"] == "switchyard")
    k8s_port = str(container_env(container)["ROUTER_PORT"])
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = cast(dict[str, dict[str, list[str]]], container[kind])
        probes.append(probe["exec"]["command"])
    for argv in probes:
        argv = [sys.executable, *argv[1:-1], argv[-1].replace(f":{k8s_port}/", f":{port}/")]
        assert run_check(argv, env) == 0, argv

    # the example app as compose runs it: routed answers and feedback
    app_env = base_env(tmp)
    app_env.update(cast(dict[str, str], stack["app_env"]))
    app_env.update({"SWITCHYARD_URL": f"http://127.0.0.1:{port}", "EXAMPLE_MAX_CALLS": "2",
                    "EXAMPLE_INTERVAL_S": "0.1"})  # fmt: skip
    app = subprocess.run(  # noqa: S603
        [sys.executable, str(DEPLOY / "example_app.py")],
        env=app_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = app.stdout.strip().splitlines()
    assert app.returncode == 0 and len(lines) == 2, app.stdout + app.stderr
    assert all("@" in ln.split()[0] and "-> HTTP 200" in ln for ln in lines), lines

    # SIGTERM: clean exit, state on the data volume, nothing elsewhere
    assert stop(sidecar) == 0
    data = tmp / "data"
    assert (data / "switchyard.duckdb").is_file() and (data / "bandit.ckpt").is_file()
    assert (data / "switchyard-lake").is_dir()
    assert list((tmp / "cwd").iterdir()) == [] and list((tmp / "home").iterdir()) == []
    assert run_check(healthcheck_cmd(), env) != 0  # and the health check notices
