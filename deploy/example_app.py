"""A stand-in application for ``deploy/compose.yaml``: it talks to its Switchyard sidecar.

Every ``EXAMPLE_INTERVAL_S`` seconds it sends one chat completion through the sidecar's
OpenAI-compatible proxy (``model`` is a router string, so Switchyard picks the endpoint), prints
which endpoint served and how long it took, and sends a thumbs up or down for that answer to
``/v1/feedback`` (drawn from ``EXAMPLE_SEED``: this app has no users to ask). It needs only the
standard library, stops after ``EXAMPLE_MAX_CALLS`` calls (0 = never) or on SIGTERM.

    SWITCHYARD_URL=http://127.0.0.1:8080 SWITCHYARD_TOKEN=... python deploy/example_app.py
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from types import FrameType

PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about routing packets.",
    "Explain a hash map to a ten-year-old in three sentences.",
)
ROUTER = "router@q:1|c:0.005|t:0.0001"
EVENT_HEADER = "x-switchyard-event-id"
TIMEOUT_S = 60.0


def post(url: str, token: str, body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    """POST JSON with the bearer token; returns status, headers and body (errors included)."""
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's setting)
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def one_call(base: str, token: str, rng: random.Random) -> str:
    """One routed completion plus its feedback; returns a line for the log."""
    started = time.perf_counter()
    status, headers, body = post(
        f"{base}/v1/chat/completions",
        token,
        {
            "model": ROUTER,
            "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
            "max_tokens": 64,
        },
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status != 200:
        return f"HTTP {status} after {elapsed_ms:.0f} ms: {body[:200].decode(errors='replace')}"
    served = json.loads(body).get("model", "?")
    event_id = {k.lower(): v for k, v in headers.items()}.get(EVENT_HEADER)
    line = f"{served:<32} {elapsed_ms:7.0f} ms"
    if event_id:
        thumbs = "up" if rng.random() < 0.8 else "down"
        fb_status, _, _ = post(
            f"{base}/v1/feedback", token, {"event_id": event_id, "thumbs": thumbs}
        )
        line += f"  feedback {thumbs} -> HTTP {fb_status}"
    return line


def main() -> int:
    base = os.environ.get("SWITCHYARD_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("SWITCHYARD_TOKEN", "")
    interval_s = float(os.environ.get("EXAMPLE_INTERVAL_S", "2"))
    max_calls = int(os.environ.get("EXAMPLE_MAX_CALLS", "0"))
    rng = random.Random(int(os.environ.get("EXAMPLE_SEED", "1")))  # noqa: S311 (not crypto)
    if not token:
        print(
            "example app: set SWITCHYARD_TOKEN (a token with route+feedback scopes)",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    calls = 0
    while not stop.is_set() and (max_calls == 0 or calls < max_calls):
        try:
            print(one_call(base, token, rng), flush=True)
        except (OSError, ValueError) as exc:
            print(f"sidecar not reachable yet: {exc}", flush=True)
        calls += 1
        stop.wait(interval_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
