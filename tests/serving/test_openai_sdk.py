"""A real client works unchanged: the official ``openai`` SDK against the proxy.

Streaming and not, a failover, a rate-limit error, a mid-stream error, and a feedback round
trip with the event id from the response headers.
"""

from __future__ import annotations

import pytest

from collector.simulator import RunningSimulator
from serving.proxy import ENDPOINT_HEADER, EVENT_HEADER
from tests.serving.conftest import BOTH_TOKEN, Stack, auth, sim_fail

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "user", "content": "Write two words."}]


def sdk(stack: Stack) -> object:
    return openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=BOTH_TOKEN, max_retries=0,
                              timeout=20)  # fmt: skip


async def test_non_streaming_with_headers(stack: Stack) -> None:
    client = sdk(stack)
    raw = await client.chat.completions.with_raw_response.create(  # type: ignore[attr-defined]
        model="fast-a@alpha", messages=MESSAGES, max_tokens=8
    )
    completion = raw.parse()
    assert completion.model == "fast-a@alpha"
    assert completion.choices[0].message.content
    assert completion.usage.completion_tokens > 0
    assert raw.headers[ENDPOINT_HEADER] == "fast-a@alpha"
    assert len(raw.headers[EVENT_HEADER]) >= 16
    await client.close()  # type: ignore[attr-defined]


async def test_streaming_openai_and_anthropic_endpoints(stack: Stack) -> None:
    client = sdk(stack)
    for model in ("fast-b@beta", "claude-d@anthro"):
        stream = await client.chat.completions.create(  # type: ignore[attr-defined]
            model=model, messages=MESSAGES, max_tokens=8, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        text, finish, usage, models = "", None, None, set()
        async for chunk in stream:
            models.add(chunk.model)
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        assert models == {model}
        assert text.strip() and finish in ("stop", "length")
        assert usage is not None and usage.completion_tokens > 0
    await client.close()  # type: ignore[attr-defined]


async def test_failover_and_feedback_round_trip(sim: RunningSimulator, stack: Stack) -> None:
    for endpoint_id in ("fast-a@alpha", "fast-b@beta", "claude-d@anthro"):
        await sim_fail(sim, endpoint_id, "http_500")
    client = sdk(stack)
    for _ in range(6):  # until the router's first choice was a failing endpoint
        async with client.chat.completions.with_streaming_response.create(  # type: ignore[attr-defined]
            model="router@t:1", messages=MESSAGES, max_tokens=8, stream=True
        ) as response:
            assert response.headers[ENDPOINT_HEADER] == "mid-c@gamma"
            event_id = response.headers[EVENT_HEADER]
            text = ""
            async for chunk in await response.parse():
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            assert text.strip()
        await stack.warehouse.aflush()
        tried = await stack.warehouse.aquery(
            "SELECT endpoint_id, outcome FROM probes WHERE event_id = ? ORDER BY started_at",
            [event_id],
        )
        assert tried[-1] == ("mid-c@gamma", "ok")
        assert all(outcome == "http_5xx" for _, outcome in tried[:-1])
        if len(tried) > 1:
            break
    assert len(tried) > 1, "no request failed over"
    r = await stack.client.post("/v1/feedback", json={"event_id": event_id, "thumbs": "up"},
                                headers=auth())  # fmt: skip
    assert r.status == 200 and (await r.json())["duplicate"] is False
    stored = await stack.warehouse.afeedback_for(event_id)
    assert [f.score for f in stored] == [1.0]
    decision = await stack.warehouse.aget_decision(event_id)
    assert decision is not None and "mid-c@gamma" in decision.candidates
    await client.close()  # type: ignore[attr-defined]


async def test_sdk_sees_clean_errors(sim: RunningSimulator, stack: Stack) -> None:
    client = sdk(stack)
    await sim_fail(sim, "fast-a@alpha", "http_429", retry_after_s=20)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(  # type: ignore[attr-defined]
            model="fast-a@alpha", messages=MESSAGES, max_tokens=8
        )
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 19
    await sim_fail(sim, "fast-b@beta", "drop")
    raised = False
    for _ in range(8):
        try:
            stream = await client.chat.completions.create(  # type: ignore[attr-defined]
                model="fast-b@beta", messages=MESSAGES, max_tokens=12, stream=True
            )
        except openai.APIStatusError as exc:  # dropped before the first byte: a 502
            assert exc.status_code == 502
            continue
        with pytest.raises(openai.APIError, match="truncated"):
            async for _ in stream:
                pass
        raised = True
        break
    assert raised
    await client.close()  # type: ignore[attr-defined]
