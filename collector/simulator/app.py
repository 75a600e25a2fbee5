"""The provider simulator: an aiohttp app serving many fake LLM endpoints on loopback.

Routes mirror the real APIs: endpoint ``model@provider`` lives at ``/<provider>/v1``, with
``POST chat/completions`` (OpenAI) or ``POST messages`` (Anthropic). Each request draws one
``SampledCall`` from its profile and replays it, writing each pre-rendered chunk at an absolute
deadline (``t0 + ttft``, then ``+ gap``) so lateness never accumulates. What was injected is
kept in a ring buffer at ``GET /_sim/injected``; ``/_sim/scale`` and ``/_sim/fail`` change
behaviour at run time. A profile with an ``accuracy`` mapping answers each prompt with a short
right or wrong answer instead of filler text (``collector.simulator.answers``).

    async with run_simulator(SimConfig(seed=1)) as sim:
        endpoints = sim.catalog()      # warehouse.models.Endpoint rows pointing here

``SimulatorProcess`` runs the same server in a subprocess (``python -m collector.simulator``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import select
import shutil
import signal
import subprocess  # noqa: S404 - starts our own simulator module
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from warehouse.models import Endpoint, WireFormat

from .answers import answer_text, is_question
from .profiles import SampledCall, SimConfig, SimOutcome, SimProfile, call_rng, with_words
from .wire import StreamBytes, completion_body, error_response, filler_words, render_stream

REQUIRE_KEY_ENV = "SIM_REQUIRE_KEY"  # how SimulatorProcess hands the expected key over
LOOPBACK = frozenset({"127.0.0.1", "::1"})
DEFAULT_MAX_TOKENS = 4096  # OpenAI requests without max_tokens
SHUTDOWN_TIMEOUT_S = 1.0
HANG_POLL_S = 0.25


@dataclass(slots=True)
class InjectedRecord:
    """What one request was given, and when its content chunks actually left (``sent_ms``)."""

    request_id: str
    endpoint_id: str
    counter: int
    outcome: SimOutcome
    stream: bool
    injected_ttft_ms: float | None
    injected_gaps_ms: tuple[float, ...]
    tokens_per_chunk: tuple[int, ...]
    output_tokens: int
    input_tokens: int
    retry_after_s: float | None
    latency_factor: float
    sim_hour: float
    prompt_sha256: str = ""  # of the last user message's text: which prompt was asked
    seq: int = 0
    sent_ms: list[float] = field(default_factory=list)
    done: bool = False
    client_gone: bool = False

    def to_json(self) -> dict[str, object]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["outcome"] = self.outcome.value
        for name in ("injected_gaps_ms", "tokens_per_chunk", "sent_ms"):
            out[name] = list(out[name])  # type: ignore[call-overload]
        return out


class InjectedLog:
    """A bounded ring of ``InjectedRecord``s, numbered by ``seq`` from 1."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[InjectedRecord] = deque(maxlen=capacity)
        self.last_seq = 0

    def add(self, record: InjectedRecord) -> int:
        self.last_seq += 1
        record.seq = self.last_seq
        self._items.append(record)
        return self.last_seq

    def query(self, endpoint_id: str | None, since: int, limit: int) -> list[InjectedRecord]:
        """Up to ``limit`` records with ``seq > since``, optionally of one endpoint."""
        first = self.last_seq - len(self._items) + 1
        items = islice(self._items, max(0, since + 1 - first), None)
        picked = (r for r in items if endpoint_id is None or r.endpoint_id == endpoint_id)
        return list(islice(picked, limit))


class SimState:
    """Mutable state of one running simulator: counters, runtime overrides, the log."""

    def __init__(self, config: SimConfig, *, clock: Callable[[], float] = time.perf_counter):
        self.config = config
        self.clock = clock
        self.profiles = {p.endpoint_id: p for p in config.profiles}
        self.routes = {(p.provider, p.model): p for p in config.profiles}
        self.counters = dict.fromkeys(self.profiles, 0)
        self.scales: dict[str, tuple[float, float]] = {}
        self.forced: dict[str, tuple[SimOutcome, float | None]] = {}
        self.log = InjectedLog(config.injected_capacity)
        self.closing = asyncio.Event()
        self.started = clock()
        now = datetime.now(UTC)
        real_hour = now.hour + now.minute / 60 + now.second / 3600
        self.start_hour = config.day_offset_h if config.day_offset_h is not None else real_hour

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def sim_hour(self) -> float:
        return self.config.sim_hour(self.elapsed_s(), self.start_hour)

    def draw(self, profile: SimProfile, max_tokens: int) -> tuple[int, SampledCall, random.Random]:
        """Draw the next call of ``profile``: (per-endpoint counter, call, its generator)."""
        eid = profile.endpoint_id
        counter = self.counters[eid]
        self.counters[eid] = counter + 1
        rng = call_rng(self.config.seed, eid, counter)
        ttft_f, gap_f = self.scales.get(eid, (1.0, 1.0))
        force, retry = self.forced.get(eid, (None, None))
        scale = self.config.latency_scale
        call = profile.sample(
            rng,
            self.sim_hour(),
            self.elapsed_s(),
            max_tokens,
            ttft_factor=ttft_f * scale,
            gap_factor=gap_f * scale,
            force=force,
            retry_after_s=retry,
        )
        return counter, call, rng


STATE = web.AppKey("simulator_state", SimState)


# --- provider routes ------------------------------------------------------------------------


def _error(fmt: WireFormat, kind: str, message: str | None = None, **headers: str) -> web.Response:
    status, body = error_response(fmt, kind, message)
    return web.json_response(body, status=status, headers=headers or None)


def _api_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _input_tokens(body: dict[str, object]) -> int:
    """ceil(characters / 4) over system prompt and messages (text parts only)."""
    chars = 0

    def add(content: object) -> None:
        nonlocal chars
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    chars += len(part["text"])

    add(body.get("system"))
    for message in body.get("messages") or []:  # type: ignore[union-attr]
        if isinstance(message, dict):
            add(message.get("content"))
    return max(1, math.ceil(chars / 4))


def _prompt_text(body: dict[str, object]) -> str:
    """The text of the last user message (text parts joined), what an answer answers."""
    for message in reversed(body.get("messages") or []):  # type: ignore[call-overload]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    p["text"] for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return ""


def _params(body: dict[str, object], fmt: WireFormat) -> tuple[int, bool, bool] | str:
    """(max_tokens, stream, include_usage), or the message of a 400."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must be a non-empty list"
    raw = body.get("max_tokens", body.get("max_completion_tokens"))
    if raw is None:
        if fmt is WireFormat.ANTHROPIC:
            return "max_tokens: Field required"
        raw = DEFAULT_MAX_TOKENS
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        return "max_tokens: must be a positive integer"
    options = body.get("stream_options")
    usage = isinstance(options, dict) and options.get("include_usage") is True
    return raw, body.get("stream") is True, usage


def _cut(request: web.Request) -> None:
    """Close the connection now; aiohttp's later write fails quietly."""
    if request.transport is not None:
        request.transport.close()


async def _sleep_until(deadline: float, spin_s: float) -> None:
    delay = deadline - time.perf_counter() - spin_s
    if delay > 0:
        await asyncio.sleep(delay)
    while spin_s and time.perf_counter() < deadline:
        await asyncio.sleep(0)


async def _hang(request: web.Request, state: SimState) -> None:
    """Say nothing until the client leaves, the server stops or ``hang_max_s`` passes."""
    end = time.perf_counter() + state.config.hang_max_s
    while (left := end - time.perf_counter()) > 0 and not state.closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        try:
            await asyncio.wait_for(state.closing.wait(), timeout=min(HANG_POLL_S, left))
        except TimeoutError:
            pass
    _cut(request)


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _serve(request, WireFormat.OPENAI)


async def _messages(request: web.Request) -> web.StreamResponse:
    return await _serve(request, WireFormat.ANTHROPIC)


@dataclass(slots=True)
class _Job:
    """One accepted request and the call drawn for it."""

    request: web.Request
    state: SimState
    fmt: WireFormat
    profile: SimProfile
    call: SampledCall
    rng: random.Random
    record: InjectedRecord
    stream: bool
    include_usage: bool
    t0: float
    words: list[str] | None = None  # the answer's words; None: filler words

    @property
    def headers(self) -> dict[str, str]:
        rid = self.record.request_id
        return {"x-sim-request-id": rid, "x-request-id": rid, "request-id": rid}

    async def sleep_until(self, offset_ms: float) -> None:
        await _sleep_until(self.t0 + offset_ms / 1000, self.state.config.spin_ms / 1000)


async def _serve(request: web.Request, fmt: WireFormat) -> web.StreamResponse:
    raw = await request.read()
    t0 = time.perf_counter()  # TTFT counts from here: request fully read
    state = request.app[STATE]
    expected = state.config.require_key
    if expected is not None and _api_key(request) != expected.get_secret_value():
        return _error(fmt, "auth")
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(fmt, "bad_request", "Request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(fmt, "bad_request", "model: Field required")
    profile = state.routes.get((request.match_info["provider"], body["model"]))
    if profile is None or profile.wire_format is not fmt:
        return _error(fmt, "not_found", f"The model `{body['model']}` does not exist here")
    params = _params(body, fmt)
    if isinstance(params, str):
        return _error(fmt, "bad_request", params)
    max_tokens, stream, include_usage = params
    counter, call, rng = state.draw(profile, max_tokens)
    words: list[str] | None = None
    prompt = _prompt_text(body) if profile.accuracy else ""
    if profile.accuracy and is_question(prompt):  # a short, right or wrong, answer
        text = answer_text(
            prompt, endpoint_id=profile.endpoint_id, seed=state.config.seed,
            accuracy=profile.accuracy,
        )  # fmt: skip
        words = text.split()[:max_tokens]
        call = with_words(call, len(text.split()), max_tokens)
    n = call.chunks_sent
    record = InjectedRecord(
        request_id="",
        endpoint_id=profile.endpoint_id,
        counter=counter,
        outcome=call.kind,
        stream=stream,
        injected_ttft_ms=call.ttft_ms if n else None,
        injected_gaps_ms=call.sent_gaps_ms,
        tokens_per_chunk=call.tokens_per_chunk[:n],
        output_tokens=call.output_tokens,
        input_tokens=_input_tokens(body),
        retry_after_s=call.retry_after_s,
        latency_factor=call.latency_factor,
        sim_hour=state.sim_hour(),
        prompt_sha256=hashlib.sha256(_prompt_text(body).encode()).hexdigest(),
    )
    record.request_id = f"sim{state.log.add(record):09d}"
    job = _Job(request, state, fmt, profile, call, rng, record, stream, include_usage, t0, words)
    try:
        return await _replay(job)
    finally:
        record.done = True


async def _replay(job: _Job) -> web.StreamResponse:
    kind, call = job.call.kind, job.call
    if kind is SimOutcome.REFUSE:
        _cut(job.request)
        return web.Response()
    if kind is SimOutcome.HANG:
        await _hang(job.request, job.state)
        return web.Response()
    if kind is SimOutcome.HTTP_500:
        await job.sleep_until(call.error_delay_ms)
        return _error(job.fmt, "server", **job.headers)
    if kind is SimOutcome.HTTP_429:
        await job.sleep_until(call.error_delay_ms)
        retry = call.retry_after_s or 0.0
        headers = {
            "retry-after": str(max(1, math.ceil(retry))),
            "retry-after-ms": f"{retry * 1e3:.0f}",
        }
        return _error(job.fmt, "rate_limit", **job.headers, **headers)
    words = job.words if job.words is not None else filler_words(job.rng, call.output_tokens)
    model, rid, tokens_in = job.profile.model, job.record.request_id, job.record.input_tokens
    created = int(time.time())
    if not job.stream:
        await job.sleep_until(call.stream_ms)
        if kind is SimOutcome.DROP:
            _cut(job.request)
            return web.Response()
        if kind is SimOutcome.ERROR_EVENT:
            return _error(job.fmt, "overloaded", **job.headers)
        if kind is SimOutcome.MALFORMED:
            return web.Response(body=b'{"choices": [', content_type="application/json")
        body = completion_body(
            job.fmt, call, words, model=model, request_id=rid, created=created,
            input_tokens=tokens_in,
        )  # fmt: skip
        return web.json_response(body, headers=job.headers)
    blobs = render_stream(
        job.fmt, call, words, model=model, request_id=rid, created=created,
        input_tokens=tokens_in, include_usage=job.include_usage,
        quirk_rng=job.rng if job.profile.quirks else None,
    )  # fmt: skip
    return await _write_stream(job, blobs)


async def _write_stream(job: _Job, blobs: StreamBytes) -> web.StreamResponse:
    """Headers and head now, chunk i at t0 + ttft + gaps[:i], then the tail or the failure."""
    call, sent = job.call, job.record.sent_ms
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                 **job.headers}
    )  # fmt: skip
    ok = call.kind is SimOutcome.OK
    n = call.chunks_sent
    due_ms = call.ttft_ms
    try:
        await resp.prepare(job.request)
        await resp.write(blobs.head)
        for i in range(n):
            if i:
                due_ms += call.gaps_ms[i - 1]
            await job.sleep_until(due_ms)
            await resp.write(blobs.chunks[i] + blobs.tail if ok and i == n - 1 else blobs.chunks[i])
            sent.append((time.perf_counter() - job.t0) * 1000)
        if ok:
            await resp.write_eof()
            return resp
        # DROP / ERROR_EVENT happen when the next chunk was due.
        await job.sleep_until(due_ms + call.gaps_ms[n - 1] if n else due_ms)
        if call.kind is SimOutcome.DROP:
            _cut(job.request)
            return resp
        if call.kind is SimOutcome.MALFORMED:
            await resp.write(b"data: {\"choices\": [{\"delta\": {\"content\": \"x\"\n\n")
            await resp.write_eof()
            return resp
        await resp.write(blobs.error)
        await resp.write_eof()
    except ConnectionError:  # the client left
        job.record.client_gone = True
    return resp


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    provider = request.match_info["provider"]
    data = [
        {"id": p.model, "object": "model", "created": 0, "owned_by": provider}
        for p in state.profiles.values()
        if p.provider == provider
    ]
    return web.json_response({"object": "list", "data": data})


# --- control routes (/_sim/...) -------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_id: str = Field(description="An endpoint id, or '*' for all.")


class ScaleRequest(_Body):
    """Body of ``POST /_sim/scale``; factor 1 resets. ``endpoint_id`` "*" means all."""

    ttft_factor: float = Field(default=1.0, gt=0)
    gap_factor: float = Field(default=1.0, gt=0)


class FailRequest(_Body):
    """Body of ``POST /_sim/fail``; kind "none" clears. ``endpoint_id`` "*" means all."""

    kind: SimOutcome | str = Field(description="A SimOutcome value, or 'none' to clear.")
    retry_after_s: float | None = Field(default=None, ge=0)


def _control_error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message, "status": status}, status=status)


@web.middleware
async def _loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sim/") and request.remote not in LOOPBACK:
        return _control_error(403, "the control API answers loopback clients only")
    return await handler(request)


B = TypeVar("B", bound=_Body)


async def _targets(request: web.Request, model: type[B]) -> tuple[B, list[str]] | web.Response:
    """The parsed body and the endpoint ids it names, or the error response."""
    state = request.app[STATE]
    try:
        body = model.model_validate_json(await request.read())
    except ValidationError as exc:
        return _control_error(400, str(exc))
    eid = body.endpoint_id
    if eid != "*" and eid not in state.profiles:
        return _control_error(404, f"unknown endpoint {eid!r}")
    return body, (list(state.profiles) if eid == "*" else [eid])


def _overrides(state: SimState) -> dict[str, object]:
    return {
        "scales": {k: {"ttft_factor": t, "gap_factor": g} for k, (t, g) in state.scales.items()},
        "forced": {k: {"kind": f.value, "retry_after_s": r} for k, (f, r) in state.forced.items()},
    }


async def _scale(request: web.Request) -> web.Response:
    state = request.app[STATE]
    parsed = await _targets(request, ScaleRequest)
    if isinstance(parsed, web.Response):
        return parsed
    body, targets = parsed
    for eid in targets:
        if body.ttft_factor == 1.0 and body.gap_factor == 1.0:
            state.scales.pop(eid, None)
        else:
            state.scales[eid] = (body.ttft_factor, body.gap_factor)
    return web.json_response({"ok": True, **_overrides(state)})


async def _fail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    parsed = await _targets(request, FailRequest)
    if isinstance(parsed, web.Response):
        return parsed
    body, targets = parsed
    if body.kind != "none" and body.kind not in set(SimOutcome):
        return _control_error(400, f"kind must be one of {[*SimOutcome, 'none']}")
    for eid in targets:
        if body.kind == "none":
            state.forced.pop(eid, None)
        else:
            state.forced[eid] = (SimOutcome(body.kind), body.retry_after_s)
    return web.json_response({"ok": True, **_overrides(state)})


def _clock(state: SimState) -> dict[str, object]:
    return {"elapsed_s": state.elapsed_s(), "sim_hour": state.sim_hour()}


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {"ok": True, "endpoints": len(state.profiles), "requests": state.log.last_seq,
         **_clock(state)}
    )


async def _profiles(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cfg = state.config
    return web.json_response(
        {
            "profiles": [p.model_dump(mode="json") for p in cfg.profiles],
            "seed": cfg.seed,
            "day_seconds": cfg.day_seconds,
            "start_hour": state.start_hour,
            "latency_scale": cfg.latency_scale,
            **_clock(state),
            **_overrides(state),
        }
    )


async def _injected(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        since = int(request.query.get("since", "0"))
        limit = min(int(request.query.get("limit", "100000")), 100_000)
    except ValueError:
        return _control_error(400, "since and limit must be integers")
    items = state.log.query(request.query.get("endpoint"), since, max(0, limit))
    last = items[-1].seq if items else max(since, 0)
    return web.json_response(
        {"items": [r.to_json() for r in items], "last_seq": last, "total": state.log.last_seq}
    )


# --- application and runners ----------------------------------------------------------------


def create_app(config: SimConfig | None = None) -> web.Application:
    """The simulator application for ``config`` (default: ``default_profiles()``)."""
    app = web.Application(middlewares=[_loopback_only])
    app[STATE] = SimState(config or SimConfig())

    async def _reset_clock(app: web.Application) -> None:
        app[STATE].started = app[STATE].clock()

    async def _closing(app: web.Application) -> None:
        app[STATE].closing.set()

    app.on_startup.append(_reset_clock)
    app.on_shutdown.append(_closing)
    app.router.add_post("/{provider}/v1/chat/completions", _chat_completions)
    app.router.add_post("/{provider}/v1/messages", _messages)
    app.router.add_get("/{provider}/v1/models", _models)
    app.router.add_get("/_sim/health", _health)
    app.router.add_get("/_sim/profiles", _profiles)
    app.router.add_get("/_sim/injected", _injected)
    app.router.add_post("/_sim/scale", _scale)
    app.router.add_post("/_sim/fail", _fail)
    return app


class RunningSimulator:
    """A started simulator: where it listens and what it serves."""

    def __init__(self, url: str, state: SimState) -> None:
        self.url = url
        self.state = state
        self.config = state.config

    def base_url(self, endpoint_id: str) -> str:
        return self.config.profile(endpoint_id).to_endpoint(self.url).base_url

    def catalog(self, *, api_key_env: str | None = None) -> list[Endpoint]:
        return self.config.catalog(self.url, api_key_env=api_key_env)


@asynccontextmanager
async def run_simulator(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator on ``host:port`` (0 = ephemeral) for the body of the block."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield RunningSimulator(f"http://{netloc}:{bound_port}", app[STATE])
    finally:
        await runner.cleanup()


def wait_ready(proc: subprocess.Popen[str], timeout_s: float) -> str | None:
    """Wait for a child's ``READY <address>`` line on its stdout; the address, or ``None``
    when it exited or stayed silent for ``timeout_s``."""
    assert proc.stdout is not None  # noqa: S101
    end = time.monotonic() + timeout_s
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            break
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return line.split()[1]
        if not line:  # exited
            break
    return None


def stop_process(proc: subprocess.Popen[str], *, timeout_s: float) -> None:
    """SIGTERM, up to ``timeout_s`` for the child to finish, then SIGKILL; closes its stdout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


class SimulatorProcess:
    """Run ``python -m collector.simulator`` in a subprocess (its own core) for a ``with`` block.

        with SimulatorProcess(SimConfig(seed=1)) as sim:
            catalog = sim.catalog()
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        host: str = "127.0.0.1",
        loop: str = "precise",
        startup_timeout_s: float = 20.0,
        python: str = sys.executable,
    ) -> None:
        if loop not in ("precise", "select", "epoll"):
            raise ValueError(f"loop must be 'precise', 'select' or 'epoll', got {loop!r}")
        if startup_timeout_s <= 0:
            raise ValueError("startup_timeout_s must be positive")
        self.config = config or SimConfig()
        self.host, self.loop, self.python = host, loop, python
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: Path | None = None
        self._stderr: IO[str] | None = None

    def __enter__(self) -> SimulatorProcess:
        self._tmp = Path(tempfile.mkdtemp(prefix="switchyard-sim-"))
        cfg_file = self._tmp / "config.json"
        data = self.config.model_dump(mode="json", exclude={"require_key"})
        cfg_file.write_text(json.dumps(data))
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        if self.config.require_key is not None:
            env[REQUIRE_KEY_ENV] = self.config.require_key.get_secret_value()
        cmd = [self.python, "-m", "collector.simulator", "--host", self.host, "--port", "0",
               "--profiles", str(cfg_file), "--loop", self.loop]
        self._stderr = (self._tmp / "stderr.log").open("w")
        self._proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, cwd=root
        )
        try:
            self.url = self._wait_ready(self._proc)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, proc: subprocess.Popen[str]) -> str:
        url = wait_ready(proc, self.startup_timeout_s)
        if url is not None:
            return url
        log = (self._tmp / "stderr.log").read_text() if self._tmp else ""
        raise RuntimeError(f"simulator did not start within {self.startup_timeout_s}s: {log}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout_s=5.0)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def base_url(self, endpoint_id: str) -> str:
        return self.config.profile(endpoint_id).to_endpoint(self.url).base_url

    def catalog(self, *, api_key_env: str | None = None) -> list[Endpoint]:
        return self.config.catalog(self.url, api_key_env=api_key_env)
