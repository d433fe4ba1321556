r"""The evidence plan: at the traffic seen so far, how long must the analysis run to decide?

From the first intervals the judge knows, per count metric, how many requests each track gets per
interval and how often the counted event happens (errors, or requests slower than the decisive
latency bound). `required_intervals` turns that into the number of intervals of data that the
final look (the fixed-horizon test at the maximum duration) needs to show a canary that behaves
exactly like its baseline within tolerance, with 80 % probability. An operator reads it next to
the analysis's maximum (``canaryflow get --watch``, the verdicts' reasons): a plan far beyond the
maximum means an inconclusive end unless the maximum duration, the canary's traffic or the
tolerance changes. It is a design calculation on the observed traffic, not on the observed
difference, so it does not swing with the noise of the first intervals; no verdict depends on it,
so it spends none of the error budget.

Notes
-----
For a rate :math:`q` per request (the baseline's, estimated), :math:`n_c` and :math:`n_b` requests
per interval on the canary and baseline tracks and :math:`T` intervals, the log ratio of the two
tracks' rates has variance about

.. math::

    \sigma^2_T = \frac{\varphi (1 - q)}{q\,T} \left(\frac{1}{n_c} + \frac{1}{n_b}\right)

(the delta method for two binomial proportions [1]_, :math:`\varphi \ge 1` the dispersion factor the
test estimated). The final test rejects "worse than the tolerance" (log ratio at least
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
baseline (:math:`q = 0`) only the ceiling can decide.

The plan is approximate: the tests are studentized (Student's t, a few degrees of freedom fewer),
the histogram test takes the largest p-value over several bounds, and traffic changes.
``tests/unit/analysis/test_outlook.py`` checks on the benchmark's scenarios that analyses whose
plan fits the maximum duration end promoted far more often than those whose plan does not.

References
----------
.. [1] A. Agresti, *Categorical Data Analysis*, 3rd ed., Wiley, 2013, §3.1.4 (the log relative
       risk).
.. [2] S.-C. Chow, J. Shao and H. Wang, *Sample Size Calculations in Clinical Research*, 2nd ed.,
       Chapman & Hall, 2008, §4.2 (non-inferiority for two proportions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from analysis.checks import check_fraction, check_tolerance

__all__ = ["POWER", "EvidencePlan", "required_intervals"]

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
        events on the baseline and no ceiling).
    final_interval
        The final look's interval (the maximum duration).
    """

    needed_intervals: int | None
    final_interval: int

    @property
    def fits(self) -> bool:
        """Whether the plan fits within the maximum duration."""
        return self.needed_intervals is not None and self.needed_intervals <= self.final_interval

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping."""
        return {"needed_intervals": self.needed_intervals, "final_interval": self.final_interval}

    def sentence(self) -> str:
        """One clause for people."""
        if self.needed_intervals is None:
            return (
                "at this traffic no amount of data shows it within tolerance "
                "(no events on the baseline and no ceiling)"
            )
        if self.fits:
            return (
                f"at this traffic about {self.needed_intervals} of the {self.final_interval} intervals "
                "show a canary like its baseline within tolerance"
            )
        return (
            f"at this traffic it needs about {self.needed_intervals} intervals, more than the "
            f"{self.final_interval} of the maximum duration: expect an inconclusive end unless the "
            "maximum duration, the canary's traffic or the tolerance grows"
        )


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
        plans.append(spread * (_NORMAL.inv_cdf(1.0 - level) + z_power) ** 2 / margin**2)
    if ceiling is not None and ceiling_level is not None and 0.0 < ceiling_level < 1.0 and rate < ceiling:
        z_c = _NORMAL.inv_cdf(1.0 - ceiling_level)
        need = (z_c * math.sqrt(ceiling) + z_power * math.sqrt(rate)) ** 2 / (ceiling - rate) ** 2
        plans.append(dispersion * need / canary_per_interval)
    return min(plans) if plans else None


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
