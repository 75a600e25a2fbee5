"""Settings of the sidecar process (``switchyard up``): the collector's settings plus HTTP.

``ServingSettings`` extends :class:`collector.settings.CollectorSettings` (catalog, secrets,
warehouse, collector, simulator) with the HTTP server, API tokens, limits, the proxy and the
bandit. Same sources and precedence: code, ``ROUTER_*`` environment variables (``__`` between
nested names), the TOML config file, defaults. Tokens come from the environment as JSON::

    ROUTER_TOKENS='[{"name": "app", "token": "...", "scopes": ["route", "feedback"]}]'

Secure by default: routes that change state (route, outcome, feedback, the proxy, admin) need a
token with the right scope. With no token configured they answer 401, unless
``insecure_no_auth`` is set, which is only allowed on a loopback bind.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bandit.config import BanditConfig
from collector.settings import CollectorSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024
DEFAULT_RATE_PER_S = 1000.0
DEFAULT_BURST = 2000
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
DEFAULT_PROXY_CONNECT_TIMEOUT_S = 5.0
DEFAULT_PROXY_TTFT_TIMEOUT_S = 30.0
DEFAULT_PROXY_TOTAL_TIMEOUT_S = 600.0
DEFAULT_PROXY_MAX_TOKENS = 1024
DEFAULT_429_COOLDOWN_S = 1.0
DEFAULT_MAX_COOLDOWN_S = 300.0
DEFAULT_FAILURE_COOLDOWN_S = 5.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_GIL_SWITCH_INTERVAL_S = 0.0005
DEFAULT_GC_FREEZE_INTERVAL_S = 5.0
DEFAULT_GC_FULL_COLLECT_INTERVAL_S = 900.0
MIN_TOKEN_CHARS = 16


class Scope(StrEnum):
    """What a token may do. ``admin`` implies the others."""

    ROUTE = "route"  # /v1/route, /v1/outcome, /v1/chat/completions
    FEEDBACK = "feedback"  # /v1/feedback
    ADMIN = "admin"  # /v1/admin/*


class TokenConfig(BaseModel):
    """One bearer token and what it may do."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Label of the token in logs and metrics (never the token itself).",
    )
    token: SecretStr = Field(description=f"The bearer token, at least {MIN_TOKEN_CHARS} chars.")
    scopes: frozenset[Scope] = Field(min_length=1, description="route, feedback and/or admin.")

    @model_validator(mode="after")
    def _check(self) -> TokenConfig:
        if len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"token {self.name!r} must be at least {MIN_TOKEN_CHARS} characters")
        return self


class RateLimitConfig(BaseModel):
    """A token bucket per API token (per client address without tokens)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_s: float = Field(
        default=DEFAULT_RATE_PER_S, ge=0, description="Sustained requests per second; 0 = off."
    )
    burst: int = Field(default=DEFAULT_BURST, ge=1, description="Requests allowed in a burst.")


class ProxyConfig(BaseModel):
    """Deadlines and failover of the OpenAI-compatible proxy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_timeout_s: float = Field(
        default=DEFAULT_PROXY_CONNECT_TIMEOUT_S, gt=0, description="TCP/TLS connect deadline."
    )
    ttft_timeout_s: float = Field(
        default=DEFAULT_PROXY_TTFT_TIMEOUT_S,
        gt=0,
        description="No generated text within this many seconds: fail over to the next endpoint.",
    )
    total_timeout_s: float = Field(
        default=DEFAULT_PROXY_TOTAL_TIMEOUT_S, gt=0, description="Deadline of a whole call."
    )
    default_max_tokens: int = Field(
        default=DEFAULT_PROXY_MAX_TOKENS,
        gt=0,
        description="max_tokens sent to Anthropic-format endpoints when the request gives none.",
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=1, description="Endpoints tried per request, at most."
    )
    default_429_cooldown_s: float = Field(
        default=DEFAULT_429_COOLDOWN_S,
        ge=0,
        description="Cooldown after a 429 without Retry-After.",
    )
    max_cooldown_s: float = Field(
        default=DEFAULT_MAX_COOLDOWN_S, ge=0, description="Longest cooldown a Retry-After can set."
    )
    failure_cooldown_s: float = Field(
        default=DEFAULT_FAILURE_COOLDOWN_S,
        ge=0,
        description="Cooldown after a connect error or a TTFT timeout (0 = none).",
    )

    @model_validator(mode="after")
    def _check(self) -> ProxyConfig:
        if self.total_timeout_s < self.ttft_timeout_s:
            raise ValueError("total_timeout_s must be at least ttft_timeout_s")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServingSettings(CollectorSettings):
    """Everything ``switchyard up`` needs: collector, warehouse, bandit and HTTP server."""

    host: str = Field(default=DEFAULT_HOST, description="Address the HTTP server binds.")
    port: int = Field(
        default=DEFAULT_PORT, ge=0, le=65535, description="HTTP port (0 = any free port)."
    )
    tokens: tuple[TokenConfig, ...] = Field(
        default=(), description="API bearer tokens with scopes (JSON list in the environment)."
    )
    insecure_no_auth: bool = Field(
        default=False,
        description="Serve state-changing routes without a token (loopback only, development).",
    )
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Per-token request rate limit."
    )
    body_limit_bytes: int = Field(
        default=DEFAULT_BODY_LIMIT_BYTES, gt=0, description="Largest request body accepted."
    )
    shutdown_timeout_s: float = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_S,
        gt=0,
        description="On SIGTERM, wait this long for requests in flight to finish.",
    )
    collect: bool = Field(
        default=True, description="Run the collector's probes in the same process."
    )
    gil_switch_interval_s: float = Field(
        default=DEFAULT_GIL_SWITCH_INTERVAL_S,
        gt=0,
        le=0.1,
        description="Python's GIL switch interval in `switchyard up` (Python's default is "
        "0.005): shorter keeps the event loop answering while the warehouse writer and the "
        "model thread work.",
    )
    idle_background_threads: bool = Field(
        default=True,
        description="In `switchyard up`, run the warehouse writer and lake threads at idle CPU "
        "priority (Linux's SCHED_IDLE): the event loop's thread, when it wakes, takes their CPU "
        "at once instead of waiting behind a batch write. Work that must not wait (a flush, "
        "the shutdown, rows left behind while the CPUs were saturated) goes to a thread at "
        "normal priority.",
    )
    gc_freeze_interval_s: float = Field(
        default=DEFAULT_GC_FREEZE_INTERVAL_S,
        ge=0,
        description="In `switchyard up`, move long-lived objects (decisions awaiting feedback) "
        "out of Python's garbage collections this often (gc.freeze), and collect only the "
        "youngest generation automatically in between; 0 turns both off.",
    )
    gc_full_collect_interval_s: float = Field(
        default=DEFAULT_GC_FULL_COLLECT_INTERVAL_S,
        gt=0,
        description="With gc_freeze_interval_s: unfreeze and collect everything this often, "
        "reclaiming reference cycles that were frozen while alive.",
    )
    proxy: ProxyConfig = Field(default_factory=ProxyConfig, description="The proxy.")
    bandit: BanditConfig = Field(default_factory=BanditConfig, description="The router model.")

    @model_validator(mode="after")
    def _check(self) -> ServingSettings:
        if 0 < self.gc_full_collect_interval_s < self.gc_freeze_interval_s:
            raise ValueError("gc_full_collect_interval_s must be >= gc_freeze_interval_s")
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("tokens: names must be unique")
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("tokens: two entries share one token")
        if self.insecure_no_auth and not _is_loopback(self.host):
            raise ValueError(
                f"insecure_no_auth is only allowed on a loopback host, not {self.host!r}"
            )
        return self
