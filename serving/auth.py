"""Bearer tokens with scopes, and a per-token rate limit.

Every route declares an :class:`Access` level. ``PUBLIC`` routes (health, readiness, metrics,
the OpenAPI document) need nothing. ``READ`` routes need any configured token, or none when no
token is configured. ``ROUTE``, ``FEEDBACK`` and ``ADMIN`` routes change state and need a token
with that scope (``admin`` implies the others): 401 without a known token, 403 without the
scope. With no token configured they answer 401 unless the insecure development flag is set.

Tokens are kept only as SHA-256 digests; a token never appears in a log line or a response.
Each caller (token name, or client address when anonymous) has a token bucket; an empty
bucket answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from aiohttp import web
from aiohttp.typedefs import Handler

from serving.errors import Forbidden, TooManyRequests, Unauthorized
from serving.settings import RateLimitConfig, Scope, TokenConfig

MAX_BUCKETS = 100_000


class Access(Enum):
    """What a route requires."""

    PUBLIC = "public"
    READ = "read"
    ROUTE = "route"
    FEEDBACK = "feedback"
    ADMIN = "admin"

    @property
    def scope(self) -> Scope | None:
        return {Access.ROUTE: Scope.ROUTE, Access.FEEDBACK: Scope.FEEDBACK}.get(
            self, Scope.ADMIN if self is Access.ADMIN else None
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name and scopes, or an anonymous client address."""

    name: str
    scopes: frozenset[Scope]
    anonymous: bool = False

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


NO_TOKENS_MESSAGE = (
    "no API tokens are configured and this route changes state: configure ROUTER_TOKENS "
    "(or set ROUTER_INSECURE_NO_AUTH=true on a loopback bind for development)"
)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Checks ``Authorization: Bearer`` headers against the configured tokens."""

    def __init__(self, tokens: Sequence[TokenConfig], *, insecure_no_auth: bool = False) -> None:
        self._by_digest = {
            _digest(t.token.get_secret_value()): Principal(t.name, frozenset(t.scopes))
            for t in tokens
        }
        if len(self._by_digest) != len(tokens):
            raise ValueError("two tokens share one value")
        self.insecure_no_auth = insecure_no_auth
        self._anonymous_scopes = frozenset(Scope) if insecure_no_auth else frozenset()

    @property
    def configured(self) -> bool:
        return bool(self._by_digest)

    def authenticate(self, header: str | None, access: Access, remote: str) -> Principal | None:
        """The caller, or None for a public route; raises 401/403 as described above."""
        if access is Access.PUBLIC:
            return None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthorized("the Authorization header must be 'Bearer <token>'")
            principal = self._by_digest.get(_digest(value.strip()))
            if principal is None:
                raise Unauthorized("unknown bearer token")
        elif self._by_digest:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        else:
            principal = Principal(f"addr:{remote}", self._anonymous_scopes, anonymous=True)
            if access is not Access.READ and not self.insecure_no_auth:
                raise Unauthorized(NO_TOKENS_MESSAGE)
        scope = access.scope
        if scope is not None and not principal.allows(scope):
            raise Forbidden(f"token {principal.name!r} lacks the {scope.value!r} scope")
        return principal


class RateLimiter:
    """Token buckets by caller name: ``requests_per_s`` sustained, ``burst`` at once.

    ``take(name)`` returns 0.0 when the request may go ahead, else the seconds until it
    could. ``requests_per_s == 0`` turns limiting off.
    """

    def __init__(
        self, config: RateLimitConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = config.requests_per_s
        self.burst = float(config.burst)
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}

    def take(self, name: str) -> float:
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(name)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()  # a flood of anonymous addresses; start afresh
            bucket = self._buckets[name] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def enforce_rate_limit(limiter: RateLimiter, name: str) -> None:
    """Take one request from ``name``'s budget; ``TooManyRequests`` (429) when it is spent."""
    wait_s = limiter.take(name)
    if wait_s > 0:
        raise TooManyRequests(
            f"rate limit of {limiter.rate:g} requests/s exceeded for {name!r}; "
            f"retry in {math.ceil(wait_s)} s",
            retry_after_s=wait_s,
        )


def auth_middleware(
    authenticator: Authenticator,
    limiter: RateLimiter,
    access_of: Callable[[web.Request], Access],
) -> Handler:
    """The middleware enforcing tokens, scopes and the rate limit (below the error mapper)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        access = access_of(request)
        if access is Access.PUBLIC:
            return await handler(request)
        principal = authenticator.authenticate(
            request.headers.get("Authorization"), access, request.remote or "unknown"
        )
        assert principal is not None  # noqa: S101 - non-public access always yields one
        enforce_rate_limit(limiter, principal.name)
        request[PRINCIPAL_KEY] = principal
        return await handler(request)

    return middleware  # type: ignore[return-value]
