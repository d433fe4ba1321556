r"""Sequential test of a latency-like histogram: one count test per bucket bound.

Notes
-----
Prometheus histograms give, per interval, cumulative counts :math:`C(\ell_j)` of requests at or
below each bound :math:`\ell_j`. For every finite bound the share of requests *slower* than
:math:`\ell_j` is a rate like an error rate, so the count tests of `analysis.ratio` apply to the
exceedance counts (an increase is bad, or a decrease for ``direction="decrease"``). Comparing whole
bucket distributions this way catches regressions confined to the tail (5 % of requests
+600 ms moves the exceedance of the upper bounds by an order of magnitude) as well as shifts
of the median.

**Rollback.** The metric's e-value is the average of the per-bound rollback e-values,
:math:`E_t = J^{-1}\sum_j E_{j,t}`; an average of e-processes is an e-process, and it crosses
:math:`1/\alpha` no later than Bonferroni on :math:`\max_j E_{j,t}` against :math:`J/\alpha`.

**Tolerance.** A histogram metric is within tolerance :math:`\tau` when the canary's latency is
at most :math:`(1+\tau)` times the baseline's at every well-resolved quantile, i.e.
:math:`P_c(X > (1+\tau)\ell) \le P_b(X > \ell)`. For each bound :math:`\ell_j` whose pooled
exceedance lies in [0.05, 0.95] (quantiles the buckets resolve), the promotion test compares the
canary's count above :math:`(1+\tau)\ell_j` (interpolated within its bucket, see below; beyond
the last finite bound the count above that bound is used, which is conservative) with the
baseline's count above :math:`\ell_j` under the null of equal exceedance. The metric is within
tolerance when every such bound's promotion e-value reaches :math:`1/\beta` (an
intersection-union test: no correction is needed). The tail beyond the resolved quantiles is
guarded by the rollback test, which has no tolerance. For
``direction="decrease"`` everything mirrors: within tolerance means
:math:`P_c(X > \ell/(1+\tau)) \ge P_b(X > \ell)`.

**Within a bucket.** The buckets do not say where within them requests fall, so the count above a
point :math:`s` inside a bucket :math:`(a, b]` assumes a form there (`interpolate_cumulative`).
An assumption that counts *more* requests above :math:`s` than there are only costs power; one
that counts fewer could show a canary at its tolerance within it. Log-linear interpolation (as
``histogram_quantile`` does linearly) counts more wherever the density of :math:`\log X` falls
across the bucket, above its mode; at a log-normal's median it credits a canary like its
baseline with about 60 % of its margin at +20 % in Prometheus' default buckets (the share above
0.12 s taken as 0.41 where it is 0.36, against the baseline's 0.50 above 0.1 s). Following a
log-normal through :math:`F(a)` and :math:`F(b)` (the probit of :math:`F` linear in
:math:`\log x`) is exact there, and counts more than there are wherever that probit is concave
across the bucket (tails at least as heavy as the log-normal's: the log-logistic), fewer where it
is convex (tails lighter: Weibull and gamma distributions, at their tolerance 1-7 % promoted
per scale instead of 0 with the log-linear form). The promotion test on the side ``increase``
therefore follows the log-normal only where the *canary's own* cumulative shares at the four
bounds around the bucket, over the intervals before the current one (so the weights are
predictable), have probit slopes in :math:`\log x` that do not rise from one bucket to the next
(``CONCAVE_SLACK`` allows for rounding only); elsewhere (a bucket without a bound on either side
of it, a share of 0 or 1 among the four, before the canary had requests, and on the side
``decrease``, where the argument mirrors) log-linear. Falling slopes between the bounds are
evidence of a concave probit within the middle bucket, not a proof of it, so what the rule
keeps is shown by simulation, not proved: canaries exactly at +20 % of five other shapes
(log-normal with sigma 1, gamma, log-logistic, Weibull, two modes;
``tests/unit/analysis/test_calibration.py``) were promoted in 2 of 2,000 runs, both
log-logistic (0 with the log-linear form). Letting the slopes rise by 10 % admitted a log
skew-normal with a lighter upper tail (slopes rising 5-9 %): at +20 % and 15,000 requests per
interval its promotion e-value reached 40 in 55 of 150 runs and its final look alone passed
16 of 150 at 0.025 (none of either with no rise allowed, nor log-linearly). The evidence plan
takes the same form from the baseline's shares (an estimate: where only the baseline's pass the
check, it is hopeful).

**Absolute tolerance.** A shift :math:`\delta` in the metric's unit (``shift``: 0.02 is "at most
20 ms slower" for a histogram in seconds) widens the tolerance where it is the larger one: the
canary is within tolerance when every resolved quantile is at most
:math:`\max((1+\tau)\ell, \ell + \delta)`, i.e. its count is taken above
:math:`s_j = \max((1+\tau)\ell_j, \ell_j + \delta)` instead of :math:`(1+\tau)\ell_j`. Nothing
else changes: each bound's null is still one exceedance above a fixed point :math:`s_j` against
the baseline's above :math:`\ell_j`, fixed in advance, so the promotion e-values keep their level
and no share of ``beta`` is needed (the shift only moves where the canary is counted). A shift
applies to ``direction="increase"`` only; for small :math:`\ell_j` it is the larger tolerance
(20 ms is +40 % at 50 ms), for large ones the relative one is. As for the relative tolerance, the
count above :math:`s_j` is interpolated within its bucket, which is exact only for some forms; a
canary exactly at the shift (every request :math:`\delta` slower) was shown within it in 0 of 450
runs of 40 looks (``tests/unit/analysis/test_histogram.py``). A canary
measurably slower than its baseline is still rolled back: the rollback test has no tolerance.

References
----------
.. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
       NeurIPS 2022.
.. [2] V. Vovk and R. Wang, "E-values: Calibration, combination and applications",
       Ann. Statist. 49(3), 2021 (averaging e-values).
.. [3] R. L. Berger, "Multiparameter hypothesis testing and acceptance sampling",
       Technometrics 24(4), 1982 (intersection-union tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from analysis.checks import check_fraction, check_tolerance, sides
from analysis.counts import CountState, count_step, covering
from analysis.evalues import FloatArray, bounded_exp, log_mean_exp, sum_window_log_evalue

__all__ = ["HistogramState", "HistogramTestResult", "histogram_test", "interpolate_cumulative"]

#: The dispersion bound fixed in advance for exceedance counts. A jitter of the latency *scale*
#: moves the share beyond a bound by the hazard times the jitter over the distribution's own
#: log-sd: a 20 % scale jitter of a log-normal with sigma 0.5 is a log-rate jitter near 1 in the
#: tail, where a rate's own 50 % jitter gives 0.5 (`analysis.counts.KAPPA_MAX`). A bound whose
#: stable history taught a smaller one warms up from that (`analysis.dispersion.bucket_dispersion`).
KAPPA_MAX_BUCKETS = 2.0
#: How far the buckets' dispersion bound may fall per informative interval: faster than a rate's,
#: since it starts four times higher (after two such intervals both may be down to 0.125).
KAPPA_FALL_BUCKETS = 0.25

#: The largest tolerance on a bound's share the evidence plan takes (where the baseline has no
#: request slower than the canary's counting point, any canary like it passes at once).
MAX_PLAN_TOLERANCE = 100.0
#: A tolerance on a bound's share at or below this is none (the rounding of shares near 1).
UNRESOLVED_TOLERANCE = 1e-9
#: Bounds whose pooled exceedance share lies in this band must pass the promotion test.
PROMOTE_BAND = (0.05, 0.95)
_NORMAL = NormalDist()
#: How much the probit's slope may rise from one bucket to the next where `interpolate_cumulative`
#: still follows a log-normal: rounding only (a rise of 10 % let lighter tails through).
CONCAVE_SLACK = 1e-9


def interpolate_cumulative(
    le: Sequence[float], counts: FloatArray, at: float, *, shape: FloatArray | None = None
) -> FloatArray:
    r"""Cumulative counts at ``at`` for each row of `counts`, interpolating within buckets.

    Parameters
    ----------
    le : sequence of float
        Ascending bucket bounds, the last one ``inf``.
    counts : ndarray, shape (rows, len(le))
        Cumulative counts.
    at : float
        Where to evaluate; at or beyond the last finite bound the count at that bound is used.
    shape : ndarray, shape (number of finite bounds,), optional
        Cumulative shares at the finite bounds of the distribution whose form within the bucket
        the interpolation follows (normal on the log scale); None: log-linear.

    Returns
    -------
    ndarray, shape (rows,)

    Notes
    -----
    Linear in the first bucket (from 0 at 0). Between two positive bounds :math:`a < b` the count is
    :math:`C_a + w\,(C_b - C_a)`, the same weight for every row. Without `shape`, or where its
    probit is not concave around the bucket (`_log_normal_weight`, which also needs shares strictly
    between 0 and 1 at the four bounds around it), the weight is log-linear,
    :math:`w = \lambda = \log(x/a)/\log(b/a)`: exact for a density proportional to :math:`1/x`
    within the bucket; it counts more requests above :math:`x` than there are where the density of
    :math:`\log X` falls (above a log-normal's median) and fewer where it rises. Otherwise the
    weight follows a log-normal through :math:`F(a)` and :math:`F(b)` of `shape` :math:`F`:

    .. math::

        w = \frac{\Phi\big(z_a + \lambda (z_b - z_a)\big) - F(a)}{F(b) - F(a)}, \qquad
        z = \Phi^{-1}(F),

    exact for every log-normal distribution (the probit of its cumulative distribution is linear
    in :math:`\log x`) and in :math:`[0, 1]` for any :math:`F`.
    """
    finite = [b for b in le if math.isfinite(b)]
    if not finite:
        return np.zeros(counts.shape[0])
    if at >= finite[-1]:
        return counts[:, len(finite) - 1].astype(np.float64)
    j = next(index for index, bound in enumerate(finite) if at < bound)
    upper = counts[:, j].astype(np.float64)
    lower_bound = finite[j - 1] if j > 0 else 0.0
    lower = counts[:, j - 1].astype(np.float64) if j > 0 else np.zeros(counts.shape[0])
    if at <= lower_bound:
        return lower
    if lower_bound > 0:
        weight = math.log(at / lower_bound) / math.log(finite[j] / lower_bound)
        if shape is not None:
            weight = _log_normal_weight(finite, shape, j, weight)
    else:
        weight = at / finite[j]
    result: FloatArray = lower + weight * (upper - lower)
    return result


def _log_normal_weight(finite: Sequence[float], shape: FloatArray, j: int, log_linear: float) -> float:
    """`interpolate_cumulative`'s weight in the bucket below ``finite[j]`` along a log-normal
    through `shape` at its bounds, where the probit of `shape`, in the log of the bound, has slopes
    between consecutive bounds that do not rise (within ``CONCAVE_SLACK``) across that bucket and
    its two neighbours: the sign that such a log-normal counts no fewer requests above a point
    inside the bucket than the distribution has (shown by simulation: the module's notes).
    Elsewhere, and where a bound is not positive or a share is 0 or 1 (no probit there), the
    log-linear weight `log_linear`."""
    if j < 2 or j + 1 >= len(finite) or finite[j - 2] <= 0:
        return log_linear
    shares = [float(v) for v in shape[j - 2 : j + 2]]
    if not (0.0 < shares[0] < shares[1] < shares[2] < shares[3] < 1.0):
        return log_linear
    z = [_NORMAL.inv_cdf(v) for v in shares]
    u = [math.log(b) for b in finite[j - 2 : j + 2]]
    slopes = [(z[k + 1] - z[k]) / (u[k + 1] - u[k]) for k in range(3)]
    rise = 1.0 + CONCAVE_SLACK
    if slopes[1] > slopes[0] * rise or slopes[2] > slopes[1] * rise:
        return log_linear
    lower, upper = shares[1], shares[2]
    inside = _NORMAL.cdf(z[1] + log_linear * (z[2] - z[1]))
    return min(max((inside - lower) / (upper - lower), 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class HistogramTestResult:
    """Result of `histogram_test`.

    Attributes
    ----------
    evalue : float
        Average over bounds (and directions) of the rollback e-values.
    promote_evalue : float
        Smallest promotion e-value over the bounds that must pass (0 when none qualifies).
    threshold : float
        The decisive bound: the largest rollback e-value, or the weakest promotion evidence.
    statistic, estimate, interval, dispersion
        At the decisive bound: z, the exceedance ratio canary / baseline, its anytime-valid
        interval, the overdispersion factor.
    canary_share, baseline_share : float
        Shares of requests beyond the decisive bound.
    canary_total, baseline_total : float
        Requests seen.
    intervals : int
        Intervals with requests on both tracks.
    evalues, promote_evalues : tuple of float
        Per finite bound (for ``either``, the larger of the two directions).
    final_pvalue : float
        P-value of the fixed-horizon test against "worse than the tolerance" at one pre-set
        final look: the largest over the resolved bounds and the sides (an intersection-union
        test), 1 when no bound is resolved.
    planned : tuple of (float, float, float)
        For the evidence plan (`analysis.outlook`), one triple per bound the promotion needs (the
        resolved ones; the decisive bound while none is): the baseline's share of requests
        slower than it, the relative tolerance on that share its promotion test allows a canary
        like its baseline (the share above the bound over the share above where the canary is
        counted, less one: +10 % latency is about +18 % on the share at a log-normal median of
        sd 0.5, +50 % in its 5 % tail) and the dispersion factor estimated for an interval of
        this traffic (`analysis.counts.CountState.plan_dispersion`; 1 = binomial). Every such
        bound must pass, so the plan is the longest of theirs.
    """

    evalue: float
    promote_evalue: float
    threshold: float
    statistic: float
    estimate: float
    interval: tuple[float, float]
    dispersion: float
    canary_share: float
    baseline_share: float
    canary_total: float
    baseline_total: float
    intervals: int
    evalues: tuple[float, ...]
    promote_evalues: tuple[float, ...]
    final_pvalue: float = 1.0
    planned: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class HistogramState:
    """The histogram test after the intervals seen so far: one count state per side tested (one
    unit per finite bound) and the pooled counts that say which bounds are resolved; add an
    interval with `step` (constant time), read the result with `result`."""

    le: tuple[float, ...]
    tolerance: float
    sides: tuple[CountState, ...]
    pooled_below: FloatArray
    canary_total: float = 0.0
    baseline_total: float = 0.0
    intervals: int = 0
    shift: float = 0.0
    #: The canary's cumulative counts at the finite bounds over the intervals so far: the form of
    #: its distribution within a bucket where the promotion test counts it (`interpolate_cumulative`).
    canary_below: FloatArray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistogramState):
            return NotImplemented
        return (
            self.le,
            self.tolerance,
            self.shift,
            self.sides,
            self.canary_total,
            self.baseline_total,
            self.intervals,
        ) == (
            other.le,
            other.tolerance,
            other.shift,
            other.sides,
            other.canary_total,
            other.baseline_total,
            other.intervals,
        ) and all(
            np.array_equal(mine, theirs)
            for mine, theirs in (
                (self.pooled_below, other.pooled_below),
                (self._canary_below(), other._canary_below()),
            )
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def initial(
        cls,
        le: Sequence[float],
        *,
        tolerance: float = 0.1,
        direction: str = "increase",
        shift: float = 0.0,
        kappa_start: Sequence[float] | FloatArray | None = None,
    ) -> HistogramState:
        """The state before any interval; `kappa_start`, one value per finite bound (nan: none),
        is the warm-up dispersion learned before the analysis (`analysis.dispersion`)."""
        check_tolerance(tolerance)
        _check_shift(shift, direction)
        bounds = tuple(float(b) for b in le)
        finite = sum(1 for b in bounds if math.isfinite(b))
        states = tuple(
            CountState.initial(
                finite,
                tolerance=0.0,
                direction=side,
                kappa_max=KAPPA_MAX_BUCKETS,
                kappa_fall=KAPPA_FALL_BUCKETS,
                kappa_start=None if kappa_start is None else np.asarray(kappa_start, dtype=np.float64),
            )
            for side in sides(direction)
        )
        return cls(bounds, tolerance, states, np.zeros(finite), shift=shift)

    @property
    def finite(self) -> list[float]:
        return [b for b in self.le if math.isfinite(b)]

    def step(
        self,
        canary_counts: Sequence[float] | FloatArray,
        baseline_counts: Sequence[float] | FloatArray,
        *,
        span: float = 1.0,
    ) -> HistogramState:
        """The state after one more interval of cumulative counts (one per ``le``); `span`: the
        intervals they cover (`analysis.counts.count_step`)."""
        canary = np.asarray(canary_counts, dtype=np.float64).reshape(1, -1)
        baseline = np.asarray(baseline_counts, dtype=np.float64).reshape(1, -1)
        nc, nb = float(canary[0, -1]), float(baseline[0, -1])
        if nc <= 0 or nb <= 0:
            return self
        units = len(self.finite)
        x = np.maximum(nc - canary[0, :units], 0.0)
        y = np.maximum(nb - baseline[0, :units], 0.0)
        stepped = []
        seen = self._canary_below()
        shape = seen / self.canary_total if self.canary_total > 0 else None
        for state in self.sides:
            shifted = np.array(
                [
                    interpolate_cumulative(
                        self.le,
                        canary,
                        self._promote_at(b, state.direction),
                        shape=shape if state.direction == "increase" else None,
                    )[0]
                    for b in self.finite
                ]
            )
            px = np.clip(nc - shifted, 0.0, nc)
            stepped.append(count_step(state, x, y, nc, nb, promote_x=px, span=span))
        pooled = self.pooled_below + canary[0, :units] + baseline[0, :units]
        return HistogramState(
            self.le,
            self.tolerance,
            tuple(stepped),
            pooled,
            self.canary_total + nc,
            self.baseline_total + nb,
            self.intervals + 1,
            self.shift,
            seen + canary[0, :units],
        )

    def _canary_below(self) -> FloatArray:
        return np.zeros(len(self.finite)) if self.canary_below is None else self.canary_below

    def _promote_at(self, bound: float, direction: str) -> float:
        """Where the promotion test counts the canary for the baseline's ``bound``."""
        if direction != "increase":
            return bound / (1.0 + self.tolerance)
        return max(bound * (1.0 + self.tolerance), bound + self.shift)

    def last_log_evalue(self) -> float:
        """The latest interval's own rollback log e-value (the average over sides and bounds)."""
        values = np.concatenate([s.last_log_evalue() for s in self.sides])
        return log_mean_exp(values) if values.size else 0.0

    def change_log_evalue(self) -> float:
        """The change detector's statistic: the sum over the windows of the latest intervals of the
        average e-value over sides and bounds (`analysis.counts.CountState.window_log_evalues`)."""
        return sum_window_log_evalue([s.window_log_evalues() for s in self.sides])

    def guard_log_evalue(self) -> float:
        """The same weighted by the warm-up bound (`analysis.counts.CountState.guard_log_evalue`)."""
        values = np.concatenate([s.guard_log_evalue() for s in self.sides])
        return log_mean_exp(values) if values.size else 0.0

    def result(self, *, alpha: float = 0.05, final: bool = True) -> HistogramTestResult:
        """What the test says now (see `histogram_test`); ``final=False`` skips the fixed-horizon
        p-value (reported as 1) at looks that are not the final one."""
        check_fraction("alpha", alpha)
        finite = self.finite
        log_e_per_side = [s.log_evalue() for s in self.sides]
        log_e = log_mean_exp(np.concatenate(log_e_per_side)) if finite else 0.0
        below = self.pooled_below / max(self.canary_total + self.baseline_total, 1e-300)
        resolved = (below >= PROMOTE_BAND[0]) & (1.0 - below >= PROMOTE_BAND[0])
        promote = np.min(np.vstack([s.log_promote_evalue() for s in self.sides]), axis=0)
        log_promote = float(np.min(promote[resolved])) if resolved.any() else -math.inf
        per_bound = np.max(np.vstack(log_e_per_side), axis=0) if finite else np.zeros(0)
        result = _summarise(self, per_bound, promote, resolved, log_e, log_promote, alpha)
        if not final or not resolved.any():
            return result
        per_bound_final = np.max(np.vstack([s.final_log_pvalue() for s in self.sides]), axis=0)
        return replace(result, final_pvalue=bounded_exp(float(np.max(per_bound_final[resolved]))))


def histogram_test(
    le: Sequence[float],
    canary_counts: Sequence[Sequence[float]],
    baseline_counts: Sequence[Sequence[float]],
    *,
    tolerance: float = 0.1,
    direction: str = "increase",
    alpha: float = 0.05,
    shift: float = 0.0,
) -> HistogramTestResult:
    r"""Sequential test of a canary's bucket distribution against its baseline's.

    Parameters
    ----------
    le : sequence of float
        Bucket bounds, ascending, the last one ``inf`` (Prometheus ``le``).
    canary_counts, baseline_counts : array_like, shape (intervals, len(le))
        Cumulative counts per interval.
    tolerance : float, default 0.1
        Relative latency tolerance (0.1: every resolved quantile may be up to 10 % slower).
    direction : {'increase', 'decrease', 'either'}, default 'increase'
        Which shift is bad.
    alpha : float, default 0.05
        Level of the reported interval.
    shift : float, default 0.0
        Absolute latency tolerance in the metric's unit (0.02: every resolved quantile may be up to
        20 ms slower, where that is more than `tolerance`); ``direction="increase"`` only.

    Returns
    -------
    HistogramTestResult

    Notes
    -----
    See the module notes.

    References
    ----------
    .. [1] M. Lindon and A. Malek, "Anytime-Valid Inference for Multinomial Count Data",
           NeurIPS 2022.

    Examples
    --------
    Twenty intervals of 300 requests; the canary sends 5 % of its requests past 0.5 s:

    >>> le = [0.1, 0.25, 0.5, 1.0, math.inf]
    >>> base = [[150, 270, 299, 300, 300]] * 20
    >>> tail = [[143, 257, 284, 300, 300]] * 20
    >>> r = histogram_test(le, tail, base)
    >>> bool(r.evalue > 1000), r.threshold
    (True, 0.5)
    """
    state = HistogramState.initial(le, tolerance=tolerance, direction=direction, shift=shift)
    canary = np.asarray(canary_counts, dtype=np.float64).reshape(-1, len(le))
    baseline = np.asarray(baseline_counts, dtype=np.float64).reshape(-1, len(le))
    for c, b in zip(canary, baseline, strict=True):
        state = state.step(c, b)
    return state.result(alpha=alpha)


def _summarise(
    state: HistogramState,
    per_bound: FloatArray,
    promote: FloatArray,
    resolved: Any,
    log_e: float,
    log_promote: float,
    alpha: float,
) -> HistogramTestResult:
    finite, first = state.finite, state.sides[0]
    nc, nb = (
        float(first.canary_total[0]) if finite else 0.0,
        float(first.baseline_total[0]) if finite else 0.0,
    )
    if not finite:
        return HistogramTestResult(
            1.0, 0.0, math.nan, 0.0, math.nan, (0.0, math.inf), 1.0, math.nan, math.nan,
            nc, nb, state.intervals, (), (),
        )  # fmt: skip
    flat = np.concatenate([s.log_evalue() for s in state.sides])
    index = int(np.argmax(flat))
    if log_e < 0 and resolved.any():  # no sign of regression: show the weakest promotion bound
        masked = np.where(resolved, promote, np.inf)
        index = int(np.argmin(masked))
    side = state.sides[index // len(finite)]
    j = index % len(finite)
    cx, cy = float(side.canary_events[j]), float(side.baseline_events[j])
    log_ratio = float(side.log_ratio()[j])
    shares = _share_ratio(cx / max(nc, 1e-300), cy / max(nb, 1e-300))
    estimate = shares if math.isnan(log_ratio) or not math.isfinite(shares) else math.exp(log_ratio)
    return HistogramTestResult(
        evalue=bounded_exp(log_e),
        promote_evalue=bounded_exp(log_promote),
        threshold=finite[j],
        statistic=float(side.statistic()[j]),
        estimate=estimate,
        interval=covering(side.interval(j, alpha=alpha), estimate),
        dispersion=float(side.dispersion()[j]),
        canary_share=cx / nc if nc > 0 else math.nan,
        baseline_share=cy / nb if nb > 0 else math.nan,
        canary_total=nc,
        baseline_total=nb,
        intervals=state.intervals,
        evalues=tuple(bounded_exp(float(v)) for v in per_bound),
        promote_evalues=tuple(bounded_exp(float(v)) for v in promote),
        planned=_planned(state, resolved, j, nb),
    )


def _planned(
    state: HistogramState, resolved: Any, decisive: int, nb: float
) -> tuple[tuple[float, float, float], ...]:
    """`HistogramTestResult.planned`: (share, tolerance, dispersion) of each bound the promotion
    needs. The tolerance is the one on the share that the bound's promotion test allows a canary
    like its baseline: its share slower than the bound over its share slower than where the test
    counts the canary, less one (the hardest side's). It is 0 where the buckets cannot tell the two
    points apart (the last finite bound, whose canary is counted above that same bound): no amount
    of data passes such a bound for a canary like its baseline."""
    if nb <= 0:
        return ()
    finite = state.finite
    bounds = np.flatnonzero(resolved) if resolved.any() else np.array([decisive])
    slower = state.sides[0].baseline_events / nb
    below = np.append(1.0 - slower, 1.0)[None, :]  # the baseline's cumulative shares at every le
    dispersion = np.max(np.vstack([s.plan_dispersion() for s in state.sides]), axis=0)
    planned = []
    for j in bounds:
        share, margins = float(slower[j]), []
        for side in state.sides:
            moved = 1.0 - float(
                interpolate_cumulative(
                    state.le,
                    below,
                    state._promote_at(finite[j], side.direction),
                    shape=below[0, :-1] if side.direction == "increase" else None,
                )[0]
            )
            small, large = sorted((share, moved))
            margins.append(min(large / small - 1.0, MAX_PLAN_TOLERANCE) if small > 0 else MAX_PLAN_TOLERANCE)
        margin = min(margins)
        planned.append((share, margin if margin > UNRESOLVED_TOLERANCE else 0.0, float(dispersion[j])))
    return tuple(planned)


def _check_shift(shift: float, direction: str) -> None:
    if not (math.isfinite(shift) and shift >= 0.0):
        raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
    if shift > 0.0 and direction != "increase":
        raise ValueError("an absolute latency tolerance (shift) needs direction 'increase'")


def _share_ratio(canary_share: float, baseline_share: float) -> float:
    if baseline_share <= 0:
        return math.nan if canary_share <= 0 else math.inf
    return canary_share / baseline_share
