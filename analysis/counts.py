r"""Sequential count tests, vectorised: the engine under the ratio and the histogram tests.

`count_evidence` computes, for one or many units (a ratio metric, or each bucket bound of a
histogram), the rollback and promotion e-values of a canary's rate of bad events against its
baseline's; `confidence_sequence` the anytime-valid interval of the rate ratio.

Notes
-----
Per interval :math:`i` the canary counts :math:`x_i` bad events out of :math:`n_i`, the baseline
:math:`y_i` out of :math:`m_i`; :math:`k_i = x_i + y_i`, :math:`N_i = n_i + m_i`. The rate ratio
:math:`\rho = \lambda_c / \lambda_b` enters through the conditional share
:math:`p_i(\rho) = n_i\rho/(n_i\rho + m_i)` of the pooled bad events that fall on the canary.
Two e-processes run side by side (see `analysis.evalues` for the construction):

- **rollback**: null :math:`\rho \le 1` (the canary is no worse than its baseline), alternative
  :math:`\rho > 1`; the half-normal mixture over the drift (prior scale 0.7 on the log-ratio
  scale);
- **promotion**: null :math:`\rho \ge 1 + \mathrm{tol}` (worse than the tolerance), alternative
  :math:`\rho < 1 + \mathrm{tol}` (prior scale 0.5).

Both use the weighted sums

.. math::

    S_t = \sum_{i \le t} \frac{w_i}{\hat\phi_i}(x_i - k_i p_i(\rho_0)), \qquad
    V_t = \sum_{i \le t} \frac{w_i^2}{\hat\phi_i} k_i \sigma^2_{KS}(p_i(\rho_0)) f_i .

**Overdispersion.** When each track's rate wobbles from interval to interval on its own (a
gamma-Poisson model with :math:`\mathrm{Var}\,x = \mu + \kappa\mu^2`), the conditional share is
beta-binomial and its variance grows like :math:`1 + \kappa k_i/2`. The judge estimates
:math:`\kappa` by moments from the residuals :math:`x_i - k_i p_i(\hat\rho)` around the fitted
common ratio, shrunk towards a prior :math:`\kappa_0 = 0.1` (capped so that the prior factor at
the typical count stays at most 3) with 3 pseudo-intervals, and weights each interval by
:math:`1/\hat\phi_i = 1/(1 + \hat\kappa k_i/2)` (quasi-likelihood [4]_). With
:math:`\hat\phi_i \ge 1` the binomial case only loses power; under overdispersion the weights
restore the scale, so the test is calibrated approximately (checked by simulation) rather than
exactly. Rates that move together on both tracks need no correction: conditioning on
:math:`k_i` removes them.

**Shared incidents.** An interval whose pooled rate :math:`k_i/N_i` jumps above twice the median
of the earlier intervals gets the weight :math:`w_i = \sqrt{2\,r_{typ}/r_i} < 1`
(`incident_weights`). The weight depends only on pooled counts and the past, so the weighted
sums remain test supermartingales; an incident hitting both tracks no longer dominates the
evidence, while a canary that is bad from the start keeps full weight.

For ``direction="decrease"`` the roles of the tails swap and the tolerance bound is
:math:`\rho \le 1/(1 + \mathrm{tol})`. The estimate is the maximum-likelihood common rate ratio
:math:`\hat\rho` (solving :math:`\sum_i x_i = \sum_i k_i p_i(\hat\rho)`); the interval is the
confidence sequence :math:`\{\rho : M^{\pm}_t(\rho) < 1/\alpha\}` of the two-sided normal
mixture with the same weights, evaluated on a grid of :math:`\log\rho`.

References
----------
.. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
       NeurIPS 2022.
.. [2] M. Lindon, C. Sanden and V. Shirikian, "Rapid Regression Detection in Software
       Deployments through Sequential Testing", KDD 2022.
.. [3] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
.. [4] P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989, §9.2.4
       (overdispersion, quasi-likelihood).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from analysis.checks import CountDirection
from analysis.evalues import (
    Alternative,
    FloatArray,
    kearns_saul_variance,
    normal_mixture_log_evalue,
    two_sided_normal_mixture_log_evalue,
)

__all__ = ["CountEvidence", "confidence_sequence", "count_evidence", "incident_weights"]

#: Which change of the rate is bad for a count test.

ROLLBACK_PRIOR_SCALE = 0.7
PROMOTE_PRIOR_SCALE = 0.5
DISPERSION_PRIOR_DF = 3.0
DISPERSION_KAPPA = 0.1
DISPERSION_PRIOR_CAP = 3.0
INCIDENT_FACTOR = 2.0
_THETA_LIMIT = 12.0
_GRID = np.linspace(-8.0, 8.0, 801)


@dataclass(frozen=True, slots=True)
class CountEvidence:
    r"""Vectorised evidence of count tests, one entry per unit (a ratio metric or a bucket bound).

    Attributes
    ----------
    log_evalue, log_promote_evalue : ndarray
        Log e-values against "no worse" and against "worse than the tolerance".
    statistic : ndarray
        :math:`S_t / \sqrt{\hat\phi V_t}` of the rollback test.
    log_ratio : ndarray
        :math:`\log\hat\rho`, the maximum-likelihood common log rate ratio (clipped to +-12).
    dispersion : ndarray
        The average dispersion factor (binomial variance over the tempered one), at least 1.
    phi : ndarray, shape (intervals, units)
        The per-interval dispersion factors :math:`\hat\phi_i \ge 1`.
    weights : ndarray, shape (intervals, units)
        The per-interval incident weights :math:`w_i \le 1` (`incident_weights`).
    canary_events, baseline_events : ndarray
        :math:`\sum x_i` and :math:`\sum y_i`.
    """

    log_evalue: FloatArray
    log_promote_evalue: FloatArray
    statistic: FloatArray
    log_ratio: FloatArray
    dispersion: FloatArray
    phi: FloatArray
    weights: FloatArray
    canary_events: FloatArray
    baseline_events: FloatArray


def _shares(n: FloatArray, m: FloatArray, log_ratio: FloatArray | float) -> FloatArray:
    """``n rho / (n rho + m)`` computed stably; 0 without canary traffic, 1 without baseline."""
    a = np.log(np.maximum(n, 1e-300)) + log_ratio
    b = np.log(np.maximum(m, 1e-300))
    share: FloatArray = 1.0 / (1.0 + np.exp(np.clip(b - a, -700.0, 700.0)))
    share = np.where(n <= 0, 0.0, np.where(m <= 0, 1.0, share))
    return share


def _finite_population(k: FloatArray, total: FloatArray) -> FloatArray:
    fpc: FloatArray = np.where(total > 1.0, (total - k) / np.maximum(total - 1.0, 1e-300), 1.0)
    return np.clip(fpc, 0.0, 1.0)


def _fit_log_ratio(x: FloatArray, k: FloatArray, n: FloatArray, m: FloatArray) -> FloatArray:
    """Newton iterations for the common log rate ratio, one per column, clipped to +-12."""
    sx = x.sum(axis=0)
    sk = k.sum(axis=0)
    rate_c = sx / np.maximum((n * (k > 0)).sum(axis=0), 1e-300)
    rate_b = (sk - sx) / np.maximum((m * (k > 0)).sum(axis=0), 1e-300)
    with np.errstate(divide="ignore"):
        theta = np.log(np.maximum(rate_c, 1e-300)) - np.log(np.maximum(rate_b, 1e-300))
    theta = np.clip(theta, -_THETA_LIMIT, _THETA_LIMIT)
    for _ in range(25):
        p = _shares(n, m, theta)
        gradient = sx - (k * p).sum(axis=0)
        curvature = (k * p * (1.0 - p)).sum(axis=0)
        step = np.where(curvature > 1e-12, gradient / np.maximum(curvature, 1e-12), 0.0)
        theta = np.clip(theta + np.clip(step, -2.0, 2.0), -_THETA_LIMIT, _THETA_LIMIT)
        if float(np.max(np.abs(step))) < 1e-10:
            break
    theta = np.where(sx <= 0, -_THETA_LIMIT, np.where(sx >= sk, _THETA_LIMIT, theta))
    return np.where(sk <= 0, 0.0, theta)


def _dispersion(
    x: FloatArray, k: FloatArray, n: FloatArray, m: FloatArray, fpc: FloatArray, theta: FloatArray
) -> FloatArray:
    """Per-interval dispersion factors ``1 + kappa * k_i / 2`` (negative-binomial variance function).

    ``kappa`` is the moment estimate from the residuals around the fitted common ratio, shrunk
    towards ``DISPERSION_KAPPA`` with ``DISPERSION_PRIOR_DF`` pseudo-intervals; the prior is capped
    so that its factor at the average count stays below ``DISPERSION_PRIOR_CAP``.
    """
    p = _shares(n, m, theta)
    binomial = k * p * (1.0 - p) * fpc
    informative = binomial > 1e-9
    used = informative.sum(axis=0).astype(np.float64)
    level = 0.5 * k
    weight = np.where(informative, binomial * level, 0.0)
    mean_weight = weight.sum(axis=0) / np.maximum(used, 1.0)
    mean_level = np.where(informative, level, 0.0).sum(axis=0) / np.maximum(used, 1.0)
    prior = np.minimum(DISPERSION_KAPPA, (DISPERSION_PRIOR_CAP - 1.0) / np.maximum(mean_level, 1e-12))
    squared = np.where(informative, (x - k * p) ** 2, 0.0).sum(axis=0) * used / np.maximum(used - 1.0, 1.0)
    excess = np.where(used > 1, squared - np.where(informative, binomial, 0.0).sum(axis=0), 0.0)
    fitted = np.where(used > 1, weight.sum(axis=0), 0.0)
    kappa = (excess + DISPERSION_PRIOR_DF * prior * mean_weight) / np.maximum(
        fitted + DISPERSION_PRIOR_DF * mean_weight, 1e-300
    )
    kappa = np.where(mean_weight > 0, np.maximum(kappa, 0.0), 0.0)
    factors: FloatArray = 1.0 + kappa[None, :] * level
    return factors


def _mixture(s: FloatArray, v: FloatArray, *, scale: float, alternative: Alternative) -> FloatArray:
    precision = 1.0 / (scale * scale)
    return np.array(
        [
            normal_mixture_log_evalue(float(si), float(vi), precision=precision, alternative=alternative)
            for si, vi in zip(s, v, strict=True)
        ]
    )


def incident_weights(k: FloatArray, total: FloatArray) -> FloatArray:
    """Per-interval weights that shrink intervals whose pooled rate jumped (shared incidents).

    ``w_i = min(1, sqrt(INCIDENT_FACTOR * r_typical / r_i))`` with ``r_i = k_i / N_i`` the pooled
    rate of both tracks and ``r_typical`` the median pooled rate of the *earlier* intervals
    (1 while there is no earlier rate).

    Notes
    -----
    The weight is a function of the pooled counts :math:`k_i` (on which the test conditions) and
    of the past, so the increments :math:`w_i (x_i - k_i p_0)` keep their conditional mean and are
    sub-Gaussian with proxy :math:`w_i^2 v_i`: the mixtures stay test supermartingales [1]_.

    References
    ----------
    .. [1] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform Chernoff bounds
           via nonnegative supermartingales", Probab. Surveys 17, 2020 (predictable weights).
    """
    rate = k / np.maximum(total, 1e-300)
    weights = np.ones_like(rate)
    for u in range(rate.shape[1]):
        seen: list[float] = []
        for i in range(rate.shape[0]):
            current = float(rate[i, u])
            if seen:
                half = len(seen) // 2
                typical = seen[half] if len(seen) % 2 else 0.5 * (seen[half - 1] + seen[half])
                if typical > 0 and current > INCIDENT_FACTOR * typical:
                    weights[i, u] = math.sqrt(INCIDENT_FACTOR * typical / current)
            bisect.insort(seen, current)
    return weights


def _centred_sum(
    x: FloatArray,
    k: FloatArray,
    n: FloatArray,
    m: FloatArray,
    fpc: FloatArray,
    log_null: float,
    phi: FloatArray,
    weights: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Weighted quasi-score ``sum w_i (x_i - k_i p0) / phi_i`` and its proxy ``sum w_i^2 v_i / phi_i``."""
    p0 = _shares(n, m, log_null)
    s = (weights * (x - k * p0) / phi).sum(axis=0)
    v = (weights**2 * k * kearns_saul_variance(p0) * fpc / phi).sum(axis=0)
    return s, v


def count_evidence(
    x: FloatArray,
    y: FloatArray,
    n: FloatArray,
    m: FloatArray,
    *,
    tolerance: float,
    direction: CountDirection,
    promote_x: FloatArray | None = None,
) -> CountEvidence:
    r"""Rollback and promotion evidence of count tests, vectorised over units (columns).

    Parameters
    ----------
    x, y : ndarray, shape (intervals, units)
        Bad events of the canary and of the baseline per interval.
    n, m : ndarray, shape (intervals, 1)
        Requests (the denominators) of the canary and of the baseline per interval.
    tolerance : float
        Relative tolerance of the promotion test (0 when `promote_x` already encodes it).
    direction : {'increase', 'decrease'}
        Which change of the canary's rate is bad.
    promote_x : ndarray, optional
        Canary events for the promotion test when they differ from `x` (histograms compare the
        canary above ``(1 + tol) le`` with the baseline above ``le``).

    Returns
    -------
    CountEvidence

    Notes
    -----
    See the module notes: the rollback e-value is the half-normal mixture :math:`M^+` of the
    weighted sums :math:`(S_t, V_t)` at :math:`\rho_0 = 1`, the promotion e-value the mixture of
    the opposite sign at :math:`\rho_0 = (1 + \mathrm{tol})^{\pm 1}`. The dispersion factors are
    estimated once per unit from the rollback fit and applied to both tests.

    References
    ----------
    .. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
           NeurIPS 2022.
    .. [2] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
           nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
    """
    k = x + y
    fpc = _finite_population(k, n + m)
    theta = _fit_log_ratio(x, k, n, m)
    phi = _dispersion(x, k, n, m, fpc, theta)
    weights = incident_weights(k, n + m)
    s, v = _centred_sum(x, k, n, m, fpc, 0.0, phi, weights)
    worse: Alternative = "greater" if direction == "increase" else "less"
    better: Alternative = "less" if direction == "increase" else "greater"
    log_e = _mixture(s, v, scale=ROLLBACK_PRIOR_SCALE, alternative=worse)
    log_bound = math.log1p(tolerance) if direction == "increase" else -math.log1p(tolerance)
    px = x if promote_x is None else promote_x
    pk = px + y
    pfpc = fpc if promote_x is None else _finite_population(pk, n + m)
    ps, pv = _centred_sum(px, pk, n, m, pfpc, log_bound, phi, weights)
    log_promote = _mixture(ps, pv, scale=PROMOTE_PRIOR_SCALE, alternative=better)
    statistic = np.where(v > 0, s / np.sqrt(np.maximum(v, 1e-300)), 0.0)
    binomial = (weights**2 * k * kearns_saul_variance(_shares(n, m, 0.0)) * fpc).sum(axis=0)
    average_phi = np.where(v > 0, binomial / np.maximum(v, 1e-300), 1.0)
    return CountEvidence(
        log_evalue=log_e,
        log_promote_evalue=log_promote,
        statistic=statistic,
        log_ratio=theta,
        dispersion=average_phi,
        phi=phi,
        weights=weights,
        canary_events=x.sum(axis=0),
        baseline_events=y.sum(axis=0),
    )


def confidence_sequence(
    x: FloatArray,
    y: FloatArray,
    n: FloatArray,
    m: FloatArray,
    *,
    alpha: float,
    dispersion: FloatArray | float = 1.0,
    weights: FloatArray | float = 1.0,
) -> tuple[float, float]:
    r"""Anytime-valid ``1 - alpha`` interval for the rate ratio of one unit (1-D inputs).

    Notes
    -----
    The set of :math:`\rho` on a grid of :math:`\log\rho \in [-8, 8]` at which the two-sided
    normal mixture (tempered by `dispersion` and weighted by `weights`, one value or one per
    interval) stays below :math:`1/\alpha`; an endpoint on the grid's edge is reported as 0 or
    infinity. Inverting a family of e-processes this way gives a confidence sequence: it covers
    the true ratio at all times simultaneously with probability at least :math:`1 - \alpha` [1]_.

    References
    ----------
    .. [1] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
           nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021, §3.
    """
    k = (x + y)[:, None]
    fpc = _finite_population(k, (n + m)[:, None])
    p = _shares(n[:, None], m[:, None], _GRID[None, :])
    phi = (
        np.asarray(dispersion, dtype=np.float64).reshape(-1, 1) if np.ndim(dispersion) else float(dispersion)
    )
    w = np.asarray(weights, dtype=np.float64).reshape(-1, 1) if np.ndim(weights) else float(weights)
    s = (w * (x[:, None] - k * p) / phi).sum(axis=0)
    v = (w**2 * k * p * (1.0 - p) * fpc / phi).sum(axis=0)
    inside = two_sided_normal_mixture_log_evalue(s, v, precision=1.0 / ROLLBACK_PRIOR_SCALE**2) < -math.log(
        alpha
    )
    if not inside.any():
        best = float(_GRID[int(np.argmin(np.abs(s)))])
        return math.exp(best), math.exp(best)
    lo = float(_GRID[inside][0])
    hi = float(_GRID[inside][-1])
    return (0.0 if lo <= _GRID[0] else math.exp(lo)), (math.inf if hi >= _GRID[-1] else math.exp(hi))
