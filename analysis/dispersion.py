r"""The warm-up dispersion learned from the stable's history, before the canary serves.

The count tests of `analysis.counts` weight each interval by :math:`1/\phi_i` with
:math:`\phi_i = 1 + \kappa^+ a_i`, where :math:`\kappa^+` bounds the per-track overdispersion from
above. Until three intervals of the analysis itself carried information, nothing in the analysis
can say how large :math:`\kappa` is, and the bound fixed in advance (``KAPPA_MAX``, a per-track
rate jitter of 50 %) applies: safe, but it divides a gross regression's first intervals by a
factor of 2-4 and holds its rollback back by several intervals.

`stable_dispersion` learns that bound on data the tests never use: the stable track's own counts
in the intervals before the analysis started, which Prometheus keeps. It returns an upper
confidence bound on the per-track :math:`\kappa` that the count tests then take as their warm-up
value (`analysis.counts.CountState.initial`, ``kappa_start``), never above ``KAPPA_MAX``.

Notes
-----
Let the stable serve :math:`t_j` requests with :math:`b_j` bad ones in history interval
:math:`j = 1, \dots, H`, at a rate :math:`\lambda\xi_j` whose factor has mean one and variance
:math:`s^2` (everything that moves the stable's rate from interval to interval: its own jitter and
what it shares with other tracks). With :math:`\mu_j = t_j\lambda`, to second order

.. math::

    \mathrm{Var}(b_j) = \mu_j(1 - \lambda) + \mu_j^2 s^2,

so the Pearson residuals :math:`e_j^2 = (b_j - t_j\hat\lambda)^2 / (t_j\hat\lambda(1 -
\hat\lambda))` around the pooled rate :math:`\hat\lambda = \sum b_j / \sum t_j` have
:math:`E e_j^2 \approx 1 + a_j s^2` with :math:`a_j = t_j\hat\lambda`. Treating
:math:`\sum_j e_j^2` as :math:`c\,\chi^2_{g}` with :math:`g = H - 1` degrees of freedom (one
spent on :math:`\hat\lambda`) and :math:`c = 1 + \bar a s^2` gives the upper bound at confidence
:math:`1 - \gamma`

.. math::

    s^2_+ = \frac{g \sum_j e_j^2 / \chi^2_{g,\gamma} - g}{\sum_j a_j},

the same construction as the analysis's own running bound (`analysis.counts`), at a stricter
quantile because it stands alone. In the count tests a track whose factor has variance
:math:`\sigma^2` contributes :math:`\sigma^2` to :math:`\kappa` (:math:`\kappa = \sigma_c^2 +
\sigma_b^2`). The bound on the canary's and baseline's :math:`\kappa` is therefore

.. math::

    \kappa_+ = s^2_+ \,(r_c + r_b),

where :math:`r_c` and :math:`r_b` are how much more each track's factor may vary than the
stable's (``spread``). With :math:`r_c = r_b = 1` this is the model of the per-track jitter the
judge is calibrated for: each track's own factor varies no more than the stable's whole rate did
(the stable's variation includes what every track shares, so it is an over-estimate there). When
the jitter is per pod and independent between pods, a track of :math:`P` pods varies as
:math:`\sigma^2_{pod}/P`, and :math:`r = P_{stable}/P_{track}`: the flow passes that ratio.

What is *proved*: :math:`\kappa_+` uses no interval of the analysis, so the weights stay
predictable and the argument of `analysis.counts` (a test supermartingale when
:math:`\phi_i` is at least the true variance inflation) is unchanged. That the bound is high
enough often enough, and that the analysis keeps its level when it starts from it, is *shown by
simulation* (``tests/unit/analysis/test_dispersion.py``; the A/A runs there draw the history and
the analysis from one model, with independent per-track jitter up to 0.5, shared incidents, unequal
tracks and 240 looks). After three informative intervals the analysis's own upper estimate takes
over as before, so a history that understated the canary's dispersion weighs only the first
intervals.

References
----------
.. [1] P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989, §4.5.2
       (the moment estimator of the dispersion) and §9.2.4 (overdispersion).
.. [2] D. R. Cox, "Some remarks on overdispersion", Biometrika 70(1), 1983.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.counts import KAPPA_MAX

__all__ = [
    "MIN_HISTORY_EVENTS",
    "MIN_HISTORY_INTERVALS",
    "DispersionBound",
    "spread_for_weight",
    "stable_dispersion",
]

#: Fewer history intervals with requests than this teach nothing: the bound fixed in advance stays.
MIN_HISTORY_INTERVALS = 5
#: ... and fewer bad events in all than this.
MIN_HISTORY_EVENTS = 5.0
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
        The moment estimate :math:`\\hat s^2 \\ge 0` of the stable's own rate variance (nan when
        not learned).
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
                f"the stable's history ({self.intervals} intervals, {self.events:g} bad events) is too "
                f"short to learn its dispersion; the first intervals are weighted for a jitter of "
                f"{math.sqrt(KAPPA_MAX / 2):.0%} per track"
            )
        return (
            f"the stable's last {self.intervals} intervals ({self.events:g} bad events) bound the "
            f"per-track dispersion at {self.kappa:.3g} (of at most {KAPPA_MAX:g})"
        )


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
    bad: Sequence[float], total: Sequence[float], spread: tuple[float, float]
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
    bad: Sequence[float],
    total: Sequence[float],
    *,
    spread: tuple[float, float] = (1.0, 1.0),
    confidence: float = CONFIDENCE,
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
    if intervals < MIN_HISTORY_INTERVALS or events < MIN_HISTORY_EVENTS or events >= float(t.sum()):
        return DispersionBound(KAPPA_MAX, math.nan, intervals, events, learned=False)
    rate = events / float(t.sum())
    level = t * rate
    squares = float(np.sum((b - level) ** 2 / (level * (1.0 - rate))))
    g = intervals - 1
    low = float(stats.chi2.ppf(1.0 - confidence, g))
    information = float(level.sum())
    estimate = max((squares - g) / information, 0.0)
    upper = max((g * squares / low - g) / information, 0.0)
    kappa = min(upper * (spread[0] + spread[1]), KAPPA_MAX)
    return DispersionBound(kappa, estimate, intervals, events, learned=True)
