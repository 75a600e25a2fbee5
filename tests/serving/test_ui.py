"""The dashboard's routes (``serving.ui``) against a real app on a real warehouse: the page and
its assets, access, and every JSON API's shape and values."""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bandit.service import RouterService as BanditService
from collector.http import make_session
from collector.simulator import RunningSimulator
from serving.app import create_app
from serving.bandit_router import BanditRouter
from serving.metrics import Metrics
from serving.proxy import Cooldowns
from serving.state import RUN, TRADEOFF, UI_CACHES
from serving.ui import STATIC_DIR, UI_ROUTES, assets
from serving.ui_data import TtlCache
from serving.ui_reports import REFERENCE_TOKENS_IN, REFERENCE_TOKENS_OUT
from tests.serving.conftest import (
    ADMIN_TOKEN,
    BOTH_TOKEN,
    FEEDBACK_TOKEN,
    ROUTE_TOKEN,
    MakeStack,
    Stack,
    auth,
    make_settings,
)
from warehouse.models import Outcome, ProbeResult, Source, utcnow
from warehouse.store import Warehouse

ADMIN = auth(ADMIN_TOKEN)


def basic(password: str, user: str = "ops") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def probe(endpoint_id: str, at: datetime, ttft_ms: float | None = None,
          outcome: Outcome = Outcome.OK, source: Source = Source.PROBE,
          event_id: str | None = None) -> ProbeResult:  # fmt: skip
    ok = outcome is Outcome.OK
    return ProbeResult(
        endpoint_id=endpoint_id, started_at=at, outcome=outcome, source=source,
        event_id=event_id, ttft_ms=ttft_ms if ok else None, itl_ms_p50=5.0 if ok else None,
        tpot_ms=10.0 if ok else None, status_code=None if ok else 503,
    )


async def get_json(stack: Stack, path: str, status: int = 200,
                   headers: dict[str, str] | None = None) -> dict:  # fmt: skip
    r = await stack.client.get(path, headers=ADMIN if headers is None else headers)
    body = await r.json()
    assert r.status == status, body
    return body


async def route(stack: Stack, prompt: str = "What is 2 + 2?", **extra: object) -> dict:
    r = await stack.client.post("/v1/route", json={"prompt": prompt, **extra},
                                headers=auth(ROUTE_TOKEN))
    assert r.status == 200, await r.text()
    return await r.json()


async def send_thumbs(stack: Stack, routed: list[dict], thumbs: tuple[str, ...]) -> None:
    """Thumbs up or down on each routed decision, in order; every one accepted."""
    for r, verdict in zip(routed, thumbs, strict=True):
        fb = await stack.client.post("/v1/feedback", json={"event_id": r["event_id"],
                                                           "thumbs": verdict},
                                     headers=auth(FEEDBACK_TOKEN))
        assert fb.status == 200


# --- page, assets, access -------------------------------------------------------------------


async def test_page_and_assets_are_served_with_validators_and_no_external_urls(
    stack: Stack,
) -> None:
    r = await stack.client.get("/ui", headers=ADMIN)
    assert r.status == 200 and r.content_type == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    page = await r.text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sorted(refs) == sorted(
        ["data:,", f"ui/static/app.css?v={assets()['app.css'].etag.strip(chr(34))}",
         f"ui/static/app.js?v={assets()['app.js'].etag.strip(chr(34))}"]
    )
    for ref in refs:
        if ref.startswith("data:"):
            continue
        path = "/" + ref.split("?")[0]
        r = await stack.client.get(path, headers={**ADMIN, "Accept-Encoding": "gzip"})
        body = await r.read()  # aiohttp decodes the gzip transfer
        assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
        assert body == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
        assert "max-age" in r.headers["Cache-Control"]
        etag = r.headers["ETag"]
        again = await stack.client.get(path, headers={**ADMIN, "If-None-Match": etag})
        assert again.status == 304 and not await again.read()
    # nothing the page loads comes from elsewhere: the only URL is the SVG namespace
    for f in STATIC_DIR.iterdir():
        text = f.read_text()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (f.name, urls)
        assert "@import" not in text and "url(" not in text
    r = await stack.client.get("/ui/static/nope.js", headers=ADMIN)
    assert r.status == 404 and (await r.json())["ok"] is False
    r = await stack.client.get("/ui/static/index.html", headers=ADMIN)
    assert r.status == 404


UI_PATHS = [s.path.replace("{name}", "app.js").replace("{event_id}", "e" * 32)
            for s in UI_ROUTES]


async def test_every_ui_route_needs_the_admin_token_when_tokens_are_configured(
    stack: Stack,
) -> None:
    assert len(UI_PATHS) == 8
    for path in UI_PATHS:
        r = await stack.client.get(path)
        assert r.status == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert (await r.json())["status"] == 401
        for token in (ROUTE_TOKEN, FEEDBACK_TOKEN, BOTH_TOKEN):
            r = await stack.client.get(path, headers=auth(token))
            assert r.status == 403, (path, token)
        r = await stack.client.get(path, headers=basic("not-a-token-at-all-0123"))
        assert r.status == 401
    r = await stack.client.get("/ui/api/now", headers={"Authorization": "Basic !!!"})
    assert r.status == 401 and "base64" in (await r.json())["error"]
    # the admin token as bearer, as Basic password, or as Basic user name (curl -u TOKEN:)
    for headers in (ADMIN, basic(ADMIN_TOKEN), basic("", user=ADMIN_TOKEN)):
        r = await stack.client.get("/ui/api/now", headers=headers)
        assert r.status == 200


async def test_without_tokens_the_dashboard_is_open(sim: RunningSimulator,
                                                    make_stack: MakeStack) -> None:
    stack = await make_stack(sim.catalog(), tokens=())
    assert (await stack.client.get("/ui")).status == 200
    assert (await stack.client.get("/ui/api/now")).status == 200
    # ... while routes that change state still refuse
    r = await stack.client.post("/v1/route", json={"prompt": "hi"})
    assert r.status == 401


async def test_openapi_documents_the_ui_routes_as_admin(stack: Stack) -> None:
    doc = await get_json(stack, "/openapi.json", headers={})
    for spec in UI_ROUTES:
        op = doc["paths"][spec.path]["get"]
        assert op["x-switchyard-access"] == "admin" and op["security"] == [{"bearer": []}]


# --- now ----------------------------------------------------------------------------------


async def test_now_shows_live_figures_states_and_sparklines(stack: Stack) -> None:
    wh, now = stack.warehouse, utcnow()
    ttfts = [100.0, 140.0, 120.0, 400.0, 110.0]
    wh.add_probes(probe("fast-a@alpha", now - timedelta(seconds=5 * i), t)
                  for i, t in enumerate(ttfts))
    wh.add_probes(probe("fast-b@beta", now - timedelta(seconds=i), outcome=Outcome.HTTP_5XX)
                  for i in range(4))
    wh.add_probe(probe("fast-b@beta", now, 50.0))
    stack.cooldowns.start("mid-c@gamma", 30.0)
    await wh.aflush()
    body = await get_json(stack, "/ui/api/now")
    rows = {e["id"]: e for e in body["endpoints"]}
    assert set(rows) == {e.id for e in stack.endpoints}
    a = rows["fast-a@alpha"]
    assert a["status"] == "ok"
    assert a["live"]["samples"] == 5
    assert a["live"]["ttft_ms_p50"] == pytest.approx(statistics.median(ttfts))
    assert a["live"]["error_rate"] == 0.0
    assert a["price_in_per_mtok"] == 1.0 and a["provider"] == "alpha"
    assert rows["fast-b@beta"]["status"] == "failing"
    assert rows["fast-b@beta"]["live"]["error_rate"] == pytest.approx(0.8)
    assert rows["mid-c@gamma"]["status"] == "cooling"
    assert 25.0 < rows["mid-c@gamma"]["cooldown_s"] <= 30.0
    assert rows["claude-d@anthro"]["status"] == "no data"
    assert rows["claude-d@anthro"]["live"] is None
    assert body["status_counts"] == {"ok": 1, "failing": 1, "cooling": 1, "no data": 1}
    # the sparkline: 60 minutes, the last ones hold the mean TTFT of the rows of that minute
    sparks = body["spark"]["series"]
    spark = sparks["fast-a@alpha"]["ttft_ms"]
    assert len(spark) == body["spark"]["minutes"] == 60
    first = body["spark"]["first_minute"]
    by_minute: dict[int, list[float]] = {}
    for i, t in enumerate(ttfts):
        m = int((now - timedelta(seconds=5 * i)).timestamp() // 60)
        by_minute.setdefault(m - first, []).append(t)
    for idx, values in by_minute.items():
        assert spark[idx] == pytest.approx(statistics.fmean(values), abs=0.05)
    assert sum(v is not None for v in spark) == len(by_minute)
    b_errors = [e for e in sparks["fast-b@beta"]["error_rate"] if e is not None]
    assert sum(b_errors) > 0 and max(b_errors) <= 1.0
    assert "claude-d@anthro" not in sparks
    assert body["ready"] is True and body["model_version"]


# --- traffic ------------------------------------------------------------------------------


async def test_traffic_counts_decisions_exploration_and_feedback(stack: Stack) -> None:
    routed = [await route(stack, f"question {i}: what is {i} + {i}?") for i in range(6)]
    await send_thumbs(stack, routed[:2], ("up", "down"))
    await stack.warehouse.aflush()
    body = await get_json(stack, "/ui/api/traffic?window=60")
    assert body["window_min"] == 60 and body["bucket_min"] == 1 and body["buckets"] == 60
    assert body["decisions"] == 6 and sum(body["totals"]) == 6
    expected: dict[str, int] = {}
    for r in routed:
        expected[r["endpoint"]["id"]] = expected.get(r["endpoint"]["id"], 0) + 1
    assert {k: sum(v) for k, v in body["by_endpoint"].items()} == expected
    assert body["decisions_per_s"] == pytest.approx(6 / 60)
    explored = sum(r["probabilities"][r["endpoint"]["id"]] < max(r["probabilities"].values())
                   for r in routed)
    assert body["exploration_share"] == pytest.approx(explored / 6)
    assert (body["feedback_up"], body["feedback_down"]) == (1, 1)
    assert body["feedback_rate"] == pytest.approx(2 / 6)
    assert [e["event_id"] for e in body["recent"]] == [r["event_id"] for r in reversed(routed)]
    day = await get_json(stack, "/ui/api/traffic?window=1440")
    assert day["bucket_min"] == 24 and day["decisions"] == 6
    for bad in ("window=7", "window=abc"):
        err = await get_json(stack, f"/ui/api/traffic?{bad}", status=400)
        assert err["ok"] is False and "window" in err["error"]


async def test_traffic_is_cached_for_a_few_seconds(stack: Stack) -> None:
    first = await get_json(stack, "/ui/api/traffic")
    await route(stack)
    await stack.warehouse.aflush()
    second = await get_json(stack, "/ui/api/traffic")
    assert second == first  # served from the cache
    stack.app[UI_CACHES].traffic.ttl_s = 0.0
    third = await get_json(stack, "/ui/api/traffic")
    assert third["decisions"] == first["decisions"] + 1


# --- time of day --------------------------------------------------------------------------


async def test_tod_heatmap_values_and_best_endpoint_per_hour(stack: Stack) -> None:
    wh = stack.warehouse
    day = (utcnow() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for minute in range(0, 6 * 60, 10):  # 00:00-06:00 UTC yesterday, one row per 10 minutes
        at = day + timedelta(minutes=minute)
        hour = minute // 60
        rows.append(probe("fast-a@alpha", at, 100.0 + hour))  # a: 100..105 ms
        rows.append(probe("fast-b@beta", at, 300.0 if hour < 3 else 50.0))  # b wins from 03h
    wh.add_probes(rows)
    await wh.aflush()
    body = await get_json(stack, "/ui/api/tod?metric=ttft&tz=UTC&days=7&source=probe")
    assert body["endpoints"] == ["fast-a@alpha", "fast-b@beta"]
    assert body["unit"] == "ms" and body["higher_is_better"] is False
    a, b = body["values"]
    assert a[:6] == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0] and a[6:] == [None] * 18
    assert b[:6] == [300.0] * 3 + [50.0] * 3
    assert body["counts"][0][:6] == [6] * 6
    best = {x["hour"]: x["endpoint"] for x in body["best"]}
    assert [best[h] for h in range(6)] == ["fast-a@alpha"] * 3 + ["fast-b@beta"] * 3
    assert best[12] is None
    # another zone shifts the hours
    tokyo = await get_json(stack, "/ui/api/tod?metric=ttft&tz=Asia/Tokyo&days=7")
    assert tokyo["values"][0][9:15] == a[:6]
    errors = await get_json(stack, "/ui/api/tod?metric=errors&days=7")
    assert errors["values"][0][:6] == [0.0] * 6 and errors["unit"] == "% of calls"
    for bad, word in (("metric=speed", "metric"), ("tz=Mars/Base", "time zone"),
                      ("days=0", "days"), ("days=x", "days"), ("source=both", "source")):
        err = await get_json(stack, f"/ui/api/tod?{bad}", status=400)
        assert word in err["error"], err


# --- trade-offs ---------------------------------------------------------------------------


async def test_tradeoff_without_a_trained_router_uses_live_figures(stack: Stack) -> None:
    now = utcnow()
    stack.warehouse.add_probes(probe("fast-a@alpha", now - timedelta(seconds=i), 80.0)
                               for i in range(3))
    body = await get_json(stack, "/ui/api/tradeoff")
    assert body["trained"] is False and "no trained router" in body["note"]
    dots = {d["endpoint"]: d for d in body["endpoints"]}
    assert set(dots) == {e.id for e in stack.endpoints}
    # no traffic yet: priced on the reference request (prices: 1/2, 0.5/1, 3/6 per Mtok)
    tin, tout = REFERENCE_TOKENS_IN, REFERENCE_TOKENS_OUT
    assert body["request"] == {"tokens_in": tin, "tokens_out": tout}
    for e in stack.endpoints:
        want = 1000 * (tin * e.price_in_per_mtok + tout * e.price_out_per_mtok) / 1e6
        assert dots[e.id]["cost_per_1k"] == pytest.approx(want)
    assert dots["fast-a@alpha"]["ttft_ms"] == 80.0 and dots["mid-c@gamma"]["ttft_ms"] is None
    assert all(d["quality"] is None for d in dots.values()) and body["routers"] == []


async def test_tradeoff_live_router_star_from_traffic_and_feedback(stack: Stack) -> None:
    routed = [await route(stack, f"q{i} summarise this") for i in range(4)]
    verdicts = ("up", "up", "down", "up")
    await send_thumbs(stack, routed, verdicts)
    await stack.warehouse.aflush()
    body = await get_json(stack, "/ui/api/tradeoff")
    dots = {d["endpoint"]: d for d in body["endpoints"]}
    scores: dict[str, list[float]] = {}
    for r, thumbs in zip(routed, verdicts, strict=True):
        scores.setdefault(r["endpoint"]["id"], []).append(1.0 if thumbs == "up" else 0.0)
    for eid, s in scores.items():
        assert dots[eid]["quality"] == pytest.approx(statistics.fmean(s))
        assert dots[eid]["quality_n"] == len(s)
    (star,) = body["routers"]
    assert star["live"] is True and star["router"] == stack.settings.bandit.default_router
    assert star["quality"] == pytest.approx(0.75)
    assert star["shares"] == pytest.approx({k: len(v) / 4 for k, v in scores.items()})
    want_cost = sum(w * dots[e]["cost_per_1k"] for e, w in star["shares"].items())
    assert star["cost_per_1k"] == pytest.approx(want_cost)


@pytest.fixture
async def trained_client(
    sim: RunningSimulator, tmp_path: Path,
    aiohttp_client: Callable[..., object],
) -> AsyncIterator[TestClient]:  # fmt: skip
    settings = make_settings(tmp_path)
    warehouse = Warehouse(settings.warehouse, lake=False)
    cooldowns = Cooldowns()
    service = BanditService(settings.bandit, warehouse, sim.catalog(), cooldowns=cooldowns)
    async with make_session() as session:
        app = create_app(settings, warehouse=warehouse, router_service=BanditRouter(service),
                         session=session, metrics=Metrics(live=warehouse.live.all),
                         cooldowns=cooldowns)
        app[TRADEOFF] = lambda: {
            "endpoints": [{"endpoint": "fast-a@alpha", "quality": 0.81, "cost_per_1k": 12.3,
                           "ttft_ms": 450.0}],
            "routers": [{"router": "router@q:1|c:0.004", "quality": 0.78, "cost_per_1k": 4.1,
                         "ttft_ms": 300.0, "shares": {"fast-a@alpha": 0.3}, "frontier": True},
                        {"router": "router@q:1", "quality": float("nan"), "cost_per_1k": 5,
                         "ttft_ms": None, "shares": {}, "frontier": False}],
            "heldout": 500,
        }
        client = await aiohttp_client(app)  # type: ignore[operator]
        yield client  # type: ignore[misc]
        await client.close()  # type: ignore[attr-defined]


async def test_tradeoff_of_a_trained_router_is_passed_through(trained_client: TestClient) -> None:
    r = await trained_client.get("/ui/api/tradeoff", headers=ADMIN)
    body = await r.json()
    assert r.status == 200 and body["trained"] is True and body["heldout"] == 500
    assert body["endpoints"] == [{"endpoint": "fast-a@alpha", "quality": 0.81,
                                  "cost_per_1k": 12.3, "ttft_ms": 450.0}]
    first, second = body["routers"]
    assert first == {"router": "router@q:1|c:0.004", "quality": 0.78, "cost_per_1k": 4.1,
                     "ttft_ms": 300.0, "shares": {"fast-a@alpha": 0.3}, "frontier": True}
    assert second["quality"] is None and second["cost_per_1k"] == 5.0  # NaN is not JSON


# --- one decision -------------------------------------------------------------------------


async def test_event_explains_a_real_decision(stack: Stack) -> None:
    routed = await route(stack, "Translate 'good morning' into French, please.",
                         metadata={"team": "i18n"})
    event_id = routed["event_id"]
    chosen = routed["endpoint"]["id"]
    body = await get_json(stack, f"/ui/api/event/{event_id}")  # still in the write buffer
    assert body["event_id"] == event_id and body["chosen"] == chosen
    assert body["policy_version"] == routed["model_version"]
    probs = {c["endpoint"]: c["probability"] for c in body["candidates"]}
    assert probs == pytest.approx(routed["probabilities"])
    assert [c["rank"] for c in body["candidates"]] == list(range(1, len(probs) + 1))
    assert [c["endpoint"] for c in body["candidates"] if c["chosen"]] == [chosen]
    assert body["prompt"]["task"] == "translate" and body["prompt"]["tokens"] > 0
    assert "hour" in body["request"]
    assert body["metadata"] == {"team": "i18n"}
    for c in body["candidates"]:
        assert c["logged"]["provider"] == c["endpoint"].rsplit("@", 1)[1]
    assert body["outcomes"] == [] and body["feedback"] == []
    report = {"event_id": event_id, "ttft_ms": 123.0, "itl_ms": 7.0, "e2e_ms": 400.0,
              "input_tokens": 12, "output_tokens": 30}
    r = await stack.client.post("/v1/outcome", json=report, headers=auth(ROUTE_TOKEN))
    assert r.status == 200
    r = await stack.client.post("/v1/feedback", json={"event_id": event_id, "thumbs": "down",
                                                      "comment": "<b>too</b> short"},
                                headers=auth(FEEDBACK_TOKEN))
    assert r.status == 200
    await stack.warehouse.aflush()
    body = await get_json(stack, f"/ui/api/event/{event_id}")
    (outcome,) = body["outcomes"]
    assert outcome["endpoint_id"] == chosen and outcome["ttft_ms"] == 123.0
    assert outcome["outcome"] == "ok" and outcome["output_tokens"] == 30
    assert outcome["source"] == "traffic"
    (fb,) = body["feedback"]
    assert fb["score"] == 0.0 and fb["comment"] == "<b>too</b> short"


async def test_event_bad_and_unknown_ids(stack: Stack) -> None:
    err = await get_json(stack, "/ui/api/event/abc", status=400)
    assert "16 to 128" in err["error"] and err["status"] == 400
    err = await get_json(stack, "/ui/api/event/" + "x" * 200, status=400)
    err = await get_json(stack, "/ui/api/event/bad%20id%3Cscript%3E1234567", status=400)
    err = await get_json(stack, "/ui/api/event/" + "0" * 32, status=404)
    assert "unknown event id" in err["error"]


# --- live feed ----------------------------------------------------------------------------


async def read_event(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    name, data = "", ""
    async with asyncio.timeout(10):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "\n" and name:
                return name, data


async def test_stream_sends_now_events_and_ends_on_shutdown(stack: Stack) -> None:
    import json

    stack.warehouse.add_probe(probe("fast-a@alpha", utcnow(), 77.0))
    resp = await stack.client.get("/ui/api/stream", headers=ADMIN)
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    name, data = await read_event(resp)
    assert name == "spark"  # the sparklines first, then only when they change
    assert json.loads(data)["minutes"] == 60
    name, data = await read_event(resp)
    assert name == "now"
    body = json.loads(data)
    assert "spark" not in body and body["partial"] is False  # every row at first
    rows = {e["id"]: e for e in body["endpoints"]}
    assert set(rows) == {e.id for e in stack.endpoints}
    assert rows["fast-a@alpha"]["live"]["ttft_ms_p50"] == 77.0
    # a new sample changes one row: that row alone is sent at the next tick; the sparklines
    # are cached, not resent
    stack.warehouse.add_probe(probe("fast-a@alpha", utcnow(), 501.0))
    name, data = await read_event(resp)
    assert name == "now"
    body = json.loads(data)
    assert body["partial"] is True and body["removed"] == []
    (row,) = body["endpoints"]
    assert row["id"] == "fast-a@alpha"
    assert row["live"]["ttft_ms_p50"] == pytest.approx((77.0 + 501.0) / 2)
    stack.app[RUN].draining = True  # what shutdown sets first: the stream ends by itself
    async with asyncio.timeout(5):
        rest = await resp.content.read()
    assert rest.count(b"event: now") <= 1
    resp.close()


# --- the cache ----------------------------------------------------------------------------


async def test_ttl_cache_shares_one_computation_and_expires() -> None:
    t = [0.0]
    cache: TtlCache[int] = TtlCache(10.0, clock=lambda: t[0], max_entries=2)
    calls = 0
    gate = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    waiters = [asyncio.create_task(cache.get("k", compute)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [1, 1, 1] and calls == 1
    t[0] = 9.9
    assert await cache.get("k", compute) == 1
    t[0] = 10.0
    assert await cache.get("k", compute) == 2

    async def boom() -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await cache.get("e", boom)
    assert await cache.get("e", compute) == 3  # failures are not cached
    await cache.get("x", compute)
    assert len(cache._values) == 2  # bounded
    with pytest.raises(ValueError):
        TtlCache(-1.0)


def test_helpers_iso_finite_weighted_mean_and_stream_signature() -> None:
    from decimal import Decimal

    from serving.ui import NowDeltas
    from serving.ui_data import finite, iso
    from serving.ui_reports import weighted_mean

    assert iso(datetime(2025, 1, 1, 1, tzinfo=UTC)) == "2025-01-01T01:00:00+00:00"
    assert iso(None) is None and iso("2025") is None
    assert finite(float("nan")) is None and finite(None) is None and finite(True) is None
    assert finite(Decimal("0.25")) == 0.25 and finite(1.23456, 2) == 1.23 and finite("1") is None
    assert weighted_mean([(1.0, 1.0), (3.0, 3.0), (None, 5.0), (9.0, 0.0)]) == 2.5
    assert weighted_mean([]) is None
    row = {"id": "a@b", "live": {"ttft_ms_p50": 10.0, "age_s": 1.0}}
    other = {"id": "c@d", "live": None}
    older = {**row, "live": {**row["live"], "age_s": 9.0}}
    slower = {**row, "live": {**row["live"], "ttft_ms_p50": 20.0}}
    deltas = NowDeltas(heartbeat_s=10.0)
    first = deltas.delta({"endpoints": [row, other], "ready": True}, 0.0)
    assert first is not None and first["partial"] is False and len(first["endpoints"]) == 2
    assert deltas.delta({"endpoints": [older, other], "ready": True}, 2.0) is None  # ages
    d = deltas.delta({"endpoints": [slower, other], "ready": True}, 4.0)
    assert d is not None and d["partial"] is True and d["endpoints"] == [slower]
    d = deltas.delta({"endpoints": [slower], "ready": True}, 6.0)
    assert d is not None and d["endpoints"] == [] and d["removed"] == ["c@d"]
    assert deltas.delta({"endpoints": [slower], "ready": True}, 15.9) is None
    d = deltas.delta({"endpoints": [slower], "ready": True}, 16.0)  # the heartbeat
    assert d is not None and d["endpoints"] == [] and d["removed"] == []
    d = deltas.delta({"endpoints": [slower], "ready": False}, 17.0)  # the header changed
    assert d is not None and d["ready"] is False
