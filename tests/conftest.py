"""Shared fixtures: a clean environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Strip ROUTER_* so a developer's environment never changes a test's settings."""
    for key in list(os.environ):
        if key.startswith("ROUTER_"):
            monkeypatch.delenv(key)
    yield
