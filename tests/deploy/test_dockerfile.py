"""The image: deploy/Dockerfile passes the image rules, its lock files match pyproject.toml,
its context filter keeps what it copies, and it builds wherever a Docker engine runs.

The lint rules live in ``deploy_checks.lint_dockerfile``; the negative tests below break the
real Dockerfile one rule at a time and check that the lint names the broken rule.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
import uuid

import pytest
from deploy_checks import DEPLOY, REPO, lint_dockerfile, parse_dockerfile
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DOCKERFILE = DEPLOY / "Dockerfile"
LOCK = DEPLOY / "requirements.lock"
BUILD_LOCK = DEPLOY / "build.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def dockerfile_text() -> str:
    return DOCKERFILE.read_text()


def test_dockerfile_passes_the_image_rules() -> None:
    assert lint_dockerfile(dockerfile_text()) == []


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the Dockerfile no longer contains {old!r}: update this test"
    return text.replace(old, new)


def _drop_healthcheck(text: str) -> str:
    out = re.sub(r"\nHEALTHCHECK [^\n]*\\\n[^\n]*\n", "\n", text)
    assert out != text
    return out


def _single_stage(text: str) -> str:
    """The build stage alone, with a USER and HEALTHCHECK, but nothing copied across."""
    head = text.split("\n# ---- runtime")[0]
    return head + '\nUSER 10001\nHEALTHCHECK CMD ["python", "-c", "pass"]\n'


BROKEN = {
    "user root": (lambda t: _replace(t, "USER 10001:10001", "USER root"), "runs as root"),
    "user 0": (lambda t: _replace(t, "USER 10001:10001", "USER 0:0"), "runs as root"),
    "no user": (lambda t: _replace(t, "USER 10001:10001\n", ""), "sets no USER"),
    "latest base": (
        lambda t: re.sub(r"ARG PYTHON_IMAGE=\S+", "ARG PYTHON_IMAGE=python:latest", t),
        "not pinned",
    ),
    "minor-only tag": (
        lambda t: re.sub(r"ARG PYTHON_IMAGE=\S+", "ARG PYTHON_IMAGE=python:3.11-slim", t),
        "pin a full version",
    ),
    "env api key": (
        lambda t: _replace(t, "ENV PATH=", "ENV OPENAI_API_KEY=sk-test-123\nENV PATH="),
        "OPENAI_API_KEY=...: a secret baked in",
    ),
    "arg token": (
        lambda t: _replace(t, "FROM ${PYTHON_IMAGE} AS runtime",
                           "FROM ${PYTHON_IMAGE} AS runtime\nARG GITHUB_TOKEN=ghp_abc"),
        "GITHUB_TOKEN=...: a secret baked in",
    ),
    "copied .env": (
        lambda t: _replace(t, "COPY pyproject.toml README.md ./",
                           "COPY .env pyproject.toml README.md ./"),
        "a secret file baked in",
    ),
    "no healthcheck": (_drop_healthcheck, "no HEALTHCHECK"),
    "curl healthcheck": (
        lambda t: re.sub(r'CMD \["python", "-c", "[^\n]*', 'CMD curl -f http://127.0.0.1:8080/healthz',
                         t),
        "curl",
    ),
    "single stage": (_single_stage, "not multi-stage"),
    "unhashed install": (
        lambda t: _replace(t, "pip install --require-hashes --no-deps --only-binary=:all: \\\n"
                           "        -r deploy/requirements.lock",
                           "pip install -r deploy/requirements.lock"),
        "without --require-hashes",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_lint_catches_a_broken_dockerfile(case: str) -> None:
    mutate, expected = BROKEN[case]
    problems = lint_dockerfile(mutate(dockerfile_text()))
    assert any(expected in p for p in problems), problems


def test_entrypoint_is_the_cli_and_cmd_a_real_subcommand() -> None:
    """ENTRYPOINT is the ``switchyard`` console script; CMD names one of its subcommands."""
    from serving.__main__ import build_parser

    ins = parse_dockerfile(dockerfile_text())
    last = max(i.stage for i in ins)
    entry = [i for i in ins if i.keyword == "ENTRYPOINT" and i.stage == last][-1].exec_form()
    cmd = [i for i in ins if i.keyword == "CMD" and i.stage == last][-1].exec_form()
    assert entry == ["switchyard"]
    assert PYPROJECT["project"]["scripts"]["switchyard"] == "serving.__main__:main"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert cmd and cmd[0] in (sub.choices or {}), (
        f"CMD {cmd} is not a `switchyard` subcommand (have {sorted(sub.choices or {})})"
    )


def test_image_copies_every_package_of_the_wheel() -> None:
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        src.rstrip("/")
        for i in parse_dockerfile(dockerfile_text())
        if i.keyword == "COPY" and "--from" not in i.args
        for src in i.args.split()[:-1]
    }
    assert set(packages) <= copied, f"not copied into the image: {set(packages) - copied}"
    assert {"pyproject.toml", "README.md"} <= copied


def test_volume_holds_the_warehouse_and_the_checkpoint() -> None:
    ins = parse_dockerfile(dockerfile_text())
    volume = next(i for i in ins if i.keyword == "VOLUME").exec_form()
    env = " ".join(i.args for i in ins if i.keyword == "ENV")
    assert volume == ["/data"]
    assert "ROUTER_WAREHOUSE__PATH=/data/" in env
    assert "ROUTER_BANDIT__CHECKPOINT_PATH=/data/" in env


def _ignored(path: str, patterns: list[str]) -> bool:
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!")
        candidates = {pat, pat.removeprefix("**/")}
        if any(fnmatch.fnmatch(path, c) or fnmatch.fnmatch(path, c + "/*") for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    sources = [
        src for i in parse_dockerfile(dockerfile_text())
        if i.keyword == "COPY" and "--from" not in i.args for src in i.args.split()[:-1]
    ]  # fmt: skip
    for src in sources:
        probe = src + "__init__.py" if src.endswith("/") else src
        assert not _ignored(probe, patterns), f"{probe} is excluded from the build context"
    for junk in (".venv/bin/python", "var/switchyard.duckdb", "tests/conftest.py",
                 "serving/__pycache__/app.cpython-311.pyc"):  # fmt: skip
        assert _ignored(junk, patterns), f"{junk} would be sent to the builder"


# -- the lock files ----------------------------------------------------------------------------


def parse_lock(text: str) -> tuple[dict[str, str], list[str]]:
    """``name -> version`` of a hashed lock file, and its problems (unpinned, unhashed)."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    blocks = re.split(r"\n(?=[A-Za-z0-9])", "\n" + text)
    for block in blocks:
        block = block.strip()
        if not block or block.startswith("#"):
            continue
        head = block.split()[0]
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", head)
        if not m:
            problems.append(f"{head}: not pinned with ==")
            continue
        if "--hash=sha256:" not in block:
            problems.append(f"{head}: no --hash")
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins, problems


def test_lock_pins_every_dependency_with_hashes() -> None:
    pins, problems = parse_lock(LOCK.read_text())
    assert problems == []
    wanted = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    extras = [
        Requirement(line.split("#")[0].strip())
        for line in (DEPLOY / "requirements.in").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    for req in [*wanted, *extras]:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {LOCK.name}: regenerate it (docs/operations.md)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {req.name}=={pins[name]}, outside {req.specifier}: regenerate it"
        )


def test_build_lock_holds_the_build_backend() -> None:
    pins, problems = parse_lock(BUILD_LOCK.read_text())
    assert problems == []
    for spec in PYPROJECT["build-system"]["requires"]:
        req = Requirement(spec)
        assert req.specifier.contains(pins[canonicalize_name(req.name)])


def test_lock_parser_catches_an_unhashed_pin() -> None:
    text = LOCK.read_text()
    first = re.search(r"^([a-z0-9\-]+)==\S+ \\\n(\s+--hash=\S+( \\)?\n)+", text, re.M)
    assert first is not None
    broken = text.replace(first.group(0), f"{first.group(1)}==1.0\n", 1)
    assert parse_lock(broken)[1] == [f"{first.group(1)}==1.0: no --hash"]
    assert parse_lock("requests>=2\n")[1] == ["requests>=2: not pinned with =="]


# -- building it -------------------------------------------------------------------------------


def docker_works() -> tuple[bool, str]:
    """``docker info`` reaching a daemon (``docker --version`` alone proves nothing)."""
    if shutil.which("docker") is None:
        return False, "no docker CLI on PATH"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False, "`docker info` timed out"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return False, f"`docker info` failed: {tail[0]}"
    return True, ""


@pytest.mark.slow
def test_image_builds_runs_as_non_root_and_has_the_healthcheck() -> None:
    ok, why = docker_works()
    if not ok:
        pytest.skip(f"no container engine here ({why}); this test runs where docker works")
    tag = f"switchyard-test:{uuid.uuid4().hex[:12]}"
    try:
        build = subprocess.run(
            ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)],
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr[-4000:]
        inspect = subprocess.run(
            ["docker", "image", "inspect", "--format",
             "{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Volumes}}", tag],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        user, health, volumes = inspect.stdout.strip().split("|")
        assert user.split(":")[0] not in ("", "root", "0")
        assert "/healthz" in health and "urllib" in health
        assert "/data" in volumes
        run = subprocess.run(
            ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp",  # noqa: S108
             "--cap-drop", "ALL",
             tag, "--help"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0 and "switchyard" in run.stdout, run.stderr
        whoami = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c",
             "import os; print(os.getuid())"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert whoami.stdout.strip() == "10001", whoami.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120)


def test_docker_probe_reports_why_it_skips() -> None:
    """Here (no engine) the probe must say why; where an engine runs it must say yes."""
    ok, why = docker_works()
    assert ok or why, "docker_works() gave neither yes nor a reason"
    if not ok and shutil.which("docker") is not None:
        assert "docker info" in why
