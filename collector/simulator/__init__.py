"""A provider simulator: a real HTTP server hosting many fake LLM endpoints on loopback.

It speaks the OpenAI and Anthropic streaming wire formats byte for byte, with latency, daily
drift, step changes, rate limits and failures drawn from seeded per-endpoint profiles. The
demo, the tests and the benchmarks run on it.

    async with run_simulator(SimConfig(seed=1)) as sim:
        catalog = sim.catalog()
"""

from __future__ import annotations

from .app import (
    FailRequest,
    InjectedLog,
    InjectedRecord,
    RunningSimulator,
    ScaleRequest,
    SimState,
    SimulatorProcess,
    create_app,
    run_simulator,
)
from .profiles import (
    LLMPERF_STATS,
    LlmperfStats,
    Outage,
    SampledCall,
    SimConfig,
    SimOutcome,
    SimProfile,
    Step,
    Window,
    call_rng,
    default_profiles,
    llmperf_stats,
    profile_from_stats,
    profiles_from_llmperf,
)
from .wire import StreamBytes, completion_body, error_response, render_stream

__all__ = [
    "FailRequest",
    "InjectedLog",
    "InjectedRecord",
    "LLMPERF_STATS",
    "LlmperfStats",
    "Outage",
    "RunningSimulator",
    "SampledCall",
    "ScaleRequest",
    "SimConfig",
    "SimOutcome",
    "SimProfile",
    "SimState",
    "SimulatorProcess",
    "Step",
    "StreamBytes",
    "Window",
    "call_rng",
    "completion_body",
    "create_app",
    "default_profiles",
    "error_response",
    "llmperf_stats",
    "profile_from_stats",
    "profiles_from_llmperf",
    "render_stream",
    "run_simulator",
]
