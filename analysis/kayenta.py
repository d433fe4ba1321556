r"""A re-implementation of Spinnaker Kayenta's NetflixACAJudge, for teams migrating from Spinnaker.

Per metric, Kayenta compares the canary's points (one per interval) with the baseline's:

1. NaN points are removed; a track without points is ``Nodata``.
2. Identical data (as multisets), or a single distinct value overall, is ``Pass``.
3. Mann-Whitney U with the Hodges-Lehmann interval of the shift canary - baseline at 98 %
   (`mann_whitney`). With tolerance 0.25 the critical value is ``0.25 * |estimate|``.
4. ``High`` when the interval's lower end exceeds the critical value and the effect size
   ``meanRatio`` (canary mean / baseline mean; NaN when either mean is 0) is at least
   ``allowedIncrease`` (or NaN); ``Low`` symmetrically with ``-critical`` and ``allowedDecrease``;
   else ``Pass``. The metric's direction restricts which of the two counts.

The score is Kayenta's weighted sum: each metric is its own group, weighted by its weight
(normalised to 100); a group's score is 100 * Pass / (Pass + High + Low); groups without data
are left out (their weight is lost); a critical metric that is not ``Pass`` makes the score 0.
``Pass`` at or above ``pass_score`` (95), ``Marginal`` at or above ``marginal_score`` (75),
else ``Fail``.

`KayentaJudge` runs this the way Spinnaker's canary stage does: every ``checkpoint_seconds``
(5 minutes) on all data so far; a score below marginal rolls back at once; at the end a score at
or above pass promotes and anything less rolls back. One deviation, on purpose: when no metric
has any data the judge waits, and ends ``inconclusive`` (Kayenta would score 0 and fail).
Kayenta breaks all-tied degenerate samples with random noise of relative size 1e-5; this
implementation is deterministic and uses the limit of that (an interval of zero width at the
difference of the two values).

References
----------
.. [1] Spinnaker Kayenta, ``NetflixACAJudge``, ``MannWhitneyClassifier``, ``WeightedSumScorer``
       and ``MannWhitney`` (kayenta-judge and kayenta-mannwhitney modules), Apache-2.0.
.. [2] R Core Team, ``wilcox.test`` (stats package): the asymptotic confidence interval and
       estimate of the two-sample location shift with continuity correction.
.. [3] J. L. Hodges and E. L. Lehmann, "Estimates of location based on rank tests",
       Ann. Math. Statist. 34(2), 1963.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

from analysis.checks import sides
from analysis.evalues import FloatArray
from analysis.mannwhitney import MannWhitneyResult, mann_whitney
from analysis.observations import (
    HistogramCounts,
    IntervalObservations,
    PairedObservation,
    RatioCounts,
    TrackObservation,
)
from analysis.settings import AnalysisSettings, KayentaSettings, MetricSettings
from analysis.verdicts import Decision, MetricEvidence, MetricStatus, Verdict

__all__ = [
    "Classification",
    "KayentaJudge",
    "MannWhitneyResult",
    "MetricClassification",
    "classify",
    "mann_whitney",
    "score",
]

#: Kayenta's metric classifications.
Classification: TypeAlias = Literal["Pass", "High", "Low", "Nodata"]


@dataclass(frozen=True, slots=True)
class MetricClassification:
    """Kayenta's classification of one metric, with the numbers behind it."""

    classification: Classification
    deviation: float
    critical: bool
    reason: str
    test: MannWhitneyResult | None = None


def _mean_ratio(canary: FloatArray, baseline: FloatArray) -> float:
    cm, bm = float(np.mean(canary)), float(np.mean(baseline))
    return math.nan if cm == 0.0 or bm == 0.0 else cm / bm


def classify(
    baseline: Sequence[float],
    canary: Sequence[float],
    *,
    direction: str = "either",
    settings: KayentaSettings | None = None,
    critical: bool = False,
    name: str = "metric",
) -> MetricClassification:
    r"""Classify one metric as Kayenta's ``MannWhitneyClassifier`` does (NaN strategy ``remove``).

    Parameters
    ----------
    baseline, canary : sequence of float
        The points of each track (NaN points are removed).
    direction : {'increase', 'decrease', 'either'}
        Which classifications count (``increase``: only ``High``).
    settings : KayentaSettings, optional
        Confidence, tolerance and allowed effect sizes (Kayenta's defaults when omitted).
    critical : bool
        Marks the classification critical when it is not ``Pass``.
    name : str
        Used in the reason.

    Returns
    -------
    MetricClassification

    Notes
    -----
    With the Hodges-Lehmann interval :math:`[d_L, d_U]` of the shift at level ``confidence``,
    estimate :math:`\hat d` and critical value :math:`c = \mathrm{tolerance}\,|\hat d|`: ``High``
    when :math:`d_L > c` and the mean ratio is at least ``allowed_increase`` (or undefined),
    ``Low`` when :math:`d_U < -c` and the mean ratio is at most ``allowed_decrease`` [1]_.

    References
    ----------
    .. [1] Spinnaker Kayenta, ``MannWhitneyClassifier.scala`` (kayenta-judge), Apache-2.0.

    Examples
    --------
    >>> classify([1.0] * 10, [100.0] * 7 + [1.0] * 3).classification
    'Pass'
    >>> classify([1.0] * 10, [100.0] * 8 + [1.0] * 2).classification
    'High'
    """
    config = settings or KayentaSettings()
    tested = sides(direction)
    c = np.asarray([v for v in canary if not math.isnan(v)], dtype=np.float64)
    b = np.asarray([v for v in baseline if not math.isnan(v)], dtype=np.float64)
    if c.size == 0 or b.size == 0:
        return MetricClassification("Nodata", 1.0, critical, f"Missing data for {name}")
    if np.array_equal(np.sort(c), np.sort(b)):
        return MetricClassification(
            "Pass", 1.0, False, f"The canary and baseline data for {name} are identical"
        )
    if np.unique(np.concatenate([c, b])).size == 1:
        return MetricClassification("Pass", 1.0, False, f"{name} has a single value on both tracks")
    try:
        test = mann_whitney(b.tolist(), c.tolist(), confidence=config.confidence)
    except ValueError as exc:  # e.g. values so far apart that every shifted pair ties in floating point
        return MetricClassification("Nodata", 1.0, critical, f"{name} cannot be compared: {exc}")
    deviation = _mean_ratio(c, b)
    critical_value = config.tolerance * abs(test.estimate)
    high = (
        "increase" in tested
        and test.interval[0] > critical_value
        and (math.isnan(deviation) or deviation >= config.allowed_increase)
    )
    low = (
        "decrease" in tested
        and test.interval[1] < -critical_value
        and (math.isnan(deviation) or deviation <= config.allowed_decrease)
    )
    label: Classification = "High" if high else ("Low" if low else "Pass")
    reason = (
        f"{name} was classified as {label}: shift {test.estimate:.4g} (interval {test.interval[0]:.4g} to "
        f"{test.interval[1]:.4g} at {100 * config.confidence:g} %), mean ratio "
        + (f"{deviation:.3g}" if math.isfinite(deviation) else "n/a (a mean of 0)")
    )
    return MetricClassification(label, deviation, critical and label != "Pass", reason, test)


def score(classifications: Sequence[MetricClassification], weights: Sequence[float]) -> float:
    """Kayenta's weighted-sum score (0-100) of per-metric classifications, one group per metric.

    Notes
    -----
    ``sum over groups with data of 100 * pass / (pass + high + low) * weight / 100`` with the
    weights normalised to sum to 100; 0 when a critical metric is not ``Pass``.

    References
    ----------
    .. [1] Spinnaker Kayenta, ``WeightedSumScorer.scala`` (kayenta-judge), Apache-2.0.

    Examples
    --------
    >>> ok = MetricClassification("Pass", 1.0, False, "")
    >>> high = MetricClassification("High", 2.0, False, "")
    >>> score([ok, ok, high], [1, 1, 1])
    66.66666666666667
    """
    if any(c.critical for c in classifications):
        return 0.0
    total = sum(weights)
    result = 0.0
    for c, w in zip(classifications, weights, strict=True):
        if c.classification != "Nodata":
            result += (100.0 if c.classification == "Pass" else 0.0) * (100.0 * w / total) / 100.0
    return result


def _points(
    observation: PairedObservation | None, quantile: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Kayenta's per-interval points (canary, baseline) of one paired observation: the rate, the
    histogram's `quantile` or the samples themselves."""
    if observation is None:
        return (), ()
    c, b = observation.canary, observation.baseline
    if isinstance(c, RatioCounts) and isinstance(b, RatioCounts):
        return (c.rate,), (b.rate,)
    if isinstance(c, HistogramCounts) and isinstance(b, HistogramCounts):
        return (c.quantile(quantile),), (b.quantile(quantile),)
    return c.row, b.row


_STATUS: dict[Classification, MetricStatus] = {
    "Pass": "within",
    "High": "regressed",
    "Low": "regressed",
    "Nodata": "no_data",
}


def _amount(observation: TrackObservation) -> float:
    """How much one track's observation holds: requests (ratio, histogram) or samples."""
    if isinstance(observation, RatioCounts | HistogramCounts):
        return float(observation.total)
    return float(len(observation.row))


def _evidence(
    metric: MetricSettings,
    c: MetricClassification,
    n_canary: int,
    n_baseline: int,
    amounts: tuple[float, float],
) -> MetricEvidence:
    """The classification as evidence. Its estimate is Kayenta's mean ratio; its interval is none
    (``nan``): Kayenta's is of the location shift, not of the ratio, and the reason says it. The
    counts are the tracks' totals (requests or samples), as the sequential judge's are; the
    points Kayenta compared are the intervals'."""
    test = c.test
    return MetricEvidence(
        name=metric.name, type=metric.type, direction=metric.direction, status=_STATUS[c.classification],
        estimate=c.deviation, interval=(math.nan, math.nan), evalue=math.nan,
        promote_evalue=math.nan, pvalue=test.pvalue if test else math.nan,
        statistic=test.statistic if test else math.nan,
        intervals=max(n_canary, n_baseline) if c.classification != "Nodata" else 0,
        canary_count=amounts[0], baseline_count=amounts[1], dispersion=1.0, tolerance=math.nan,
        rollback_threshold=math.nan, promote_threshold=math.nan, reason=c.reason + ".",
    )  # fmt: skip


class KayentaJudge:
    """Kayenta's canary stage over intervals: judge every checkpoint on all data so far.

    Parameters
    ----------
    settings : AnalysisSettings
        Must list its metrics; ``settings.kayenta`` holds Kayenta's parameters;
        ``max_duration_seconds`` is the stage's lifetime.
    interval_seconds : float
        Length of one interval.
    """

    def __init__(self, settings: AnalysisSettings, *, interval_seconds: float) -> None:
        if not settings.metrics:
            raise ValueError("the analysis settings list no metrics")
        self.settings = settings
        self.config = settings.kayenta
        self.every = max(1, round(self.config.checkpoint_seconds / interval_seconds))
        self.max_intervals = max(1, math.floor(settings.max_duration_seconds / interval_seconds + 1e-9))
        self.interval = 0
        self.decision: Decision = "continue"
        self.canary: dict[str, list[float]] = {m.name: [] for m in settings.metrics}
        self.baseline: dict[str, list[float]] = {m.name: [] for m in settings.metrics}
        self.amounts: dict[str, tuple[float, float]] = {m.name: (0.0, 0.0) for m in settings.metrics}
        self.last: dict[str, MetricEvidence] = {}
        self.last_score: float | None = None

    def _judge(self) -> tuple[float, bool]:
        metrics = self.settings.metrics
        results = [
            classify(self.baseline[m.name], self.canary[m.name], direction=m.direction, settings=self.config,
                     critical=m.critical, name=m.name)
            for m in metrics
        ]  # fmt: skip
        self.last = {
            m.name: _evidence(
                m, r, len(self.canary[m.name]), len(self.baseline[m.name]), self.amounts[m.name]
            )
            for m, r in zip(metrics, results, strict=True)
        }
        self.last_score = score(results, [m.weight for m in metrics])
        return self.last_score, all(r.classification == "Nodata" for r in results)

    def _verdict(self, decision: Decision, reason: str) -> Verdict:
        self.decision = decision
        return Verdict(decision=decision, interval=self.interval, reason=reason, metrics=dict(self.last),
                       judge="kayenta", score=self.last_score)  # fmt: skip

    def update(self, observations: IntervalObservations) -> Verdict:
        """Record one interval; judge when a checkpoint is reached."""
        if self.decision != "continue":
            raise ValueError(f"the analysis is over ({self.decision} after {self.interval} intervals)")
        self.interval += 1
        for m in self.settings.metrics:
            observation = observations.get(m.name)
            c, b = _points(observation, self.config.histogram_quantile)
            self.canary[m.name].extend(c)
            self.baseline[m.name].extend(b)
            if observation is not None:
                canary, baseline = self.amounts[m.name]
                self.amounts[m.name] = (
                    canary + _amount(observation.canary),
                    baseline + _amount(observation.baseline),
                )
        if self.interval >= self.max_intervals:
            return self.finish()
        if self.interval % self.every:
            upcoming = self.every * (self.interval // self.every + 1)
            return self._verdict("continue", f"Continue: the next checkpoint is at interval {upcoming}.")
        value, nodata = self._judge()
        if not nodata and value < self.config.marginal_score:
            return self._verdict(
                "rollback", f"Roll back: score {value:.1f} < marginal {self.config.marginal_score:g}."
            )
        return self._verdict(
            "continue", f"Continue: score {value:.1f} at checkpoint {self.interval // self.every}."
        )

    def finish(self) -> Verdict:
        """The stage's end: promote at or above the pass score, roll back below it."""
        if self.decision != "continue":
            return self._verdict(self.decision, "Already decided.")
        value, nodata = self._judge()
        if nodata:
            return self._verdict("inconclusive", f"Inconclusive: no data in {self.interval} intervals.")
        if value >= self.config.pass_score:
            return self._verdict("promote", f"Promote: score {value:.1f} >= pass {self.config.pass_score:g}.")
        return self._verdict(
            "rollback", f"Roll back: final score {value:.1f} < pass {self.config.pass_score:g}."
        )
