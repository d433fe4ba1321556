r"""The ``ratio`` metric test: a canary's rate of bad events (e.g. 5xx/requests) against its baseline's.

Notes
-----
`ratio_test` is the count test of `analysis.counts` for one unit: per interval the canary's
:math:`x_i` bad events out of :math:`n_i` requests against the baseline's :math:`y_i` out of
:math:`m_i`, conditioned on :math:`k_i = x_i + y_i`. The rollback e-process tests "rate ratio
:math:`\rho \le 1`", the promotion e-process ":math:`\rho \ge 1 + \mathrm{tol}`"; see
`analysis.counts` for the construction (normal mixtures of sub-Gaussian sums, dispersion and
incident weights) and `analysis.evalues` for the e-value algebra.

References
----------
.. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
       NeurIPS 2022.
.. [2] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.checks import check_fraction, check_tolerance, sides
from analysis.counts import confidence_sequence, count_evidence
from analysis.evalues import FloatArray, bounded_exp, log_mean_exp

__all__ = ["RatioTestResult", "ratio_test"]


@dataclass(frozen=True, slots=True)
class RatioTestResult:
    """Result of `ratio_test`.

    Attributes
    ----------
    statistic : float
        Standardized rollback statistic (z).
    evalue : float
        E-value against "the canary's rate is no worse than the baseline's".
    promote_evalue : float
        E-value against "the canary's rate is worse than the tolerance allows".
    pvalue : float
        ``min(1, 1/evalue)``, valid at this look (the judge keeps the running maximum).
    estimate : float
        Rate ratio canary / baseline (maximum likelihood over the intervals).
    interval : tuple of float
        Anytime-valid ``1 - alpha`` confidence interval for the rate ratio.
    dispersion : float
        Overdispersion factor applied (1 = binomial).
    canary_bad, canary_total, baseline_bad, baseline_total : float
        The totals seen.
    intervals : int
        Intervals with traffic on both tracks.
    """

    statistic: float
    evalue: float
    promote_evalue: float
    pvalue: float
    estimate: float
    interval: tuple[float, float]
    dispersion: float
    canary_bad: float
    canary_total: float
    baseline_bad: float
    baseline_total: float
    intervals: int


def _as_column(values: Sequence[float]) -> FloatArray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def ratio_test(
    canary_bad: Sequence[float],
    canary_total: Sequence[float],
    baseline_bad: Sequence[float],
    baseline_total: Sequence[float],
    *,
    tolerance: float = 0.5,
    direction: str = "increase",
    alpha: float = 0.05,
) -> RatioTestResult:
    r"""Sequential test of a canary's rate of bad events against its baseline's.

    Parameters
    ----------
    canary_bad, canary_total, baseline_bad, baseline_total : sequence of float
        Per-interval counts (within each interval; fractional counts are allowed).
    tolerance : float, default 0.5
        How much worse the canary's rate may be, relative (0.5: up to 1.5 times the baseline's).
    direction : {'increase', 'decrease', 'either'}, default 'increase'
        Which change of the canary's rate is bad (``either``: both).
    alpha : float, default 0.05
        Level of the reported confidence interval.

    Returns
    -------
    RatioTestResult

    Notes
    -----
    See the module notes for the two e-processes. ``evalue >= 1/alpha`` is evidence of a
    regression at level ``alpha`` under continuous monitoring (Ville's inequality);
    ``promote_evalue >= 1/beta`` shows the canary within tolerance at level ``beta``. With
    ``either`` the rollback e-value is the average of the two sides' (an average of e-values is
    an e-value) and the promotion e-value the smaller of the two; the statistic, dispersion and
    interval are those of the ``increase`` side.

    References
    ----------
    .. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
           NeurIPS 2022.
    .. [2] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
           nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.

    Examples
    --------
    Ten intervals of 300 requests per track, 1 % errors on the baseline and 5 % on the canary:

    >>> r = ratio_test([15] * 10, [300] * 10, [3] * 10, [300] * 10)
    >>> bool(r.evalue > 1000), round(r.estimate, 2)
    (True, 5.0)
    """
    check_tolerance(tolerance)
    check_fraction("alpha", alpha)
    tested = sides(direction)
    x = _as_column(canary_bad)
    n = _as_column(canary_total)
    y = _as_column(baseline_bad)
    m = _as_column(baseline_total)
    both = ((n > 0) & (m > 0)).ravel()
    x, n, y, m = x[both], n[both], y[both], m[both]
    results = [count_evidence(x, y, n, m, tolerance=tolerance, direction=side) for side in tested]
    first = results[0]
    interval = confidence_sequence(
        x[:, 0],
        y[:, 0],
        n[:, 0],
        m[:, 0],
        alpha=alpha,
        dispersion=first.phi[:, 0],
        weights=first.weights[:, 0],
    )
    evalue = bounded_exp(log_mean_exp([float(r.log_evalue[0]) for r in results]))
    return RatioTestResult(
        statistic=float(first.statistic[0]),
        evalue=evalue,
        promote_evalue=bounded_exp(min(float(r.log_promote_evalue[0]) for r in results)),
        pvalue=min(1.0, 1.0 / evalue),
        estimate=_ratio_estimate(float(first.log_ratio[0]), float(x.sum()), float(y.sum())),
        interval=interval,
        dispersion=float(first.dispersion[0]),
        canary_bad=float(x.sum()),
        canary_total=float(n.sum()),
        baseline_bad=float(y.sum()),
        baseline_total=float(m.sum()),
        intervals=int(both.sum()),
    )


def _ratio_estimate(log_ratio: float, canary_events: float, baseline_events: float) -> float:
    if canary_events <= 0 and baseline_events <= 0:
        return math.nan
    if canary_events <= 0:
        return 0.0
    if baseline_events <= 0:
        return math.inf
    return math.exp(log_ratio)
