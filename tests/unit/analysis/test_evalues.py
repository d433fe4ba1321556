"""E-value building blocks, pinned against independent numerical integration with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from analysis.evalues import (
    dispersion_factor,
    kearns_saul_variance,
    log_ndtr,
    normal_mixture_log_evalue,
    t_mixture_log_evalue,
    two_sided_normal_mixture_log_evalue,
)


def test_log_ndtr_matches_scipy_into_the_far_tail() -> None:
    for z in (-60.0, -38.0, -31.0, -29.0, -5.0, 0.0, 3.0):
        assert log_ndtr(z) == pytest.approx(float(stats.norm.logcdf(z)), rel=1e-9, abs=1e-12)


def test_kearns_saul_variance_is_the_optimal_sub_gaussian_constant() -> None:
    p = np.array([0.0, 0.01, 0.2, 0.5, 0.6, 0.99, 1.0])
    v = kearns_saul_variance(p)
    assert v[3] == 0.25
    assert v[0] == 0.0
    assert v[-1] == 0.0
    assert np.all(v >= p * (1 - p) - 1e-15)  # never below the variance
    assert v[2] == pytest.approx(float(kearns_saul_variance(np.array([0.8]))[0]))  # symmetric in p
    # The bound E[exp(l (X - p))] <= exp(l^2 v / 2) holds, and is tight somewhere, for p = 0.2.
    lam = np.linspace(-20, 20, 4001)
    mgf = np.log(0.8 * np.exp(-lam * 0.2) + 0.2 * np.exp(lam * 0.8))
    assert np.all(mgf <= lam**2 * v[2] / 2 + 1e-12)
    assert np.max(mgf - lam**2 * v[2] / 2) > -1e-3


@pytest.mark.parametrize(
    ("s", "v", "r"), [(3.0, 4.0, 1.0), (-2.0, 10.0, 2.0), (12.0, 30.0, 0.5), (0.0, 5.0, 1.0)]
)
def test_one_sided_normal_mixture_equals_its_integral(s: float, v: float, r: float) -> None:
    def integrand(theta: float) -> float:
        return (
            math.exp(theta * s - theta**2 * v / 2)
            * 2
            * math.sqrt(r / (2 * math.pi))
            * math.exp(-r * theta**2 / 2)
        )

    up, _ = integrate.quad(integrand, 0, np.inf)
    down, _ = integrate.quad(integrand, -np.inf, 0)
    assert normal_mixture_log_evalue(s, v, precision=r, alternative="greater") == pytest.approx(math.log(up))
    assert normal_mixture_log_evalue(s, v, precision=r, alternative="less") == pytest.approx(math.log(down))
    both = two_sided_normal_mixture_log_evalue(np.array([s]), np.array([v]), precision=r)[0]
    assert float(both) == pytest.approx(math.log((up + down) / 2))


def test_dispersion_factor_is_floored_and_shrunk() -> None:
    assert dispersion_factor(2.0, 10, prior_df=5.0) == 1.0
    assert dispersion_factor(40.0, 10, prior_df=5.0) == pytest.approx(45 / 15)
    assert dispersion_factor(0.0, 0, prior_df=5.0, prior=2.0) == 2.0


def _noncentral_bf(d: np.ndarray, g: float, sign: int) -> float:
    """Bayes factor of the t statistic: noncentral t likelihood ratio mixed over delta (scipy)."""
    n = d.size
    t = float(np.mean(d) / (np.std(d, ddof=1) / math.sqrt(n)))

    def integrand(delta: float) -> float:
        ratio = stats.nct.pdf(t, n - 1, delta * math.sqrt(n)) / stats.t.pdf(t, n - 1)
        return float(ratio * stats.norm.pdf(delta, 0, math.sqrt(g)))

    if sign == 0:
        value, _ = integrate.quad(integrand, -np.inf, np.inf)
        return value
    value, _ = integrate.quad(integrand, 0, np.inf) if sign > 0 else integrate.quad(integrand, -np.inf, 0)
    return 2 * value


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_t_mixture_equals_the_noncentral_t_bayes_factor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = rng.normal(0.3, 1.0, 8)
    for alternative, sign in (("two-sided", 0), ("greater", 1), ("less", -1)):
        expected = _noncentral_bf(d, 1.0, sign)
        got = t_mixture_log_evalue(d, null_mean=0.0, g=1.0, alternative=alternative)  # type: ignore[arg-type]
        assert got == pytest.approx(math.log(expected), abs=2e-4)


def test_t_mixture_is_scale_invariant_and_needs_two_values() -> None:
    d = np.array([0.3, 0.1, 0.4, 0.2, 0.25])
    a = t_mixture_log_evalue(d, null_mean=0.0, g=1.0, alternative="greater")
    b = t_mixture_log_evalue(1000 * d, null_mean=0.0, g=1.0, alternative="greater")
    assert a == pytest.approx(b)
    assert t_mixture_log_evalue(d[:1], null_mean=0.0, g=1.0, alternative="greater") == 0.0
