"""Errors raised by the sidecar, and the one middleware that turns every exception into JSON.

    ServingError
     ├── BadRequest (ValueError)     400  unreadable JSON, a bad header
     ├── Unauthorized                401  no or unknown bearer token (WWW-Authenticate)
     ├── Forbidden                   403  a token without the route's scope
     ├── NotFound                    404  an unknown event id, endpoint or path
     ├── MethodNotAllowed            405
     ├── Conflict                    409  feedback past its window
     ├── PayloadTooLarge             413  a body over the size limit
     ├── Unprocessable (ValueError)  422  schema validation; the message names the field path
     ├── TooManyRequests             429  rate limited (Retry-After)
     ├── UpstreamError               502  every endpoint tried failed (carries the attempts)
     ├── NotReady                    503  not ready yet, or draining (Retry-After)
     └── UpstreamTimeout             504  no first token from any endpoint in time

Every error response has the body ``{"ok": false, "error": str, "status": int}``.
:func:`error_middleware` is the single place that maps exceptions to it: our own errors, other
packages' errors that carry ``status`` (``BanditError``, ``WarehouseError``), aiohttp's
``HTTPException`` (unmatched path, wrong method, body too large), pydantic ``ValidationError``,
and anything else as a 500 that names only the exception type (the traceback goes to the log).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

log = logging.getLogger(__name__)

MAX_VALIDATION_ERRORS = 5


class ServingError(Exception):
    """Base class of every serving error.

    ``headers`` are added to the error response (``Retry-After``, the event id of a proxied
    call that failed, ...).
    """

    status = 500

    def __init__(self, message: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ServingError, ValueError):
    """The request cannot be read (not JSON, not UTF-8, a bad header)."""

    status = 400


class Unauthorized(ServingError):
    """No bearer token, or one that is not configured."""

    status = 401

    def __init__(self, message: str = "", *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer", **(headers or {})})


class Forbidden(ServingError):
    """A valid token without the scope this route needs."""

    status = 403


class NotFound(ServingError):
    """An unknown event id, endpoint or path."""

    status = 404


class MethodNotAllowed(ServingError):
    status = 405


class Conflict(ServingError):
    """The request conflicts with the state (feedback past its window)."""

    status = 409


class PayloadTooLarge(ServingError):
    status = 413


class Unprocessable(ServingError, ValueError):
    """Valid JSON that does not match the schema; the message names the field path."""

    status = 422


class TooManyRequests(ServingError):
    """Rate limited; ``retry_after_s`` becomes the ``Retry-After`` header (whole seconds)."""

    status = 429

    def __init__(
        self,
        message: str = "",
        *,
        retry_after_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.retry_after_s = max(0.0, retry_after_s)
        super().__init__(
            message,
            headers={"Retry-After": str(max(1, math.ceil(self.retry_after_s))), **(headers or {})},
        )


class UpstreamError(ServingError):
    """Every endpoint tried failed before answering; ``attempts`` lists what happened."""

    status = 502

    def __init__(
        self,
        message: str = "",
        *,
        attempts: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        self.attempts = tuple(attempts)


class UpstreamRejected(UpstreamError):
    """An endpoint answered 4xx to the request itself; ``status`` is the endpoint's."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int,
        attempts: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, attempts=attempts, headers=headers)
        self.status = status


class UpstreamTimeout(UpstreamError):
    """No endpoint produced a first token within the deadline."""

    status = 504


class Unavailable(ServingError):
    """Nothing can serve right now (every candidate endpoint is cooling down)."""

    status = 503


class NotReady(Unavailable):
    """The sidecar is starting or draining."""


def format_validation_error(exc: ValidationError, *, limit: int = MAX_VALIDATION_ERRORS) -> str:
    """``field.path[0].name: message`` for each problem (at most ``limit``), joined by ``; ``."""
    parts = []
    errors = exc.errors(include_url=False, include_context=False)
    for err in errors[:limit]:
        loc, key = err["loc"], None
        if len(loc) >= 2 and loc[-1] == "[key]":  # pydantic's marker: the mapping key is wrong
            loc, key = loc[:-2], loc[-2]
        path = ""
        for item in loc:
            path += f"[{item}]" if isinstance(item, int) else (("." if path else "") + str(item))
        if key is not None:
            path = f"{path or '(body)'} key {json.dumps(str(key), ensure_ascii=False)}"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{path or '(body)'}: {message}")
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)


def error_body(status: int, message: str) -> bytes:
    """The one error shape, as JSON bytes."""
    return json.dumps({"ok": False, "error": message, "status": status}).encode()


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=error_body(status, message),
        status=status,
        content_type="application/json",
        headers=headers,
    )


_PASS_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def exception_response(exc: BaseException) -> web.Response:
    """The JSON error response for any exception (see the module docstring)."""
    if isinstance(exc, ServingError):
        return error_response(exc.status, str(exc) or type(exc).__name__, exc.headers)
    if isinstance(exc, web.HTTPException):
        headers = {k: exc.headers[k] for k in _PASS_HEADERS if k in exc.headers}
        message = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else ""
        if exc.status == 404:
            message = "no such route"
        elif exc.status == 405:
            message = f"method not allowed; allowed: {headers.get('Allow', '')}"
        elif exc.status == 413:
            message = "request body too large"
        return error_response(exc.status, message or exc.reason, headers)
    if isinstance(exc, ValidationError):
        return error_response(422, format_validation_error(exc))
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return error_response(status, str(exc) or type(exc).__name__)
    log.exception("unhandled error")
    return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every exception raised below this middleware to the one JSON error shape.

    A handler that already started streaming (``prepare()``) handles its own errors; one
    that escapes anyway is logged and the connection is closed.
    """
    try:
        return await handler(request)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - the one mapping point, by design
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        return exception_response(exc)
