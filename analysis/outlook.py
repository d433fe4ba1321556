r"""The evidence plan: at the traffic seen so far, how long must the analysis run to decide?

From the first intervals the judge knows, per count metric, how many requests each track gets per
interval and how often the counted event happens (errors, or requests slower than each latency
bound the promotion needs). `required_intervals` turns that into the number of intervals of data that the
final look (the fixed-horizon test at the maximum duration) needs to show a canary that behaves
exactly like its baseline within tolerance, with 80 % probability. An operator reads it next to
the analysis's maximum (``canaryflow get --watch``, the verdicts' reasons): a plan far beyond the
maximum means an inconclusive end unless the maximum duration, the canary's traffic or the
tolerance changes. It is a design calculation on the observed traffic, not on the observed
difference; it moves while the first intervals estimate the traffic's dispersion (below) and
while a histogram's resolved bounds settle. No promotion or rollback
depends on it or on the chance below (the chance can only end an analysis early as inconclusive),
so neither spends any of the error budget.

Notes
-----
For a rate :math:`q` per request (the baseline's, estimated), :math:`n_c` and :math:`n_b` requests
per interval on the canary and baseline tracks and :math:`T` intervals, the log ratio of the two
tracks' rates has variance about

.. math::

    \sigma^2_T = \frac{\varphi (1 - q)}{q\,T} \left(\frac{1}{n_c} + \frac{1}{n_b}\right)

(the delta method for two binomial proportions [1]_, :math:`\varphi \ge 1` the dispersion factor
of an interval). The judge takes :math:`\varphi = 1 + \hat\kappa\,\bar a`, the count tests'
moment estimate of the extra variance (`analysis.counts.CountState.plan_dispersion`: 0 until
three intervals on the good side tell, a point estimate, not the upper one the weights use) times
the average binomial level of an interval: with each track's rate varying on its own the final
look's studentized variance grows by that factor, and a plan at :math:`\varphi = 1` promised
7 intervals for traffic where about two thirds of good canaries ended promoted. For a histogram every
resolved bound must pass (an intersection-union test), so the plan is the longest of the
resolved bounds' plans and its chance the smallest, each bound at its own rate (the baseline's
share slower than it), dispersion and tolerance: the one on that share which the latency
tolerance gives a canary like its baseline (`analysis.histogram.HistogramTestResult.planned`;
+10 % latency is about +18 % on the share at the median of a log-normal of sd 0.5, +50 % in its
5 % tail). Before, the plan took the latency tolerance for the share's and one bound only.

The final test rejects "worse than the tolerance" (log ratio at least
:math:`\delta = \log(1 + \mathrm{tol})`) at level :math:`\beta_f`; for a canary equal to its
baseline (log ratio 0) it does so with probability :math:`1 - \pi` when
:math:`\delta / \sigma_T \ge z_{\beta_f} + z_{\pi}` [2]_, so

.. math::

    T^* = \frac{\varphi (1 - q) (z_{\beta_f} + z_\pi)^2}{q\,\delta^2}
          \left(\frac{1}{n_c} + \frac{1}{n_b}\right),
    \qquad \pi = 0.2 .

With a ceiling :math:`c` (``maxRate``) a canary is also within tolerance once its rate is shown
below :math:`c`; for a canary at the baseline's :math:`q < c` the one-sample version needs about
:math:`T_c = (z_{\beta_c}\sqrt{c} + z_\pi\sqrt{q})^2 / (n_c (c - q)^2)` intervals (the normal
approximation to the Poisson rate), and the plan is the smaller of the two. Without events on the
baseline (:math:`q = 0`) only the ceiling can decide. The final test's statistic is at most
:math:`\sqrt T` (Cauchy-Schwarz: its studentizer is no smaller than its uncentred squares), so
the relative test's plan is never shorter than the least :math:`T` with
:math:`t_{\beta_f, T - 1} < \sqrt T` (six intervals at the default beta), and its chance at a
final look before that is 0: a normal approximation would otherwise promise a look that cannot
pass (13-15 % at 5 intervals).

**An absolute tolerance.** A ratio metric with ``maxIncrease`` :math:`\delta` is also within
tolerance when its final look (`analysis.increase`) rejects "the canary's rate exceeds the
baseline's by :math:`\delta`"; either route suffices, so the plan is the shorter of the two and
the chance the larger. With :math:`w = n_c n_b / (n_c + n_b)` the Mantel-Haenszel weight of an
interval, a canary like its baseline gives :math:`-D` mean :math:`T w \delta` and variance
:math:`T a`, :math:`a = \varphi w q (1 - q)`; the look's studentizer is about
:math:`T s^2` with :math:`s^2 = \max(a + w^2\delta^2,\ f)`, its uncentred squares or its binomial
floor :math:`f = w^2((q + \delta)(1 - q - \delta) / n_c + q (1 - q) / n_b)`, so

.. math::

    T^*_\delta = \frac{(z_{\beta_a} s + z_\pi \sqrt a)^2}{w^2 \delta^2},
    \qquad
    \Pr(\text{shown}) \approx \Phi\left(\frac{F w \delta - t_{\beta_a, F - 1} \sqrt{F}\, s}
    {\sqrt{F a}}\right)

at the look's level :math:`\beta_a` (the plan with the dispersion factor, the chance at
:math:`\varphi = 1`, as for the relative test). Since the look's statistic is at most
:math:`\sqrt T` (its studentizer is no smaller than its uncentred squares), the plan is never
shorter than the least :math:`T` with :math:`t_{\beta_a, T - 1} < \sqrt T` (eleven intervals at
the default beta). Here a smaller rate is the favourable one (less variance), so the chance
takes the lower confidence bound of :math:`q`. Adaptive exposure does not raise on
this route (`EvidencePlan.absolute`), and the judge does not give up on a metric with an absolute
tolerance: its raises and the give-up rule were measured on the relative route.

**The chance of a decision.** Beside the plan, `chance_within` approximates the probability that
the final look, at the maximum duration :math:`F` intervals, shows a canary equal to its baseline
within tolerance. For the relative test it works on that test's own scale (`analysis.counts`,
``final_log_pvalue``): with :math:`\bar k = q(n_c + n_b)` pooled events per interval,
:math:`p_1 = n_c / (n_c + n_b)` the canary's share of them when it is like its baseline and
:math:`p_0` the share at the tolerance bound, the score :math:`-D` has mean
:math:`\mu = F\bar k (p_0 - p_1)` and variance :math:`\sigma^2 = F\bar k p_1(1 - p_1)`, the
test's studentizer is about :math:`s^2 = \max(\sigma^2 + F(\bar k^2 + \bar k)(p_0 - p_1)^2,\ F\bar k
p_0 (1 - p_0))` (its uncentred squares, or the binomial floor), and it refers to Student's t on
:math:`\nu = \max(1, F(1 - e^{-\bar k}) - 1)` degrees of freedom (the expected intervals with
events, less one), so

.. math::

    \Pr(\text{shown}) \approx \Phi\left(\frac{\mu - t_{\beta_f,\nu}\, s}{\sigma}\right)

(finite-population factors left out here). For the ceiling it is
:math:`\Phi((\sqrt{n_c F}\,(c - q) - z_{\beta_c}\sqrt{c}) / \sqrt{q})` (1 or 0 in the limit
:math:`q \to 0`, as :math:`n_c F c` exceeds :math:`z_{\beta_c}^2` or not); the larger of the two
counts, since either suffices. Both take the dispersion factor 1 and, for :math:`q`, the most
favourable rate the data allow: for the relative test the 95 % upper confidence bound of the
baseline's rate from its :math:`e` events out of :math:`n_b` requests, :math:`u = (e + 1)(1 -
1/(9(e + 1)) + z_{0.95} / (3\sqrt{e + 1}))^3 / n_b` (Wilson and Hilferty's approximation to the
Poisson limit [3]_; :math:`3/n_b` for no events; the judge takes it at most halfway from
:math:`q` to 1, since near a share of 1 the approximation has no spread left and would say 0),
for the ceiling the lower bound :math:`e(1 -
1/(9e) - z_{0.95} / (3\sqrt e))^3 / n_b` (0 for no events). A larger rate carries more
information per request for the relative test, a smaller one leaves more room under the
ceiling, and overdispersion only adds variance. Treating the studentizer as fixed makes the
approximation rough where the chance is middling (it can be 0.2 too low there: the studentizer
is skewed), but where it is small it errs on the hopeful side: on a grid of rates (0.05-30 %),
traffic (2-50 req/s, unequal tracks), 3-120 intervals and tolerances of +10-100 %, every chance
below 15 % was at least the simulated test's (``tests/unit/analysis/test_outlook.py`` checks a
part of that grid). That is the side the judge relies on: it ends an analysis as inconclusive
once a ratio metric's chance falls below ``min_chance`` (`analysis.judge`), when even the most
favourable rate the data allow leaves the final look little hope and waiting only exposes users
longer; a canary it gives up on would then have been promoted less often than ``min_chance``
(the same file measures it on the benchmark's good canaries).

The plan is approximate: the tests are studentized (Student's t, a few degrees of freedom fewer),
the histogram test takes the largest p-value over several bounds, and traffic changes. The final
looks weight each interval by the inverse of the dispersion factor its traffic predicts
(`analysis.counts.CountState.final_log_pvalue`, `analysis.increase`, where :math:`w` above is
the Mantel-Haenszel part of the weight); at the steady traffic the plan assumes the
weights are about equal and cancel in the studentized statistics, so the formulas above stand
(``tests/unit/analysis/test_outlook.py`` simulates the judge's own statistic).
``tests/unit/analysis/test_outlook.py`` checks on the benchmark's scenarios that analyses whose
plan fits the maximum duration end promoted far more often than those whose plan does not.

References
----------
.. [1] A. Agresti, *Categorical Data Analysis*, 3rd ed., Wiley, 2013, §3.1.4 (the log relative
       risk).
.. [2] S.-C. Chow, J. Shao and H. Wang, *Sample Size Calculations in Clinical Research*, 2nd ed.,
       Chapman & Hall, 2008, §4.2 (non-inferiority for two proportions).
.. [3] N. L. Johnson, A. W. Kemp and S. Kotz, *Univariate Discrete Distributions*, 3rd ed., Wiley,
       2005, §4.7.3 (approximate confidence limits for the Poisson mean).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

from analysis.checks import check_fraction, check_tolerance
from analysis.special import student_t_isf

__all__ = [
    "POWER",
    "EvidencePlan",
    "chance_text",
    "chance_within",
    "increase_chance",
    "increase_intervals",
    "rate_bounds",
    "required_intervals",
]

_NORMAL = NormalDist()
#: The probability with which the plan's duration shows a canary equal to its baseline within
#: tolerance.
POWER = 0.8


@dataclass(frozen=True, slots=True)
class EvidencePlan:
    """A metric's evidence plan: the intervals of data it needs at the traffic seen so far.

    Attributes
    ----------
    needed_intervals
        Intervals of data after which the final look shows a canary equal to its baseline within
        tolerance with probability `POWER`; ``None`` when no amount of this traffic does (no
        events on the baseline and no ceiling, or a latency bound its buckets cannot pass).
    final_interval
        The final look's interval (the maximum duration).
    absolute
        Whether the metric has an absolute tolerance whose final look the plan counts.
    chance
        The probability that the final look shows a canary equal to its baseline within
        tolerance, at the most favourable rate the data allow (`chance_within`); ``None`` when
        not computed.
    """

    needed_intervals: int | None
    final_interval: int
    chance: float | None = None
    #: Whether the plan counts an absolute tolerance's final look (``maxIncrease``), which
    #: adaptive exposure does not plan for.
    absolute: bool = False

    @property
    def fits(self) -> bool:
        """Whether the plan fits within the maximum duration."""
        return self.needed_intervals is not None and self.needed_intervals <= self.final_interval

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        out: dict[str, object] = {
            "needed_intervals": self.needed_intervals,
            "final_interval": self.final_interval,
        }
        if self.chance is not None:
            out["chance"] = self.chance
        return out

    def sentence(self) -> str:
        """One clause for people."""
        if self.needed_intervals is None:
            return (
                "at this traffic no amount of data shows it within tolerance "
                "(no events on the baseline and no ceiling, or a latency bound its buckets cannot pass)"
            )
        if self.fits:
            return (
                f"at this traffic a canary like its baseline is shown within tolerance by interval "
                f"{self.final_interval} at the latest (the final look needs about {self.needed_intervals} "
                "intervals of data; the running evidence may promote it earlier)"
            )
        chance = ""
        if self.chance is not None:
            chance = f" (chance of a promotion by then at most {chance_text(self.chance)})"
        return (
            f"at this traffic it needs about {self.needed_intervals} intervals, more than the "
            f"{self.final_interval} of the maximum duration{chance}: expect an inconclusive end unless the "
            "maximum duration, the canary's traffic or the tolerance grows"
        )


def chance_text(value: float) -> str:
    """A chance for people: whole percent, a small positive chance as "1 %" rather than "0 %"."""
    if value < 0.01:
        return "1 %" if value > 0.0 else "0 %"
    return f"{100 * value:.0f} %"


def required_intervals(
    *,
    rate: float,
    canary_per_interval: float,
    baseline_per_interval: float,
    tolerance: float,
    level: float,
    dispersion: float = 1.0,
    ceiling: float | None = None,
    ceiling_level: float | None = None,
    power: float = POWER,
) -> float | None:
    """Intervals of data the final look needs (module notes); ``None`` when none suffice.

    Parameters
    ----------
    rate
        The baseline's rate of the counted event per request, in ``[0, 1]``.
    canary_per_interval, baseline_per_interval
        Requests per interval on each track (> 0).
    tolerance
        The relative tolerance (> 0).
    level, power
        The final test's level and the wanted power, in ``(0, 1)``.
    dispersion
        The dispersion factor (>= 1).
    ceiling, ceiling_level
        The ceiling on the canary's rate and its test's level, or ``None``.
    """
    _check(rate, canary_per_interval, baseline_per_interval, tolerance, level, power, dispersion)
    z_power = _NORMAL.inv_cdf(power)
    plans: list[float] = []
    if rate > 0.0:
        margin = math.log1p(tolerance)
        spread = dispersion * (1.0 - rate) / rate * (1.0 / canary_per_interval + 1.0 / baseline_per_interval)
        normal = spread * (_NORMAL.inv_cdf(1.0 - level) + z_power) ** 2 / margin**2
        plans.append(max(normal, float(_least_intervals(level))))
    if ceiling is not None and ceiling_level is not None and 0.0 < ceiling_level < 1.0 and rate < ceiling:
        z_c = _NORMAL.inv_cdf(1.0 - ceiling_level)
        need = (z_c * math.sqrt(ceiling) + z_power * math.sqrt(rate)) ** 2 / (ceiling - rate) ** 2
        plans.append(dispersion * need / canary_per_interval)
    return min(plans) if plans else None


def increase_intervals(
    *,
    rate: float,
    canary_per_interval: float,
    baseline_per_interval: float,
    margin: float,
    level: float,
    dispersion: float = 1.0,
    power: float = POWER,
) -> float:
    """Intervals of data an absolute tolerance's final look needs (module notes: an absolute
    tolerance); parameters as `required_intervals`, `margin` the absolute tolerance in (0, 1)."""
    _check(rate, canary_per_interval, baseline_per_interval, 1.0, level, power, dispersion)
    weight, spread, studentizer = _increase_terms(
        rate, canary_per_interval, baseline_per_interval, margin, dispersion
    )
    z = _NORMAL.inv_cdf(1.0 - level) * studentizer + _NORMAL.inv_cdf(power) * math.sqrt(spread)
    scale = (weight * margin) ** 2
    if not scale > 0.0:  # a margin so small that its square underflows: no amount of data
        return math.inf
    return max(z * z / scale, float(_least_intervals(level)))


@functools.lru_cache(maxsize=256)
def _least_intervals(level: float) -> int:
    """The fewest intervals at which a studentized look (statistic at most the square root of the
    intervals) can pass at `level`: the least T with Student's t quantile on T - 1 below sqrt(T)."""
    intervals = 2
    while student_t_isf(level, intervals - 1.0) >= math.sqrt(intervals) and intervals < 10_000:
        intervals += 1
    return intervals


def increase_chance(
    *,
    rate: float,
    canary_per_interval: float,
    baseline_per_interval: float,
    intervals: int,
    margin: float,
    level: float,
) -> float:
    """The probability that an absolute tolerance's final look after `intervals` intervals shows a
    canary equal to its baseline within the margin (module notes), at dispersion factor 1."""
    _check(rate, canary_per_interval, baseline_per_interval, 1.0, level, 0.5, 1.0)
    if intervals < 1:
        raise ValueError(f"intervals must be >= 1, got {intervals}")
    weight, spread, studentizer = _increase_terms(
        rate, canary_per_interval, baseline_per_interval, margin, 1.0
    )
    critical = student_t_isf(level, max(1.0, intervals - 1.0))
    reach = intervals * weight * margin - critical * math.sqrt(intervals) * studentizer
    if spread <= 0.0:  # no events to vary: the look passes exactly when the floor allows it
        return 1.0 if reach > 0.0 else 0.0
    return _NORMAL.cdf(reach / math.sqrt(intervals * spread))


def _increase_terms(
    rate: float, canary: float, baseline: float, margin: float, dispersion: float
) -> tuple[float, float, float]:
    """:math:`w`, :math:`a` and :math:`s` of the module notes."""
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin must be in (0, 1), got {margin}")
    weight = canary * baseline / (canary + baseline)
    spread = dispersion * weight * rate * (1.0 - rate)
    worse = min(rate + margin, 1.0)
    floor = weight * weight * (worse * (1.0 - worse) / canary + rate * (1.0 - rate) / baseline)
    return weight, spread, math.sqrt(max(spread + (weight * margin) ** 2, floor))


def rate_bounds(events: float, requests: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """The lower and upper one-sided confidence bounds of a rate per request from `events` out of
    `requests` (module notes; within ``[0, 1]``)."""
    if not (events >= 0.0 and requests > 0.0 and math.isfinite(events) and math.isfinite(requests)):
        raise ValueError(f"events must be >= 0 and requests > 0, got {events} and {requests}")
    check_fraction("confidence", confidence)
    z = _NORMAL.inv_cdf(confidence)
    k = events + 1.0
    upper = k * (1.0 - 1.0 / (9.0 * k) + z / (3.0 * math.sqrt(k))) ** 3
    lower = 0.0
    if events > 0.0:
        lower = events * max(0.0, 1.0 - 1.0 / (9.0 * events) - z / (3.0 * math.sqrt(events))) ** 3
    return min(1.0, lower / requests), min(1.0, upper / requests)


def chance_within(
    *,
    rate: float | tuple[float, float],
    canary_per_interval: float,
    baseline_per_interval: float,
    intervals: int,
    tolerance: float,
    level: float,
    ceiling: float | None = None,
    ceiling_level: float | None = None,
) -> float:
    """The probability that the final look after `intervals` intervals shows a canary equal to its
    baseline within tolerance (module notes), at the given rate and dispersion factor 1.

    Parameters are those of `required_intervals`; `intervals` (>= 1) is the final look's. `rate`
    may be a pair ``(low, high)`` of bounds: the relative test is then planned at ``high`` and
    the ceiling at ``low``, each at its most favourable rate.
    """
    low, rate = rate if isinstance(rate, tuple) else (rate, rate)
    _check(low, canary_per_interval, baseline_per_interval, tolerance, level, 0.5, 1.0)
    _check(rate, canary_per_interval, baseline_per_interval, tolerance, level, 0.5, 1.0)
    if intervals < 1:
        raise ValueError(f"intervals must be >= 1, got {intervals}")
    chances = [0.0]
    if 0.0 < rate < 1.0:
        chances.append(
            _relative_chance(rate, canary_per_interval, baseline_per_interval, intervals, tolerance, level)
        )
    if ceiling is not None and ceiling_level is not None and 0.0 < ceiling_level < 1.0 and low < ceiling:
        reach = math.sqrt(canary_per_interval * intervals) * (ceiling - low)
        shortfall = reach - _NORMAL.inv_cdf(1.0 - ceiling_level) * math.sqrt(ceiling)
        if low > 0.0:
            chances.append(_NORMAL.cdf(shortfall / math.sqrt(low)))
        else:  # the limit q -> 0: certain once n_c F c exceeds z squared, hopeless before
            chances.append(1.0 if shortfall > 0.0 else 0.0)
    return max(chances)


def _relative_chance(
    rate: float, canary: float, baseline: float, intervals: int, tolerance: float, level: float
) -> float:
    """The relative test's part of `chance_within` (module notes), on the final test's own scale."""
    total = canary + baseline
    share = canary / total  # the canary's share of the pooled events when it is like its baseline
    bound = canary * (1.0 + tolerance) / (canary * (1.0 + tolerance) + baseline)
    events = rate * total  # pooled events per interval
    finite = max(0.0, (total - events) / max(total - 1.0, 1.0))
    drift = intervals * events * (bound - share)
    spread = intervals * events * share * (1.0 - share) * finite
    squares = spread + intervals * (events * events + events) * (bound - share) ** 2
    studentizer = math.sqrt(max(squares, intervals * events * bound * (1.0 - bound) * finite))
    if spread <= 0.0 or intervals < _least_intervals(level):
        return 0.0  # no variance to move, or a look whose statistic cannot reach its quantile
    with_events = intervals * -math.expm1(-events)
    critical = student_t_isf(level, max(1.0, with_events - 1.0))
    return _NORMAL.cdf((drift - critical * studentizer) / math.sqrt(spread))


def _check(
    rate: float,
    canary: float,
    baseline: float,
    tolerance: float,
    level: float,
    power: float,
    dispersion: float,
) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if not (canary > 0.0 and baseline > 0.0):
        raise ValueError(f"requests per interval must be > 0, got {canary} and {baseline}")
    if check_tolerance(tolerance) == 0.0:
        raise ValueError("tolerance must be > 0 for a plan, got 0")
    check_fraction("level", level)
    check_fraction("power", power)
    if not dispersion >= 1.0:
        raise ValueError(f"dispersion must be >= 1, got {dispersion}")
