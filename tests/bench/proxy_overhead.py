"""Proxy overhead: streams through the sidecar (and through LiteLLM's proxy) versus direct.

    python tests/bench/proxy_overhead.py [--concurrency 200] [--streams 800]
                                         [--litellm-python /tmp/litellm-venv/bin/python]

One provider simulator process serves OpenAI-format endpoints with a fixed timing (TTFT and
gaps without jitter), so every stream carries the same injected latency. The same client (the
collector's own ``probe_endpoint``: TTFT from the request being sent to the first answer text,
inter-chunk gaps from read times) sends the same stream schedule three times: directly to the
simulator, through ``switchyard up`` (a separate process, routing every request with the
bandit via a router string), and through LiteLLM's proxy (``litellm --config``, a separate
venv) pointed at the same simulator. Streams arrive open-loop at the rate that keeps about
``--concurrency`` of them in flight. Each pass is warmed up first (connections, caches). The
machine's own noise moves both sides, so the sidecar is measured in ``--rounds`` pairs of a
direct pass followed by a proxied one, and each figure is the median over the pairs; LiteLLM
gets one pair.

Prints progress, then as its LAST line one JSON object: ``added_ttft_p50_ms``,
``added_ttft_p99_ms``, ``added_gap_p50_ms`` (proxied minus direct, at the same quantile; gap =
each stream's median inter-chunk gap), the same three keys prefixed ``litellm_``, the direct
baselines, errors per pass and the concurrency reached. LiteLLM figures are null with
``litellm_reason`` when it cannot be installed or run offline. Targets: added TTFT p50 <= 2 ms,
p99 <= 5 ms, added gap p50 <= 0.2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402

from collector.catalog import Catalog  # noqa: E402
from collector.http import make_session  # noqa: E402
from collector.probe import ProbePrompt, ProbeTimeouts, probe_endpoint  # noqa: E402
from collector.simulator import SimConfig, SimProfile, SimulatorProcess  # noqa: E402
from sidecar_proc import SidecarProcess, free_port  # noqa: E402
from warehouse.models import Endpoint, ProbeResult, WireFormat  # noqa: E402

TTFT_MS = 300.0
GAP_MS = 40.0  # 25 chunks/s per stream: 200 streams are 5,000 chunks/s through the proxy
OUTPUT_TOKENS = 40
ENDPOINTS = 4
DEFAULT_LITELLM_PYTHON = "/tmp/litellm-venv/bin/python"
LITELLM_KEY = "sk-bench-0123456789abcdef0123456789abcdef"
PROMPT = ProbePrompt("bench", [{"role": "user", "content": "Count to forty, one word each."}])
TIMEOUTS = ProbeTimeouts(connect_s=10, ttft_s=30, total_s=60)


def profiles() -> list[SimProfile]:
    return [
        SimProfile(
            endpoint_id=f"steady-{k}@bench{k}",
            wire_format=WireFormat.OPENAI,
            ttft_ms_median=TTFT_MS,
            ttft_sigma=0.0,
            gap_ms_median=GAP_MS,
            gap_sigma=0.0,
            tokens_per_chunk=(1, 1),
            output_tokens=(OUTPUT_TOKENS, OUTPUT_TOKENS),
            price_in_per_mtok=1.0,
            price_out_per_mtok=2.0,
        )
        for k in range(ENDPOINTS)
    ]


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_pass(
    targets: list[Endpoint], api_key: str | None, n: int, concurrency: int
) -> tuple[list[ProbeResult], int]:
    """``n`` streams arriving open-loop to keep ``concurrency`` in flight; round-robin targets."""
    stream_s = (TTFT_MS + GAP_MS * (OUTPUT_TOKENS - 1)) / 1000
    rate = concurrency / stream_s
    in_flight = 0
    peak = 0
    results: list[ProbeResult] = []
    async with make_session(limit=0) as session:

        async def one(i: int) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                results.append(
                    await probe_endpoint(
                        session, targets[i % len(targets)], PROMPT, max_tokens=OUTPUT_TOKENS,
                        api_key=api_key, timeouts=TIMEOUTS,
                    )
                )  # fmt: skip
            finally:
                in_flight -= 1

        # warm-up: a full wave of connections, not measured
        await asyncio.gather(*(one(i) for i in range(min(n, concurrency))))
        results.clear()
        peak = 0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = []
        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return results, peak


def summarise(results: list[ProbeResult]) -> dict[str, float | int | None]:
    ok = [r for r in results if r.outcome.value == "ok"]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    gaps = [r.itl_ms_p50 for r in ok if r.itl_ms_p50 is not None]
    return {
        "ttft_p50_ms": quantile(ttft, 0.5),
        "ttft_p99_ms": quantile(ttft, 0.99),
        "gap_p50_ms": statistics.median(gaps) if gaps else None,
        "errors": len(results) - len(ok),
    }


def added(proxied: dict[str, float | int | None], direct: dict[str, float | int | None],
          key: str) -> float | None:  # fmt: skip
    a, b = proxied.get(key), direct.get(key)
    return None if a is None or b is None else round(float(a) - float(b), 3)


def litellm_config(path: Path, sim: SimulatorProcess) -> None:
    lines = ["model_list:"]
    for ep in sim.catalog():
        lines += [
            "  - model_name: bench",
            "    litellm_params:",
            f"      model: openai/{ep.api_model}",
            f"      api_base: {ep.base_url}",
            "      api_key: sk-none",
        ]
    lines += ["litellm_settings:", "  telemetry: false", "  drop_params: true"]
    lines += ["router_settings:", "  routing_strategy: simple-shuffle"]
    path.write_text("\n".join(lines) + "\n")


class LiteLLMProxy:
    """``litellm --config`` from its own venv, on a free port."""

    def __init__(self, python: str, config: Path, work: Path) -> None:
        self.python, self.config, self.work = python, config, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> LiteLLMProxy:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
        env.update(
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "DISABLE_SCHEMA_UPDATE": "True",
                "LITELLM_MASTER_KEY": LITELLM_KEY,
            }
        )
        litellm_bin = str(Path(self.python).with_name("litellm"))
        self.proc = subprocess.Popen(  # noqa: S603
            [litellm_bin, "--config", str(self.config), "--host", "127.0.0.1",
             "--port", str(self.port), "--num_workers", "1"],
            cwd=self.work, env=env, stdout=(self.work / "litellm.log").open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        async with aiohttp.ClientSession() as s:
            for _ in range(240):
                if self.proc.poll() is not None:
                    break
                try:
                    async with s.get(f"{self.url}/health/liveliness") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
        await self.__aexit__()
        log = (self.work / "litellm.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"litellm proxy did not start: {log}")

    async def __aexit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, object]:
    out: dict[str, object] = {"concurrency": args.concurrency, "streams": args.streams,
                              "gap_ms": GAP_MS, "ttft_ms": TTFT_MS}  # fmt: skip
    load_before = os.getloadavg()[0]
    config = SimConfig(profiles=profiles(), seed=1, day_offset_h=0.0)
    with SimulatorProcess(config) as sim:
        direct_targets = sim.catalog()
        catalog = work / "catalog.toml"
        catalog.write_text(Catalog(endpoints=tuple(direct_targets)).dump_toml())

        async def timed(name: str, run: Callable[[], Awaitable[tuple[list[ProbeResult], int]]]
                        ) -> dict[str, float | int | None]:  # fmt: skip
            start = time.monotonic()
            results, peak = await run()
            summary = summarise(results)
            summary["peak_concurrency"] = peak
            print(f"{name}: {summary} in {time.monotonic() - start:.1f}s", file=sys.stderr)
            return summary

        def direct_pass() -> Awaitable[tuple[list[ProbeResult], int]]:
            return run_pass(direct_targets, None, args.streams, args.concurrency)

        keys = ("ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms")
        rounds: list[dict[str, float | None]] = []
        env = {"ROUTER_COLLECTOR__INTERVAL_S": "10"}
        with SidecarProcess(catalog, work, env=env) as sidecar:
            via = Endpoint(
                id="bench@switchyard", base_url=f"{sidecar.url}/v1", wire_format=WireFormat.OPENAI,
                model_name="router@t:1", price_in_per_mtok=0, price_out_per_mtok=0,
                context_window=100_000,
            )  # fmt: skip
            for n in range(args.rounds):  # direct then proxied, each round under like load
                direct = await timed(f"direct #{n + 1}", direct_pass)
                proxied = await timed(
                    f"switchyard #{n + 1}",
                    lambda: run_pass([via], sidecar.token, args.streams, args.concurrency),
                )
                rounds.append({k: added(proxied, direct, k) for k in keys})
        out.update(
            added_ttft_p50_ms=_median(r["ttft_p50_ms"] for r in rounds),
            added_ttft_p99_ms=_median(r["ttft_p99_ms"] for r in rounds),
            added_gap_p50_ms=_median(r["gap_p50_ms"] for r in rounds),
            rounds=rounds,
            load_avg_1m=[round(load_before, 2), round(os.getloadavg()[0], 2)],
            direct=direct,
            switchyard=proxied,
        )
        if not Path(args.litellm_python).exists():
            out.update(
                _litellm_null(
                    f"no LiteLLM venv at {args.litellm_python}; install with python -m venv "
                    "/tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'"
                )
            )
            return out
        cfg = work / "litellm.yaml"
        litellm_config(cfg, sim)
        try:
            direct = await timed("direct (litellm round)", direct_pass)
            async with LiteLLMProxy(args.litellm_python, cfg, work) as proxy:
                via = Endpoint(
                    id="bench@litellm", base_url=f"{proxy.url}/v1",
                    wire_format=WireFormat.OPENAI, model_name="bench", price_in_per_mtok=0,
                    price_out_per_mtok=0, context_window=100_000,
                )  # fmt: skip
                lite = await timed(
                    "litellm",
                    lambda: run_pass([via], LITELLM_KEY, args.streams, args.concurrency),
                )
        except RuntimeError as exc:
            out.update(_litellm_null(str(exc)[:300]))
            return out
        out.update(
            litellm_added_ttft_p50_ms=added(lite, direct, "ttft_p50_ms"),
            litellm_added_ttft_p99_ms=added(lite, direct, "ttft_p99_ms"),
            litellm_added_gap_p50_ms=added(lite, direct, "gap_p50_ms"),
            litellm=lite,
        )
    return out


def _median(values: object) -> float | None:
    got = [v for v in values if v is not None]  # type: ignore[attr-defined]
    return round(statistics.median(got), 3) if got else None


def _litellm_null(reason: str) -> dict[str, object]:
    return {
        "litellm_added_ttft_p50_ms": None,
        "litellm_added_ttft_p99_ms": None,
        "litellm_added_gap_p50_ms": None,
        "litellm_reason": reason,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--streams", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3, help="direct/proxied pairs (median)")
    parser.add_argument("--litellm-python", default=DEFAULT_LITELLM_PYTHON)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchyard-proxy-bench-") as tmp:
        try:  # the same client loop for every pass; uvloop when installed (less client CPU)
            import uvloop

            result = uvloop.run(measure(args, Path(tmp)))
        except ImportError:
            result = asyncio.run(measure(args, Path(tmp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
