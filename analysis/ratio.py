r"""The ``ratio`` metric test: a canary's rate of bad events (e.g. 5xx/requests) against its baseline's.

Notes
-----
`ratio_test` is the count test of `analysis.counts` for one unit: per interval the canary's
:math:`x_i` bad events out of :math:`n_i` requests against the baseline's :math:`y_i` out of
:math:`m_i`, conditioned on :math:`k_i = x_i + y_i`. The rollback e-process tests "rate ratio
:math:`\rho \le 1`", the promotion e-process ":math:`\rho \ge 1 + \mathrm{tol}`"; see
`analysis.counts` for the construction (normal mixtures of sub-Gaussian sums, a conservative
predictable dispersion) and `analysis.evalues` for the e-value algebra.

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
from analysis.counts import CountState, count_step, covering
from analysis.evalues import bounded_exp, log_mean_exp, sum_window_log_evalue

__all__ = ["RatioState", "RatioTestResult", "ratio_test"]


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
    final_pvalue : float
        P-value of the fixed-horizon test against "worse than the tolerance", valid if this is
        the one pre-set final look (`analysis.counts.CountState.final_log_pvalue`).
    plan_dispersion : float
        The dispersion factor estimated for an interval of this traffic, for the evidence plan
        (`analysis.counts.CountState.plan_dispersion`; 1 = binomial; with ``either`` the larger
        of the two sides', as for a histogram's bounds).
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
    final_pvalue: float = 1.0
    plan_dispersion: float = 1.0


@dataclass(frozen=True, slots=True)
class RatioState:
    """The ratio test after the intervals seen so far, one count state per side tested; add an
    interval with `step` (constant time), read the result with `result`."""

    sides: tuple[CountState, ...]
    tolerance: float

    @classmethod
    def initial(
        cls, *, tolerance: float = 0.5, direction: str = "increase", kappa_start: float | None = None
    ) -> RatioState:
        """The state before any interval; `kappa_start` is the warm-up dispersion bound learned
        before the analysis (`analysis.dispersion`; None: the bound fixed in advance)."""
        check_tolerance(tolerance)
        return cls(
            tuple(
                CountState.initial(1, tolerance=tolerance, direction=side, kappa_start=kappa_start)
                for side in sides(direction)
            ),
            tolerance,
        )

    @property
    def intervals(self) -> int:
        """Intervals with traffic on both tracks."""
        return self.sides[0].intervals

    def step(
        self,
        canary_bad: float,
        canary_total: float,
        baseline_bad: float,
        baseline_total: float,
        *,
        span: float = 1.0,
    ) -> RatioState:
        """The state after one more interval (an interval without traffic on a track is skipped);
        `span`: the intervals its counts cover (`analysis.counts.count_step`)."""
        x, y = np.array([float(canary_bad)]), np.array([float(baseline_bad)])
        n, m = float(canary_total), float(baseline_total)
        stepped = tuple(count_step(s, x, y, n, m, span=span) for s in self.sides)
        return RatioState(stepped, self.tolerance)

    def last_log_evalue(self) -> float:
        """The latest interval's own rollback log e-value (the sides' average)."""
        return log_mean_exp([float(s.last_log_evalue()[0]) for s in self.sides])

    def change_log_evalue(self) -> float:
        """The change detector's statistic: the sum over the windows of the latest intervals of the
        sides' average e-value (`analysis.counts.CountState.window_log_evalues`)."""
        return sum_window_log_evalue([s.window_log_evalues() for s in self.sides])

    def guard_log_evalue(self) -> float:
        """The same weighted by the warm-up bound (`analysis.counts.CountState.guard_log_evalue`)."""
        return log_mean_exp([float(s.guard_log_evalue()[0]) for s in self.sides])

    def result(self, *, alpha: float = 0.05, final: bool = True) -> RatioTestResult:
        """What the test says now (see `ratio_test`); ``final=False`` skips the fixed-horizon
        p-value (reported as 1) at looks that are not the final one."""
        check_fraction("alpha", alpha)
        first = self.sides[0]
        evalue = bounded_exp(log_mean_exp([float(s.log_evalue()[0]) for s in self.sides]))
        log_ratio = float(first.log_ratio()[0])
        cx, cy = float(first.canary_events[0]), float(first.baseline_events[0])
        estimate = math.nan if math.isnan(log_ratio) else _ratio_estimate(log_ratio, cx, cy)
        return RatioTestResult(
            statistic=float(first.statistic()[0]),
            evalue=evalue,
            promote_evalue=bounded_exp(min(float(s.log_promote_evalue()[0]) for s in self.sides)),
            pvalue=min(1.0, 1.0 / evalue),
            estimate=estimate,
            interval=covering(first.interval(0, alpha=alpha), estimate),
            dispersion=float(first.dispersion()[0]),
            canary_bad=cx,
            canary_total=float(first.canary_total[0]),
            baseline_bad=cy,
            baseline_total=float(first.baseline_total[0]),
            intervals=first.intervals,
            final_pvalue=bounded_exp(max(float(s.final_log_pvalue()[0]) for s in self.sides))
            if final
            else 1.0,
            plan_dispersion=max(float(s.plan_dispersion()[0]) for s in self.sides),
        )


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
    state = RatioState.initial(tolerance=tolerance, direction=direction)
    for row in zip(canary_bad, canary_total, baseline_bad, baseline_total, strict=True):
        state = state.step(*row)
    return state.result(alpha=alpha)


def _ratio_estimate(log_ratio: float, canary_events: float, baseline_events: float) -> float:
    if canary_events <= 0 and baseline_events <= 0:
        return math.nan
    if canary_events <= 0:
        return 0.0
    if baseline_events <= 0:
        return math.inf
    return math.exp(log_ratio)
