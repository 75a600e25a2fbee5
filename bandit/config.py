"""Configuration of the bandit (plain pydantic; the process settings compose it).

Every default is a named constant with its unit in the name. ``BanditConfig.vw_args`` assembles
the Vowpal Wabbit command line from the fields, so the learning set-up is visible in one place:

>>> BanditConfig(seed=7).vw_args.split()[:4]
['--cb_explore_adf', '--cb_type', 'mtr', '--epsilon']
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_EPSILON = 0.05
DEFAULT_LEARNING_RATE = 1.0
DEFAULT_POWER_T = 0.0
DEFAULT_CLIP_P = 0.0
DEFAULT_BITS = 18
DEFAULT_INTERACTIONS: tuple[str, ...] = ("PM", "LM", "TA", "WX", "WA")
DEFAULT_MAX_PROMPT_FEATURES = 256
DEFAULT_FEEDBACK_WINDOW_S = 3600.0
DEFAULT_PENDING_IN_MEMORY_S = 30.0
DEFAULT_CHECKPOINT_PATH = Path("var/bandit.ckpt")
DEFAULT_CHECKPOINT_INTERVAL_S = 60.0
DEFAULT_ROUTER = "router@q:1|c:4.65e-03|t:2.08e-05|i:2.07e-03"
DEFAULT_MAX_TOKENS = 512
DEFAULT_MAX_FALLBACKS = 3
DEFAULT_MAX_ERROR_RATE = 0.5
DEFAULT_MIN_ERROR_SAMPLES = 5
DEFAULT_FAILURE_TTFT_MS = 10_000.0
DEFAULT_FAILURE_ITL_MS = 200.0
DEFAULT_UNKNOWN_TTFT_MS = 1_000.0
DEFAULT_UNKNOWN_ITL_MS = 50.0
DEFAULT_SEED = 0
DEFAULT_LIVE_REFRESH_S = 0.1


class PastWindowPolicy(StrEnum):
    """What happens to an event whose feedback window closed without feedback."""

    LATENCY_COST_ONLY = "latency_cost_only"  # learn it; quality = the endpoint's mean score
    SKIP = "skip"  # mark it learned without learning from it


class PolicyKind(StrEnum):
    """Which learner routes (see ``bandit.policy.VWPolicy`` and ``bandit.trained``)."""

    VW = "vw"  # one --cb_explore_adf model learns the whole reward, live stats as features
    QUALITY = "quality"  # VW learns each endpoint's quality; latency and price come live


class BanditConfig(BaseModel):
    """How the contextual bandit explores, learns, joins feedback and checkpoints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicyKind = Field(
        default=PolicyKind.VW,
        description="Learner: 'vw' learns the whole reward in one contextual bandit; 'quality' "
        "learns only each endpoint's quality per prompt (what `switchyard train` warm-starts) "
        "and takes latency and price from live stats.",
    )
    epsilon: float = Field(
        default=DEFAULT_EPSILON,
        ge=0,
        le=1,
        description="Exploration: share of decisions spread uniformly over the candidates.",
    )
    squarecb: bool = Field(
        default=False,
        description="Explore with SquareCB (epsilon is then a floor) instead of epsilon-greedy.",
    )
    learning_rate: float = Field(
        default=DEFAULT_LEARNING_RATE, gt=0, description="VW learning rate (-l)."
    )
    power_t: float = Field(
        default=DEFAULT_POWER_T,
        ge=0,
        le=1,
        description="VW learning-rate decay (--power_t); 0 keeps adapting to drift.",
    )
    clip_p: float = Field(
        default=DEFAULT_CLIP_P,
        ge=0,
        le=1,
        description="Learning treats probabilities below this as this (VW --clip_p): importance "
        "weights stay <= 1/clip_p; 0 leaves them unclipped.",
    )
    bits: int = Field(default=DEFAULT_BITS, ge=10, le=28, description="VW hash bits (-b).")
    interactions: tuple[str, ...] = Field(
        default=DEFAULT_INTERACTIONS,
        description="VW quadratic interactions by namespace letters (see bandit.features).",
    )
    extra_vw_args: str = Field(
        default="", description="Further VW arguments appended verbatim (experts only)."
    )
    max_prompt_features: int = Field(
        default=DEFAULT_MAX_PROMPT_FEATURES,
        ge=0,
        le=4096,
        description="Cap on hashed words and bigrams taken from a prompt (head and tail).",
    )
    feedback_window_s: float = Field(
        default=DEFAULT_FEEDBACK_WINDOW_S,
        gt=0,
        description="Seconds after a decision during which its feedback is accepted.",
    )
    pending_in_memory_s: float = Field(
        default=DEFAULT_PENDING_IN_MEMORY_S,
        ge=0,
        description="Seconds a decision waiting for its feedback stays whole in memory; after "
        "that only its id, time and endpoint wait (about 0.3 KB instead of several), and the "
        "decision is read back from the warehouse when it is learned. At least "
        "feedback_window_s keeps every pending decision whole.",
    )
    past_window_policy: PastWindowPolicy = Field(
        default=PastWindowPolicy.LATENCY_COST_ONLY,
        description="Events without feedback when the window closes: latency_cost_only or skip.",
    )
    checkpoint_path: Path = Field(
        default=DEFAULT_CHECKPOINT_PATH, description="File of the model checkpoint."
    )
    checkpoint_interval_s: float = Field(
        default=DEFAULT_CHECKPOINT_INTERVAL_S,
        gt=0,
        description="Seconds between checkpoints (one is also written at shutdown).",
    )
    default_router: str = Field(
        default=DEFAULT_ROUTER,
        description="Router string used when a request names none (see bandit.router_string).",
    )
    default_max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS,
        gt=0,
        description="Output tokens assumed when a request gives no max_tokens.",
    )
    max_fallbacks: int = Field(
        default=DEFAULT_MAX_FALLBACKS, ge=0, description="Fallback endpoints returned per decision."
    )
    live_refresh_s: float = Field(
        default=DEFAULT_LIVE_REFRESH_S,
        ge=0,
        le=60,
        description="While only the live stats change, the router re-reads them at most this "
        "often (seconds): through the proxy every finished call changes them. A catalog "
        "change or a cooldown applies at once; 0 re-reads on every change.",
    )
    max_error_rate: float = Field(
        default=DEFAULT_MAX_ERROR_RATE,
        gt=0,
        le=1,
        description="Endpoints whose live error rate reaches this are excluded.",
    )
    min_error_samples: int = Field(
        default=DEFAULT_MIN_ERROR_SAMPLES,
        ge=1,
        description="Live samples needed before the error rate can exclude an endpoint.",
    )
    failure_ttft_ms: float = Field(
        default=DEFAULT_FAILURE_TTFT_MS,
        ge=0,
        description="TTFT charged to a failed call (at least; a slower failure keeps its own).",
    )
    failure_itl_ms: float = Field(
        default=DEFAULT_FAILURE_ITL_MS, ge=0, description="ITL charged to a failed call."
    )
    unknown_ttft_ms: float = Field(
        default=DEFAULT_UNKNOWN_TTFT_MS,
        ge=0,
        description="TTFT assumed when neither a measurement nor a live stat exists.",
    )
    unknown_itl_ms: float = Field(
        default=DEFAULT_UNKNOWN_ITL_MS,
        ge=0,
        description="ITL assumed when neither a measurement nor a live stat exists.",
    )
    shadow: bool = Field(
        default=False,
        description="Shadow mode: decide and log, but the caller's default endpoint serves.",
    )
    shadow_endpoint: str | None = Field(
        default=None,
        description="Default endpoint serving in shadow mode (a request may override it).",
    )
    seed: int = Field(default=DEFAULT_SEED, description="Seed of sampling and of VW.")

    @field_validator("interactions")
    @classmethod
    def _check_interactions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pair in value:
            if len(pair) < 2 or not pair.isalpha() or not pair.isupper():
                raise ValueError(f"interaction {pair!r} must be two or more namespace letters")
        return value

    @model_validator(mode="after")
    def _check_exploration(self) -> BanditConfig:
        if not self.squarecb and self.epsilon <= 0:
            raise ValueError("epsilon must be > 0 without squarecb: every arm needs a chance")
        return self

    @classmethod
    def stationary_quality(cls, **overrides: object) -> BanditConfig:
        """A profile for routing on quality that does not drift (e.g. per-prompt model choice).

        SquareCB explores where the model is unsure; the learning rate decays (``power_t``
        0.5) so thumbs average out; importance weights are capped at 1/0.3 so one explored
        thumb cannot swing an estimate; only prompt x model interactions. Measured on the
        RouteLLM MMLU replay (``tests/bench/bandit_mmlu.py``): APGR ~0.616 against ~0.57 with
        the drift-oriented defaults, which keep the learning rate constant (``power_t`` 0) so
        that latency changes are followed.
        """
        fields: dict[str, object] = {
            "squarecb": True,
            "epsilon": 0.0,
            "learning_rate": 0.2,
            "power_t": 0.5,
            "clip_p": 0.3,
            "interactions": ("PM", "LM"),
        }
        fields.update(overrides)
        return cls.model_validate(fields)

    @classmethod
    def quality_routing(cls, **overrides: object) -> BanditConfig:
        """A profile for routing on per-prompt quality learned from thumbs: the ``quality``
        policy (``bandit.trained.TrainedPolicy`` from an empty model) with 5% epsilon-greedy
        exploration. Measured on the RouteLLM MMLU replay (``tests/bench/bandit_mmlu.py``,
        one online pass): APGR 0.623 / 0.620 / 0.621 on seeds 1-3, against ~0.616 for
        ``stationary_quality`` (one VW model learning the whole reward)."""
        fields: dict[str, object] = {"policy": PolicyKind.QUALITY, "epsilon": 0.05}
        fields.update(overrides)
        return cls.model_validate(fields)

    @property
    def vw_args(self) -> str:
        """The VW command line (without model input/output options)."""
        parts = ["--cb_explore_adf", "--cb_type", "mtr"]
        if self.squarecb:
            parts.append("--squarecb")
        if self.epsilon > 0:
            parts += ["--epsilon", repr(self.epsilon)]
        parts += ["-l", repr(self.learning_rate), "--power_t", repr(self.power_t)]
        if self.clip_p > 0:
            parts += ["--clip_p", repr(self.clip_p)]
        parts += ["-b", str(self.bits)]
        for pair in self.interactions:
            parts += ["--interactions", pair]
        parts += ["--random_seed", str(self.seed), "--quiet"]
        if self.extra_vw_args:
            parts += self.extra_vw_args.split()
        return " ".join(parts)
