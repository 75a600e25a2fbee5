"""Checks of the files under ``deploy/``, shared by the ``tests/deploy`` test modules.

- :func:`parse_dockerfile` and :func:`lint_dockerfile`: a small Dockerfile reader and the
  image rules (multi-stage, pinned base, non-root user, no baked secrets, a HEALTHCHECK that
  needs no curl, hash-checked installs).
- :func:`render_kustomization`: a minimal kustomize for the subset our kustomizations use
  (``resources`` and ``images``). Neither kustomize nor a recent kubectl can be installed from
  Debian or PyPI (Debian's kubernetes-client is 1.20 with kustomize v2), so the tests render
  with this and, where a kubectl with kustomize v4+ exists, compare the two. Any other
  kustomization key is an error here, never silently ignored.
- :func:`pod_policy_problems`: the pod rules (resources, security context) beyond the schema.
- :func:`setting_env_names` and :func:`router_env_names`: the ``ROUTER_*`` variables that are
  real settings, and those that a text mentions.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("sidecar", "standalone", "collector")
ROUTER_OVERLAYS = ("sidecar", "standalone")  # the ones that run `switchyard up`
ENV_PREFIX = "ROUTER_"

Manifest = dict[str, object]

# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------

SECRET_NAME_RE = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
SECRET_FILE_RE = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|.*\.pem|.*\.key|credentials)$")
PINNED_TAG_RE = re.compile(r":[^/@:]*\d+\.\d+\.\d+[^/@:]*$")
ROOT_USERS = frozenset({"root", "0"})


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: upper-case keyword, raw arguments, line, build stage."""

    keyword: str
    args: str
    line: int
    stage: int  # -1 before the first FROM (global ARGs)

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form of the arguments, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return [str(v) for v in value] if isinstance(value, list) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    buf: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = " ".join(part.strip() for part in buf)
        buf = []
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), start, stage))
    if buf:
        raise ValueError(f"line {start}: the last instruction ends with a line continuation")
    return out


def key_values(args: str) -> list[tuple[str, str]]:
    """``ENV``/``ARG``/``LABEL`` pairs: ``A=1 B="two"`` or the legacy ``ENV A 1``."""
    parts = shlex.split(args, posix=True)
    if parts and "=" not in parts[0]:
        return [(parts[0], " ".join(parts[1:]))] if len(parts) > 1 else [(parts[0], "")]
    return [(p.partition("=")[0], p.partition("=")[2]) for p in parts]


def _substitute(text: str, args: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        return args.get(m.group(1) or m.group(2), m.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, text)


def _stage_names(instructions: Iterable[Instruction]) -> dict[str, int]:
    names: dict[str, int] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            if len(words) >= 3 and words[-2].upper() == "AS":
                names[words[-1].lower()] = ins.stage
    return names


def base_images(instructions: list[Instruction]) -> list[str]:
    """The image of every ``FROM`` with global ``ARG`` defaults substituted."""
    global_args = {
        k: v for ins in instructions if ins.keyword == "ARG" and ins.stage == -1
        for k, v in key_values(ins.args)
    }  # fmt: skip
    images = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            images.append(_substitute(words[0], global_args))
    return images


def lint_dockerfile(text: str) -> list[str]:
    """Every broken image rule, one line each; empty when the Dockerfile is fine."""
    try:
        ins = parse_dockerfile(text)
    except ValueError as exc:
        return [str(exc)]
    problems: list[str] = []
    froms = [i for i in ins if i.keyword == "FROM"]
    if not froms:
        return ["no FROM instruction"]
    last = froms[-1].stage
    stages = _stage_names(ins)

    # multi-stage: the final stage copies from an earlier one
    copies_from = [
        i for i in ins
        if i.stage == last and i.keyword == "COPY" and re.search(r"--from=\S+", i.args)
    ]  # fmt: skip
    if len(froms) < 2 or not copies_from:
        problems.append("not multi-stage: the final stage must COPY --from an earlier stage")

    # pinned bases
    for image, from_ins in zip(base_images(ins), froms, strict=True):
        if image.lower() in stages and stages[image.lower()] < from_ins.stage:
            continue
        if "$" in image:
            problems.append(f"line {from_ins.line}: FROM {image}: unresolved variable")
        elif "@sha256:" in image:
            continue
        elif image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            problems.append(f"line {from_ins.line}: FROM {image}: base image not pinned")
        elif not PINNED_TAG_RE.search(image):
            problems.append(
                f"line {from_ins.line}: FROM {image}: pin a full version (x.y.z) or a digest"
            )

    # non-root user in the final stage
    users = [i for i in ins if i.stage == last and i.keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER (it would run as root)")
    else:
        user = users[-1].args.split(":")[0].strip()
        if user.lower() in ROOT_USERS:
            problems.append(f"line {users[-1].line}: USER {users[-1].args}: runs as root")

    # no secrets baked in
    for i in ins:
        if i.keyword in ("ENV", "ARG"):
            for key, value in key_values(i.args):
                if SECRET_NAME_RE.search(key) and value.strip():
                    problems.append(f"line {i.line}: {i.keyword} {key}=...: a secret baked in")
        if i.keyword in ("COPY", "ADD"):
            form = i.exec_form()
            words = form if form is not None else i.args.split()
            sources = [w for w in words if not w.startswith("--")][:-1]
            for src in sources:
                if SECRET_FILE_RE.search(src.rstrip("/")):
                    problems.append(f"line {i.line}: {i.keyword} {src}: a secret file baked in")

    # health check without curl
    checks = [i for i in ins if i.stage == last and i.keyword == "HEALTHCHECK"]
    if not checks:
        problems.append("no HEALTHCHECK in the final stage")
    else:
        check = checks[-1]
        if check.args.strip().upper() == "NONE" or " CMD " not in f" {check.args} ":
            problems.append(f"line {check.line}: HEALTHCHECK has no CMD")
        if re.search(r"\b(curl|wget)\b", check.args):
            problems.append(f"line {check.line}: HEALTHCHECK uses curl/wget (not in slim images)")

    # hash-checked installs from lock files
    for i in ins:
        if i.keyword == "RUN" and re.search(r"pip install[^&;|]*\s-r\s", i.args):
            for cmd in re.split(r"&&|;", i.args):
                if re.search(r"pip install\s.*-r\s", cmd) and "--require-hashes" not in cmd:
                    problems.append(f"line {i.line}: pip install -r without --require-hashes")
    return problems


# --------------------------------------------------------------------------------------------
# Kustomize (the subset we use)
# --------------------------------------------------------------------------------------------

KUSTOMIZATION_KEYS = frozenset({"apiVersion", "kind", "resources", "images"})
POD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"})


class KustomizeError(ValueError):
    """A kustomization this minimal renderer does not understand."""


def load_yaml_docs(path: Path) -> list[Manifest]:
    """Every non-empty YAML document of ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def render_kustomization(directory: Path) -> list[Manifest]:
    """The resources of ``directory``'s kustomization.yaml, with ``images`` applied."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(
            f"{kfile}: {sorted(unknown)} not supported by the test's minimal renderer; "
            "extend tests/deploy/deploy_checks.py or keep to resources and images"
        )
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{kfile}: kind must be Kustomization")
    out: list[Manifest] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            out.extend(render_kustomization(target))
        elif target.is_file():
            out.extend(load_yaml_docs(target))
        else:
            raise KustomizeError(f"{kfile}: resource {entry} does not exist")
    seen: set[tuple[str, str]] = set()
    for res in out:
        key = (str(res.get("kind")), str(_meta(res).get("name")))
        if key in seen:
            raise KustomizeError(f"{kfile}: {key[0]} {key[1]} is listed twice")
        seen.add(key)
    for image in spec.get("images", []):
        for container in iter_containers(out):
            container["image"] = _retag(str(container.get("image", "")), image)
    return out


def _retag(ref: str, rule: Mapping[str, str]) -> str:
    name, digest = ref.split("@", 1) if "@" in ref else (ref, "")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != rule["name"]:
        return ref
    name = rule.get("newName", name)
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    if "newTag" in rule:
        return f"{name}:{rule['newTag']}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _meta(resource: Manifest) -> dict[str, object]:
    return cast(dict[str, object], resource.get("metadata") or {})


def pod_spec(resource: Manifest) -> dict[str, object] | None:
    """The pod spec of a workload resource, or None."""
    if resource.get("kind") not in POD_KINDS:
        return None
    spec = cast(dict[str, object], resource.get("spec") or {})
    template = cast(dict[str, object], spec.get("template") or {})
    return cast(dict[str, object], template.get("spec") or {})


def iter_containers(resources: Iterable[Manifest]) -> Iterator[dict[str, object]]:
    """Every container and init container of every workload."""
    for res in resources:
        spec = pod_spec(res)
        if spec is None:
            continue
        for key in ("initContainers", "containers"):
            yield from cast(list[dict[str, object]], spec.get(key) or [])


def sort_key(resource: Manifest) -> tuple[str, str, str]:
    return (str(resource.get("apiVersion")), str(resource.get("kind")),
            str(_meta(resource).get("name")))  # fmt: skip


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization files excluded)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def find(resources: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for res in resources:
        if res.get("kind") == kind and _meta(res).get("name") == name:
            return res
    raise KeyError(f"{kind} {name}")


def container_env(container: Mapping[str, object]) -> dict[str, object]:
    """``name -> value`` (a string) or ``name -> valueFrom`` (a dict) of one container."""
    out: dict[str, object] = {}
    for item in cast(list[dict[str, object]], container.get("env") or []):
        out[str(item["name"])] = item["value"] if "value" in item else item.get("valueFrom")
    return out


def pod_policy_problems(resource: Manifest) -> list[str]:
    """Pod rules the schema cannot express: limits, non-root, read-only root, no privileges."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    name = _meta(resource).get("name")
    problems: list[str] = []
    pod_sc = cast(dict[str, object], spec.get("securityContext") or {})
    containers = [
        *cast(list[dict[str, object]], spec.get("initContainers") or []),
        *cast(list[dict[str, object]], spec.get("containers") or []),
    ]
    for c in containers:
        where = f"{resource.get('kind')} {name} container {c.get('name')}"
        res = cast(dict[str, dict[str, object]], c.get("resources") or {})
        for part in ("requests", "limits"):
            for unit in ("cpu", "memory"):
                if unit not in (res.get(part) or {}):
                    problems.append(f"{where}: no {part}.{unit}")
        sc = cast(dict[str, object], c.get("securityContext") or {})
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as UID 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation is allowed")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        caps = cast(dict[str, list[str]], sc.get("capabilities") or {})
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities are not dropped (drop: [ALL])")
        if caps.get("add"):
            problems.append(f"{where}: adds capabilities {caps['add']}")
    return problems


# --------------------------------------------------------------------------------------------
# ROUTER_* settings
# --------------------------------------------------------------------------------------------

ROUTER_NAME_RE = re.compile(r"\bROUTER_[A-Z0-9_]*[A-Z0-9]")


def settings_class() -> tuple[type[BaseModel], str]:
    """The sidecar's settings class, or the collector's while serving's is not importable."""
    try:
        from serving.settings import ServingSettings

        return ServingSettings, "serving.settings.ServingSettings"
    except ImportError:  # pragma: no cover - only while serving/settings.py is being written
        from collector.settings import CollectorSettings

        return CollectorSettings, "collector.settings.CollectorSettings (fallback)"


def setting_env_names(cls: type[BaseModel], prefix: str = ENV_PREFIX) -> set[str]:
    """Every environment variable ``cls`` reads, walking nested models the way
    ``collector.settings.settings_reference`` does; a nested model's own name counts too
    (it accepts a JSON object). ``ROUTER_CONFIG_FILE`` is read by ``load_settings``."""
    names = {f"{prefix}CONFIG_FILE"}

    def walk(model: type[BaseModel], env: str) -> None:
        for name, info in model.model_fields.items():
            var = f"{env}{name.upper()}"
            names.add(var)
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, var + "__")

    walk(cls, prefix)
    return names


def router_env_names(paths: Iterable[Path]) -> dict[str, list[str]]:
    """``ROUTER_*`` names mentioned in ``paths`` -> where (``file:line``)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in ROUTER_NAME_RE.finditer(line):
                found.setdefault(m.group(0), []).append(f"{shown}:{lineno}")
    return found


@dataclass
class EnvResolver:
    """Values of a container's environment as the kubelet would see them.

    Secret references resolve to ``secrets[(secret, key)]``; ``$(NAME)`` expands from the
    variables defined before it, as the kubelet does.
    """

    secrets: Mapping[tuple[str, str], str]
    resolved: dict[str, str] = field(default_factory=dict)

    def resolve(self, env: Mapping[str, object]) -> dict[str, str]:
        for name, value in env.items():
            if isinstance(value, dict):
                ref = cast(dict[str, str], value.get("secretKeyRef") or {})
                self.resolved[name] = self.secrets[(ref["name"], ref["key"])]
            else:
                self.resolved[name] = re.sub(
                    r"\$\((\w+)\)",
                    lambda m: self.resolved.get(m.group(1), m.group(0)),
                    str(value),
                )
        return self.resolved


def compose_interpolate(value: str, env: Mapping[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}``, from ``env``."""
    env = env or {}

    def repl(m: re.Match[str]) -> str:
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        got = env.get(name)
        if op == ":-":
            return got if got else default
        if op == "-":
            return got if got is not None else default
        return got or ""

    return re.sub(r"\$\{(\w+)(:-|-)?([^}]*)\}", repl, value)
