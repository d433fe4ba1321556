r"""The ceiling test: shows that a canary's rate of bad events stays below an absolute bound.

A relative tolerance ("at most 50 % more errors than the baseline") says nothing when both tracks
have few or no bad events: a service without errors can never show its canary "within +50 %".
What users mean there is absolute: "at most 0.1 % errors", or an SLO's error budget burnt no
faster than twice its rate. `CeilingState` tests the canary alone against such a ceiling
:math:`s`: its e-value grows when the canary's rate is below :math:`s`, and is an e-value (its
expectation at most 1 at every look) whenever the canary's rate is at least :math:`s`.

Notes
-----
Per interval :math:`i` the canary serves :math:`n_i` requests with :math:`x_i` bad events. The
null hypothesis is that the canary's rate is at least the ceiling: given the past, interval
:math:`i` has a rate :math:`p_i = \mu_i J_i` with :math:`\mu_i \ge s`, a jitter factor
:math:`J_i \ge 0` with :math:`E J_i = 1` and :math:`\mathrm{Var}\, J_i \le v` (pods, load and
time of day make the rate vary from interval to interval; no distribution is assumed), and given
the requests' rates (one per request, averaging :math:`p_i`) the requests fail independently.

For a bet :math:`\lambda_i \ge 0` chosen from the intervals before :math:`i` (predictable) and
:math:`a_i = 1 - e^{-\lambda_i}`, the interval's e-value is

.. math::

    E_i = \frac{e^{-\lambda_i x_i}}{g(n_i a_i s)}, \qquad
    g(c) = \frac{v + e^{-c(1 + v)}}{1 + v}.

**Proof that** :math:`E[E_i \mid \mathcal F_{i-1}] \le 1` **under the null.** Given the
requests' rates :math:`q_1, \dots, q_{n}`, :math:`E[e^{-\lambda x}] = \prod_j (1 - q_j a)
\le e^{-a \sum_j q_j} = e^{-n a p_i}` (:math:`1 - z \le e^{-z}`), so
:math:`E[e^{-\lambda x_i}] \le E[e^{-c_i J_i}]` with :math:`c_i = n_i a_i \mu_i`. The variable
:math:`Y = 1 - J_i` is at most 1, has mean 0 and variance at most :math:`v`; Bennett's sharp bound
for such variables, :math:`E[e^{cY}] \le (v e^{c} + e^{-cv})/(1 + v)` for :math:`c \ge 0` [1]_,
[2]_, gives :math:`E[e^{-c J}] = e^{-c} E[e^{cY}] \le g(c)`. As :math:`g` decreases in
:math:`c` and :math:`\mu_i \ge s`, :math:`g(n_i a_i \mu_i) \le g(n_i a_i s)`, the denominator. So
:math:`\prod_{i \le t} E_i` is a test supermartingale, and by Ville's inequality the probability
that it *ever* reaches :math:`1/\beta` is at most :math:`\beta` [3]_, however often it is looked
at. The bound needs no independence between intervals, no binomial model for the rate, and no
estimate of the rate: the jitter allowance :math:`v` is fixed in advance (`JITTER_VARIANCE`: a
log-normal jitter with standard deviation 0.5).

**Price of the jitter allowance.** A jitter of variance :math:`v` may put the rate at zero for a
share :math:`v/(1 + v)` of the intervals, so no single interval can count for more than
:math:`(1 + v)/v` (about 4.5): even a canary without a single error needs three intervals to
reach :math:`1/\beta = 40`.

**The bet** uses the intervals before :math:`i` and the interval's own request count
:math:`n_i`: the argument above then needs the jitter to keep mean 1 and variance at most
:math:`v` given :math:`n_i` (the traffic's volume says nothing of its error rate).
:math:`\lambda_i` maximizes the expected log e-value :math:`-\lambda n_i \hat p -
\log g(n_i a s)` for the rate :math:`\hat p = (X + 1/2)/(N + 1/s)` of the intervals before
:math:`i` (a prior of half an event at the ceiling's rate), on a fixed grid; :math:`\lambda = 0`
(no bet) when :math:`\hat p \ge s`.

**An upper confidence sequence for a rate.** `RateBound` runs the test on one track for every
ceiling :math:`s_j` of a fixed geometric grid at once and reports
:math:`U_t = \min\{s_j : E_{s_k, t} \ge 1/\gamma \text{ for every } s_k \ge s_j\}`
(1 when the largest grid point is not rejected). If the track's rate is :math:`p` and
:math:`U_t \le p` at some look, then the largest grid point :math:`s_k \le p` (which is
:math:`\ge U_t`) is rejected at that look, although its null (rate at least :math:`s_k`) is
true; by the proof above that happens at some look with probability at most :math:`\gamma`. So
:math:`P(\exists t: p \ge U_t) \le \gamma`: :math:`U_t` is an anytime-valid upper bound at
level :math:`\gamma` [4]_, coarser than the exact one by at most a grid step (12 %).

References
----------
.. [1] G. Bennett, "Probability inequalities for the sum of independent random variables",
       J. Amer. Statist. Assoc. 57(297), 1962, eq. (8).
.. [2] W. Hoeffding, "Probability inequalities for sums of bounded random variables",
       J. Amer. Statist. Assoc. 58(301), 1963, Theorem 3.
.. [3] A. Ramdas, P. Grünwald, V. Vovk and G. Shafer, "Game-theoretic statistics and safe
       anytime-valid inference", Statist. Sci. 38(4), 2023.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from analysis.evalues import bounded_exp

__all__ = ["JITTER_VARIANCE", "CeilingState", "RateBound", "ceiling_log_factor"]

#: The interval-to-interval variance of the canary's rate allowed in advance (relative to its
#: mean): that of a mean-one log-normal factor with standard deviation 0.5.
JITTER_VARIANCE = math.expm1(0.5**2)

_LAMBDAS = np.concatenate(([0.0], np.geomspace(0.01, 12.0, 96)))


def _log_g(c: np.ndarray | float, v: float) -> np.ndarray:
    """``log g(c)`` (see the module notes), vectorised."""
    c = np.asarray(c, dtype=np.float64)
    result: np.ndarray = np.log(v + np.exp(-c * (1.0 + v))) - math.log1p(v)
    return result


def ceiling_log_factor(
    bad: float, total: float, *, ceiling: float, bet: float, v: float = JITTER_VARIANCE
) -> float:
    r"""The log e-value :math:`\log E_i` of one interval (see the module notes).

    Parameters
    ----------
    bad, total : float
        The canary's bad events and requests in the interval (``0 <= bad <= total``).
    ceiling : float
        The ceiling :math:`s`, a rate in (0, 1).
    bet : float
        :math:`\lambda \ge 0`, chosen before the interval was seen.
    v : float, default `JITTER_VARIANCE`
        The allowed relative variance of the rate between intervals.

    Examples
    --------
    No bet, no evidence; a large bet on 1,000 requests without an error is worth at most
    :math:`(1 + v)/v`:

    >>> abs(ceiling_log_factor(0, 1000, ceiling=0.01, bet=0.0)) < 1e-12
    True
    >>> round(math.exp(ceiling_log_factor(0, 1000, ceiling=0.01, bet=12.0)), 2)
    4.52
    """
    a = -math.expm1(-bet)
    return -bet * bad - float(_log_g(total * a * ceiling, v))


@dataclass(frozen=True, slots=True)
class CeilingState:
    """The ceiling test after the intervals seen so far (immutable; `step` adds one).

    ``log_evalue`` is :math:`\\log \\prod_i E_i`; ``bad`` and ``total`` the canary's totals, from
    which the next bet is chosen.
    """

    ceiling: float
    v: float = JITTER_VARIANCE
    log_evalue: float = 0.0
    bad: float = 0.0
    total: float = 0.0
    intervals: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.ceiling < 1.0:
            raise ValueError(f"the ceiling must be a rate strictly between 0 and 1, got {self.ceiling!r}")
        if not (math.isfinite(self.v) and self.v >= 0.0):
            raise ValueError(f"the jitter variance must be a finite number >= 0, got {self.v!r}")

    @property
    def evalue(self) -> float:
        """The e-value against "the canary's rate is at least the ceiling"."""
        return bounded_exp(self.log_evalue)

    @property
    def rate(self) -> float:
        """The canary's rate so far (``nan`` before any request)."""
        return self.bad / self.total if self.total > 0 else math.nan

    def bet(self, total: float) -> float:
        r"""The bet :math:`\lambda` for an interval of `total` requests, from the past only."""
        if total <= 0:
            return 0.0
        p_hat = (self.bad + 0.5) / (self.total + 1.0 / self.ceiling)
        if p_hat >= self.ceiling:
            return 0.0
        a = -np.expm1(-_LAMBDAS)
        growth = -_LAMBDAS * total * p_hat - _log_g(total * a * self.ceiling, self.v)
        return float(_LAMBDAS[int(np.argmax(growth))])

    def step(self, bad: float, total: float) -> CeilingState:
        """The state after one more interval of the canary (an interval without requests is skipped)."""
        if total <= 0:
            return self
        bet = self.bet(total)
        factor = ceiling_log_factor(bad, total, ceiling=self.ceiling, bet=bet, v=self.v) if bet > 0 else 0.0
        return CeilingState(
            ceiling=self.ceiling,
            v=self.v,
            log_evalue=self.log_evalue + factor,
            bad=self.bad + bad,
            total=self.total + total,
            intervals=self.intervals + 1,
        )


#: The ceilings `RateBound` tests at once: rates from 1e-6 to 0.99, 12 % apart.
_BOUND_GRID = np.geomspace(1e-6, 0.99, 123)


@dataclass(frozen=True, slots=True)
class RateBound:
    r"""An anytime-valid upper confidence bound for one track's rate (see the module notes).

    ``level`` is :math:`\gamma`: the probability that the bound is ever below the rate. ``upper``
    is the bound after the intervals seen (1.0 until the data exclude high rates); `step` adds an
    interval.

    Examples
    --------
    A track with 1 % errors over twenty intervals of 300 requests:

    >>> bound = RateBound(0.01)
    >>> for _ in range(20):
    ...     bound = bound.step(3.0, 300.0)
    >>> 0.01 < bound.upper < 0.02
    True
    """

    level: float
    v: float = JITTER_VARIANCE
    log_evalues: tuple[float, ...] = tuple(0.0 for _ in _BOUND_GRID)
    bad: float = 0.0
    total: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"the level must be strictly between 0 and 1, got {self.level!r}")

    @property
    def upper(self) -> float:
        """The smallest grid rate from which every larger one is rejected (1.0 if the largest is not)."""
        rejected = np.asarray(self.log_evalues) >= -math.log(self.level)
        if not rejected[-1]:
            return 1.0
        kept = np.flatnonzero(~rejected)
        return float(_BOUND_GRID[0 if kept.size == 0 else kept[-1] + 1])

    def step(self, bad: float, total: float) -> RateBound:
        """The bound after one more interval of the track (an interval without requests is skipped;
        a count that is not a finite number spoils the bound for good: it stays at 1)."""
        if not (math.isfinite(bad) and math.isfinite(total)):
            return replace(self, log_evalues=tuple(-math.inf for _ in _BOUND_GRID))
        if total <= 0:
            return self
        s = _BOUND_GRID[:, None]
        p_hat = (self.bad + 0.5) / (self.total + 1.0 / s)
        a = -np.expm1(-_LAMBDAS)[None, :]
        growth = -_LAMBDAS[None, :] * total * p_hat - _log_g(total * a * s, self.v)
        bets = _LAMBDAS[np.argmax(growth, axis=1)]
        bets = np.where(p_hat[:, 0] >= _BOUND_GRID, 0.0, bets)
        factors = -bets * bad - _log_g(total * -np.expm1(-bets) * _BOUND_GRID, self.v)
        factors = np.where(bets > 0, factors, 0.0)
        logs = np.asarray(self.log_evalues) + factors
        return replace(
            self, log_evalues=tuple(float(x) for x in logs), bad=self.bad + bad, total=self.total + total
        )
