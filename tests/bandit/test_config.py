"""BanditConfig: validation, the VW command line, documented fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bandit.config import BanditConfig, PastWindowPolicy
from bandit.router_string import parse_router
from bandit.vw import VWModel


def test_every_field_is_described() -> None:
    for name, field in BanditConfig.model_fields.items():
        assert field.description, name


def test_default_vw_args_follow_the_measured_notes() -> None:
    args = BanditConfig(seed=4).vw_args.split()
    assert args[:3] == ["--cb_explore_adf", "--cb_type", "mtr"]
    assert args[args.index("--epsilon") + 1] == "0.05"
    assert args[args.index("--power_t") + 1] == "0.0"
    assert args[args.index("--random_seed") + 1] == "4"
    assert "--quiet" in args and "--clip_p" not in args


def test_stationary_quality_profile_starts_vw() -> None:
    config = BanditConfig.stationary_quality(seed=1, bits=16)
    assert "--squarecb" in config.vw_args and "--clip_p 0.3" in config.vw_args
    assert config.interactions == ("PM", "LM") and config.bits == 16
    VWModel(config.vw_args).close()


def test_default_router_parses() -> None:
    assert parse_router(BanditConfig().default_router).q == 1.0


@pytest.mark.parametrize(
    "bad",
    [{"epsilon": 0.0}, {"epsilon": 1.5}, {"interactions": ("P",)}, {"interactions": ("pm",)},
     {"feedback_window_s": 0}, {"bits": 40}, {"past_window_policy": "maybe"}, {"nope": 1}],
)
def test_invalid_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BanditConfig(**bad)  # type: ignore[arg-type]


def test_squarecb_may_run_without_an_epsilon_floor() -> None:
    config = BanditConfig(squarecb=True, epsilon=0.0, past_window_policy=PastWindowPolicy.SKIP)
    assert "--epsilon" not in config.vw_args


def test_quality_routing_profile_makes_the_quality_policy() -> None:
    from bandit.config import PolicyKind
    from bandit.policy import VWPolicy
    from bandit.trained import TrainedPolicy, make_policy

    config = BanditConfig.quality_routing(seed=2)
    assert config.policy is PolicyKind.QUALITY and config.epsilon == 0.05
    policy = make_policy(config)
    assert isinstance(policy, TrainedPolicy) and policy.quality.config.ngram == 1
    policy.close()
    vw = make_policy(BanditConfig(bits=16))
    assert isinstance(vw, VWPolicy)
    vw.close()
    with pytest.raises(ValueError, match="policy"):
        BanditConfig(policy="magic")  # type: ignore[arg-type]
