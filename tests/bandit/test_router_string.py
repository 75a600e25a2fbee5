"""Router strings: good and bad inputs, canonical formatting, clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bandit.errors import RouterStringError, RouterStringPartError
from bandit.router_string import Objective, Threshold, format_router, parse_router

DEFAULT = parse_router("router@q:1|c:0.00465|t:2.08e-05|i:0.00207")


def test_parses_the_documented_example() -> None:
    obj = parse_router("router@q:1|c:4.65e-03|t:2.08e-05|i:2.07e-03")
    assert obj.weights == (1.0, 4.65e-03, 2.08e-05, 2.07e-03)
    assert obj.needs_feedback


def test_filters_and_thresholds() -> None:
    obj = parse_router(
        "router@t:1|models:b,a,a|providers:x|skip_providers:z,y|ttft<500|c<=5|itl<40|err<0.2"
    )
    assert obj.models == ("a", "b")
    assert obj.providers == ("x",)
    assert obj.skip_providers == ("y", "z")
    assert obj.threshold("ttft") == Threshold("ttft", 500.0, False)
    assert obj.threshold("c") == Threshold("c", 5.0, True)
    assert obj.threshold("itl") is not None and obj.threshold("err") is not None
    assert not obj.needs_feedback


def test_aliases_t_and_i_for_latency_thresholds() -> None:
    obj = parse_router("router@t:1|t<300|i<20")
    assert obj.threshold("ttft") == Threshold("ttft", 300.0)
    assert obj.threshold("itl") == Threshold("itl", 20.0)


@pytest.mark.parametrize("text", ["", "router", "router@", "  router  "])
def test_empty_strings_take_the_default(text: str) -> None:
    assert parse_router(text, DEFAULT) == DEFAULT


def test_filters_without_weights_take_the_default_weights() -> None:
    obj = parse_router("router@providers:openai", DEFAULT)
    assert obj.weights == DEFAULT.weights
    assert obj.providers == ("openai",)


def test_without_weights_and_without_default_is_an_error() -> None:
    with pytest.raises(RouterStringError, match="no weights"):
        parse_router("router@providers:openai")


def test_part_order_does_not_matter() -> None:
    a = parse_router("router@q:1|c:0.1|models:x,y|ttft<5")
    b = parse_router("router@ttft<5|models:y,x|c:0.1|q:1")
    assert a == b


@pytest.mark.parametrize(
    ("text", "part", "position"),
    [
        ("router@q:1|z:3", "z:3", 11),
        ("router@q:abc", "q:abc", 7),
        ("router@q:-1", "q:-1", 7),
        ("router@q:inf", "q:inf", 7),
        ("router@q:1||t:2", "", 11),
        ("router@q:1|q:2", "q:2", 11),
        ("router@q:1|speed>3", "speed>3", 11),
        ("router@q:1|foo<3", "foo<3", 11),
        ("router@q:1|models:a b", "models:a b", 11),
        ("router@q:1|ttft<5|ttft<6", "ttft<6", 18),
        ("router@q:1|models:", "models:", 11),
        ("rooter@q:1", "rooter@q:1", 0),
    ],
)
def test_bad_parts_are_named_with_their_position(text: str, part: str, position: int) -> None:
    with pytest.raises(RouterStringPartError) as info:
        parse_router(text, DEFAULT)
    assert info.value.part == part
    assert info.value.position == position
    assert repr(part) in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.status == 400


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(RouterStringError, match="at least one weight"):
        parse_router("router@q:0|c:0")


def test_not_a_string_is_refused() -> None:
    with pytest.raises(RouterStringError):
        parse_router(3)  # type: ignore[arg-type]


_names = st.lists(st.from_regex(r"[a-z][a-z0-9.\-]{0,8}", fullmatch=True), max_size=3)
_weights = st.floats(min_value=0, max_value=1e3, allow_nan=False, allow_infinity=False)


@given(
    q=_weights, c=_weights, t=_weights, i=_weights, models=_names, skip=_names,
    ttft=st.none() | st.floats(min_value=0, max_value=1e5), inclusive=st.booleans(),
)
def test_format_then_parse_is_the_identity(
    q: float, c: float, t: float, i: float, models: list[str], skip: list[str],
    ttft: float | None, inclusive: bool,
) -> None:
    if q == c == t == i == 0:
        q = 1.0
    obj = Objective(
        q=q, c=c, t=t, i=i,
        models=tuple(sorted(set(models))),
        skip_providers=tuple(sorted(set(skip))),
        thresholds=() if ttft is None else (Threshold("ttft", ttft, inclusive),),
    )
    assert parse_router(format_router(obj)) == obj
