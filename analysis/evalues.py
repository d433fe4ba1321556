r"""E-value building blocks: normal mixtures for counts, a scale-invariant mixture for samples.

Everything here is a test martingale (or an upper bound of one) under its null hypothesis, so by
Ville's inequality the probability that it *ever* reaches :math:`1/\alpha` is at most
:math:`\alpha`, however often it is looked at. The judge compares these e-values with its
thresholds after every interval.

Notes
-----
**Counts.** Canary and baseline are observed over the same interval :math:`i`; the canary saw
:math:`x_i` events out of :math:`n_i` requests, the baseline :math:`y_i` out of :math:`m_i`.
Conditional on the pooled count :math:`k_i = x_i + y_i` and under the Poisson model with rate
ratio :math:`\rho` (canary over baseline), :math:`x_i \mid k_i \sim \mathrm{Bin}(k_i, p_i(\rho))`
with :math:`p_i(\rho) = n_i\rho / (n_i\rho + m_i)` [1]_. Conditioning on :math:`k_i` removes
everything canary and baseline share within the interval (traffic level, incidents). With
:math:`S_t = \sum_{i\le t} (x_i - k_i p_i(\rho_0))` and the variance proxy
:math:`V_t = \sum_{i \le t} k_i\,\sigma^2_{KS}(p_i(\rho_0))\,f_i`, where
:math:`\sigma^2_{KS}(p) = (1-2p) / (2\log((1-p)/p))` is the optimal sub-Gaussian constant of a
Bernoulli variable [2]_ and :math:`f_i = (N_i - k_i)/(N_i - 1)` the finite-population factor of
exchangeable requests, :math:`\exp(\theta S_t - \theta^2 V_t / 2)` is a supermartingale for every
:math:`\theta > 0` when :math:`\rho \le \rho_0`. Mixing :math:`\theta` over a half-normal
prior with precision :math:`r` gives the closed form [3]_

.. math::

    M^+_t = 2\sqrt{\frac{r}{V_t + r}}\,
            \exp\!\left(\frac{S_t^2}{2(V_t + r)}\right)\Phi\!\left(\frac{S_t}{\sqrt{V_t + r}}\right).

**Overdispersion.** When per-interval rates vary more than a binomial allows, :math:`S_t` has a
larger variance than :math:`V_t`. Following quasi-likelihood practice [4]_, the count tests
divide each interval's contribution to :math:`S_t` and :math:`V_t` by a dispersion factor
:math:`\hat\phi_i \ge 1` estimated from the Pearson-type residuals of the per-interval fit
(`analysis.ratio`; `dispersion_factor` is the global moment estimator). For one common factor,
Jensen's inequality gives :math:`M^+(S/\hat\phi, V/\hat\phi) \le \max(1, M^+(S, V))`, so
tempering never makes the test anti-conservative when the binomial model holds; under
overdispersion it restores the scale.

**Samples.** For per-interval log-ratios :math:`d_1, \dots, d_n` modelled as
:math:`N(\mu, \sigma^2)` with unknown :math:`\sigma`, the Bayes factor of the scale-invariant
statistic with a normal prior of variance :math:`g` on :math:`\delta = \mu/\sigma` and the
right-Haar prior on :math:`\sigma` is an e-process for :math:`\delta = 0` [5]_, [6]_. For the
two-sided prior it has the closed form

.. math::

    B_n = (1 + ng)^{-1/2}\left(\frac{1 + t^2/\nu}{1 + t^2/(\nu(1 + ng))}\right)^{(\nu+1)/2},
    \qquad \nu = n - 1,

and the one-sided (half-normal) version is computed by one numerical integral
(`t_mixture_log_evalue`).

References
----------
.. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
       NeurIPS 2022.
.. [2] M. Kearns and L. Saul, "Large Deviation Methods for Approximate Probabilistic
       Inference", UAI 1998; D. Berend and A. Kontorovich, "On the concentration of the missing
       mass", Electron. Commun. Probab. 18 (2013).
.. [3] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
.. [4] P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989, §4.5.
.. [5] T. L. Lai, "On Confidence Sequences", Ann. Statist. 4(2), 1976.
.. [6] M. F. Pérez-Ortiz, T. Lardy, R. de Heide and P. Grünwald, "E-statistics, group
       invariance and anytime-valid testing", Ann. Statist. 52(4), 2024.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_LOG_EVALUE",
    "Alternative",
    "bounded_exp",
    "dispersion_factor",
    "kearns_saul_variance",
    "log_mean_exp",
    "log_ndtr",
    "normal_mixture_log_evalue",
    "sum_window_log_evalue",
    "t_mixture_log_evalue",
    "t_mixture_log_evalue_of_moments",
    "two_sided_normal_mixture_log_evalue",
    "two_sided_t_log_bf",
]

FloatArray = npt.NDArray[np.float64]

#: ``greater``: the alternative is a positive drift (the canary is worse for "increase");
#: ``less``: a negative drift.
Alternative = Literal["greater", "less"]

_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

#: The largest log e-value reported as a number: ``exp(709.8)`` is the largest double, so an
#: e-value is reported as at most ``exp(700)`` (about 1e304; every threshold is far below).
MAX_LOG_EVALUE = 700.0


def bounded_exp(log_evalue: float) -> float:
    """``exp(log_evalue)``, at most ``exp(MAX_LOG_EVALUE)`` (never an overflow to ``inf``)."""
    return math.exp(min(log_evalue, MAX_LOG_EVALUE))


def log_mean_exp(values: FloatArray | list[float]) -> float:
    """``log(mean(exp(values)))`` without overflow: the log of the average of several e-values
    (an average of e-values is an e-value). ``0`` (e-value 1) for no values."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return 0.0
    top = float(np.max(array))
    if not math.isfinite(top):
        return top
    return top + math.log(float(np.mean(np.exp(array - top))))


def sum_window_log_evalue(rows: list[FloatArray]) -> float:
    """The log of the sum over windows (columns) of the average e-value over units (the rows of
    every array in `rows`), without overflow; ``-inf`` without units or windows."""
    array = np.vstack(rows) if rows else np.zeros((0, 0))
    if array.size == 0:
        return -math.inf
    top = float(np.max(array))
    if not math.isfinite(top):
        return top
    with np.errstate(divide="ignore"):
        return top + math.log(float(np.sum(np.mean(np.exp(array - top), axis=0))))


def log_ndtr(z: float) -> float:
    """``log(Phi(z))`` for the standard normal CDF, accurate in the far lower tail."""
    if z > -30.0:
        return math.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    # Asymptotic series: Phi(z) ~ phi(z)/|z| * (1 - 1/z^2 + 3/z^4).
    z2 = z * z
    return -0.5 * z2 - _HALF_LOG_2PI - math.log(-z) + math.log1p(-1.0 / z2 + 3.0 / (z2 * z2))


def kearns_saul_variance(p: FloatArray) -> FloatArray:
    r"""The optimal sub-Gaussian variance proxy of a Bernoulli(``p``) variable.

    Parameters
    ----------
    p : array_like
        Success probabilities in [0, 1].

    Returns
    -------
    ndarray
        :math:`\sigma^2(p) = (1 - 2p) / (2 \log((1-p)/p))`, with :math:`\sigma^2(1/2) = 1/4` and
        :math:`\sigma^2(0) = \sigma^2(1) = 0`.

    Notes
    -----
    :math:`E[e^{\lambda(X - p)}] \le e^{\lambda^2\sigma^2(p)/2}` for all real :math:`\lambda`, and
    no smaller constant works; :math:`\sigma^2(p) \ge p(1-p)` [1]_.

    References
    ----------
    .. [1] D. Berend and A. Kontorovich, "On the concentration of the missing mass",
           Electron. Commun. Probab. 18 (2013), Theorem 2.1.

    Examples
    --------
    >>> float(kearns_saul_variance(np.array([0.5]))[0])
    0.25
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    out = np.zeros_like(p)
    inner = (p > 1e-300) & (p < 1.0 - 1e-16)
    near_half = inner & (np.abs(p - 0.5) < 1e-6)
    general = inner & ~near_half
    q = p[general]
    out[general] = (1.0 - 2.0 * q) / (2.0 * np.log((1.0 - q) / q))
    out[near_half] = 0.25
    return out


def normal_mixture_log_evalue(s: float, v: float, *, precision: float, alternative: Alternative) -> float:
    r"""Log e-value of the one-sided normal mixture for a sub-Gaussian sum.

    Parameters
    ----------
    s : float
        The centred sum :math:`S_t` (observed minus its null expectation).
    v : float
        Its variance proxy :math:`V_t \ge 0`.
    precision : float
        The prior precision :math:`r = 1/\tau^2` of the half-normal mixing distribution of the
        drift :math:`\theta` (in the units of :math:`S/V`).
    alternative : {'greater', 'less'}
        ``greater`` mixes :math:`\theta > 0`, ``less`` mixes :math:`\theta < 0`.

    Returns
    -------
    float
        :math:`\log M_t` with
        :math:`M_t = 2\sqrt{r/(V+r)}\exp(S^2/(2(V+r)))\Phi(\pm S/\sqrt{V+r})`.

    Notes
    -----
    Integrating :math:`\exp(\theta S - \theta^2 V/2)` against the half-normal density
    :math:`2\sqrt{r/(2\pi)}e^{-r\theta^2/2}` over :math:`\theta > 0` gives the formula above [1]_.
    It equals 1 at :math:`S = V = 0`.

    References
    ----------
    .. [1] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
           nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021, Proposition 6.

    Examples
    --------
    >>> round(normal_mixture_log_evalue(0.0, 0.0, precision=1.0, alternative="greater"), 12)
    0.0
    """
    signed = s if alternative == "greater" else -s
    total = v + precision
    return (
        _LOG2
        + 0.5 * math.log(precision / total)
        + signed * signed / (2.0 * total)
        + log_ndtr(signed / math.sqrt(total))
    )


def two_sided_normal_mixture_log_evalue(s: FloatArray, v: FloatArray, *, precision: float) -> FloatArray:
    r"""Log e-value of the two-sided normal mixture (Robbins), vectorised; used for intervals.

    Notes
    -----
    :math:`\log M_t = \tfrac12\log(r/(V+r)) + S^2/(2(V+r))` [1]_. The set of null values whose
    mixture stays below :math:`1/\alpha` is a :math:`(1-\alpha)` confidence sequence.

    References
    ----------
    .. [1] H. Robbins, "Statistical methods related to the law of the iterated logarithm",
           Ann. Math. Statist. 41(5), 1970.
    """
    total = v + precision
    result: FloatArray = 0.5 * np.log(precision / total) + s * s / (2.0 * total)
    return result


def dispersion_factor(residuals_squared: float, df: int, *, prior_df: float, prior: float = 1.0) -> float:
    r"""The overdispersion factor :math:`\hat\phi \ge 1` from Pearson residuals.

    Parameters
    ----------
    residuals_squared : float
        Pearson's :math:`X^2 = \sum_i (x_i - \hat\mu_i)^2 / \hat v_i`.
    df : int
        Its degrees of freedom (intervals with information minus fitted parameters).
    prior_df : float
        Pseudo degrees of freedom :math:`\nu_0` at the prior guess (shrinks early, noisy estimates).
    prior : float, default 1
        The prior guess :math:`\phi_0 \ge 1`.

    Returns
    -------
    float
        :math:`\max(1, (X^2 + \nu_0\phi_0) / (\mathrm{df} + \nu_0))`; :math:`\phi_0` when
        ``df <= 0``.

    Notes
    -----
    The moment estimator :math:`X^2/\mathrm{df}` of the quasi-likelihood dispersion [1]_,
    shrunk towards 1 with :math:`\nu_0` pseudo degrees of freedom and floored at 1.

    References
    ----------
    .. [1] P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989, §4.5.2.
    """
    if df <= 0:
        return max(1.0, prior)
    return max(1.0, (residuals_squared + prior_df * prior) / (df + prior_df))


def two_sided_t_log_bf(n: int, t: FloatArray | float, g: float) -> FloatArray:
    r"""Log of the two-sided scale-invariant Bayes factor :math:`B_n` at t statistic(s) `t`.

    :math:`\log B_n = -\tfrac12\log(1 + ng) + \tfrac{\nu+1}{2}\log\frac{1 + t^2/\nu}{1 + t^2/(\nu(1+ng))}`,
    :math:`\nu = n - 1` (see the module notes); an infinite `t` gives the limit
    :math:`\tfrac{\nu}{2}\log(1 + ng)`. Vectorised over `t`; needs ``n >= 2``.
    """
    nu = n - 1
    ng = 1.0 + n * g
    t2 = np.square(np.asarray(t, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        finite = -0.5 * math.log(ng) + 0.5 * (nu + 1) * np.log((1.0 + t2 / nu) / (1.0 + t2 / (nu * ng)))
    result: FloatArray = np.where(np.isinf(t2), 0.5 * nu * math.log(ng), finite)
    return result


def _log_ndtr_array(z: FloatArray) -> FloatArray:
    return np.array([log_ndtr(float(value)) for value in z], dtype=np.float64)


def _one_sided_t_log_bf(n: int, a: float, g: float) -> float:
    """Half-normal prior on delta > 0; ``a = sum(d) / ||d||`` in [-sqrt(n), sqrt(n)]."""
    h = n + 1.0 / g
    c = max(1.0 - a * a / h, 1e-12)
    b = a / math.sqrt(h)
    lo = 0.5 * math.log(n) - 10.0 / math.sqrt(2.0 * n) - 1.5
    hi = 0.5 * math.log(n / c) + 10.0 / math.sqrt(2.0 * n) + 1.5
    u = np.linspace(lo, hi, 600)
    r = np.exp(u)
    log_integrand = n * u - 0.5 * c * r * r + _log_ndtr_array(b * r)
    top = float(np.max(log_integrand))
    scaled = np.exp(log_integrand - top)
    area = float(np.sum(0.5 * (scaled[1:] + scaled[:-1]) * np.diff(u)))
    log_numerator = top + math.log(area)
    log_denominator = (0.5 * n - 1.0) * _LOG2 + math.lgamma(0.5 * n)
    return _LOG2 - 0.5 * math.log(g * h) + log_numerator - log_denominator


def t_mixture_log_evalue(
    values: FloatArray, *, null_mean: float, g: float, alternative: Alternative | Literal["two-sided"]
) -> float:
    r"""Log e-value of the scale-invariant (right-Haar) normal mixture for a mean.

    Parameters
    ----------
    values : array_like
        Observations :math:`d_1, \dots, d_n`, modelled as i.i.d. :math:`N(\mu, \sigma^2)`.
    null_mean : float
        :math:`\mu_0`; the null is :math:`\mu = \mu_0` (and, one-sided, the half-line away from
        the alternative).
    g : float
        Prior variance of the standardized effect :math:`\delta = (\mu - \mu_0)/\sigma`.
    alternative : {'greater', 'less', 'two-sided'}
        Half-normal prior on :math:`\delta > 0`, on :math:`\delta < 0`, or the normal prior.

    Returns
    -------
    float
        The log Bayes factor of the maximal invariant; 0 with fewer than two observations.

    Notes
    -----
    The likelihood ratio of the scale-invariant statistic :math:`d/\lVert d \rVert` at effect
    :math:`\delta` is
    :math:`e^{-n\delta^2/2}\int_0^\infty r^{n-1}e^{-r^2/2 + r\delta a}\,dr /
    \int_0^\infty r^{n-1}e^{-r^2/2}\,dr` with :math:`a = \sum_i d_i / \lVert d\rVert`. Mixing
    over :math:`\delta` is Gaussian and leaves one integral over :math:`r`, computed on a log grid.
    The two-sided case has the closed form of Gönen et al. [1]_ (Rouder et al. [2]_ with fixed
    :math:`g`). Being a Bayes factor for a group-invariant problem with the right-Haar prior, it
    is an e-process under the null [3]_.

    References
    ----------
    .. [1] M. Gönen, W. O. Johnson, Y. Lu and P. H. Westfall, "The Bayesian Two-Sample t Test",
           Amer. Statist. 59(3), 2005.
    .. [2] J. N. Rouder, P. L. Speckman, D. Sun, R. D. Morey and G. Iverson, "Bayesian t tests
           for accepting and rejecting the null hypothesis", Psychon. Bull. Rev. 16(2), 2009.
    .. [3] M. F. Pérez-Ortiz, T. Lardy, R. de Heide and P. Grünwald, "E-statistics, group
           invariance and anytime-valid testing", Ann. Statist. 52(4), 2024.

    Examples
    --------
    The two one-sided Bayes factors average to the two-sided one:

    >>> d = np.array([0.3, 0.1, 0.4, 0.2, 0.25])
    >>> up = math.exp(t_mixture_log_evalue(d, null_mean=0.0, g=1.0, alternative="greater"))
    >>> down = math.exp(t_mixture_log_evalue(d, null_mean=0.0, g=1.0, alternative="less"))
    >>> both = math.exp(t_mixture_log_evalue(d, null_mean=0.0, g=1.0, alternative="two-sided"))
    >>> bool(abs((up + down) / 2 - both) < 1e-6 * both)
    True
    """
    d = np.asarray(values, dtype=np.float64)
    n = int(d.size)
    if n < 2:
        return 0.0
    mean = float(np.mean(d))
    squares = float(np.sum((d - mean) ** 2))
    return t_mixture_log_evalue_of_moments(
        n, mean, squares, null_mean=null_mean, g=g, alternative=alternative
    )


def t_mixture_log_evalue_of_moments(
    n: int,
    mean: float,
    squares: float,
    *,
    null_mean: float,
    g: float,
    alternative: Alternative | Literal["two-sided"],
) -> float:
    r"""`t_mixture_log_evalue` from the observations' count `n`, `mean` and sum of squared
    deviations from the mean `squares` (what a running Welford update keeps): the Bayes factor
    depends on the data only through them, since :math:`\sum_i (d_i - \mu_0) = n(\bar d - \mu_0)`
    and :math:`\lVert d - \mu_0\rVert^2 = \sum_i (d_i - \bar d)^2 + n(\bar d - \mu_0)^2`."""
    if n < 2:
        return 0.0
    shifted = mean - null_mean
    norm = math.sqrt(max(squares, 0.0) + n * shifted * shifted)
    if norm == 0.0:
        return -0.5 * math.log(1.0 + n * g) if alternative == "two-sided" else 0.0
    sd = math.sqrt(max(squares, 0.0) / (n - 1))
    if alternative == "two-sided":
        t = math.copysign(math.inf, shifted) if sd == 0.0 else shifted / (sd / math.sqrt(n))
        return float(two_sided_t_log_bf(n, t, g))
    a = n * shifted / norm
    return _one_sided_t_log_bf(n, a if alternative == "greater" else -a, g)
