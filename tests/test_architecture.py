"""The dependency arrows run one way; the packages are the repo's own."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("collector", "warehouse", "bandit", "serving")
# package -> packages it may import
ALLOWED = {
    "warehouse": set(),
    "collector": {"warehouse"},
    "bandit": {"warehouse"},
    "serving": {"warehouse", "collector", "bandit"},
}


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_the_repos_own(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(REPO), (
        f"{package} imports from {module.__file__}: a PyPI package of that name shadows ours"
    )


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_direction(package: str) -> None:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for dep in imported_packages(path) - ALLOWED[package] - {package}:
            bad.append(f"{path.relative_to(REPO)} imports {dep}")
    assert not bad, "wrong-way imports:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_use_future_annotations(package: str) -> None:
    missing = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / package).rglob("*.py"))
        if p.read_text().strip() and "from __future__ import annotations" not in p.read_text()
    ]
    assert not missing, f"modules without `from __future__ import annotations`: {missing}"


def test_only_bandit_vw_imports_vowpalwabbit() -> None:
    users = [
        str(p.relative_to(REPO))
        for pkg in PACKAGES
        for p in sorted((REPO / pkg).rglob("*.py"))
        if "vowpalwabbit" in imported_modules(p)
    ]
    assert users in ([], ["bandit/vw.py"]), users


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names
