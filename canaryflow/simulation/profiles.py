"""How a version behaves: error rate and latency distribution, and the histogram buckets.

A `BehaviourProfile` describes one image: the probability that a request fails (HTTP 500), with
optional overdispersion, and a lognormal latency given by its median and 99th percentile, with an
optional tail spike (a fraction of requests that take an extra fixed delay).

Buckets: `DEFAULT_BUCKETS` are geometric, 5 % apart, from 5 ms to just over 10 s (158 upper bounds
with ``+Inf``). At that spacing a 5 % latency shift moves every quantile by about one bucket, so
``histogram_quantile`` sees it as clearly as the bucket counts do (the bucketed CDFs of two versions
5 % apart differ by several percentage points near the median; a unit test checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_BUCKETS",
    "BehaviourProfile",
    "bucket_means",
    "bucket_probabilities",
    "geometric_buckets",
]

#: The standard normal quantile at 0.99 (scipy.stats.norm.ppf(0.99)).
_Z99 = 2.3263478740408408


def geometric_buckets(start: float, stop: float, factor: float, *, digits: int = 4) -> tuple[float, ...]:
    """Upper bounds ``start, start*factor, ...`` up to the first one at or above `stop`.

    Each bound is rounded to `digits` significant digits, so the ``le`` labels stay readable.
    ``+Inf`` is not included (the exposition adds it).
    """
    if not (start > 0 and stop > start and factor > 1):
        raise ValueError(f"need 0 < start < stop and factor > 1, got {start}, {stop}, {factor}")
    bounds: list[float] = []
    value = start
    while True:
        rounded = float(f"{value:.{digits}g}")
        if bounds and rounded <= bounds[-1]:
            raise ValueError(f"{digits} significant digits cannot separate buckets {factor} apart")
        bounds.append(rounded)
        if value >= stop:
            return tuple(bounds)
        value *= factor


DEFAULT_BUCKETS: tuple[float, ...] = geometric_buckets(0.005, 10.0, 1.05)


@dataclass(frozen=True, slots=True)
class BehaviourProfile:
    """The behaviour of one version (image).

    Parameters
    ----------
    error_rate
        Probability that a request fails with HTTP 500, in [0, 1].
    latency_median, latency_p99
        Median and 99th percentile of the lognormal latency, in seconds (``0 < median < p99``).
    tail_fraction, tail_delay
        A tail spike: this fraction of requests takes `tail_delay` seconds longer.
    overdispersion
        Intra-class correlation of errors within one simulation step, in [0, 1): each pod's error
        probability for a step is drawn from a beta distribution with mean `error_rate` and variance
        ``overdispersion * error_rate * (1 - error_rate)``. 0 gives plain binomial errors.
    """

    error_rate: float = 0.01
    latency_median: float = 0.1
    latency_p99: float = 0.5
    tail_fraction: float = 0.0
    tail_delay: float = 0.0
    overdispersion: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.error_rate <= 1.0:
            problems.append(f"error_rate={self.error_rate} is not in [0, 1]")
        if not 0.0 < self.latency_median < self.latency_p99:
            problems.append(
                f"need 0 < latency_median < latency_p99, got {self.latency_median}, {self.latency_p99}"
            )
        if not 0.0 <= self.tail_fraction <= 1.0 or self.tail_delay < 0.0:
            problems.append(f"tail_fraction={self.tail_fraction} tail_delay={self.tail_delay} out of range")
        if not 0.0 <= self.overdispersion < 1.0:
            problems.append(f"overdispersion={self.overdispersion} is not in [0, 1)")
        if problems:
            raise ValueError("invalid behaviour profile: " + "; ".join(problems))

    @property
    def mu(self) -> float:
        """Location of the lognormal (log of the median)."""
        return math.log(self.latency_median)

    @property
    def sigma(self) -> float:
        """Scale of the lognormal, from the median and the 99th percentile."""
        return (math.log(self.latency_p99) - math.log(self.latency_median)) / _Z99

    def error_probabilities(self, rng: np.random.Generator, size: int) -> npt.NDArray[np.float64]:
        """Per-pod error probabilities for one step (constant without overdispersion)."""
        p = self.error_rate
        if self.overdispersion == 0.0 or p in (0.0, 1.0):
            return np.full(size, p)
        concentration = (1.0 - self.overdispersion) / self.overdispersion
        return rng.beta(p * concentration, (1.0 - p) * concentration, size=size)


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _component_cdf(bound: float, mu: float, sigma: float, shift: float) -> float:
    """P(shift + LogNormal(mu, sigma) <= bound)."""
    if bound <= shift:
        return 0.0
    return _phi((math.log(bound - shift) - mu) / sigma)


def _component_partial_mean(bound: float, mu: float, sigma: float, shift: float) -> float:
    """E[(shift + X) * 1{shift + X <= bound}] for X ~ LogNormal(mu, sigma)."""
    if bound <= shift:
        return 0.0
    z = (math.log(bound - shift) - mu) / sigma
    return shift * _phi(z) + math.exp(mu + sigma * sigma / 2.0) * _phi(z - sigma)


def _mixture(
    profile: BehaviourProfile, bounds: tuple[float, ...], fn: Callable[[float, float, float, float], float]
) -> npt.NDArray[np.float64]:
    """`fn` of the mixture: (1 - tail_fraction) * fn(plain lognormal) + tail_fraction * fn(shifted)."""
    f = profile.tail_fraction
    values = [
        (1.0 - f) * fn(b, profile.mu, profile.sigma, 0.0)
        + f * fn(b, profile.mu, profile.sigma, profile.tail_delay)
        for b in bounds
    ]
    return np.asarray(values, dtype=np.float64)


@lru_cache(maxsize=256)
def bucket_probabilities(profile: BehaviourProfile, bounds: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Probability of each bucket ``(bounds[i-1], bounds[i]]``, plus the ``+Inf`` overflow, summing to 1."""
    cdf = _mixture(profile, bounds, _component_cdf)
    mass = np.clip(np.diff(np.concatenate(([0.0], cdf, [1.0]))), 0.0, None)
    probs: npt.NDArray[np.float64] = np.asarray(mass / mass.sum(), dtype=np.float64)
    probs.setflags(write=False)
    return probs


@lru_cache(maxsize=256)
def bucket_means(profile: BehaviourProfile, bounds: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Mean latency of a request within each bucket (same layout as `bucket_probabilities`).

    The simulator adds ``count * mean`` per bucket to the ``_sum`` series: exact in expectation,
    without drawing every latency.
    """
    cdf = _mixture(profile, bounds, _component_cdf)
    partial = _mixture(profile, bounds, _component_partial_mean)
    total_mean = (1.0 - profile.tail_fraction) * math.exp(profile.mu + profile.sigma**2 / 2.0) + (
        profile.tail_fraction * (profile.tail_delay + math.exp(profile.mu + profile.sigma**2 / 2.0))
    )
    mass = np.diff(np.concatenate(([0.0], cdf, [1.0])))
    part = np.diff(np.concatenate(([0.0], partial, [total_mean])))
    upper = np.concatenate((np.asarray(bounds), [np.inf]))
    lower = np.concatenate(([0.0], np.asarray(bounds)))
    fallback = np.where(np.isfinite(upper), (lower + upper) / 2.0, lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.asarray(
            np.where(mass > 1e-300, part / np.where(mass > 1e-300, mass, 1.0), fallback), float
        )
    means.setflags(write=False)
    return means
