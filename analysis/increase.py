r"""The absolute tolerance of a ratio metric: the canary's rate at most its baseline's plus a margin.

A relative tolerance ("at most 50 % more errors") asks little of a service at 1 % errors and
much of one at 0.01 %: at 0.01 % both tracks see almost no errors and "+50 %" can take hours to
show. What people often mean is absolute: "at most half a percentage point more errors than the
baseline" (``maxIncrease: 0.005``). `increase_bound` gives the largest such increase the data
still allow, at any look; the judge shows a ratio metric within its absolute tolerance once the
bound is below the margin, or at the maximum duration when the fixed-horizon test of
`IncreaseSums` rejects "worse than the margin" (the final look, below).

Notes
-----
Let :math:`r_b` be the baseline's rate of bad events per request and :math:`\rho = r_c / r_b`
the rate ratio, so the canary's rate :math:`r_c` exceeds the baseline's by
:math:`(\rho - 1)\,r_b`. The null hypothesis is "worse than the margin":
:math:`r_c - r_b = (\rho - 1)\,r_b \ge \delta > 0`. Three anytime-valid upper bounds are at
hand, each at level :math:`\beta/3`:

- :math:`U^\rho_t`, the upper end of the confidence sequence of the rate ratio of
  `analysis.counts` (the conditional test: what both tracks share within an interval cancels);
- :math:`U^b_t` and :math:`U^c_t`, the upper confidence sequences of the baseline's and the
  canary's rates of `analysis.ceiling.RateBound` (proved under the jitter allowance fixed in
  advance there).

The judge declares the metric within the margin at look :math:`t` when

.. math::

    B_t = \min\bigl(\max(0, U^\rho_t - 1)\,U^b_t,\; U^c_t\bigr) < \delta .

The first term is tight where both tracks see many bad events, the second where they see few
(a canary whose own rate is shown below :math:`\delta` cannot exceed its baseline by
:math:`\delta`).

**Proof that a canary worse than the margin is declared within with probability at most**
:math:`\beta`. Under the null :math:`\rho > 1` and :math:`r_b > 0`. If at some look all three
sequences cover (:math:`\rho \le U^\rho_t`, :math:`r_b \le U^b_t`, :math:`r_c \le U^c_t`), then,
all factors being non-negative, :math:`\delta \le (\rho - 1)\,r_b \le (U^\rho_t - 1)\,U^b_t`
and :math:`\delta \le r_c - r_b \le r_c \le U^c_t`, so :math:`B_t \ge \delta` and nothing is
declared at that look. A wrong declaration therefore needs one of the three sequences to miss at
some look, which happens with probability at most :math:`3 \cdot \beta/3 = \beta` (union
bound). The validity of :math:`U^b` and :math:`U^c` is proved (`analysis.ceiling`); that of
:math:`U^\rho` is shown by simulation only (the confidence sequence of `analysis.counts` mixes
with the Bernoulli variance :math:`p(1-p)` rather than the sub-Gaussian constant of its
e-processes, and rests on its dispersion bound), so the combination is checked by simulation too
(``tests/unit/analysis/test_increase.py``: a canary exactly at the margin under independent
per-track jitter and shared incidents, where no run was promoted through this route).

The rates are taken as steady up to the jitter allowance: a canary worse than the margin at every
interval is covered, since each rate bound covers the smallest per-interval mean rate; a canary
worse than the margin only at its peak may be shown within it on average.

The bound is conservative (a union of three sequences): the price of making no assumption on
the baseline's rate, which the margin's meaning depends on.

**The final look.** At the analysis's maximum duration, one look fixed in advance, a
fixed-horizon test is far more powerful than the anytime bound (`IncreaseSums`, at its own share
of beta; the judge splits the absolute tolerance's share between the two, so the union bound
still gives beta). Interval :math:`i` with :math:`x_i` bad of :math:`n_i` canary requests and
:math:`y_i` of :math:`m_i` baseline requests contributes

.. math::

    d_i = w_i \Bigl(\frac{x_i}{n_i} - \frac{y_i}{m_i} - \delta\Bigr),
    \qquad D = \sum_i d_i ,

and :math:`D / \sum_i w_i + \delta` estimates the increase: each interval compares the two tracks
*within* itself, so what they share in it (an incident, a busy hour, a canary whose share of the
traffic changed) cancels.

*The weights.* With the Mantel-Haenszel weight :math:`h_i = n_i m_i / (n_i + m_i)` [3]_, the
inverse of the binomial variance of the difference, each interval counts in proportion to its
traffic; where each track's rate also jitters on its own, an interval's variance grows with the
square of its traffic instead, and one interval of twenty times the traffic (a burst, or adaptive
exposure raising the canary's weight) outweighs the others: the sandwich below then sees one
cluster: with each track jittering by 30 %, traffic that doubles twice and then bursts x20 in
one interval, a good canary at 0.05 % errors and 10 req/s was shown within +0.5 pp in 0 % of
runs, one at 1 % and 50 req/s in 26 % (``tests/unit/analysis/test_increase.py``). Under the
dispersion model of `analysis.counts` (each track's rate jittering by a factor of variance
:math:`\kappa/2`) the variance of :math:`x_i/n_i - y_i/m_i` is about
:math:`(r / h_i)(1 + \kappa r h_i / \ell_i)`, :math:`\ell_i` the intervals the counts cover (1, or
the span of a look read back over looks without data, whose jitter is that of :math:`\ell_i`
intervals), so the weights are the quasi-likelihood ones

.. math::

    w_i = \frac{h_i}{1 + \kappa_0\, \bar r_{i-1} h_i / \ell_i},

with :math:`\kappa_0` the dispersion bound fixed before the analysis (learned from the stable's
history, or `analysis.counts.KAPPA_MAX`) and :math:`\bar r_{i-1}` the pooled rate of bad events
of both tracks in the intervals before :math:`i`, :math:`(\sum_{j<i}(x_j + y_j) + 1/2) /
(\sum_{j<i}(n_j + m_j) + 1)`; weighted so, the same canaries were shown within in 100 % and
99.9 % of runs. The variance is predicted, not observed: from the second interval on,
:math:`w_i` is a function of the traffic, the span and the intervals before :math:`i` only. The first
interval has no past and takes the baseline's own rate in it, :math:`(y_1 + 1/2)/(m_1 + 1)`.
Write :math:`S` for the interval's shared factor, :math:`c` and :math:`b` for the canary's and the
baseline's own, so that :math:`E[x_1/n_1 \mid S, c] = S c\, r_c` and
:math:`E[y_1/m_1 \mid S] = S r_b`. Given :math:`S`, :math:`c` and :math:`x_1`, the weight
:math:`w_1` and :math:`d_1 / w_1 = x_1/n_1 - y_1/m_1 - \delta` are both decreasing functions of
:math:`y_1` alone, so they are positively correlated [7]_:
:math:`E[d_1 \mid S, c, x_1] \ge E[w_1 \mid S]\,(x_1/n_1 - S r_b - \delta)` (the law of
:math:`y_1` given :math:`S` does not involve :math:`c` or :math:`x_1`). Averaging over :math:`x_1`
and :math:`c` (of mean one), :math:`E[d_1 \mid S] \ge E[w_1 \mid S]\,(S (r_c - r_b) - \delta)`,
which is at least 0 wherever the canary is at least :math:`\delta` worse in that interval: the
first term leans towards "worse", away from a promotion (as in
`analysis.counts.CountState.final_log_pvalue`). With :math:`\kappa_0 = 0` the weights are
Mantel-Haenszel's. With steady traffic they are about equal (they still vary with the Poisson
traffic, the pooled past rate and the first interval's count), so the evidence plan's formulas
(`analysis.outlook`) stand; the judge's outcomes on steady traffic moved by one or two runs in
200 (BENCHMARKS.md).

At the boundary of the null, a canary exactly :math:`\delta` worse than its baseline in every
interval, :math:`E[d_i \mid \mathcal F_{i-1}, n_i, m_i] = w_i \cdot 0`: the :math:`d_i` are
martingale differences whatever their own variances (each track's rate jittering on its own,
independently from one interval to the next), so :math:`\sum_i d_i^2` estimates the variance of
:math:`D` without a model (the robust "sandwich" variance, intervals as clusters [4]_). It is
taken no smaller than the binomial variance at the rates the null allows given the baseline's
own rate, :math:`V_0 = \tilde r_c (1 - \tilde r_c) \sum_i w_i^2 / n_i + \tilde r_b (1 - \tilde r_b)
\sum_i w_i^2 / m_i` with :math:`\tilde r_b = Y / M` clipped to :math:`[0, 1 - \delta]` and
:math:`\tilde r_c = \tilde r_b + \delta` (:math:`Y` of :math:`M` the baseline's totals): with few
bad events the sandwich alone can be near 0, so the floor takes the canary at the margin, as a
score test takes the variance at the null [5]_. The baseline's rate is used rather than the
rate pooled under the null, which falls with the canary's own count, on the side that rejects:
with it the look rejected a canary at the margin in 2.5 % of runs at 0.5 req/s for a level of
1.25 % (the look's first, smaller share). The statistic

.. math::

    T = \frac{-D}{\sqrt{\max(\sum_i d_i^2,\ V_0)}}

is referred to Student's t with :math:`n - 1` degrees of freedom (:math:`n` the intervals
counted); the metric is within its margin when :math:`P(t_{n-1} > T)` is at most
``FINAL_LEVEL_FACTOR`` (a quarter) times the look's share of beta. A canary worse than the margin
in every interval only makes :math:`D` larger. The factor pays for skew: with a track's rate
jittering by a log-normal factor, an interval's variance grows with its rate, so a run whose
canary happened to run low has both a low :math:`D` and a low :math:`\sum_i d_i^2`, and the
self-normalized statistic is heavier in the tail that rejects than Student's t (the first
Edgeworth term of a studentized sum [6]_). Referred to Student's t at the full share (1.875 %
at the default beta), a canary at the margin was shown within it in up to twice the share (the
canary's rate alone jittering with sd 0.5, 500 req/s, 40 intervals, unweighted). At a quarter,
the worst of the cells simulated with each track's jitter at sd 0.5 or less (the canary's alone,
the baseline's alone, both, shared incidents, the canary a quarter and four times its baseline's
traffic, 0.5-500 req/s, 40-240 intervals) was 1.1 % with the weights at `analysis.counts.KAPPA_MAX`
(1.2 % with Mantel-Haenszel's), and 1.4 % over the same cells with steady traffic, traffic that
doubles twice, or doubles and bursts x20 in one interval, and the bound at 0, 0.1 or 0.5 (468
cells; a review's 1,980 further cells, with bursts in the first interval, on one track only, and
the canary's traffic rising from a twentieth of the baseline's to as much, found at most 1.45 %,
1.0 % when run again at 40,000 runs); with the canary's rate alone jittering at sd 0.8 it was
about 2.6 % (beyond the range the judge is built for; the promotion error is then at most about
6 % rather than 5 %). This is shown by simulation, not proved
(``tests/unit/analysis/test_increase.py``). The null covered is a canary worse than the
margin by :math:`\delta` in every interval, up to each track's jitter, independent across
intervals: a canary worse only in a few bursts can be shown within the margin on average, as
for the anytime bound, and jitter that persists over many intervals makes the intervals
dependent, which the sandwich does not see. Since :math:`\sum_i d_i^2 \ge D^2 / n`, :math:`T` is
at most :math:`\sqrt n` and the look cannot pass with fewer than eleven intervals (at the
default beta; `analysis.outlook` plans no fewer).

References
----------
.. [1] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
.. [2] R. L. Berger, "Multiparameter hypothesis testing and acceptance sampling",
       Technometrics 24(4), 1982 (the union bound across the parts of a composite rule).
.. [3] S. Greenland and J. M. Robins, "Estimation of a common effect parameter from sparse
       follow-up data", Biometrics 41(1), 1985 (the Mantel-Haenszel risk difference).
.. [4] A. C. Cameron and D. L. Miller, "A practitioner's guide to cluster-robust inference",
       J. Human Resources 50(2), 2015.
.. [5] C. P. Farrington and G. Manning, "Test statistics and sample size formulae for
       comparative binomial trials with null hypothesis of non-zero risk difference or non-unity
       relative risk", Statistics in Medicine 9(12), 1990.
.. [6] P. Hall, *The Bootstrap and Edgeworth Expansion*, Springer, 1992, §2.6.
.. [7] J. D. Esary, F. Proschan and D. W. Walkup, "Association of random variables, with
       applications", Ann. Math. Statist. 38(5), 1967 (Theorem 2.1: one variable is associated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from analysis.evalues import FloatArray
from analysis.special import student_t_logsf

__all__ = ["FINAL_LEVEL_FACTOR", "IncreaseSums", "final_log_pvalue", "increase_bound", "increase_weight"]

#: The final look rejects at this fraction of its share of beta (the notes: skew).
FINAL_LEVEL_FACTOR = 0.25


def increase_bound(ratio_upper: float, rate_upper: float, canary_upper: float = 1.0) -> float:
    r"""The largest increase of the canary's rate over its baseline's the data still allow.

    Parameters
    ----------
    ratio_upper : float
        :math:`U^\rho`: the anytime upper bound of the rate ratio canary / baseline (may be inf).
    rate_upper : float
        :math:`U^b`: the anytime upper bound of the baseline's rate, in [0, 1].
    canary_upper : float, default 1.0
        :math:`U^c`: the anytime upper bound of the canary's rate, in [0, 1].

    Returns
    -------
    float
        :math:`B = \min(\max(0, U^\rho - 1)\,U^b, U^c)`, a rate difference (0.005 is half a
        percentage point).

    Examples
    --------
    >>> round(increase_bound(1.4, 0.01), 6)  # at most 40 % more than a rate of at most 1 %: 0.4 points
    0.004
    >>> increase_bound(0.9, 0.01)
    0.0
    >>> increase_bound(math.inf, 0.01, 0.002)  # few errors: the canary's own bound decides
    0.002
    """
    if math.isnan(ratio_upper) or math.isnan(rate_upper) or math.isnan(canary_upper):
        return canary_upper if not math.isnan(canary_upper) else math.inf
    relative = 0.0 if ratio_upper <= 1.0 or rate_upper <= 0.0 else (ratio_upper - 1.0) * rate_upper
    return min(relative, canary_upper)


def increase_weight(
    canary_total: FloatArray | float,
    baseline_total: FloatArray | float,
    rate: FloatArray | float,
    dispersion: float,
    span: float = 1.0,
) -> FloatArray:
    r"""An interval's weight in the final look (the notes): :math:`w_i = h_i / (1 + \kappa_0 r h_i / \ell_i)`
    with :math:`h_i = n_i m_i / (n_i + m_i)`, elementwise; :math:`\ell_i` is the span, the intervals the
    counts cover (1, or more for a look read back over looks without data, whose jitter is that of
    :math:`\ell_i` intervals: the difference of rates varies by about :math:`r / h_i + \kappa r^2 / \ell_i`).

    Parameters
    ----------
    canary_total, baseline_total : array_like
        :math:`n_i` and :math:`m_i`, the interval's requests (positive).
    rate : array_like
        :math:`r`, the rate of bad events predicted for the interval before its own data (see the
        notes for which one).
    dispersion : float
        :math:`\kappa_0` (0: the Mantel-Haenszel weight :math:`h_i`).
    span : float
        :math:`\ell_i` (>= 1).

    Examples
    --------
    >>> round(float(increase_weight(60.0, 60.0, 0.001, 0.5)), 2)  # few events: Mantel-Haenszel's 30
    29.56
    >>> float(increase_weight(1200.0, 1200.0, 0.01, 0.5))  # a burst x20: its jitter, not its 600
    150.0
    """
    n = np.asarray(canary_total, dtype=np.float64)
    m = np.asarray(baseline_total, dtype=np.float64)
    h = n * m / (n + m)
    result: FloatArray = h / (1.0 + dispersion * np.asarray(rate, dtype=np.float64) * h / span)
    return result


@dataclass(frozen=True, slots=True)
class IncreaseSums:
    r"""What the absolute tolerance's final look needs (see the notes), one interval at a time.

    Parameters
    ----------
    margin : float
        :math:`\delta`, the absolute tolerance (0.002 is 0.2 percentage points).
    dispersion : float, default 0.0
        :math:`\kappa_0`, the dispersion bound fixed before the analysis, for the weights (the
        judge's: `analysis.counts.KAPPA_MAX` or less where the stable's history taught it); 0
        gives the Mantel-Haenszel weights.

    Examples
    --------
    >>> sums = IncreaseSums(0.002)
    >>> for _ in range(120):  # an hour at 2 req/s per track, 0.05 % errors on both
    ...     sums = sums.step(0.03, 60.0, 0.03, 60.0)
    >>> round(sums.increase, 6), sums.final_pvalue() < 0.01875 * FINAL_LEVEL_FACTOR  # the default share
    (0.0, True)
    """

    margin: float
    #: :math:`\kappa_0`, the dispersion bound fixed before the analysis (the notes: the weights);
    #: 0 gives the Mantel-Haenszel weights.
    dispersion: float = 0.0
    #: :math:`D = \sum_i d_i` and :math:`\sum_i d_i^2`.
    score: float = 0.0
    squares: float = 0.0
    #: :math:`\sum_i w_i`, :math:`\sum_i w_i^2 / n_i` and :math:`\sum_i w_i^2 / m_i`.
    weight: float = 0.0
    canary_weight: float = 0.0
    baseline_weight: float = 0.0
    intervals: int = 0
    baseline_bad: float = 0.0
    baseline_total: float = 0.0
    canary_bad: float = 0.0
    canary_total: float = 0.0

    def step(
        self,
        canary_bad: float,
        canary_total: float,
        baseline_bad: float,
        baseline_total: float,
        *,
        span: float = 1.0,
    ) -> IncreaseSums:
        """The sums with one more interval (its counts over `span` intervals); an interval where a
        track saw no requests adds nothing. A non-finite count makes the sums NaN, which never pass."""
        if not (canary_total > 0 and baseline_total > 0):
            return self
        seen = self.canary_total + self.baseline_total
        rate = (
            (self.canary_bad + self.baseline_bad + 0.5) / (seen + 1.0)
            if seen > 0
            else (baseline_bad + 0.5) / (baseline_total + 1.0)
        )
        w = float(increase_weight(canary_total, baseline_total, rate, self.dispersion, span))
        d = w * (canary_bad / canary_total - baseline_bad / baseline_total - self.margin)
        return replace(
            self, score=self.score + d, squares=self.squares + d * d, weight=self.weight + w,
            canary_weight=self.canary_weight + w * w / canary_total,
            baseline_weight=self.baseline_weight + w * w / baseline_total, intervals=self.intervals + 1,
            baseline_bad=self.baseline_bad + baseline_bad,
            baseline_total=self.baseline_total + baseline_total,
            canary_bad=self.canary_bad + canary_bad, canary_total=self.canary_total + canary_total,
        )  # fmt: skip

    @property
    def increase(self) -> float:
        """The weighted estimate of the canary's rate minus the baseline's (nan before data)."""
        return self.score / self.weight + self.margin if self.weight > 0 else math.nan

    def final_pvalue(self) -> float:
        """The p-value of the final look against "worse than the margin" (1 before data)."""
        values = (self.score, self.squares, self.baseline_bad, self.weight)
        if self.intervals == 0 or not all(math.isfinite(v) for v in values):
            return 1.0
        log_p = final_log_pvalue(
            self.score, self.squares, float(self.intervals), self.canary_weight, self.baseline_weight,
            self.baseline_bad / self.baseline_total, self.margin,
        )  # fmt: skip
        return math.exp(float(log_p))


def final_log_pvalue(
    score: FloatArray | float,
    squares: FloatArray | float,
    intervals: FloatArray | float,
    canary_weight: FloatArray | float,
    baseline_weight: FloatArray | float,
    baseline_rate: FloatArray | float,
    margin: float,
) -> FloatArray:
    r"""The log p-value of the final look from its sums (`IncreaseSums`), elementwise.

    Parameters
    ----------
    score, squares : array_like
        :math:`D` and :math:`\sum_i d_i^2`.
    intervals : array_like
        :math:`n`, the intervals counted (the p-value is 1 where it is 0).
    canary_weight, baseline_weight : array_like
        :math:`\sum_i w_i^2 / n_i` and :math:`\sum_i w_i^2 / m_i`.
    baseline_rate : array_like
        :math:`Y / M`, the baseline's rate of bad events over the intervals counted.
    margin : float
        :math:`\delta`.

    Returns
    -------
    ndarray
        :math:`\log P(t_{n-1} > T)`.
    """
    rb = np.clip(np.asarray(baseline_rate, dtype=np.float64), 0.0, 1.0 - margin)
    rc = rb + margin
    binomial = rc * (1.0 - rc) * np.asarray(canary_weight) + rb * (1.0 - rb) * np.asarray(baseline_weight)
    variance = np.maximum(np.asarray(squares, dtype=np.float64), binomial)
    t = np.where(variance > 0, -np.asarray(score) / np.sqrt(np.maximum(variance, 1e-300)), 0.0)
    count = np.asarray(intervals, dtype=np.float64)
    result: FloatArray = np.where(count > 0, student_t_logsf(t, np.maximum(count - 1.0, 1.0)), 0.0)
    return result
