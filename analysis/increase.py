r"""The absolute tolerance of a ratio metric: the canary's rate at most its baseline's plus a margin.

A relative tolerance ("at most 50 % more errors") asks little of a service at 1 % errors and
much of one at 0.01 %: at 0.01 % both tracks see almost no errors and "+50 %" can take hours to
show. What people often mean is absolute: "at most half a percentage point more errors than the
baseline" (``maxIncrease: 0.005``). `increase_bound` gives the largest such increase the data
still allow, at any look; the judge shows a ratio metric within its absolute tolerance once the
bound is below the margin.

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

References
----------
.. [1] S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform, nonparametric,
       nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.
.. [2] R. L. Berger, "Multiparameter hypothesis testing and acceptance sampling",
       Technometrics 24(4), 1982 (the union bound across the parts of a composite rule).
"""

from __future__ import annotations

import math

__all__ = ["increase_bound"]


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
