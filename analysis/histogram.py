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
canary's count above :math:`(1+\tau)\ell_j` (interpolated log-linearly within its bucket, as
``histogram_quantile`` does linearly; beyond the last finite bound the count above that bound is
used, which is conservative) with the baseline's count above :math:`\ell_j` under the null of
equal exceedance. The metric is within tolerance when every such bound's promotion e-value
reaches :math:`1/\beta` (an intersection-union test: no correction is needed). The tail beyond
the resolved quantiles is guarded by the rollback test, which has no tolerance. For
``direction="decrease"`` everything mirrors: within tolerance means
:math:`P_c(X > \ell/(1+\tau)) \ge P_b(X > \ell)`.

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
from dataclasses import dataclass

import numpy as np

from analysis.checks import CountDirection, check_fraction, check_tolerance, sides
from analysis.counts import confidence_sequence, count_evidence
from analysis.evalues import FloatArray, bounded_exp, log_mean_exp

__all__ = ["HistogramTestResult", "histogram_test", "interpolate_cumulative"]

#: Bounds whose pooled exceedance share lies in this band must pass the promotion test.
PROMOTE_BAND = (0.05, 0.95)


def interpolate_cumulative(le: Sequence[float], counts: FloatArray, at: float) -> FloatArray:
    """Cumulative counts at ``at`` for each row of `counts`, interpolating within buckets.

    Parameters
    ----------
    le : sequence of float
        Ascending bucket bounds, the last one ``inf``.
    counts : ndarray, shape (rows, len(le))
        Cumulative counts.
    at : float
        Where to evaluate; at or beyond the last finite bound the count at that bound is used.

    Returns
    -------
    ndarray, shape (rows,)

    Notes
    -----
    Log-linear between two positive bounds, linear in the first bucket (from 0 at 0).
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
    else:
        weight = at / finite[j]
    result: FloatArray = lower + weight * (upper - lower)
    return result


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


@dataclass(frozen=True, slots=True)
class _Side:
    log_e: FloatArray
    log_promote: FloatArray
    x: FloatArray
    y: FloatArray
    statistic: FloatArray
    log_ratio: FloatArray
    dispersion: FloatArray
    phi: FloatArray
    weights: FloatArray


def _side(
    le: Sequence[float], canary: FloatArray, baseline: FloatArray, tolerance: float, direction: CountDirection
) -> _Side:
    finite = [b for b in le if math.isfinite(b)]
    nc = canary[:, -1:]
    nb = baseline[:, -1:]
    x = np.maximum(nc - canary[:, : len(finite)], 0.0)
    y = np.maximum(nb - baseline[:, : len(finite)], 0.0)
    factor = 1.0 + tolerance if direction == "increase" else 1.0 / (1.0 + tolerance)
    shifted = np.column_stack([interpolate_cumulative(le, canary, b * factor) for b in finite])
    px = np.clip(nc - shifted, 0.0, nc)
    ev = count_evidence(x, y, nc, nb, tolerance=0.0, direction=direction, promote_x=px)
    return _Side(
        ev.log_evalue,
        ev.log_promote_evalue,
        x,
        y,
        ev.statistic,
        ev.log_ratio,
        ev.dispersion,
        ev.phi,
        ev.weights,
    )


def histogram_test(
    le: Sequence[float],
    canary_counts: Sequence[Sequence[float]],
    baseline_counts: Sequence[Sequence[float]],
    *,
    tolerance: float = 0.1,
    direction: str = "increase",
    alpha: float = 0.05,
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
    check_tolerance(tolerance)
    check_fraction("alpha", alpha)
    directions = sides(direction)
    canary = np.asarray(canary_counts, dtype=np.float64).reshape(-1, len(le))
    baseline = np.asarray(baseline_counts, dtype=np.float64).reshape(-1, len(le))
    both = (canary[:, -1] > 0) & (baseline[:, -1] > 0)
    canary, baseline = canary[both], baseline[both]
    finite = [b for b in le if math.isfinite(b)]
    tested = [_side(le, canary, baseline, tolerance, d) for d in directions]
    log_e_all = np.concatenate([s.log_e for s in tested])
    log_e = log_mean_exp(log_e_all)
    pooled = (canary[:, : len(finite)].sum(axis=0) + baseline[:, : len(finite)].sum(axis=0)) / max(
        float(canary[:, -1].sum() + baseline[:, -1].sum()), 1e-300
    )
    resolved = (pooled >= PROMOTE_BAND[0]) & (1.0 - pooled >= PROMOTE_BAND[0])
    promote = np.min(np.vstack([s.log_promote for s in tested]), axis=0)
    log_promote = float(np.min(promote[resolved])) if resolved.any() else -math.inf
    per_bound = np.max(np.vstack([s.log_e for s in tested]), axis=0)
    return _summarise(
        tested, finite, per_bound, promote, resolved, log_e, log_promote, canary, baseline, alpha
    )


def _summarise(
    sides: list[_Side],
    finite: list[float],
    per_bound: FloatArray,
    promote: FloatArray,
    resolved: FloatArray,
    log_e: float,
    log_promote: float,
    canary: FloatArray,
    baseline: FloatArray,
    alpha: float,
) -> HistogramTestResult:
    if not finite:
        return HistogramTestResult(
            1.0, 0.0, math.nan, 0.0, math.nan, (0.0, math.inf), 1.0, math.nan, math.nan,
            float(canary[:, -1].sum()), float(baseline[:, -1].sum()), int(canary.shape[0]), (), (),
        )  # fmt: skip
    flat = np.concatenate([s.log_e for s in sides])
    index = int(np.argmax(flat))
    if log_e < 0 and resolved.any():  # no sign of regression: show the weakest promotion bound
        masked = np.where(resolved, promote, np.inf)
        index = int(np.argmin(masked))
    side = sides[index // len(finite)]
    j = index % len(finite)
    nc, nb = float(canary[:, -1].sum()), float(baseline[:, -1].sum())
    phi = float(side.dispersion[j])
    interval = confidence_sequence(
        side.x[:, j],
        side.y[:, j],
        canary[:, -1],
        baseline[:, -1],
        alpha=alpha,
        dispersion=side.phi[:, j],
        weights=side.weights[:, j],
    )
    cx, cy = float(side.x[:, j].sum()), float(side.y[:, j].sum())
    return HistogramTestResult(
        evalue=bounded_exp(log_e),
        promote_evalue=bounded_exp(log_promote),
        threshold=finite[j],
        statistic=float(side.statistic[j]),
        estimate=_share_ratio(cx / max(nc, 1e-300), cy / max(nb, 1e-300)),
        interval=interval,
        dispersion=phi,
        canary_share=cx / nc if nc > 0 else math.nan,
        baseline_share=cy / nb if nb > 0 else math.nan,
        canary_total=nc,
        baseline_total=nb,
        intervals=int(canary.shape[0]),
        evalues=tuple(bounded_exp(float(v)) for v in per_bound),
        promote_evalues=tuple(bounded_exp(float(v)) for v in promote),
    )


def _share_ratio(canary_share: float, baseline_share: float) -> float:
    if baseline_share <= 0:
        return math.nan if canary_share <= 0 else math.inf
    return canary_share / baseline_share
