r"""The change detector: catches a canary that turns bad at any time, however good it was before.

A cumulative test weighs every interval alike, so four minutes of a good canary can outvote one
crashed interval, or keep a fresh regression below its threshold until a promotion. `Detector`
watches each interval's *own* e-value :math:`e_t` (the rollback e-value of that interval alone,
`analysis.counts.CountState.last_log_evalue`) with the CUSUM e-detector

.. math::

    W_t = \max(W_{t-1}, 1)\, e_t, \qquad W_0 = 0,

that is :math:`W_t = \max_{s \le t} \prod_{j=s}^{t} e_j`: the evidence since the most telling
start. It alarms when :math:`W_t \ge c` with :math:`c = T/\alpha_d` for an analysis of at most
:math:`T` intervals.

Notes
-----
**The guarantee (proved).** If every :math:`e_t` is an e-value given the past,
:math:`E_0[e_t \mid \mathcal F_{t-1}] \le 1`, the probability of any false alarm within :math:`T`
intervals is at most :math:`\alpha_d`. The Shiryaev-Roberts statistic
:math:`R_t = \sum_{s \le t}\prod_{j=s}^t e_j = (R_{t-1} + 1)e_t` bounds :math:`W_t` from above
and :math:`R_t - t` is a supermartingale, so for :math:`\tau = \inf\{t : W_t \ge c\}` optional
stopping gives :math:`c\,P(\tau \le T) \le E[R_{\tau \wedge T}] \le E[\tau \wedge T] \le T` [1]_,
[2]_. With the rollback test at :math:`\alpha - \alpha_d` the union bound keeps the judge's false
rollbacks at :math:`\alpha`. (That the per-interval e-values are e-values rests on the same
conditions as the cumulative test: see `analysis.counts`.)

**What it buys.** After a change the product of the new intervals' e-values grows as fast as a
test started at the change would; before it, the detector costs only its share of alpha. The
value :math:`\log W_t` is also what *blocks a promotion*: while the last intervals lean towards a
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
    """The CUSUM e-detector's ``log W_t`` after the intervals seen so far (``-inf`` before any)."""

    log_w: float = -math.inf
    #: The latest interval's own log e-value (``-inf`` before any).
    last: float = -math.inf

    def step(self, log_e: float) -> Detector:
        """After one more interval whose own log e-value is `log_e`."""
        if not math.isfinite(log_e):
            log_e = 0.0 if math.isnan(log_e) else log_e
        return Detector(max(self.log_w, 0.0) + log_e, log_e)

    def alarm(self, threshold: float) -> bool:
        """Whether ``log W_t`` reached `threshold` (see `detector_threshold`)."""
        return self.log_w >= threshold

    @property
    def blocks_promotion(self) -> bool:
        """Whether the latest intervals lean towards a regression (``log W_t >= BLOCK``), or the
        latest interval alone does (its own e-value at least ``LAST_BLOCK``)."""
        return self.log_w >= BLOCK or self.last >= LAST_BLOCK
