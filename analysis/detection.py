r"""The change detector: catches a canary that turns bad at any time, however good it was before.

A cumulative test weighs every interval alike, so four minutes of a good canary can outvote one
crashed interval, or keep a fresh regression below its threshold until a promotion. `Detector`
watches the evidence of the *latest* intervals alone. Its alarm statistic is the Shiryaev-Roberts
sum over the windows of the latest :math:`1, \dots, \min(t, L)` intervals (:math:`L` =
``CHANGE_WINDOW``, 40),

.. math::

    R^L_t = \sum_{s = \max(1, t - L + 1)}^{t} \Lambda^{(s)}_t, \qquad
    \Lambda^{(s)}_t = \frac{1}{U} \sum_{u=1}^{U} M\big(S_{u,t} - S_{u,s-1},\; V_{u,t} - V_{u,s-1}\big),

with :math:`M` the rollback mixture of `analysis.counts` computed on the window's sums only
(`analysis.counts.CountState.window_log_evalues`), averaged over the metric's units (the sides,
and the bucket bounds of a histogram). It alarms when :math:`R^L_t \ge c` with
:math:`c = T/\alpha_d` for an analysis of at most :math:`T` intervals. Beside it runs the CUSUM of
each interval's own e-value :math:`e_t` (`analysis.counts.CountState.last_log_evalue`),

.. math::

    W_t = \max(W_{t-1}, 1)\, e_t, \qquad W_0 = 0,

that is :math:`W_t = \max_{s \le t} \prod_{j=s}^{t} e_j`, which only blocks promotions (below).

Notes
-----
**The guarantee (proved).** Under the conditions of the cumulative test (`analysis.counts`:
the per-interval terms sub-Gaussian with their proxies given the past), each per-unit
:math:`M(S_{u,t} - S_{u,s-1}, \cdot)` is, for :math:`t \ge s`, a mixture over the drift of test
supermartingales started at 1 after interval :math:`s - 1`, hence a nonnegative supermartingale
with initial value 1, and so is their average :math:`\Lambda^{(s)}`. The Shiryaev-Roberts
e-detector over every start, :math:`R_t = \sum_{s \le t} \Lambda^{(s)}_t`, then satisfies
:math:`E_0[R_t \mid \mathcal F_{t-1}] \le \sum_{s < t} \Lambda^{(s)}_{t-1} + 1 = R_{t-1} + 1`, so
:math:`R_t - t` is a supermartingale. For :math:`\tau = \inf\{t : R_t \ge c\}` optional stopping
gives :math:`c\,P(\tau \le T) \le E[R_{\tau \wedge T}] \le E[\tau \wedge T] \le T` [1]_, [2]_, and
:math:`R^L_t \le R_t` (it drops the nonnegative terms of the older starts), so the probability of
any false alarm within :math:`T` intervals is at most :math:`\alpha_d`. With the rollback test at
:math:`\alpha - \alpha_d` the union bound keeps the judge's false rollbacks at :math:`\alpha`.
Each start counts once: the windows longer than the analysis so far are left out, not taken for
the whole analysis again. An interval without traffic on a track adds nothing to the sums and
leaves :math:`R^L_t` as it was. The same argument with the maximum over starts of
:math:`\prod_{j=s}^t e_j`, which is at most the sum, is the one for the CUSUM :math:`W_t`, which
alarmed before. A product of one-interval mixtures pays the mixture's price (the spread of its
prior over the drift) in every interval, a mixture over the window's sums pays it once, and the
sum over starts adds the evidence of the windows that reach a little before the change. For an x4
canary at 10 req/s after ten good intervals (12 errors against 3 of 300 requests a track,
binomial weights), the log of the CUSUM over its first 1 to 5 bad intervals is 1.92, 3.85, 5.77,
7.70 and 9.62, of :math:`R^L_t` 3.21, 5.24, 7.57 and 10.06, against the alarm level 8.58 of a
40-interval analysis at 0.75 %: the fourth bad interval alarms instead of the fifth. An x3 canary
(9 errors against 3) alarms at its sixth, where neither the CUSUM nor the largest window alone has
reached the level (``tests/unit/analysis/test_detection.py``; BENCHMARKS.md, "The change
detector's windows").

**What the proof takes for granted.** That the terms are sub-Gaussian given the past with the
weights :math:`\phi_i` of `analysis.counts`, as the cumulative test does. One part of those weights
is not predictable: an interval whose pooled count is more than twice the average may raise its
cap by the count the baseline's own requests imply, which given the pooled count moves with the
canary's share. There the guarantee rests on the calibration simulations
(``tests/unit/analysis/test_calibration.py``), as it does for the cumulative test.

**What it buys.** After a change the window starting at the change grows as fast as a test
started at the change would; before it, the detector costs only its share of alpha. The CUSUM's
:math:`\log W_t` is what *blocks a promotion*: while the last intervals lean towards a
regression (``log W_t >= BLOCK``, evidence of 5 to 1: substantial on Jeffreys' scale [3]_) the
judge does not promote, whatever the cumulative evidence says; blocking can only make promotions
rarer, so it costs no guarantee. Where it blocks is a trade, measured on the benchmark's scenarios
(BENCHMARKS.md) with the default tolerances (+50 % errors, +20 % latency): at 10 to 1 one canary
in 900 that turned x5 worse mid-analysis was promoted (at 10 req/s, two intervals after the
change, at the first interval a promotion was allowed: its first eight intervals had had fewer
errors than the baseline's); at 5 to 1 none was, and 1.6 points fewer of the good canaries at
>= 10 req/s were promoted (86.9 % against 88.5 %); at 3 to 1, 3.7 points fewer. A change can
also show in one interval only before a promotion is due: of 2,400 canaries turning worse
mid-analysis (x5 errors from the 5th, 13th, 21st or 29th interval, x3 errors or +50 % latency
from the 13th; plain and independently overdispersed noise at 10 and 50 req/s), two were
promoted on their first bad interval (50 errors against 15 in one). The latest
interval alone therefore blocks too when its own e-value reaches 3 (``LAST_BLOCK``), which
stopped one of the two for 0.3 points of good promotions (2 would have cost 1.3 and stopped the
same one; the other, 269 errors against 116 amid a 30 % per-track jitter of the rate, is within
what the noise does in one interval).

References
----------
.. [1] J. Shin, A. Ramdas and A. Rinaldo, "E-detectors: a nonparametric framework for sequential
       change detection", New England J. Statist. Data Sci. 2(2), 2024.
.. [2] M. Pollak, "Optimal detection of a change in distribution", Ann. Statist. 13(1), 1985
       (Shiryaev-Roberts).
.. [3] H. Jeffreys, *Theory of Probability*, 3rd ed., 1961, Appendix B (grades of evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BLOCK", "LAST_BLOCK", "Detector", "detector_threshold"]

#: ``log W_t`` at or above this (W_t >= 5): the recent intervals lean bad, no promotion now.
BLOCK = math.log(5.0)
#: The latest interval's own log e-value at or above this: it alone leans bad, no promotion now.
LAST_BLOCK = math.log(3.0)


def detector_threshold(horizon: int, alpha: float) -> float:
    """``log(T / alpha_d)``: the alarm level for at most `horizon` intervals at level `alpha`."""
    if horizon < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need horizon >= 1 and 0 < alpha < 1, got {horizon} and {alpha}")
    return math.log(horizon / alpha)


@dataclass(frozen=True, slots=True)
class Detector:
    """The CUSUM e-detector's ``log W_t`` after the intervals seen so far (``-inf`` before any),
    and the windowed statistic the alarm uses (``log_change``; the CUSUM where none is given)."""

    log_w: float = -math.inf
    #: The latest interval's own log e-value (``-inf`` before any).
    last: float = -math.inf
    #: ``log R^L_t``, the sum over the windows of the latest intervals (see the notes).
    log_change: float = -math.inf

    def step(self, log_e: float, log_window: float | None = None) -> Detector:
        """After one more interval whose own log e-value is `log_e`; `log_window` is
        ``log R^L_t`` (the sum over the windows of the latest intervals), None to alarm on the
        CUSUM."""
        if not math.isfinite(log_e):
            log_e = 0.0 if math.isnan(log_e) else log_e
        log_w = max(self.log_w, 0.0) + log_e
        if log_window is None:
            return Detector(log_w, log_e, log_w)
        if math.isnan(log_window):  # nothing to add: the windows' statistic stays as it was
            return Detector(log_w, log_e, self.log_change)
        return Detector(log_w, log_e, log_window)

    def alarm(self, threshold: float) -> bool:
        """Whether the alarm statistic reached `threshold` (see `detector_threshold`)."""
        return self.log_change >= threshold

    @property
    def blocks_promotion(self) -> bool:
        """Whether the latest intervals lean towards a regression (``log W_t >= BLOCK``), or the
        latest interval alone does (its own e-value at least ``LAST_BLOCK``)."""
        return self.log_w >= BLOCK or self.last >= LAST_BLOCK
