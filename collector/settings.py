"""Settings of the collector process, from the environment and an optional TOML config file.

Precedence, highest first: values passed in code (CLI flags), environment variables
(``ROUTER_`` prefix, ``__`` between nested names: ``ROUTER_COLLECTOR__INTERVAL_S=30``), the TOML
config file (``--config`` or ``ROUTER_CONFIG_FILE``), then defaults. ``Settings()`` is created only
in ``__main__`` modules; everything else receives config objects.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from collector.config import CollectorConfig
from collector.errors import CollectorError
from warehouse.config import WarehouseConfig

DEFAULT_SIM_SEED = 7
DEFAULT_SIM_DAY_S = 86_400.0
ENV_PREFIX = "ROUTER_"


class SettingsError(CollectorError, ValueError):
    """Settings that cannot be loaded; the message names the variable or file and the field."""

    status = 400


class SimulatorOptions(BaseModel):
    """The embedded provider simulator, used when no catalog is configured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=DEFAULT_SIM_SEED, description="Seed of the simulated providers.")
    day_seconds: float = Field(
        default=DEFAULT_SIM_DAY_S,
        gt=0,
        description="Real seconds per simulated day (86400 = real time; less compresses drift).",
    )
    port: int = Field(default=0, ge=0, le=65535, description="Simulator port (0 = any free).")


class CollectorSettings(BaseSettings):
    """Everything ``switchyard collect`` needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )
    toml_path: ClassVar[Path | None] = None

    catalog: Path | None = Field(
        default=None,
        description="Endpoint catalog (.toml/.yaml); unset runs on the embedded simulator.",
    )
    secrets_file: Path | None = Field(
        default=None,
        description="File of KEY=VALUE lines, or a directory of files named after the keys, "
        "holding provider API keys (besides the environment).",
    )
    seed: int = Field(default=0, description="Seed of the collector's own randomness.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    warehouse: WarehouseConfig = Field(
        default_factory=WarehouseConfig, description="The DuckDB warehouse."
    )
    collector: CollectorConfig = Field(
        default_factory=CollectorConfig, description="Probe schedule and manners."
    )
    simulator: SimulatorOptions = Field(
        default_factory=SimulatorOptions, description="The embedded provider simulator."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = getattr(settings_cls, "toml_path", None)
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """Build settings from overrides, the environment and ``config_file``, with clear errors."""
    config_file = config_file or (
        Path(os.environ[f"{ENV_PREFIX}CONFIG_FILE"])
        if os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        else None
    )
    target: type[S] = cls
    if config_file is not None:
        if not config_file.is_file():
            raise SettingsError(f"{config_file}: config file not found")
        target = type(cls.__name__, (cls,), {"toml_path": config_file})
    try:
        return target(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        where = f"{config_file} or " if config_file else ""
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"setting {path} (from {where}{env}): {msg}")
        raise SettingsError("\n".join(lines)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{config_file}: not valid TOML: {exc}") from None


def load_secrets(path: Path | None) -> dict[str, SecretStr]:
    """API keys from a secrets file (``KEY=VALUE`` lines) or directory (one file per key)."""
    if path is None:
        return {}
    out: dict[str, SecretStr] = {}
    if path.is_dir():
        for item in sorted(path.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                out[item.name] = SecretStr(item.read_text().strip())
        return out
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read secrets file: {exc.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{lineno}: expected KEY=VALUE (value not shown)")
        out[key.strip().removeprefix("export ").strip()] = SecretStr(value.strip().strip("'\""))
    return out


def settings_reference(cls: type[BaseSettings], prefix: str = ENV_PREFIX) -> str:
    """A Markdown table of every setting: environment variable, type, default, description."""
    rows = ["| environment variable | type | default | description |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], env: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            var = f"{env}{name.upper()}"
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, var + "__")
                continue
            default = field.get_default(call_default_factory=True)
            type_name = getattr(ann, "__name__", None) or str(ann).replace("pathlib.", "")
            type_name = (
                type_name.replace("typing.", "").replace("NoneType", "None").replace(" | ", " or ")
            )
            shown = "unset" if default is None else f"`{default!r}`" if default == "" else f"`{default}`"
            cells = [f"`{var}`", type_name, shown, field.description or ""]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")

    walk(cls, prefix)
    return "\n".join(rows)
