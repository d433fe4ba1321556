r"""Sequential test for ``samples`` metrics (a few values per interval, e.g. per-pod CPU).

Notes
-----
Per interval :math:`i` with values on both tracks and positive means, the observation is the
log-ratio of means :math:`d_i = \log(\bar c_i / \bar b_i)`. Pairing by interval cancels what both
tracks share (load, incidents); the spread of :math:`d_i` across intervals, whatever its source,
is estimated by the test itself (unknown variance), so overdispersion needs no model.

Modelling :math:`d_i \sim N(\mu, \sigma^2)`, the rollback e-process tests :math:`\mu \le 0` and
the promotion e-process tests :math:`\mu \ge \log(1+\tau)` (for ``decrease``: :math:`\mu \ge 0`
and :math:`\mu \le -\log(1+\tau)`), each with the scale-invariant mixture
`analysis.evalues.t_mixture_log_evalue` (half-normal prior of variance ``g`` on the
standardized effect, right-Haar prior on the scale). The estimate is :math:`e^{\bar d}`, the
geometric-mean ratio of canary to baseline means; the interval inverts the two-sided mixture:
:math:`\{\mu_0 : B_n(\mu_0) < 1/\alpha\}`, mapped by :math:`\exp`.

References
----------
.. [1] T. L. Lai, "On Confidence Sequences", Ann. Statist. 4(2), 1976.
.. [2] M. F. Pérez-Ortiz, T. Lardy, R. de Heide and P. Grünwald, "E-statistics, group
       invariance and anytime-valid testing", Ann. Statist. 52(4), 2024.
.. [3] J. N. Rouder, P. L. Speckman, D. Sun, R. D. Morey and G. Iverson, "Bayesian t tests for
       accepting and rejecting the null hypothesis", Psychon. Bull. Rev. 16(2), 2009.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.checks import check_fraction, check_tolerance, sides
from analysis.evalues import (
    Alternative,
    FloatArray,
    bounded_exp,
    log_mean_exp,
    t_mixture_log_evalue_of_moments,
    two_sided_t_log_bf,
)

__all__ = ["SamplesState", "SamplesTestResult", "log_ratios", "samples_test"]

#: Prior variance of the standardized effect in the t mixtures.
PRIOR_G = 1.0


@dataclass(frozen=True, slots=True)
class SamplesTestResult:
    """Result of `samples_test`.

    Attributes
    ----------
    statistic : float
        The t statistic of :math:`\\bar d` against 0.
    evalue, promote_evalue : float
        Rollback ("no worse") and promotion ("worse than tolerance") e-values.
    pvalue : float
        ``min(1, 1/evalue)`` at this look.
    estimate : float
        :math:`\\exp(\\bar d)`, canary over baseline.
    interval : tuple of float
        Anytime-valid ``1 - alpha`` interval for that ratio.
    intervals : int
        Intervals with a usable log-ratio.
    canary_count, baseline_count : int
        Values seen on each track in those intervals.
    final_pvalue : float
        Always 1: samples metrics have no fixed-horizon final look (their anytime test has all
        of beta).
    """

    statistic: float
    evalue: float
    promote_evalue: float
    pvalue: float
    estimate: float
    interval: tuple[float, float]
    intervals: int
    canary_count: int
    baseline_count: int
    final_pvalue: float = 1.0


def log_ratios(
    canary: Sequence[Sequence[float]], baseline: Sequence[Sequence[float]]
) -> tuple[FloatArray, int, int]:
    """Per-interval ``log(mean(canary) / mean(baseline))``, skipping intervals without positive means."""
    values: list[float] = []
    seen_c = seen_b = 0
    for c, b in zip(canary, baseline, strict=True):
        d = _log_ratio(c, b)
        if d is None:
            continue
        values.append(d)
        seen_c += len(c)
        seen_b += len(b)
    return np.asarray(values, dtype=np.float64), seen_c, seen_b


def _log_ratio(canary: Sequence[float], baseline: Sequence[float]) -> float | None:
    """One interval's ``log(mean(canary) / mean(baseline))``; None without values or a positive
    mean on a track."""
    if not canary or not baseline:
        return None
    lc, lb = _log_mean(canary), _log_mean(baseline)
    return None if lc is None or lb is None else lc - lb


def _log_mean(values: Sequence[float]) -> float | None:
    """``log(mean(values))`` for any finite values, without overflow or underflow (the sum is
    taken of the values scaled by the largest magnitude); None when the mean is not positive
    or a value is not finite."""
    scale = max(abs(v) for v in values)
    if not 0.0 < scale < math.inf:
        return None
    total = math.fsum(v / scale for v in values)
    if total <= 0.0:
        return None
    return math.log(total) - math.log(len(values)) + math.log(scale)


def _exp(x: float) -> float:
    """``exp(x)``, ``inf`` where it overflows (a ratio beyond float's range)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _interval(n: int, mean: float, squares: float, alpha: float) -> tuple[float, float]:
    """The ratios whose log the two-sided Bayes factor does not reject at ``1/alpha`` (exp'd)."""
    if n < 2:
        return 0.0, math.inf
    sd = math.sqrt(max(squares, 0.0) / (n - 1))
    if sd == 0.0:
        return _exp(mean), _exp(mean)
    grid = mean + np.linspace(-12.0, 12.0, 961) * sd
    log_bf = two_sided_t_log_bf(n, (mean - grid) / (sd / math.sqrt(n)), PRIOR_G)
    inside = grid[log_bf < -math.log(alpha)]
    if inside.size == 0:
        return _exp(mean), _exp(mean)
    return _exp(float(inside[0])), _exp(float(inside[-1]))


@dataclass(frozen=True, slots=True)
class SamplesState:
    """The samples test after some intervals, in constant space: the count, mean and sum of
    squared deviations of the per-interval log-ratios (Welford's update [1]_) and the values
    seen. The test depends on the log-ratios only through these
    (`analysis.evalues.t_mixture_log_evalue_of_moments`), so each interval costs the same however
    long the analysis.

    References
    ----------
    .. [1] B. P. Welford, "Note on a method for calculating corrected sums of squares and
           products", Technometrics 4(3), 1962.
    """

    intervals: int = 0
    mean: float = 0.0
    squares: float = 0.0
    canary_count: int = 0
    baseline_count: int = 0

    def step(self, canary: Sequence[float], baseline: Sequence[float]) -> SamplesState:
        """After one more interval's values (skipped without values or positive means on a track)."""
        d = _log_ratio(canary, baseline)
        if d is None:
            return self
        n = self.intervals + 1
        delta = d - self.mean
        mean = self.mean + delta / n
        return SamplesState(
            n,
            mean,
            self.squares + delta * (d - mean),
            self.canary_count + len(canary),
            self.baseline_count + len(baseline),
        )

    def result(
        self, *, tolerance: float = 0.2, direction: str = "increase", alpha: float = 0.05
    ) -> SamplesTestResult:
        """What the test says now (see `samples_test`)."""
        check_tolerance(tolerance)
        check_fraction("alpha", alpha)
        n, mean, squares = self.intervals, self.mean, self.squares
        bound = math.log1p(tolerance)
        worse: dict[str, tuple[Alternative, float]] = {
            "increase": ("greater", bound),
            "decrease": ("less", -bound),
        }
        tested = [worse[side] for side in sides(direction)]
        rollback = [
            t_mixture_log_evalue_of_moments(n, mean, squares, null_mean=0.0, g=PRIOR_G, alternative=alt)
            for alt, _ in tested
        ]
        promote = [
            t_mixture_log_evalue_of_moments(
                n,
                mean,
                squares,
                null_mean=b,
                g=PRIOR_G,
                alternative="less" if alt == "greater" else "greater",
            )
            for alt, b in tested
        ]
        evalue = bounded_exp(log_mean_exp(rollback))
        sd = math.sqrt(max(squares, 0.0) / (n - 1)) if n > 1 else math.nan
        statistic = mean / (sd / math.sqrt(n)) if n > 1 and sd > 0 else 0.0
        return SamplesTestResult(
            statistic=statistic,
            evalue=evalue,
            promote_evalue=bounded_exp(min(promote)) if n > 1 else 1.0,
            pvalue=min(1.0, 1.0 / evalue),
            estimate=_exp(mean) if n else math.nan,
            interval=_interval(n, mean, squares, alpha),
            intervals=n,
            canary_count=self.canary_count,
            baseline_count=self.baseline_count,
        )


def samples_test(
    canary: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    *,
    tolerance: float = 0.2,
    direction: str = "increase",
    alpha: float = 0.05,
) -> SamplesTestResult:
    r"""Sequential test of the canary's mean against its baseline's, paired by interval.

    Parameters
    ----------
    canary, baseline : sequence of sequence of float
        The values seen per interval on each track.
    tolerance : float, default 0.2
        How much worse the canary's mean may be, relative.
    direction : {'increase', 'decrease', 'either'}, default 'increase'
        Which change is bad.
    alpha : float, default 0.05
        Level of the reported interval.

    Returns
    -------
    SamplesTestResult

    Notes
    -----
    See the module notes. With ``either`` the rollback e-value averages both directions and the
    promotion e-value is the smaller of the two.

    References
    ----------
    .. [1] M. F. Pérez-Ortiz, T. Lardy, R. de Heide and P. Grünwald, "E-statistics, group
           invariance and anytime-valid testing", Ann. Statist. 52(4), 2024.

    Examples
    --------
    >>> c = [[0.30, 0.33], [0.31, 0.29], [0.32, 0.35], [0.30, 0.31], [0.34, 0.30], [0.31, 0.33]]
    >>> b = [[0.20, 0.21], [0.22, 0.19], [0.20, 0.23], [0.21, 0.20], [0.19, 0.22], [0.21, 0.20]]
    >>> r = samples_test(c, b)
    >>> bool(r.evalue > 20), round(r.estimate, 2)
    (True, 1.53)
    """
    state = SamplesState()
    for c, b in zip(canary, baseline, strict=True):
        state = state.step(c, b)
    return state.result(tolerance=tolerance, direction=direction, alpha=alpha)
