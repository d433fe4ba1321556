r"""The warm-up dispersion learned from the stable's history, before the canary serves.

The count tests of `analysis.counts` (under the ratio test and each bucket bound of the histogram
test) weight each interval by :math:`1/\phi_i` with :math:`\phi_i = 1 + \kappa^+ a_i`, where
:math:`\kappa^+` bounds the per-track overdispersion from above. Until three intervals of the
analysis itself carried information, nothing in the analysis can say how large :math:`\kappa` is,
and the bound fixed in advance applies (``KAPPA_MAX``, a per-track rate jitter of 50 %;
``KAPPA_MAX_BUCKETS`` for bucket bounds): safe, but it divides a gross regression's first intervals
by a factor of 2-4 or more and holds its rollback back by several intervals.

`stable_dispersion` learns that bound on data the tests never use: the stable track's own counts
in the intervals before the analysis started, which Prometheus keeps; `bucket_dispersion` does so
for each finite bound of a histogram (the requests above it). The result is an upper confidence
bound on the per-track :math:`\kappa` that the count tests take as their warm-up value
(``kappa_start`` of `analysis.counts.CountState.initial`, through the judge's ``dispersion``),
never above the bound fixed in advance.

Notes
-----
Let the stable serve :math:`t_j` requests with :math:`b_j` counted ones (bad requests; for a
histogram's bound, those above it) in history interval :math:`j = 1, \dots, H`, at a rate
:math:`\lambda\xi_j` whose factor has mean one and variance :math:`s^2` (everything that moves the
stable's rate from interval to interval: its own jitter and what it shares with other tracks). To
second order

.. math::

    \mathrm{Var}(b_j) = t_j\lambda(1 - \lambda) + t_j^2\lambda^2 s^2,

so the Pearson residuals :math:`e_j^2 = (b_j - t_j\hat\lambda)^2 / a_j`, with
:math:`a_j = t_j\hat\lambda(1 - \hat\lambda)` around the pooled rate
:math:`\hat\lambda = \sum b_j / \sum t_j`, have :math:`E e_j^2 \approx 1 + a_j\kappa_s` with
:math:`\kappa_s = s^2/(1 - \lambda)^2`. Treating :math:`\sum_j e_j^2` as :math:`c\,\chi^2_{g}`
with :math:`g = H - 1` degrees of freedom (one spent on :math:`\hat\lambda`) and
:math:`c = 1 + \bar a\kappa_s` gives the upper bound at confidence :math:`1 - \gamma`

.. math::

    \kappa_{s+} = \frac{g \sum_j e_j^2 / \chi^2_{g,\gamma} - g}{\sum_j a_j},

the same construction as the analysis's own running bound (`analysis.counts`), at a stricter
quantile because it stands alone.

The count tests condition on the pooled count :math:`k_i` of an interval; with each track's rate
factor of variance :math:`\sigma^2_c` and :math:`\sigma^2_b`,
:math:`\mathrm{Var}(x_i \mid k_i) \approx a_i + (a_i/f_i)^2(\sigma^2_c + \sigma^2_b)` with their
:math:`a_i = k_i p_i q_i f_i` and the finite-population factor :math:`f_i \approx 1 - \lambda`, so
:math:`\kappa \ge (\sigma^2_c + \sigma^2_b)/(1 - \lambda)^2` is what they need: the scale of
:math:`\kappa_s`. (For an error rate :math:`1 - \lambda` is about 1; for the count above a
histogram's low bound it is small, and the bound grows accordingly.) The warm-up bound is

.. math::

    \kappa_+ = \kappa_{s+}\,(r_c + r_b),

where :math:`r_c` and :math:`r_b` are how many times the stable's variance each track's may have
(``spread``). :math:`r = 1` is the per-track model the judge is calibrated for: each track's own
factor varies no more than the stable's whole rate did (which includes what every track shares).
Jitter per pod, independent between pods, and a constant inflation of every count (clustered
errors, ``increase()``'s extrapolation) both need :math:`r` = the stable's count per interval over
the track's (`spread_for_weight`): the flow passes :math:`100/w` for a step at weight :math:`w`.

What is *proved*: :math:`\kappa_+` uses no interval of the analysis, so the weights stay
predictable and the argument of `analysis.counts` (a test supermartingale when
:math:`\phi_i` is at least the true variance inflation) is unchanged. That the bound is high
enough often enough, and that the analysis keeps its level when it starts from it, is *shown by
simulation*: ``tests/unit/analysis/test_dispersion.py`` (A/A runs that draw an hour of the stable's
history and the analysis from one model: binomial, independent per-track jitter up to 0.5,
counts extrapolated by ``increase()``, shared incidents, 0.5 to 500 req/s per track) and the
product-level calibration on the benchmark's families (``tests/unit/analysis/test_calibration.py``,
whose scenarios carry the learned bound). Once three intervals of the analysis gave residuals on
the good side, its own upper estimate takes over below the learned bound (it falls from it by at
most a half per informative interval), and the learned bound stays its cap except while the
analysis's own *lower* estimate exceeds it: then the history understated the tracks' dispersion
and the analysis's upper estimate alone applies (`analysis.counts`). A history that understates
it is outside what is covered, with or without the cap (``bench/history.py``, 400 A/A runs per
cell): with the stable binomial and each track jittering at 0.5 (500 req/s) the judge rolled back
80.2 % of the runs before the cap and 81.2 % after it, most of them in their first intervals,
before the analysis could contradict the history; with the stable at 0.05 against the tracks'
0.3 (a dispersion 3.6 times below what the spread allows for) 7 % and 1.8 % (500 and 50 req/s)
before, 9.5 % and 2.8 % after. The spread for the weight is what keeps the bound above the
tracks' when the jitter is per pod.

The bound's confidence is nominal: it rests on the second-order model and on Satterthwaite's
approximation (`_upper_bound`); simulated, it covers the truth in 96-100 % of histories of a
stable with a 30 % jitter, with constant traffic and with a few busy intervals (one at 200 times
the others).

References
----------
.. [1] P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989, §4.5.2
       (the moment estimator of the dispersion) and §9.2.4 (overdispersion).
.. [2] D. R. Cox, "Some remarks on overdispersion", Biometrika 70(1), 1983.
.. [3] E. B. Wilson and M. M. Hilferty, "The distribution of chi-square", Proc. Natl. Acad. Sci.
       17(12), 1931.
.. [4] F. E. Satterthwaite, "An approximate distribution of estimates of variance components",
       Biometrics Bulletin 2(6), 1946.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeAlias

import numpy as np

from analysis.counts import KAPPA_MAX
from analysis.evalues import FloatArray
from analysis.histogram import KAPPA_MAX_BUCKETS

__all__ = [
    "MIN_HISTORY_EVENTS",
    "MIN_HISTORY_INTERVALS",
    "DispersionBound",
    "Warmup",
    "bucket_dispersion",
    "spread_for_weight",
    "stable_dispersion",
]

#: Fewer history intervals with requests than this teach nothing: the bound fixed in advance stays.
MIN_HISTORY_INTERVALS = 5
#: ... and fewer counted events in all than this, or fewer requests that were not counted.
MIN_HISTORY_EVENTS = 5.0
#: What a metric's warm-up is given as: one bound for a ratio metric, one per finite bucket bound
#: (bound -> kappa) for a histogram.
Warmup: TypeAlias = float | Mapping[float, float]
#: The confidence of the upper bound (one-sided).
CONFIDENCE = 0.975


@dataclass(frozen=True, slots=True)
class DispersionBound:
    """What the stable's history says about the per-track dispersion.

    Attributes
    ----------
    kappa : float
        The warm-up :math:`\\kappa_+` for the count tests, in ``[0, KAPPA_MAX]``; ``KAPPA_MAX``
        when the history taught nothing (``learned`` is False).
    estimate : float
        The moment estimate of :math:`\\kappa_s \\ge 0`, the stable's own rate variance on the count
        tests' scale (nan when not learned).
    intervals : int
        History intervals with requests.
    events : float
        Bad events in them.
    learned : bool
        Whether the history had enough intervals and events to bound anything.
    """

    kappa: float
    estimate: float
    intervals: int
    events: float
    learned: bool

    def describe(self) -> str:
        """One line for a log: what was learned, or why nothing was."""
        if not self.learned:
            return (
                f"the stable's history ({self.intervals} intervals, {self.events:g} counted events) is too "
                "short or has too few events to learn its dispersion: the analysis starts from the "
                "bound fixed in advance"
            )
        return (
            f"the stable's last {self.intervals} intervals ({self.events:g} bad events) bound the "
            f"per-track dispersion at {self.kappa:.3g}"
        )


def _upper_bound(squares: float, level: FloatArray, gamma: float) -> float:
    r"""The largest :math:`\kappa` at which the observed :math:`\sum e_j^2` is not below the
    `gamma` quantile of its distribution (0 when even :math:`\kappa = 0` puts it below).

    Under :math:`\kappa`, :math:`\sum_j e_j^2 \approx \sum_j w_j \chi^2_{1,j}` with
    :math:`w_j = 1 + a_j\kappa`; Satterthwaite's approximation [4]_ gives it as
    :math:`c\,\chi^2_\nu` with :math:`c = \sum w^2/\sum w` and
    :math:`\nu = (\sum w)^2/\sum w^2 - 1` (one degree of freedom spent on the rate). With equal
    :math:`a_j` this is the scaled :math:`\chi^2_{H-1}` of the notes; with unequal ones (a history
    with a few busy intervals) it has fewer degrees of freedom and gives a higher bound. The
    quantile grows with :math:`\kappa`, so the bound is found by bisection.
    """

    def quantile(kappa: float) -> float:
        w = 1.0 + level * kappa
        total, square = float(w.sum()), float((w * w).sum())
        return square / total * _chi2_quantile(max(total * total / square - 1.0, 1.0), gamma)

    if quantile(0.0) >= squares:
        return 0.0
    low, high = 0.0, 1.0
    while quantile(high) < squares and high < 1e12:
        low, high = high, high * 4.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if quantile(middle) < squares:
            low = middle
        else:
            high = middle
    return low


def _chi2_quantile(df: float, q: float) -> float:
    """The `q` quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty [3]_; within
    1 % of the exact lower quantile from 10 degrees of freedom on, and below it with fewer, which
    only raises the bound; no SciPy, which the replay command does not load)."""
    c = 2.0 / (9.0 * df)
    return df * max(1.0 - c + NormalDist().inv_cdf(q) * math.sqrt(c), 0.02) ** 3


def spread_for_weight(weight: float) -> float:
    r"""The ``spread`` of a track that serves `weight` percent of the traffic, against a stable
    history read at any share: :math:`100/w`, the most the stable's count per interval can exceed
    the track's.

    Notes
    -----
    Two kinds of extra variance are covered by the same factor. Per-pod jitter, independent between
    pods: a track with a :math:`1/r` share of the stable's pods varies :math:`r` times as much.
    A constant inflation :math:`c` of every count (clustered errors; Prometheus's ``increase()``
    extrapolation): the stable's history shows it as :math:`s^2 = (c - 1)/\bar a_{stable}`, and
    the count tests need :math:`\kappa a_i \ge c - 1` at the track's :math:`a_i`, about
    :math:`\bar a_{stable}/(2r)` per track of two equal ones: :math:`\kappa = 2 r s^2` again.
    Taking :math:`r = 100/w` rather than the stable's true share over the track's only makes
    :math:`\kappa_+` larger (safer, less powerful).
    """
    if not (math.isfinite(weight) and 0.0 < weight <= 100.0):
        raise ValueError(f"weight must be in (0, 100], got {weight}")
    return 100.0 / weight


def _check(
    bad: Sequence[float] | FloatArray, total: Sequence[float] | FloatArray, spread: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(bad, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    if b.ndim != 1 or b.shape != t.shape:
        raise ValueError("bad and total must be sequences of the same length")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(t))):
        raise ValueError("counts must be finite")
    if np.any(b < 0) or np.any(t < 0) or np.any(b > t):
        raise ValueError("counts must satisfy 0 <= bad <= total")
    if any(not math.isfinite(r) or r < 1.0 for r in spread):
        raise ValueError(f"spread must be two finite factors >= 1, got {spread}")
    return b, t


def stable_dispersion(
    bad: Sequence[float] | FloatArray,
    total: Sequence[float] | FloatArray,
    *,
    spread: tuple[float, float] = (1.0, 1.0),
    confidence: float = CONFIDENCE,
    cap: float = KAPPA_MAX,
) -> DispersionBound:
    r"""The warm-up dispersion bound :math:`\kappa_+` from the stable's history (see the notes).

    Parameters
    ----------
    bad, total : sequence of float
        The stable's bad events and requests per history interval (intervals of the analysis's
        length; intervals without requests are left out).
    spread : (float, float), default (1, 1)
        :math:`(r_c, r_b)`: how many times the stable's rate variance the canary's and the
        baseline's own may be (``P_stable / P_track`` for per-pod jitter).
    confidence : float, default 0.975
        The one-sided confidence of the upper bound.
    cap : float, default ``KAPPA_MAX``
        The bound fixed in advance of the tests it is for (``KAPPA_MAX_BUCKETS`` for a
        histogram's bounds): the most the bound can be, and its value when nothing was learned.

    Returns
    -------
    DispersionBound

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> total = np.full(60, 3000.0)
    >>> bound = stable_dispersion(rng.binomial(3000, 0.01, 60), total)
    >>> bound.learned, bound.kappa < 0.05
    (True, True)
    """
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    b, t = _check(bad, total, spread)
    served = t > 0
    b, t = b[served], t[served]
    intervals, events = int(b.size), float(b.sum())
    others = float(t.sum()) - events
    if intervals < MIN_HISTORY_INTERVALS or min(events, others) < MIN_HISTORY_EVENTS:
        return DispersionBound(cap, math.nan, intervals, events, learned=False)
    rate = events / float(t.sum())
    mean = t * rate
    level = mean * (1.0 - rate)
    residuals = (b - mean) ** 2 / level
    information = float(level.sum())
    estimate = max((float(residuals.sum()) - (intervals - 1)) / information, 0.0)
    upper = _upper_bound(float(residuals.sum()), level, 1.0 - confidence)
    kappa = min(upper * (spread[0] + spread[1]), cap)
    return DispersionBound(kappa, estimate, intervals, events, learned=True)


def bucket_dispersion(
    le: Sequence[float],
    cumulative: Sequence[Sequence[float]],
    *,
    spread: tuple[float, float] = (1.0, 1.0),
    confidence: float = CONFIDENCE,
) -> dict[float, DispersionBound]:
    """The warm-up bound of each finite bucket bound of a histogram, from the stable's history.

    Parameters
    ----------
    le : sequence of float
        The bucket bounds, increasing, the last ``inf``.
    cumulative : sequence of sequences of float
        Per history interval, the cumulative counts at `le` (the last is the interval's requests).
    spread, confidence
        As in `stable_dispersion`.

    Returns
    -------
    dict
        Finite bound -> `stable_dispersion` of the requests above it (capped at
        ``KAPPA_MAX_BUCKETS``, the histogram test's bound fixed in advance).
    """
    bounds = [float(b) for b in le]
    counts = np.asarray(cumulative, dtype=np.float64).reshape(-1, len(bounds))
    if (
        not bounds
        or not math.isinf(bounds[-1])
        or any(b >= a for a, b in zip(bounds[1:], bounds[:-1], strict=False))
    ):
        raise ValueError("le must be increasing and end with inf")
    total = counts[:, -1]
    return {
        bound: stable_dispersion(
            np.clip(total - counts[:, u], 0.0, total),
            total,
            spread=spread,
            confidence=confidence,
            cap=KAPPA_MAX_BUCKETS,
        )
        for u, bound in enumerate(bounds[:-1])
    }
