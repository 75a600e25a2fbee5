"""The feature builder: pure, safe VW text, and exactly rebuildable from a logged context."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.features import (
    ArmCache,
    action_features,
    action_line,
    arms_from_context,
    prompt_context,
    request_context,
    shared_from_context,
    shared_line,
)
from warehouse.models import Endpoint, LiveStat

NOW = datetime(2025, 3, 1, 15, 30, tzinfo=UTC)
# A VW text line: namespaces "|X", then features "name" or "name:value" without spaces/pipes.
_FEATURE = r"[^\s|:]+(:-?[0-9.e+\-]+)?"
_LINE_RE = re.compile(rf"^(shared )?(\|[A-Z]( {_FEATURE})*( |$))+$")


def _endpoint(eid: str = "gpt-4o@openai", price: float = 2.5) -> Endpoint:
    return Endpoint(
        id=eid, base_url="https://x.test/v1", wire_format="openai",
        price_in_per_mtok=price, price_out_per_mtok=4 * price, context_window=128_000,
    )


def _full(text: str) -> dict[str, float | str]:
    ctx = prompt_context(text, max_words=64)
    ctx.update(request_context(NOW, (1.0, 0.01, 2e-5, 2e-3), 256))
    return ctx


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_prompt_gives_one_valid_shared_line(text: str) -> None:
    line = shared_line(_full(text))
    assert "\n" not in line and "\r" not in line
    assert _LINE_RE.match(line), line


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_shared_line_survives_a_json_round_trip_of_the_context(text: str) -> None:
    ctx = _full(text)
    logged = json.loads(json.dumps(ctx, sort_keys=True))
    assert shared_line(logged) == shared_line(ctx)
    assert shared_from_context({**logged, "a.x@y.model": "x"}) == logged


def test_prompt_markers() -> None:
    code = prompt_context("```python\ndef f(x):\n    return x\n```", max_words=32)
    assert code["p.code"] == 1.0 and code["p.lang"] in ("en", "latin")
    maths = prompt_context("Compute \\frac{3}{4} + 12 * 7 = ?", max_words=32)
    assert maths["p.math"] == 1.0
    structured = prompt_context("Return the answer as JSON with keys a and b.", max_words=32)
    assert structured["p.struct"] == 1.0
    mcq = prompt_context("Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:", max_words=32)
    assert mcq["p.task"] == "choice" and mcq["p.options"] == 4.0
    assert mcq["p.numeric_options"] == 1.0
    russian = prompt_context("Привет, как дела? Расскажи о погоде в Москве.", max_words=8)
    assert russian["p.lang"] == "cyrillic"
    assert prompt_context("Translate this into French: hello", max_words=8)["p.task"] == "translate"


def test_words_are_capped_head_and_tail() -> None:
    text = " ".join(f"w{i}" for i in range(3000))
    words = str(prompt_context(text, max_words=100)["p.words"]).split()
    assert len(words) == 100
    assert words[0] == "w0" and words[-1] == "w2999"


def test_prompt_tokens_given_or_estimated() -> None:
    assert prompt_context("x" * 400, max_words=8)["p.tokens"] == 100.0
    assert prompt_context("x" * 400, max_words=8, prompt_tokens=7)["p.tokens"] == 7.0


def test_action_features_from_live_stats() -> None:
    stat = LiveStat(
        endpoint_id="gpt-4o@openai", samples=10, ttft_ms_p50=300.0, ttft_ms_p90=800.0,
        itl_ms_p50=20.0, itl_ms_p90=45.0, tokens_per_s=60.0, error_rate=0.1, rate_429=0.05,
        newest_at=NOW - timedelta(seconds=90),
    )
    feats = action_features(_endpoint(), stat, NOW)
    assert feats["ttft_p50"] == 300.0 and feats["err"] == 0.1 and feats["age_s"] == 90.0
    line = action_line("gpt-4o@openai", feats)
    assert _LINE_RE.match(line)
    assert "t50:0.3 " in line and "e=gpt-4o@openai" in line
    bare = action_line("gpt-4o@openai", action_features(_endpoint(), None, NOW))
    assert "t50_na" in bare and "t50:" not in bare


def test_arm_cache_reuses_lines_until_the_stat_changes() -> None:
    cache = ArmCache()
    e = _endpoint()
    stat = LiveStat(endpoint_id=e.id, samples=3, ttft_ms_p50=100.0, newest_at=NOW)
    a = cache.get(e, stat, NOW)
    assert cache.get(e, stat, NOW + timedelta(seconds=1)) is a
    fresh = LiveStat(endpoint_id=e.id, samples=4, ttft_ms_p50=900.0, newest_at=NOW)
    b = cache.get(e, fresh, NOW + timedelta(seconds=1))
    assert b is not a and "t50:0.9" in b.line
    assert cache.get(e, fresh, NOW + timedelta(seconds=65)) is not b  # age bucket moved


def test_arms_rebuild_exactly_from_the_logged_context() -> None:
    cache = ArmCache()
    ids = ["m.v1@p-1", "gpt-4.1@openai", "x@y"]
    stats = {i: LiveStat(endpoint_id=i, samples=5, ttft_ms_p50=123.456 + k, newest_at=NOW)
             for k, i in enumerate(ids)}
    arms = [cache.get(_endpoint(i, 1.0 + k), stats[i], NOW) for k, i in enumerate(ids)]
    logged: dict[str, float | str] = {}
    for arm in arms:
        logged.update(arm.logged)
    logged = json.loads(json.dumps(logged, sort_keys=True))
    rebuilt = arms_from_context(logged, ids)
    assert [a.line for a in rebuilt] == [a.line for a in arms]


def test_logged_context_json_is_the_mapping_itself() -> None:
    import gc
    import json

    import pytest

    from bandit.features import Arm, LoggedContext

    arms = [Arm.build(e, {"model": e[:1], "provider": "p", "price_in": 1.25, "ttft_p50": 87.5})
            for e in ("a@p", "b@p")]
    ctx = LoggedContext({"p.words": 'say "hi"', "p.tokens": 3.0}, arms)
    assert ctx["a.b@p.ttft_p50"] == 87.5 and len(ctx) == 2 + 2 * 4
    assert ctx.get("a.a@p.model") == "a" and ctx.get("nope") is None
    from warehouse.convert import flat_context, stored_context

    stored = json.loads(ctx.json_text())
    assert stored == stored_context(ctx)  # what the writer stores for a plain mapping too
    assert stored["a"]["b@p"] == {"model": "b", "provider": "p", "price_in": 1.25,
                                  "ttft_p50": 87.5}
    assert flat_context(stored) == dict(ctx)
    assert ctx.json_text() == LoggedContext({"p.words": 'say "hi"', "p.tokens": 3.0}, arms).json_text()
    with pytest.raises(TypeError):
        ctx["p.extra"] = 1.0  # type: ignore[index]
    assert json.loads(LoggedContext({}, []).json_text()) == {}
    # what a pending decision keeps is plain data the garbage collector stops walking
    fresh = LoggedContext({"p.tokens": 3.0}, arms)
    fresh.json_text()
    gc.collect()
    # (a tuple holding dicts stays tracked, but the dicts in it are not walked)
    held = [o for o in gc.get_referents(fresh) if not isinstance(o, type)]
    inner = [d for o in held if isinstance(o, tuple) for d in o]
    assert not any(gc.is_tracked(o) for o in held + inner if not isinstance(o, tuple))
