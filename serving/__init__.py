"""The sidecar: routing and feedback over HTTP, an OpenAI-compatible proxy, and the CLI.

    from serving import ServingSettings, create_app
"""

from __future__ import annotations

from serving.app import create_app
from serving.errors import ServingError
from serving.settings import ServingSettings
from serving.up import run, run_up

__all__ = ["ServingError", "ServingSettings", "create_app", "run", "run_up"]
