"""The JSON routes: /v1/route, /v1/outcome, /v1/feedback, /v1/endpoints, health, metrics, admin.

Real app on a real socket, real bandit (VW), real DuckDB file, simulator catalog.
"""

from __future__ import annotations

import asyncio

from serving.schemas import (
    EndpointsResponse,
    FeedbackResponse,
    OutcomeResponse,
    ReadyResponse,
    RouteResponse,
)
from tests.serving.conftest import ADMIN_TOKEN, FEEDBACK_TOKEN, ROUTE_TOKEN, MakeStack, Stack, auth
from warehouse.models import Outcome, Source


async def route_once(stack: Stack, **body: object) -> dict[str, object]:
    body = body or {"prompt": "What is the capital of France?"}
    resp = await stack.client.post("/v1/route", json=body, headers=auth(ROUTE_TOKEN))
    data = await resp.json()
    assert resp.status == 200, data
    return data


async def test_route_returns_a_complete_decision(stack: Stack) -> None:
    data = await route_once(stack, prompt="Hello", max_tokens=100, metadata={"team": "x"})
    parsed = RouteResponse.model_validate(data)
    ids = {e.id for e in stack.endpoints}
    assert parsed.endpoint.id in ids
    assert parsed.endpoint.base_url.startswith("http://127.0.0.1:")
    assert {f.id for f in parsed.fallbacks} <= ids - {parsed.endpoint.id}
    assert set(parsed.probabilities) <= ids
    assert abs(sum(parsed.probabilities.values()) - 1) < 1e-6
    assert parsed.expected.ttft_ms is not None and parsed.expected.cost_usd is not None
    assert parsed.model_version.startswith("vw-")
    # the decision was logged: the warehouse has it (buffered rows included)
    decision = await stack.warehouse.aget_decision(parsed.event_id)
    assert decision is not None and decision.chosen == parsed.endpoint.id
    assert decision.metadata == {"team": "x"}


async def test_route_metadata_is_stored_for_sql(stack: Stack) -> None:
    labels = {"team": "search", "feature": "autocomplete \"beta\"", "tenant": "ünï"}
    tagged = await route_once(stack, prompt="Hello", metadata=labels)
    plain = await route_once(stack, prompt="Hello")
    await stack.warehouse.aflush()
    rows = await stack.warehouse.aquery(
        "SELECT event_id, metadata->>'team', metadata->>'feature', metadata->>'tenant' "
        "FROM v_decisions WHERE event_id IN (?, ?) ORDER BY metadata IS NULL",
        [tagged["event_id"], plain["event_id"]],
    )
    assert rows == [
        (tagged["event_id"], "search", 'autocomplete "beta"', "ünï"),
        (plain["event_id"], None, None, None),
    ]
    # read back from the file, not from the writer's buffer
    decision = await stack.warehouse.aget_decision(str(tagged["event_id"]))
    assert decision is not None and decision.metadata == labels


async def test_route_rejects_bad_metadata_by_path(stack: Stack) -> None:
    c = stack.client
    for metadata, where in [
        ({"team": 7}, "metadata.team:"),
        ({"k" * 65: "v"}, f'metadata key "{"k" * 65}": String should have at most 64'),
        ({"": "v"}, 'metadata key "": String should have at least 1'),
        ({"team": "v" * 513}, "metadata.team:"),
        ({f"k{i}": "v" for i in range(33)}, "metadata:"),
        (["team"], "metadata:"),
    ]:
        r = await c.post("/v1/route", json={"prompt": "x", "metadata": metadata},
                         headers=auth(ROUTE_TOKEN))  # fmt: skip
        body = await r.json()
        assert r.status == 422 and body["error"].startswith(where), (metadata, body)


async def test_route_honours_constraints_and_weights(stack: Stack) -> None:
    for _ in range(10):
        data = await route_once(
            stack,
            messages=[{"role": "user", "content": "hi"}],
            constraints={"providers": ["alpha", "beta"]},
            weights={"t": 1.0},
        )
        assert data["endpoint"]["id"] in {"fast-a@alpha", "fast-b@beta"}  # type: ignore[index]
        assert set(data["probabilities"]) == {"fast-a@alpha", "fast-b@beta"}  # type: ignore[arg-type]
        assert "t:1.0" in str(data["router"])


async def test_route_errors_name_the_problem(stack: Stack) -> None:
    c = stack.client
    r = await c.post("/v1/route", json={"prompt": "x", "router": "router@q:1|bogus:2"},
                     headers=auth(ROUTE_TOKEN))  # fmt: skip
    body = await r.json()
    assert r.status == 400 and "bogus" in body["error"]
    r = await c.post("/v1/route", json={"prompt": "x", "constraints": {"providers": ["nobody"]}},
                     headers=auth(ROUTE_TOKEN))  # fmt: skip
    body = await r.json()
    assert r.status == 422 and "no endpoint" in body["error"]
    r = await c.post("/v1/route", json={"prompt": "x", "messages": [{"role": "user"}]},
                     headers=auth(ROUTE_TOKEN))  # fmt: skip
    assert r.status == 422
    r = await c.post("/v1/route", json={"messages": [{"role": "robot", "content": "x"}]},
                     headers=auth(ROUTE_TOKEN))  # fmt: skip
    body = await r.json()
    assert r.status == 422 and body["error"].startswith("messages[0].role:")


async def test_outcome_becomes_a_traffic_row_and_live_sample(stack: Stack) -> None:
    data = await route_once(stack)
    event_id, chosen = str(data["event_id"]), data["endpoint"]["id"]  # type: ignore[index]
    report = {"event_id": event_id, "ttft_ms": 123.0, "itl_ms": 7.5, "e2e_ms": 900.0,
              "input_tokens": 12, "output_tokens": 50}  # fmt: skip
    r = await stack.client.post("/v1/outcome", json=report, headers=auth(ROUTE_TOKEN))
    body = await r.json()
    assert r.status == 200, body
    assert OutcomeResponse.model_validate(body).endpoint_id == chosen
    await stack.warehouse.aflush()
    rows = await stack.warehouse.aquery(
        "SELECT endpoint_id, source, outcome, ttft_ms, itl_ms_mean, output_tokens, tpot_ms "
        "FROM probes WHERE event_id = ?", [event_id]
    )  # fmt: skip
    assert len(rows) == 1
    eid, source, outcome, ttft, itl, tokens, tpot = rows[0]
    assert (eid, source, outcome, ttft, itl, tokens) == (
        chosen, Source.TRAFFIC.value, Outcome.OK.value, 123.0, 7.5, 50,
    )  # fmt: skip
    assert tpot is not None and abs(tpot - (900 - 123) / 49) < 1e-6
    live = stack.warehouse.live.get(str(chosen))
    assert live is not None and live.samples_traffic == 1

    # an HTTP status maps to an outcome; a fallback endpoint may be named
    other = next(e.id for e in stack.endpoints if e.id != chosen)
    r = await stack.client.post(
        "/v1/outcome",
        json={"event_id": event_id, "endpoint_id": other, "status": 429, "retry_after_s": 2},
        headers=auth(ROUTE_TOKEN),
    )
    assert r.status == 200 and (await r.json())["outcome"] == "http_429"


async def test_outcome_unknown_event_and_foreign_endpoint(stack: Stack) -> None:
    r = await stack.client.post("/v1/outcome", json={"event_id": "f" * 32, "ttft_ms": 1},
                                headers=auth(ROUTE_TOKEN))  # fmt: skip
    assert r.status == 404
    data = await route_once(stack, prompt="x", constraints={"providers": ["alpha"]})
    r = await stack.client.post(
        "/v1/outcome",
        json={"event_id": data["event_id"], "endpoint_id": "mid-c@gamma"},
        headers=auth(ROUTE_TOKEN),
    )
    body = await r.json()
    assert r.status == 422 and "endpoint_id" in body["error"]


async def test_feedback_is_idempotent_and_stored(stack: Stack) -> None:
    event_id = str((await route_once(stack))["event_id"])
    fb = {"event_id": event_id, "thumbs": "up", "comment": "good"}
    r1 = await stack.client.post("/v1/feedback", json=fb, headers=auth(FEEDBACK_TOKEN))
    b1 = FeedbackResponse.model_validate(await r1.json())
    assert r1.status == 200 and b1.score == 1.0 and not b1.duplicate
    r2 = await stack.client.post("/v1/feedback", json={"event_id": event_id, "score": 0.1},
                                 headers=auth(FEEDBACK_TOKEN))  # fmt: skip
    b2 = FeedbackResponse.model_validate(await r2.json())
    assert r2.status == 200 and b2.duplicate and b2.score == 1.0
    stored = await stack.warehouse.afeedback_for(event_id)
    assert [f.score for f in stored] == [1.0]
    assert stored[0].comment == "good"
    metrics = await (await stack.client.get("/metrics")).text()
    assert 'switchyard_feedback_total{kind="up"} 1.0' in metrics
    assert 'switchyard_feedback_total{kind="duplicate"} 1.0' in metrics


async def test_feedback_unknown_and_past_window(tmp_path: object, sim: object,
                                                make_stack: MakeStack) -> None:  # fmt: skip
    from bandit.config import BanditConfig

    stack = await make_stack(
        sim.catalog(),  # type: ignore[attr-defined]
        bandit=BanditConfig(checkpoint_path=tmp_path / "b.ckpt", feedback_window_s=0.2),  # type: ignore[operator]
    )
    r = await stack.client.post("/v1/feedback", json={"event_id": "0" * 32, "thumbs": "up"},
                                headers=auth(FEEDBACK_TOKEN))  # fmt: skip
    assert r.status == 404 and (await r.json())["status"] == 404
    event_id = (await route_once(stack))["event_id"]
    await asyncio.sleep(0.35)
    r = await stack.client.post("/v1/feedback", json={"event_id": event_id, "thumbs": "down"},
                                headers=auth(FEEDBACK_TOKEN))  # fmt: skip
    body = await r.json()
    assert r.status == 409 and "window" in body["error"]


async def test_endpoints_health_ready_metrics_checkpoint(stack: Stack) -> None:
    c = stack.client
    await route_once(stack)
    r = await c.get("/v1/endpoints", headers=auth(ROUTE_TOKEN))
    parsed = EndpointsResponse.model_validate(await r.json())
    assert [e.id for e in parsed.endpoints] == sorted(e.id for e in stack.endpoints)
    assert "api_key" not in await r.text()
    r = await c.get("/healthz")
    assert r.status == 200 and (await r.json())["ok"] is True
    r = await c.get("/readyz")
    assert r.status == 200 and ReadyResponse.model_validate(await r.json()).endpoints == 4
    r = await c.get("/metrics")
    text = await r.text()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    counter = 'switchyard_http_requests_total{method="POST",route="/v1/route",status="200"}'
    assert f"{counter} 1.0" in text
    assert "switchyard_decisions_total{endpoint=" in text
    assert 'switchyard_http_request_duration_seconds_bucket{le="0.005",route="/v1/route"}' in text
    ckpt = stack.settings.bandit.checkpoint_path
    ckpt.unlink(missing_ok=True)
    r = await c.post("/v1/admin/checkpoint", headers=auth(ADMIN_TOKEN))
    assert r.status == 200 and ckpt.exists()


def test_endpoint_refs_follow_a_reloaded_catalog() -> None:
    """Answers name an endpoint from a kept reference, kept per id only while the catalog's
    object for that id is the same: a reload with a new base URL answers with the new one."""
    from serving.routes import endpoint_ref
    from warehouse.models import Endpoint

    old = Endpoint(id="m@p", base_url="http://127.0.0.1:1/v1", wire_format="openai",
                   price_in_per_mtok=1, price_out_per_mtok=2, context_window=1000)
    assert endpoint_ref(old) is endpoint_ref(old)
    assert endpoint_ref(old)["base_url"] == "http://127.0.0.1:1/v1"
    new = old.model_copy(update={"base_url": "http://127.0.0.1:2/v1"})
    assert endpoint_ref(new) == {"id": "m@p", "base_url": "http://127.0.0.1:2/v1",
                                 "wire_format": "openai", "model": "m"}
