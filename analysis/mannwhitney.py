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
import numpy.typing as npt

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
    """Ranks from 1, ties given the average of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ranked = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
    stops = np.append(starts[1:], values.size) - 1
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(0.5 * (starts + stops) + 1.0, stops - starts + 1)
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


#: Up to how many pairs `mann_whitney` holds every pairwise difference (8 MB): a search by index
#: over them tests fewer shifts than the search by value that larger samples need.
HELD_PAIRS = 1_000_000


class _Differences:
    r"""The pairwise differences :math:`x_i - y_j` (as floating point computes them), held only
    when there are at most `HELD_PAIRS`: sorting :math:`y` makes each row non-increasing in
    :math:`j`, so the nearest difference above or below a value is a binary search per row,
    :math:`O(n_x \log n_y)` time and :math:`O(n_x)` memory."""

    def __init__(self, x: FloatArray, y: FloatArray) -> None:
        self.x = x
        self.y = np.sort(y)
        self.smallest = float(x.min() - self.y[-1])
        self.largest = float(x.max() - self.y[0])
        #: All distinct differences, sorted, when there are few pairs (searched by index instead)
        self.held: FloatArray | None = None
        if x.size * y.size <= HELD_PAIRS:
            self.held = np.unique(np.subtract.outer(x, self.y).ravel())

    def _last(self, keep: Callable[[FloatArray], npt.NDArray[np.bool_]]) -> npt.NDArray[np.int64]:
        """Per row, the last :math:`j` with ``keep(x_i - y_j)`` (-1 if none), for a `keep` that
        holds on a prefix of each row."""
        lo = np.full(self.x.size, -1, dtype=np.int64)
        hi = np.full(self.x.size, self.y.size, dtype=np.int64)
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            inside = hi - lo > 1
            held = inside & keep(self.x - self.y[np.minimum(mid, self.y.size - 1)])
            lo = np.where(held, mid, lo)
            hi = np.where(inside & ~held, mid, hi)
        return lo

    def above(self, value: float) -> float:
        """The smallest difference greater than `value` (inf if none)."""
        j = self._last(lambda d: d > value)
        rows = j >= 0
        return float(np.min(self.x[rows] - self.y[j[rows]])) if rows.any() else math.inf

    def below(self, value: float) -> float:
        """The largest difference less than `value` (-inf if none)."""
        j = self._last(lambda d: d >= value) + 1
        rows = j < self.y.size
        return float(np.max(self.x[rows] - self.y[j[rows]])) if rows.any() else -math.inf

    def greater_pairs(self) -> float:
        """Pairs with :math:`x_i > y_j`, ties counting one half (a difference is 0 only for equal
        values)."""
        less = np.searchsorted(self.y, self.x, side="left")
        equal = np.searchsorted(self.y, self.x, side="right") - less
        return float(less.sum() + 0.5 * equal.sum())


def _ordinal(value: float) -> int:
    """An integer that orders floats as they compare (both zeros map to 0)."""
    bits = int(np.float64(value).view(np.int64))
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def _from_ordinal(ordinal: int) -> float:
    bits = ordinal if ordinal >= 0 else (-ordinal) | -0x8000_0000_0000_0000
    return float(np.int64(bits).view(np.float64))


#: A place on the line of differences: ``(c, 0)`` the difference ``c``; ``(c, 1)`` the open gap
#: between ``c`` and the next difference. Tuples order as the places do.
_Place = tuple[float, int]


def _first_place(holds: Callable[[float], bool], diffs: _Differences) -> _Place:
    """The first place where the monotone `holds` is true, given that it is false at the smallest
    difference and true at the largest (a gap is tested at its midpoint).

    Each step tests the differences on either side of the midpoint (in float order) of the two
    it knows: either their distance halves, or they become neighbours and the answer is the gap
    between them or the right one; so at most about 64 steps.
    """
    lo, hi = diffs.smallest, diffs.largest  # holds(lo) is false, holds(hi) is true
    while True:
        if diffs.above(lo) >= hi:  # neighbours
            return (lo, 1) if holds(0.5 * (lo + hi)) else (hi, 0)
        # strictly between lo and hi, as a difference lies between them
        middle = _from_ordinal((_ordinal(lo) + _ordinal(hi)) // 2)
        left = diffs.below(middle)  # the last difference before the middle (lo at least)
        if left > lo:
            if holds(left):
                hi = left
                continue
            lo = left
        right = diffs.above(lo)  # the first difference from the middle on
        if right < hi:
            if holds(right):
                hi = right
            else:
                lo = right


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


def _root_held(f: Callable[[float], float], candidates: FloatArray) -> float:
    """`_root` by index over all the distinct differences (`candidates`, sorted) and the
    midpoints of the gaps between them, for `f` > 0 at the first and < 0 at the last."""
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
    if right < left:  # a jump from > 0 to < 0: it happens at the difference of the pair
        return float(grid[left] if left % 2 == 0 else grid[right])
    low = grid[left - 1] if left % 2 else grid[left]
    high = grid[right + 1] if right % 2 else grid[right]
    return float(0.5 * (low + high))


def _root(f: Callable[[float], float], diffs: _Differences) -> float:
    """`_search` with a zero always +0.0, whichever way the differences were searched."""
    return _search(f, diffs) + 0.0


def _search(f: Callable[[float], float], diffs: _Differences) -> float:
    """Where the non-increasing step function `f` crosses 0, as a bracketing root finder lands.

    `f` only jumps at the pairwise differences (`diffs`). Endpoints are returned as R's ``root()``
    does; a jump through 0 gives the jump point; a plateau at 0 gives the midpoint of the plateau,
    from the difference that starts it to the one that ends it (where bisection from the
    endpoints lands for symmetric data).
    """
    if f(diffs.smallest) <= 0:
        return diffs.smallest
    if f(diffs.largest) >= 0:
        return diffs.largest
    if diffs.held is not None:
        return _root_held(f, diffs.held)
    values: dict[float, float] = {}

    def at(d: float) -> float:
        if d not in values:
            values[d] = f(d)
        return values[d]

    left = _first_place(lambda d: at(d) <= 0, diffs)
    negative = _first_place(lambda d: at(d) < 0, diffs)
    # the place before `negative` (the last where f >= 0); the difference that ends it is negative's
    right: _Place = (diffs.below(negative[0]), 1) if negative[1] == 0 else (negative[0], 0)
    if right < left:  # a jump from > 0 to < 0: it happens at the difference of the two places
        return left[0] if left[1] == 0 else right[0]
    return 0.5 * (left[0] + negative[0])


def mann_whitney(
    baseline: Sequence[float], canary: Sequence[float], *, confidence: float = 0.95
) -> MannWhitneyResult:
    r"""Mann-Whitney U test with the asymptotic Hodges-Lehmann interval, as Kayenta computes it.

    Parameters
    ----------
    baseline, canary : sequence of float
        Control and experiment points (finite).
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
    :math:`[\min x - \max y, \max x - \min y]` as in R) [1]_, [2]_. Beyond a million pairs the
    differences are not held but searched by value, one binary search per canary point, so the
    memory stays linear in the samples' sizes and the result is the same.

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
    diffs = _Differences(x, y)
    quantile = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    lower = _root(lambda d: _standardized(x, y, d) - quantile, diffs)
    upper = _root(lambda d: _standardized(x, y, d) + quantile, diffs)
    estimate = _root(lambda d: _standardized(x, y, d), diffs)
    z0 = _standardized(x, y, 0.0)
    statistic = diffs.greater_pairs()
    pvalue = min(1.0, 2.0 * (1.0 - NormalDist().cdf(abs(z0))))
    return MannWhitneyResult(statistic=statistic, pvalue=pvalue, estimate=estimate, interval=(lower, upper))
