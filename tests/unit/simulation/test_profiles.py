"""Behaviour profiles and histogram buckets: the distribution math the simulator draws from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canaryflow.simulation.profiles import (
    DEFAULT_BUCKETS,
    BehaviourProfile,
    bucket_means,
    bucket_probabilities,
    geometric_buckets,
)


def test_default_buckets_are_5_percent_apart_from_5ms_to_10s() -> None:
    assert DEFAULT_BUCKETS[0] == 0.005
    assert DEFAULT_BUCKETS[-1] >= 10.0 > DEFAULT_BUCKETS[-2]
    ratios = np.diff(np.log(DEFAULT_BUCKETS))
    assert np.allclose(ratios, math.log(1.05), atol=1e-3)  # 4 significant digits


def test_geometric_buckets_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="0 < start < stop"):
        geometric_buckets(1.0, 0.5, 1.1)
    with pytest.raises(ValueError, match="significant digits"):
        geometric_buckets(1.0, 2.0, 1.0001, digits=2)


def test_lognormal_scale_comes_from_median_and_p99() -> None:
    profile = BehaviourProfile(latency_median=0.1, latency_p99=0.5)
    assert profile.mu == pytest.approx(math.log(0.1))
    # scipy.stats.lognorm(s=sigma, scale=0.1).ppf(0.99) == 0.5 exactly when sigma = ln(5) / z_0.99.
    assert profile.sigma == pytest.approx(math.log(5) / 2.3263478740408408)


def test_bucket_probabilities_put_half_the_mass_below_the_median() -> None:
    bounds = (0.05, 0.1, 0.2, 0.5)
    probs = bucket_probabilities(BehaviourProfile(latency_median=0.1, latency_p99=0.5), bounds)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[:2].sum() == pytest.approx(0.5)
    assert probs[:4].sum() == pytest.approx(0.99, abs=1e-9)  # 0.5 s is the p99


def test_a_tail_spike_moves_its_fraction_past_the_delay() -> None:
    plain = BehaviourProfile(latency_median=0.1, latency_p99=0.2)
    spiked = BehaviourProfile(latency_median=0.1, latency_p99=0.2, tail_fraction=0.1, tail_delay=2.0)
    bounds = (0.5, 2.0, 5.0)
    assert bucket_probabilities(plain, bounds)[0] == pytest.approx(1.0, abs=1e-6)
    p = bucket_probabilities(spiked, bounds)
    assert p[0] == pytest.approx(0.9, abs=1e-6)
    assert p[2] == pytest.approx(0.1, abs=1e-6)  # 2.0 + 0.1 s lands in (2, 5]


def test_bucket_means_reproduce_the_distribution_mean() -> None:
    profile = BehaviourProfile(latency_median=0.1, latency_p99=0.5, tail_fraction=0.05, tail_delay=1.0)
    probs = bucket_probabilities(profile, DEFAULT_BUCKETS)
    means = bucket_means(profile, DEFAULT_BUCKETS)
    expected = math.exp(profile.mu + profile.sigma**2 / 2) + 0.05 * 1.0
    assert float(probs @ means) == pytest.approx(expected, rel=1e-6)
    upper = np.array([*DEFAULT_BUCKETS, np.inf])
    lower = np.array([0.0, *DEFAULT_BUCKETS])
    assert np.all((means >= lower - 1e-12) & (means <= upper + 1e-12))


def test_default_buckets_see_a_5_percent_latency_shift() -> None:
    before = bucket_probabilities(BehaviourProfile(latency_median=0.1, latency_p99=0.5), DEFAULT_BUCKETS)
    after = bucket_probabilities(BehaviourProfile(latency_median=0.105, latency_p99=0.525), DEFAULT_BUCKETS)
    gap = np.max(np.abs(np.cumsum(before) - np.cumsum(after)))
    # The exact CDF gap of a 5 % shift is phi(0) * ln(1.05) / sigma = 2.8 points; buckets lose little.
    assert gap > 0.025


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_median": 0.5, "latency_p99": 0.1}, "latency_median"),
        ({"tail_fraction": 2.0}, "tail_fraction"),
        ({"overdispersion": 1.0}, "overdispersion"),
    ],
)
def test_invalid_profiles_say_what_is_wrong(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BehaviourProfile(**kwargs)


def test_overdispersion_spreads_the_per_step_error_probability() -> None:
    rng = np.random.default_rng(1)
    plain = BehaviourProfile(error_rate=0.1).error_probabilities(rng, 20_000)
    assert np.all(plain == 0.1)
    spread = BehaviourProfile(error_rate=0.1, overdispersion=0.05).error_probabilities(rng, 20_000)
    assert spread.mean() == pytest.approx(0.1, abs=0.002)
    assert spread.var() == pytest.approx(0.05 * 0.1 * 0.9, rel=0.05)
