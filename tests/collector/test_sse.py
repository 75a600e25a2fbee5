"""Tests of the incremental SSE parser: fixed examples and properties under any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sse import SSEEvent, SSEParser


def parse_all(raw: bytes) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events = parser.feed(raw)
    events += parser.close()
    return events, parser


def parse_chunks(chunks: list[bytes]) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.close()
    return events, parser


def reference_parse(raw: bytes) -> tuple[list[SSEEvent], int, int | None]:
    """A deliberately simple, whole-stream reading of the WHATWG rules (plus flush at EOF)."""
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines.append("".join(current))
            current = []
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if current:
        lines.append("".join(current))
    lines.append("")  # end of stream dispatches what is pending
    events: list[SSEEvent] = []
    data: list[str] | None = None
    name = ""
    last_id: str | None = None
    comments = 0
    retry: int | None = None
    for line in lines:
        if line == "":
            if data is not None:
                events.append(SSEEvent(name or None, "\n".join(data), last_id))
            data, name = None, ""
        elif line.startswith(":"):
            comments += 1
        else:
            field, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if field == "data":
                data = (data or []) + [value]
            elif field == "event":
                name = value
            elif field == "id" and "\0" not in value:
                last_id = value
            elif field == "retry" and value and all(c in "0123456789" for c in value):
                retry = int(value)
    return events, comments, retry


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    bounds = [0, *points, len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# --- fixed examples ---------------------------------------------------------------------


def test_openai_style_stream_with_comment_and_no_space() -> None:
    raw = b': PROCESSING\n\ndata:{"a":1}\n\ndata: [DONE]\n\n'
    events, parser = parse_all(raw)
    assert events == [SSEEvent(None, '{"a":1}'), SSEEvent(None, "[DONE]")]
    assert parser.comments == 1


def test_named_events_and_multiline_data() -> None:
    raw = b"event: ping\ndata: {}\n\nevent: x\ndata: one\ndata:two\ndata\n\n"
    events, _ = parse_all(raw)
    assert events == [SSEEvent("ping", "{}"), SSEEvent("x", "one\ntwo\n")]


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    events, _ = parse_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [SSEEvent(None, "a\nb")]


def test_lone_cr_line_endings() -> None:
    events, _ = parse_chunks([b"data: a\r\rdata: b\r", b"\r"])
    assert events == [SSEEvent(None, "a"), SSEEvent(None, "b")]


def test_only_one_space_is_dropped_after_colon() -> None:
    events, _ = parse_all(b"data:  two\n\n")
    assert events == [SSEEvent(None, " two")]


def test_blank_line_without_data_dispatches_nothing() -> None:
    events, _ = parse_all(b"event: lonely\n\n\n\ndata: x\n\n")
    assert events == [SSEEvent(None, "x")]


def test_id_persists_and_nul_id_is_ignored() -> None:
    raw = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\nid\ndata: d\n\n"
    events, _ = parse_all(raw)
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_retry_and_unknown_fields() -> None:
    events, parser = parse_all(b"retry: 1500\nretry: 2x\nfoo: bar\ndata: z\n\n")
    assert parser.retry_ms == 1500
    assert events == [SSEEvent(None, "z")]


@pytest.mark.parametrize("text", ["é", "€", "🙂", "a🙂bé"])
def test_utf8_split_inside_a_character(text: str) -> None:
    raw = f"data: {text}\n\n".encode()
    for cut in range(1, len(raw)):
        events, _ = parse_chunks([raw[:cut], raw[cut:]])
        assert events == [SSEEvent(None, text)], cut


def test_bom_is_dropped_once_even_when_split() -> None:
    raw = "\ufeffdata: x\n\n".encode()
    events, _ = parse_chunks([raw[:1], raw[1:2], raw[2:]])
    assert events == [SSEEvent(None, "x")]
    events, _ = parse_all("\ufeff\ufeffdata: y\n\n".encode())
    assert events == []  # the second BOM makes the field name "\ufeffdata"


def test_close_flushes_an_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.close() == [SSEEvent(None, "[DONE]")]
    assert parser.incomplete_at_eof
    assert parser.close() == []
    with pytest.raises(ValueError):
        parser.feed(b"data: x\n\n")


def test_complete_stream_is_not_incomplete_at_eof() -> None:
    _, parser = parse_all(b"data: x\n\n")
    assert not parser.incomplete_at_eof


def test_truncated_utf8_at_eof_becomes_replacement_character() -> None:
    events, _ = parse_all(b"data: \xf0\x9f")
    assert events == [SSEEvent(None, "\ufffd")]


# --- properties -------------------------------------------------------------------------

_FIELDS = st.sampled_from(["data", "event", "id", "retry", "foo", "", "dat", "\ufeffdata"])
_VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["[DONE]", '{"choices":[]}', "1200", " x", "a:b", "\x00", "é🙂"]),
)
_ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field", "field", "field", "bare", "comment", "blank"]))
    if kind == "blank":
        return ""
    if kind == "comment":
        return ":" + draw(_VALUES)
    if kind == "bare":
        return draw(_FIELDS)
    sep = draw(st.sampled_from([":", ": ", ":  "]))
    return draw(_FIELDS) + sep + draw(_VALUES)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line(), max_size=25))
    text = "".join(line + draw(_ENDINGS) for line in lines)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]  # cut anywhere, even mid-line
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode("utf-8")


_STREAMS = st.one_of(sse_streams(), st.binary(max_size=200))


@settings(max_examples=300, deadline=None, database=None)
@given(raw=_STREAMS, data=st.data())
def test_any_chunking_gives_the_same_events(raw: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, max(0, len(raw))), max_size=12))
    if data.draw(st.booleans()):  # the tricky spots: right after each \r and inside UTF-8
        cuts += [i + 1 for i, byte in enumerate(raw) if byte == 0x0D or byte >= 0x80]
    whole, p1 = parse_all(raw)
    chunked, p2 = parse_chunks(split_at(raw, cuts))
    assert chunked == whole
    assert (p2.comments, p2.retry_ms, p2.incomplete_at_eof) == (
        p1.comments,
        p1.retry_ms,
        p1.incomplete_at_eof,
    )


@settings(max_examples=300, deadline=None, database=None)
@given(raw=_STREAMS)
def test_matches_the_reference_parser(raw: bytes) -> None:
    events, parser = parse_all(raw)
    ref_events, ref_comments, ref_retry = reference_parse(raw)
    assert events == ref_events
    assert parser.comments == ref_comments
    assert parser.retry_ms == ref_retry


@settings(max_examples=100, deadline=None, database=None)
@given(raw=sse_streams())
def test_byte_at_a_time_gives_the_same_events(raw: bytes) -> None:
    whole, _ = parse_all(raw)
    one_by_one, _ = parse_chunks([raw[i : i + 1] for i in range(len(raw))])
    assert one_by_one == whole
