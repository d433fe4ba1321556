r"""Mann-Whitney U with the asymptotic Hodges-Lehmann interval, exactly as Kayenta (and R) compute it.

Kayenta's ``MannWhitney`` is a port of R's ``wilcox.test`` (two samples, ``exact = FALSE``,
``correct = TRUE``): the interval and the estimate of the location shift are the roots of the
standardized rank statistic as a function of the shift. `mann_whitney` reproduces it without R
or a numerical root finder: the statistic is a step function of the shift that jumps only at
pairwise differences, so its roots are found by bisection over those differences.

References
----------
.. [1] R Core Team, ``wilcox.test`` (stats package), ``src/library/stats/R/wilcox.test.R``.
.. [2] Spinnaker Kayenta, ``kayenta-mannwhitney/.../MannWhitney.scala`` (Apache-2.0).
.. [3] J. L. Hodges and E. L. Lehmann, "Estimates of location based on rank tests",
       Ann. Math. Statist. 34(2), 1963.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from analysis.evalues import FloatArray

__all__ = ["MannWhitneyResult", "mann_whitney"]


@dataclass(frozen=True, slots=True)
class MannWhitneyResult:
    """Result of `mann_whitney`.

    Attributes
    ----------
    statistic : float
        Wilcoxon's W for the canary (experiment): the count of pairs with canary > baseline,
        ties counting one half.
    pvalue : float
        Two-sided normal-approximation p-value with tie and continuity corrections (R's
        ``exact=FALSE``); Kayenta reports but does not use it.
    estimate : float
        Hodges-Lehmann-type estimate of the location shift canary - baseline (the root of the
        standardized statistic, as R and Kayenta compute it).
    interval : tuple of float
        The asymptotic confidence interval of the shift.
    """

    statistic: float
    pvalue: float
    estimate: float
    interval: tuple[float, float]


def _average_ranks(values: FloatArray) -> FloatArray:
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    start = 0
    while start < values.size:
        stop = start
        while stop + 1 < values.size and ranked[stop + 1] == ranked[start]:
            stop += 1
        ranks[order[start : stop + 1]] = 0.5 * (start + stop) + 1.0
        start = stop + 1
    return ranks


def _standardized(x: FloatArray, y: FloatArray, shift: float) -> float:
    """R's ``(dz - correction) / sigma`` for the shift ``shift`` (``wdiff`` without ``zq``)."""
    nx, ny = float(x.size), float(y.size)
    pooled = np.concatenate([x - shift, y])
    ranks = _average_ranks(pooled)
    dz = float(ranks[: x.size].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    _, ties = np.unique(pooled, return_counts=True)
    tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties))
    sigma = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - tie_term / ((nx + ny) * (nx + ny - 1))))
    if sigma == 0:
        raise ValueError("cannot compute confidence interval when all observations are tied")
    return (dz - math.copysign(0.5, dz) * (dz != 0)) / sigma


def _first(predicate: Callable[[int], bool], size: int) -> int:
    """The first index in ``range(size)`` where the monotone `predicate` holds (``size`` if none)."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _root(f: Callable[[float], float], candidates: FloatArray) -> float:
    """Where the non-increasing step function `f` crosses 0, as a bracketing root finder lands.

    `f` only jumps at `candidates` (the sorted distinct pairwise differences). Endpoints are
    returned as R's ``root()`` does; a jump through 0 gives the jump point; a plateau at 0 gives
    the midpoint of the plateau (where bisection from the endpoints lands for symmetric data).
    """
    if f(float(candidates[0])) <= 0:
        return float(candidates[0])
    if f(float(candidates[-1])) >= 0:
        return float(candidates[-1])
    grid = np.empty(2 * candidates.size - 1)
    grid[0::2] = candidates
    grid[1::2] = 0.5 * (candidates[1:] + candidates[:-1])
    values: dict[int, float] = {}

    def at(index: int) -> float:
        if index not in values:
            values[index] = f(float(grid[index]))
        return values[index]

    left = _first(lambda i: at(i) <= 0, grid.size)
    right = _first(lambda i: at(i) < 0, grid.size) - 1
    if right < left:  # a jump from > 0 to < 0: it happens at the candidate of the pair
        return float(grid[left] if left % 2 == 0 else grid[right])
    low = grid[left - 1] if left % 2 else grid[left]
    high = grid[right + 1] if right % 2 else grid[right]
    return float(0.5 * (low + high))


def mann_whitney(
    baseline: Sequence[float], canary: Sequence[float], *, confidence: float = 0.95
) -> MannWhitneyResult:
    r"""Mann-Whitney U test with the asymptotic Hodges-Lehmann interval, as Kayenta computes it.

    Parameters
    ----------
    baseline, canary : sequence of float
        Control and experiment points (no NaN).
    confidence : float, default 0.95
        Confidence level of the interval (Kayenta's judge uses 0.98).

    Returns
    -------
    MannWhitneyResult

    Notes
    -----
    For a shift :math:`d`, rank :math:`x - d` (canary) together with :math:`y` (baseline) with
    average ranks, let :math:`D(d) = \sum_i R_i - n_x(n_x+1)/2 - n_x n_y/2` and

    .. math::

        z(d) = \frac{D(d) - \tfrac12\operatorname{sign} D(d)}
                    {\sqrt{\frac{n_x n_y}{12}\left(n_x + n_y + 1 -
                     \frac{\sum_k (t_k^3 - t_k)}{(n_x + n_y)(n_x + n_y - 1)}\right)}}

    (:math:`t_k` tie group sizes). :math:`z` is a non-increasing step function of :math:`d`
    jumping only at pairwise differences :math:`x_i - y_j`. The interval is
    :math:`[d_L, d_U]` with :math:`z(d_L) = z_{1-\alpha/2}` and :math:`z(d_U) = -z_{1-\alpha/2}`,
    the estimate solves :math:`z(d) = 0`, each found on the pairwise differences (clamped to
    :math:`[\min x - \max y, \max x - \min y]` as in R) [1]_, [2]_.

    References
    ----------
    .. [1] R Core Team, ``wilcox.test`` (stats), two-sample, ``exact = FALSE``, ``correct = TRUE``.
    .. [2] Spinnaker Kayenta, ``kayenta-mannwhitney/.../MannWhitney.scala``.

    Examples
    --------
    Kayenta's own test case (``MannWhitneySuite``; R's ``wilcox.test`` agrees):

    >>> r = mann_whitney([1, 2, 3, 4], [10, 20, 30, 40], confidence=0.95)
    >>> r.interval, r.estimate
    ((6.0, 39.0), 22.5)
    """
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    if np.unique(x).size == 1 and np.unique(y).size == 1:  # Kayenta adds vanishing noise here
        shift = float(x[0] - y[0])
        pairs = float(x.size * y.size)
        return MannWhitneyResult(statistic=pairs * (0.5 + 0.5 * float(np.sign(shift))), pvalue=math.nan,
                                 estimate=shift, interval=(shift, shift))  # fmt: skip
    candidates = np.unique(np.subtract.outer(x, y).ravel())
    quantile = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    lower = _root(lambda d: _standardized(x, y, d) - quantile, candidates)
    upper = _root(lambda d: _standardized(x, y, d) + quantile, candidates)
    estimate = _root(lambda d: _standardized(x, y, d), candidates)
    z0 = _standardized(x, y, 0.0)
    statistic = float(np.sum(np.subtract.outer(x, y) > 0) + 0.5 * np.sum(np.subtract.outer(x, y) == 0))
    pvalue = min(1.0, 2.0 * (1.0 - NormalDist().cdf(abs(z0))))
    return MannWhitneyResult(statistic=statistic, pvalue=pvalue, estimate=estimate, interval=(lower, upper))
