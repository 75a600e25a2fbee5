"""How each simulated endpoint behaves: latency, drift, failures and prices.

A ``SimProfile`` describes one fake ``model@provider`` endpoint. Its ``sample`` method is pure:
given a ``random.Random``, the simulated hour of day and the seconds since start, it draws one
call (outcome, time to first token, gaps between chunks, tokens per chunk). The HTTP server
replays that draw on the wire; ``switchyard warehouse seed`` can use it without any HTTP.

    >>> import random
    >>> p = SimProfile(endpoint_id="m@p", ttft_ms_median=200, gap_ms_median=20,
    ...                price_in_per_mtok=1, price_out_per_mtok=2)
    >>> call = p.sample(random.Random(1), sim_hour=12.0, elapsed_s=0.0, max_tokens=16)
    >>> call.kind, call.output_tokens <= 16
    (<SimOutcome.OK: 'ok'>, True)

``default_profiles()`` builds eight endpoints from numbers measured in the public LLMPerf
leaderboard runs (embedded below as ``LLMPERF_STATS``); ``profiles_from_llmperf(path)``
recomputes such profiles from the CSV itself.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import random
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from warehouse.models import ENDPOINT_ID_RE, Endpoint, Outcome, WireFormat

from .answers import KINDS

ERROR_DELAY_FRACTION = 0.1  # 429/500 answers come after this fraction of the drawn TTFT


class SimOutcome(StrEnum):
    """What the simulator does with one request."""

    OK = "ok"
    HTTP_429 = "http_429"  # 429 with Retry-After
    HTTP_500 = "http_500"  # 500 before streaming
    HANG = "hang"  # accept the request, never answer
    REFUSE = "refuse"  # close the connection without a response
    DROP = "drop"  # close the connection mid-stream, no terminal event
    ERROR_EVENT = "error_event"  # an error event inside a 200 stream
    MALFORMED = "malformed"  # bytes that are not valid JSON inside a 200 stream

    @property
    def outcome(self) -> Outcome:
        """The outcome a correct collector should record for this behaviour."""
        return _AS_OUTCOME[self]


_AS_OUTCOME = {
    SimOutcome.OK: Outcome.OK,
    SimOutcome.HTTP_429: Outcome.HTTP_429,
    SimOutcome.HTTP_500: Outcome.HTTP_5XX,
    SimOutcome.HANG: Outcome.TIMEOUT,
    SimOutcome.REFUSE: Outcome.CONNECT_ERROR,
    SimOutcome.DROP: Outcome.TRUNCATED,
    SimOutcome.ERROR_EVENT: Outcome.STREAM_ERROR,
    SimOutcome.MALFORMED: Outcome.MALFORMED,
}


class _Row(BaseModel):
    """A small frozen record that also accepts a JSON list such as ``[10, 20, "hang"]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _from_sequence(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            names = list(cls.model_fields)
            if len(value) > len(names):
                raise ValueError(f"expected at most {len(names)} items: {names}")
            return dict(zip(names, value, strict=False))
        return value


class Step(_Row):
    """From ``at_s`` seconds after start, latencies are multiplied by ``factor``."""

    at_s: float = Field(ge=0, description="Seconds after server start.")
    factor: float = Field(gt=0, description="Latency multiplier from then on.")


class Window(_Row):
    """A time window in seconds after server start."""

    start_s: float = Field(ge=0, description="Window start, seconds after server start.")
    end_s: float = Field(gt=0, description="Window end, seconds after server start.")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end_s <= self.start_s:
            raise ValueError(f"window end_s {self.end_s} must be after start_s {self.start_s}")
        return self


class Outage(Window):
    """A window during which every request fails the same way."""

    kind: SimOutcome = Field(default=SimOutcome.REFUSE, description="How requests fail.")

    @field_validator("kind")
    @classmethod
    def _failure(cls, value: SimOutcome) -> SimOutcome:
        if value is SimOutcome.OK:
            raise ValueError("an outage kind must be a failure, not 'ok'")
        return value


@dataclass(frozen=True, slots=True)
class SampledCall:
    """One drawn call: what the simulator will inject. Times in milliseconds.

    ``tokens_per_chunk`` lists every planned content chunk and ``gaps_ms`` the gaps between
    them (one fewer). ``cut_after_chunks`` is set for ``DROP``, ``ERROR_EVENT`` and
    ``MALFORMED``: that many content chunks go out, then the failure happens when the next one
    was due.
    """

    kind: SimOutcome
    ttft_ms: float
    gaps_ms: tuple[float, ...]
    tokens_per_chunk: tuple[int, ...]
    output_tokens: int
    hit_max_tokens: bool
    cut_after_chunks: int | None
    retry_after_s: float | None
    error_delay_ms: float
    latency_factor: float

    @property
    def outcome(self) -> Outcome:
        return self.kind.outcome

    @property
    def chunks_sent(self) -> int:
        """Content chunks that reach the client (before any cut)."""
        if self.kind is SimOutcome.OK:
            return len(self.tokens_per_chunk)
        if self.kind in (SimOutcome.DROP, SimOutcome.ERROR_EVENT, SimOutcome.MALFORMED):
            return self.cut_after_chunks or 0
        return 0

    @property
    def sent_gaps_ms(self) -> tuple[float, ...]:
        """Gaps between the content chunks that reach the client."""
        return self.gaps_ms[: max(0, self.chunks_sent - 1)]

    @property
    def sent_tokens(self) -> int:
        return sum(self.tokens_per_chunk[: self.chunks_sent])

    @property
    def stream_ms(self) -> float:
        """From request to the last planned event (content end, or the cut)."""
        n = self.chunks_sent
        if self.kind is SimOutcome.OK:
            return self.ttft_ms + sum(self.gaps_ms)
        if self.kind in (SimOutcome.DROP, SimOutcome.ERROR_EVENT, SimOutcome.MALFORMED):
            return self.ttft_ms + sum(self.gaps_ms[:n])
        return self.error_delay_ms


def with_words(call: SampledCall, n_words: int, max_tokens: int) -> SampledCall:
    """``call`` re-shaped to carry ``n_words`` words, one per chunk (capped by max_tokens):
    the same TTFT, gaps and failure, the output of a short answer instead of filler."""
    n = max(1, min(n_words, max_tokens))
    gaps = list(call.gaps_ms[: n - 1])
    while len(gaps) < n - 1:
        gaps.append(gaps[-1] if gaps else call.ttft_ms * ERROR_DELAY_FRACTION)
    cut = call.cut_after_chunks
    return dataclasses.replace(
        call,
        gaps_ms=tuple(gaps),
        tokens_per_chunk=(1,) * n,
        output_tokens=n,
        hit_max_tokens=n_words > max_tokens,
        cut_after_chunks=None if cut is None else min(cut, n - 1 if n > 1 else 0),
    )


def call_rng(seed: int, endpoint_id: str, counter: int) -> random.Random:
    """The generator of one call: a stable mix of seed, endpoint and per-endpoint counter."""
    digest = hashlib.blake2b(f"{seed}\x00{endpoint_id}\x00{counter}".encode(), digest_size=8)
    return random.Random(int.from_bytes(digest.digest(), "big"))


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(sigma * rng.gauss(0.0, 1.0)) if sigma > 0 else median


class SimProfile(BaseModel):
    """The behaviour of one simulated endpoint.

    Latency of a call = median x drift(hour of day) x step(seconds since start) x lognormal
    noise. Windows (steps, outages, rate-limit bursts) count seconds since server start and
    repeat every ``window_period_s`` when that is set.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_id: str = Field(description="model@provider.")
    wire_format: WireFormat = Field(default=WireFormat.OPENAI, description="Wire format.")
    ttft_ms_median: float = Field(gt=0, description="Median time to first content chunk.")
    ttft_sigma: float = Field(default=0.25, ge=0, le=4, description="Lognormal shape of TTFT.")
    gap_ms_median: float = Field(gt=0, description="Median gap between content chunks.")
    gap_sigma: float = Field(default=0.2, ge=0, le=4, description="Lognormal shape of gaps.")
    tokens_per_chunk: tuple[int, int] = Field(default=(1, 3), description="Min, max per chunk.")
    output_tokens: tuple[int, int] = Field(
        default=(20, 300), description="Min, max output tokens, capped by max_tokens."
    )
    drift_amplitude: float = Field(
        default=0.0, ge=0, lt=1, description="Daily swing: 0.3 = latencies +-30% over a day."
    )
    drift_peak_hour: float = Field(
        default=15.0, ge=0, lt=24, description="UTC hour of the slowest latency."
    )
    steps: tuple[Step, ...] = Field(default=(), description="Step changes of latency.")
    outages: tuple[Outage, ...] = Field(default=(), description="Windows of total failure.")
    rate_limit_bursts: tuple[Window, ...] = Field(default=(), description="Windows of 429s.")
    window_period_s: float | None = Field(
        default=None, gt=0, description="If set, outages and bursts repeat with this period."
    )
    p_429: float = Field(default=0.0, ge=0, le=1, description="Baseline 429 probability.")
    retry_after_s: float = Field(default=1.0, ge=0, description="Retry-After of baseline 429s.")
    p_500: float = Field(default=0.0, ge=0, le=1, description="Probability of HTTP 500.")
    p_drop: float = Field(default=0.0, ge=0, le=1, description="Probability of a cut stream.")
    p_error_event: float = Field(
        default=0.0, ge=0, le=1, description="Probability of an error event in a 200 stream."
    )
    quirks: bool = Field(
        default=False, description="Emit keep-alive comments and 'data:' without a space."
    )
    price_in_per_mtok: float = Field(ge=0, description="USD per million input tokens.")
    price_out_per_mtok: float = Field(ge=0, description="USD per million output tokens.")
    context_window: int = Field(default=128_000, gt=0, description="Prompt plus output tokens.")
    tags: tuple[str, ...] = Field(default=(), description="Labels copied to the catalog.")
    accuracy: dict[str, float] = Field(
        default_factory=dict,
        description="Probability of a correct answer per kind of prompt (math, code, choice, "
        "general, judge; see collector.simulator.answers). Empty: filler text, as before.",
    )

    @field_validator("accuracy")
    @classmethod
    def _check_accuracy(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, p in value.items():
            if kind not in KINDS:
                raise ValueError(f"accuracy: unknown kind {kind!r}, expected one of {KINDS}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"accuracy[{kind!r}] must be in [0, 1], got {p}")
        return value

    @field_validator("endpoint_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not ENDPOINT_ID_RE.match(value) or "/" in value.rsplit("@", 1)[1]:
            raise ValueError(f"endpoint id {value!r} must look like model@provider")
        return value

    @field_validator("tokens_per_chunk", "output_tokens")
    @classmethod
    def _check_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"range {value} must satisfy 1 <= min <= max")
        return value

    @property
    def model(self) -> str:
        return self.endpoint_id.rsplit("@", 1)[0]

    @property
    def provider(self) -> str:
        return self.endpoint_id.rsplit("@", 1)[1]

    def drift_factor(self, sim_hour: float) -> float:
        """Latency multiplier at a UTC hour: 1 + amplitude at the peak, 1 - amplitude 12 h off."""
        phase = 2.0 * math.pi * (sim_hour - self.drift_peak_hour) / 24.0
        return 1.0 + self.drift_amplitude * math.cos(phase)

    def step_factor(self, elapsed_s: float) -> float:
        """The factor of the last step reached (steps do not compound)."""
        factor = 1.0
        for step in sorted(self.steps, key=lambda s: s.at_s):
            if elapsed_s >= step.at_s:
                factor = step.factor
        return factor

    def _in_window(self, window: Window, elapsed_s: float) -> float | None:
        t = elapsed_s % self.window_period_s if self.window_period_s else elapsed_s
        return window.end_s - t if window.start_s <= t < window.end_s else None

    def outage_at(self, elapsed_s: float) -> Outage | None:
        for outage in self.outages:
            if self._in_window(outage, elapsed_s) is not None:
                return outage
        return None

    def rate_limited_for(self, elapsed_s: float) -> float | None:
        """Seconds left in the current rate-limit burst, or None outside bursts."""
        for burst in self.rate_limit_bursts:
            left = self._in_window(burst, elapsed_s)
            if left is not None:
                return left
        return None

    def sample(
        self,
        rng: random.Random,
        sim_hour: float,
        elapsed_s: float,
        max_tokens: int,
        *,
        ttft_factor: float = 1.0,
        gap_factor: float = 1.0,
        force: SimOutcome | None = None,
        retry_after_s: float | None = None,
    ) -> SampledCall:
        """Draw one call. Pure: the same rng state and arguments give the same call.

        ``force`` overrides the drawn outcome (windows and probabilities); ``retry_after_s``
        overrides the Retry-After of a forced 429. Draws happen in a fixed order whatever the
        outcome, so one failure does not shift the numbers of the next call.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        u_429, u_500, u_drop, u_err, u_cut = (rng.random() for _ in range(5))
        drawn = rng.randint(*self.output_tokens)
        output_tokens = min(drawn, max_tokens)
        chunks: list[int] = []
        left = output_tokens
        while left > 0:
            take = min(left, rng.randint(*self.tokens_per_chunk))
            chunks.append(take)
            left -= take
        factor = self.drift_factor(sim_hour) * self.step_factor(elapsed_s)
        ttft = _lognormal(rng, self.ttft_ms_median * factor * ttft_factor, self.ttft_sigma)
        gap_median = self.gap_ms_median * factor * gap_factor
        gaps = tuple(_lognormal(rng, gap_median, self.gap_sigma) for _ in chunks[1:])

        kind, retry = self._choose(elapsed_s, u_429, u_500, u_drop, u_err, force, retry_after_s)
        cut: int | None = None
        if kind is SimOutcome.DROP:  # at least one chunk when there are two or more
            cut = 1 + int(u_cut * (len(chunks) - 1)) if len(chunks) > 1 else 0
        elif kind in (SimOutcome.ERROR_EVENT, SimOutcome.MALFORMED):
            cut = int(u_cut * len(chunks))
        return SampledCall(
            kind=kind,
            ttft_ms=ttft,
            gaps_ms=gaps,
            tokens_per_chunk=tuple(chunks),
            output_tokens=output_tokens,
            hit_max_tokens=drawn > max_tokens,
            cut_after_chunks=cut,
            retry_after_s=retry,
            error_delay_ms=ttft * ERROR_DELAY_FRACTION,
            latency_factor=factor,
        )

    def _choose(
        self,
        elapsed_s: float,
        u_429: float,
        u_500: float,
        u_drop: float,
        u_err: float,
        force: SimOutcome | None,
        retry_after_s: float | None,
    ) -> tuple[SimOutcome, float | None]:
        if force is not None:
            retry = retry_after_s if retry_after_s is not None else self.retry_after_s
            return force, retry if force is SimOutcome.HTTP_429 else None
        outage = self.outage_at(elapsed_s)
        if outage is not None:
            return outage.kind, self.retry_after_s if outage.kind is SimOutcome.HTTP_429 else None
        burst_left = self.rate_limited_for(elapsed_s)
        if burst_left is not None:
            return SimOutcome.HTTP_429, burst_left
        if u_429 < self.p_429:
            return SimOutcome.HTTP_429, self.retry_after_s
        if u_500 < self.p_500:
            return SimOutcome.HTTP_500, None
        if u_drop < self.p_drop:
            return SimOutcome.DROP, None
        if u_err < self.p_error_event:
            return SimOutcome.ERROR_EVENT, None
        return SimOutcome.OK, None

    def to_endpoint(self, server_url: str, *, api_key_env: str | None = None) -> Endpoint:
        """The catalog entry pointing at a simulator running at ``server_url``."""
        return Endpoint(
            id=self.endpoint_id,
            base_url=f"{server_url.rstrip('/')}/{self.provider}/v1",
            wire_format=self.wire_format,
            api_key_env=api_key_env,
            price_in_per_mtok=self.price_in_per_mtok,
            price_out_per_mtok=self.price_out_per_mtok,
            context_window=self.context_window,
            tags=("simulated", *self.tags),
        )


class SimConfig(BaseModel):
    """Everything one simulator server needs.

    >>> SimConfig(profiles=[SimProfile(endpoint_id="m@p", ttft_ms_median=100, gap_ms_median=10,
    ...     price_in_per_mtok=0, price_out_per_mtok=0)]).catalog("http://127.0.0.1:1")[0].base_url
    'http://127.0.0.1:1/p/v1'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profiles: tuple[SimProfile, ...] = Field(
        default_factory=lambda: tuple(default_profiles()),
        min_length=1,
        description="Simulated endpoints.",
    )
    seed: int = Field(default=0, description="Seed of every random draw.")
    day_seconds: float = Field(
        default=86_400.0, gt=0, description="Real seconds per simulated day (86400 = real time)."
    )
    day_offset_h: float | None = Field(
        default=None, ge=0, lt=24, description="Simulated UTC hour at start; None = real hour."
    )
    latency_scale: float = Field(default=1.0, gt=0, description="Multiplies every latency.")
    require_key: SecretStr | None = Field(
        default=None, description="If set, requests must carry this key (else 401)."
    )
    hang_max_s: float = Field(
        default=300.0, gt=0, description="A hanging request is closed after this many seconds."
    )
    injected_capacity: int = Field(
        default=100_000, gt=0, description="Requests kept in the /_sim/injected ring buffer."
    )
    spin_ms: float = Field(
        default=0.0,
        ge=0,
        le=5,
        description="Busy-yield this long before each deadline for sub-ms precision (costs CPU).",
    )

    @field_validator("profiles")
    @classmethod
    def _unique(cls, value: tuple[SimProfile, ...]) -> tuple[SimProfile, ...]:
        ids = [p.endpoint_id for p in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate endpoint ids: {dupes}")
        return value

    def profile(self, endpoint_id: str) -> SimProfile:
        for p in self.profiles:
            if p.endpoint_id == endpoint_id:
                return p
        raise KeyError(endpoint_id)

    def sim_hour(self, elapsed_s: float, start_hour: float) -> float:
        """The simulated UTC hour ``elapsed_s`` real seconds after a start at ``start_hour``."""
        return (start_hour + elapsed_s * 24.0 / self.day_seconds) % 24.0

    def catalog(self, server_url: str, *, api_key_env: str | None = None) -> list[Endpoint]:
        """Catalog entries for every profile, pointing at a simulator at ``server_url``."""
        return [p.to_endpoint(server_url, api_key_env=api_key_env) for p in self.profiles]


# --- Default profiles, derived from the LLMPerf leaderboard -------------------------------


class LlmperfStats(NamedTuple):
    """Figures of one LLMPerf run (150 requests, 5 concurrent, ~550 in / ~150 out tokens)."""

    run: str  # file stem, e.g. "together_70b"
    ttft_ms_p50: float
    ttft_sigma: float  # ln(TTFT p90 / p50) / z(0.9): lognormal shape
    tpot_ms_p50: float  # time per output token after the first
    tpot_sigma: float  # ln(tpot p90 / p50) / z(0.9), across requests
    tokens_per_chunk: float  # median
    p_429: float  # share of requests answered 429
    p_error: float  # share of other failures (streams that ended early)


Z90 = 1.2816  # standard normal quantile at 0.9

# Derived from /work/shared/data/llmperf-leaderboard/derived_stats.csv (ray-project/
# llmperf-leaderboard, Dec 2023 - Jan 2024, Apache-2.0): the 70B rows, rounded.
# ``llmperf_stats(path)`` recomputes them; a test checks these constants against the file.
LLMPERF_STATS: dict[str, LlmperfStats] = {
    s.run: s
    for s in (
        LlmperfStats("anyscale_13b", 202, 0.22, 6.82, 0.16, 2.48, 0.0, 0.0),
        LlmperfStats("anyscale_70b", 213, 0.32, 13.84, 0.23, 2.60, 0.0, 0.0),
        LlmperfStats("bedrock_70b", 388, 0.18, 43.87, 0.06, 1.01, 0.0, 0.327),
        LlmperfStats("groq_70b", 222, 0.23, 3.74, 0.11, 1.01, 0.0, 0.0),
        LlmperfStats("lepton_70b", 925, 0.06, 24.14, 0.05, 2.90, 0.867, 0.0),
        LlmperfStats("perplexity_70b", 366, 0.40, 30.48, 0.09, 1.99, 0.013, 0.0),
        LlmperfStats("replicate_70b", 1188, 1.83, 85.58, 0.04, 7.53, 0.0, 0.0),
        LlmperfStats("together_70b", 635, 0.11, 11.51, 0.15, 1.06, 0.0, 0.0),
    )
}

# Daily swing (README "Reported time-of-day variation"): large first-party APIs 20-40 %
# (amplitude 0.2 gives 1.2 / 0.8 = 1.5x peak to trough); small hosts 2-6x (0.5 gives 3x,
# 0.6 gives 4x). Slowest in the US morning, about 15:00 UTC.
LARGE_API_DRIFT = 0.2
SMALL_HOST_DRIFT = 0.5
US_MORNING_UTC = 15.0


def profile_from_stats(endpoint_id: str, stats: LlmperfStats, **overrides: object) -> SimProfile:
    """A profile with the latency shape and failure rates of one LLMPerf run.

    LLMPerf records no per-chunk gaps, so the gap median is time per token x tokens per chunk
    and the gap spread is the across-request spread of time per token, floored at 0.1.
    """
    tpc = max(1.0, stats.tokens_per_chunk)
    lo = max(1, round(tpc * 0.6))
    fields: dict[str, object] = {
        "endpoint_id": endpoint_id,
        "ttft_ms_median": stats.ttft_ms_p50,
        "ttft_sigma": max(0.05, stats.ttft_sigma),
        "gap_ms_median": stats.tpot_ms_p50 * tpc,
        "gap_sigma": max(0.1, stats.tpot_sigma),
        "tokens_per_chunk": (lo, max(lo, round(tpc * 1.4))),
        "p_429": stats.p_429,
        "p_drop": stats.p_error,
        "price_in_per_mtok": 0.0,
        "price_out_per_mtok": 0.0,
    }
    fields.update(overrides)
    return SimProfile.model_validate(fields)


def llmperf_stats(path: str | Path) -> list[LlmperfStats]:
    """Recompute ``LlmperfStats`` from ``derived_stats.csv`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "derived_stats.csv"
    out = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            started = float(row["started"])
            codes = row["error_codes"].strip("{} ")
            n_429 = n_other = 0.0
            for part in filter(None, codes.split(",")):
                code, count = (float(x) for x in part.split(":"))
                if code == 429:
                    n_429 += count
                else:
                    n_other += count
            out.append(
                LlmperfStats(
                    run=row["file"],
                    ttft_ms_p50=float(row["ttft_p50"]) * 1000,
                    ttft_sigma=math.log(float(row["ttft_p90"]) / float(row["ttft_p50"])) / Z90,
                    tpot_ms_p50=float(row["tpot_ms_p50"]),
                    tpot_sigma=math.log(float(row["tpot_ms_p90"]) / float(row["tpot_ms_p50"]))
                    / Z90,
                    tokens_per_chunk=float(row["tokens_per_chunk_median"]),
                    p_429=n_429 / started,
                    p_error=n_other / started,
                )
            )
    return out


def profiles_from_llmperf(path: str | Path) -> list[SimProfile]:
    """One OpenAI-format profile per LLMPerf run, named ``llama-2-<size>@<host>``.

    Prices are unknown in that data and set to zero; the context window is Llama 2's 4096.
    """
    profiles = []
    for stats in llmperf_stats(path):
        host, size = stats.run.rsplit("_", 1)
        profiles.append(
            profile_from_stats(
                f"llama-2-{size}@{host}", stats, context_window=4096, tags=("llmperf",)
            )
        )
    return profiles


#: Accuracy per kind of question of the default endpoints (``collector.simulator.answers``),
#: so ``switchyard train`` has something to learn on the embedded default. Rounded from public
#: benchmark figures of these models (GSM8K-like math, MMLU-like choice, HumanEval-like code);
#: an illustration, not a measurement. Every host of Llama-2-70B shares one line.
DEFAULT_ACCURACY: dict[str, dict[str, float]] = {
    "gpt-4-turbo": {"math": 0.92, "choice": 0.86, "code": 0.87, "general": 0.85, "judge": 0.95},
    "gpt-4o-mini": {"math": 0.85, "choice": 0.82, "code": 0.87, "general": 0.78, "judge": 0.9},
    "claude-3-5-sonnet": {"math": 0.96, "choice": 0.88, "code": 0.92, "general": 0.87,
                          "judge": 0.95},
    "llama-2-70b": {"math": 0.57, "choice": 0.69, "code": 0.30, "general": 0.65, "judge": 0.7},
}


def default_profiles() -> list[SimProfile]:
    """Eight endpoints over six providers and both wire formats (see ``LLMPERF_STATS``).

    The first-party names borrow the latency shape of the LLMPerf run noted beside them;
    prices are public list prices. Failure rates beyond the data are noted as assumptions.
    Questions are answered with ``DEFAULT_ACCURACY``.
    """
    return [p.model_copy(update={"accuracy": dict(DEFAULT_ACCURACY[p.endpoint_id.split("@")[0]])})
            for p in _default_latency_profiles()]


def _default_latency_profiles() -> list[SimProfile]:
    s = LLMPERF_STATS
    big, small = ("large",), ("small",)
    return [
        # Big and expensive: ~33 tok/s like GPT-4 in the README; perplexity's TTFT spread.
        profile_from_stats(
            "gpt-4-turbo@openai", s["perplexity_70b"], drift_amplitude=LARGE_API_DRIFT,
            drift_peak_hour=US_MORNING_UTC, price_in_per_mtok=10.0, price_out_per_mtok=30.0,
            tags=big,
        ),
        # Small and cheap, fast.
        profile_from_stats(
            "gpt-4o-mini@openai", s["anyscale_13b"], drift_amplitude=LARGE_API_DRIFT,
            drift_peak_hour=US_MORNING_UTC, price_in_per_mtok=0.15, price_out_per_mtok=0.6,
            tags=small,
        ),
        # Anthropic wire format; 1 % overloaded_error events is an assumption, not data.
        profile_from_stats(
            "claude-3-5-sonnet@anthropic", s["anyscale_70b"], wire_format=WireFormat.ANTHROPIC,
            drift_amplitude=0.25, drift_peak_hour=US_MORNING_UTC, p_error_event=0.01,
            price_in_per_mtok=3.0, price_out_per_mtok=15.0, context_window=200_000, tags=big,
        ),
        # Very fast small host with a large daily swing.
        profile_from_stats(
            "llama-2-70b@groq", s["groq_70b"], drift_amplitude=SMALL_HOST_DRIFT,
            drift_peak_hour=16.0, price_in_per_mtok=0.7, price_out_per_mtok=0.8,
            context_window=4096, tags=small,
        ),
        # Keep-alive comments and 'data:' without a space on the wire.
        profile_from_stats(
            "llama-2-70b@together", s["together_70b"], drift_amplitude=SMALL_HOST_DRIFT,
            drift_peak_hour=17.0, quirks=True, price_in_per_mtok=0.9, price_out_per_mtok=0.9,
            context_window=4096, tags=small,
        ),
        # High TTFT tail (p90 ~10x the median) and slow decoding.
        profile_from_stats(
            "llama-2-70b@replicate", s["replicate_70b"], drift_amplitude=0.6,
            drift_peak_hour=14.0, price_in_per_mtok=0.65, price_out_per_mtok=2.75,
            context_window=4096, tags=small,
        ),
        # Observed 130/150 requests 429 at 5 concurrent; modelled as 2-minute bursts every
        # 10 minutes plus a 5 % baseline, so the host stays usable between bursts.
        profile_from_stats(
            "llama-2-70b@lepton", s["lepton_70b"], p_429=0.05, retry_after_s=2.0,
            rate_limit_bursts=[(300, 420)], window_period_s=600, drift_amplitude=SMALL_HOST_DRIFT,
            drift_peak_hour=15.0, quirks=True, price_in_per_mtok=0.8, price_out_per_mtok=0.8,
            context_window=4096, tags=small,
        ),
        # Observed 49/150 streams ending early; we use 8 % plus 2 % HTTP 500 (assumption), an
        # hourly minute of 500s and 20 s of hangs, and a step to 0.6x latency after 30 minutes.
        profile_from_stats(
            "llama-2-70b@bedrock", s["bedrock_70b"], p_drop=0.08, p_500=0.02,
            outages=[(3000, 3060, "http_500"), (3300, 3320, "hang")], window_period_s=3600,
            steps=[(1800, 0.6)], drift_amplitude=SMALL_HOST_DRIFT, drift_peak_hour=15.0,
            price_in_per_mtok=1.95, price_out_per_mtok=2.56, context_window=4096, tags=small,
        ),
    ]
