"""The sidecar: routing and feedback over HTTP, an OpenAI-compatible proxy, and the CLI.

    from serving import ServingSettings, create_app

Names are imported on first use (PEP 562), so that CLI commands which need none of the
sidecar (reports, warehouse maintenance) do not pay for importing it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serving.app import create_app
    from serving.errors import ServingError
    from serving.settings import ServingSettings
    from serving.up import run, run_up

_WHERE = {
    "ServingError": "serving.errors",
    "ServingSettings": "serving.settings",
    "create_app": "serving.app",
    "run": "serving.up",
    "run_up": "serving.up",
}

__all__ = ["ServingError", "ServingSettings", "create_app", "run", "run_up"]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
