"""Tokens, scopes, the secure default without tokens, and the token bucket."""

from __future__ import annotations

import pytest

from serving.auth import Access, Authenticator, RateLimiter
from serving.errors import Forbidden, Unauthorized
from serving.settings import RateLimitConfig, TokenConfig
from tests.serving.conftest import ADMIN_TOKEN, BOTH_TOKEN, FEEDBACK_TOKEN, ROUTE_TOKEN, TOKENS
from tests.serving.conftest import MakeStack, auth


def test_scopes_and_admin_implies_all() -> None:
    a = Authenticator(TOKENS)
    assert a.authenticate(f"Bearer {ROUTE_TOKEN}", Access.ROUTE, "x").name == "router"  # type: ignore[union-attr]
    assert a.authenticate(f"bearer {ADMIN_TOKEN}", Access.FEEDBACK, "x").name == "ops"  # type: ignore[union-attr]
    assert a.authenticate(f"Bearer {BOTH_TOKEN}", Access.FEEDBACK, "x") is not None
    assert a.authenticate(None, Access.PUBLIC, "x") is None
    with pytest.raises(Forbidden):
        a.authenticate(f"Bearer {FEEDBACK_TOKEN}", Access.ROUTE, "x")
    with pytest.raises(Forbidden):
        a.authenticate(f"Bearer {ROUTE_TOKEN}", Access.ADMIN, "x")
    with pytest.raises(Unauthorized):
        a.authenticate(None, Access.READ, "x")
    with pytest.raises(Unauthorized):
        a.authenticate("Basic dXNlcjpwYXNz", Access.ROUTE, "x")
    with pytest.raises(Unauthorized):
        a.authenticate("Bearer " + ROUTE_TOKEN + "x", Access.ROUTE, "x")


def test_without_tokens_reads_pass_and_writes_need_the_dev_flag() -> None:
    secure = Authenticator(())
    assert secure.authenticate(None, Access.READ, "127.0.0.1").anonymous  # type: ignore[union-attr]
    for access in (Access.ROUTE, Access.FEEDBACK, Access.ADMIN):
        with pytest.raises(Unauthorized, match="ROUTER_TOKENS"):
            secure.authenticate(None, access, "127.0.0.1")
    dev = Authenticator((), insecure_no_auth=True)
    principal = dev.authenticate(None, Access.ADMIN, "127.0.0.1")
    assert principal is not None and principal.name == "addr:127.0.0.1"


def test_token_bucket_refills_at_the_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(RateLimitConfig(requests_per_s=2, burst=3), clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # separate bucket
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    off = RateLimiter(RateLimitConfig(requests_per_s=0, burst=1))
    assert all(off.take("a") == 0.0 for _ in range(100))


def test_token_config_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        TokenConfig(name="x", token="short", scopes=frozenset({"route"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenConfig(name="x", token="y" * 20, scopes=frozenset())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenConfig(name="x", token="y" * 20, scopes=frozenset({"root"}))  # type: ignore[arg-type]


async def test_app_without_tokens_is_secure_by_default(sim: object, make_stack: MakeStack) -> None:
    stack = await make_stack(sim.catalog(), tokens=())  # type: ignore[attr-defined]
    c = stack.client
    assert (await c.get("/v1/endpoints")).status == 200
    r = await c.post("/v1/route", json={"prompt": "hi"})
    assert r.status == 401 and "ROUTER_TOKENS" in (await r.json())["error"]
    r = await c.post("/v1/route", json={"prompt": "hi"}, headers=auth(ROUTE_TOKEN))
    assert r.status == 401  # a token nobody configured


async def test_app_dev_flag_opens_state_changing_routes(sim: object, make_stack: MakeStack) -> None:
    stack = await make_stack(sim.catalog(), tokens=(), insecure_no_auth=True)  # type: ignore[attr-defined]
    r = await stack.client.post("/v1/route", json={"prompt": "hi"})
    assert r.status == 200
