"""An incremental parser for Server-Sent Events (``text/event-stream``).

Bytes go in as they come off the network, in chunks of any size; complete events come out.
The rules are the WHATWG EventSource parsing rules:

- the stream is UTF-8 (invalid bytes become U+FFFD); one leading byte-order mark is dropped;
- a line ends in ``\\n``, ``\\r\\n`` or ``\\r``, and a ``\\r`` that ends one chunk followed by a
  ``\\n`` that starts the next is ONE line end;
- ``field:value`` with at most one space dropped after the colon; a line without a colon is a
  field with an empty value; a line starting with ``:`` is a comment (counted, not dispatched);
- ``data`` lines accumulate, joined by ``\\n``; ``event`` sets the name; ``id`` sets the last
  event id (it persists across events; a value containing NUL is ignored); ``retry`` with
  digits only sets ``retry_ms``; other fields are ignored;
- a blank line dispatches the event, unless no ``data`` line was seen.

One deliberate difference: at end of stream, :meth:`SSEParser.close` processes an unterminated
last line and dispatches a pending event instead of discarding it, because some LLM servers end
with ``data: [DONE]`` and no blank line. ``close()`` reports the lenient case in
``SSEParser.incomplete_at_eof``.

>>> parser = SSEParser()
>>> parser.feed(b"event: ping\\ndata: {}\\n\\ndata:a\\r")
[SSEEvent(event='ping', data='{}', id=None)]
>>> parser.feed(b"\\ndata: b\\n\\n")
[SSEEvent(event=None, data='a\\nb', id=None)]
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its name (``None`` when no ``event:`` line), data and last id."""

    event: str | None
    data: str
    id: str | None = None


class SSEParser:
    """Turns chunks of an event stream into :class:`SSEEvent` objects, chunk by chunk.

    The result does not depend on how the stream was split into chunks. Use one parser per
    stream. ``comments`` counts comment lines (keep-alives such as ``: PROCESSING``).
    """

    __slots__ = (
        "_decoder",
        "_partial",
        "_skip_lf",
        "_started",
        "_data",
        "_has_data",
        "_event",
        "_last_id",
        "_closed",
        "comments",
        "retry_ms",
        "incomplete_at_eof",
    )

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # text of the current unterminated line
        self._skip_lf = False  # the last chunk ended in \r: a leading \n belongs to it
        self._started = False  # the byte-order mark check is done
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._last_id: str | None = None
        self._closed = False
        self.comments = 0
        self.retry_ms: int | None = None
        self.incomplete_at_eof = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse one chunk; return the events it completed (often none or one)."""
        if self._closed:
            raise ValueError("SSEParser.feed() after close()")
        text = self._decoder.decode(data)
        return self._feed_text(text) if text else []

    def close(self) -> list[SSEEvent]:
        """Signal end of stream: flush the decoder, the last line and any pending event."""
        if self._closed:
            return []
        text = self._decoder.decode(b"", final=True)
        events = self._feed_text(text) if text else []
        self._closed = True
        if self._partial:
            self.incomplete_at_eof = True
            line, self._partial = self._partial, ""
            self._line(line, events)
        if self._has_data:
            self.incomplete_at_eof = True
        self._line("", events)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        events: list[SSEEvent] = []
        if "\r" in text:
            lines = _LINE_END.split(text)
            if text[-1] == "\r":
                self._skip_lf = True
        else:
            lines = text.split("\n")
        # The last piece is the unterminated rest ("" when the text ended in a line end).
        if len(lines) == 1:
            self._partial += lines[0]
            return events
        lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        for line in lines:
            self._line(line, events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._has_data:
                data = "\n".join(self._data)
                events.append(SSEEvent(self._event or None, data, self._last_id))
            self._data = []
            self._has_data = False
            self._event = ""
            return
        colon = line.find(":")
        if colon == 0:
            self.comments += 1
            return
        if colon < 0:
            field, value = line, ""
        else:
            field = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == " " else line[colon + 1 :]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and _DIGITS.fullmatch(value):
            self.retry_ms = int(value)
