"""What a judge answers after every interval: a decision and, per metric, the evidence behind it.

Result objects are frozen dataclasses (scipy.stats style). `Verdict.to_dict` gives the JSON shape
that ``canaryflow replay`` prints and the rollout flow records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from analysis.outlook import EvidencePlan

__all__ = ["Decision", "MetricEvidence", "MetricStatus", "Verdict"]

#: ``continue`` while the evidence is open; ``promote``, ``rollback`` and ``inconclusive`` are final.
Decision: TypeAlias = Literal["continue", "promote", "rollback", "inconclusive"]

#: Per metric: ``regressed`` (worse than the baseline, beyond doubt), ``within`` (shown within
#: its tolerance), ``undecided``, ``insufficient`` (below its minimum evidence), ``no_data``.
MetricStatus: TypeAlias = Literal["regressed", "within", "undecided", "insufficient", "no_data"]


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class MetricEvidence:
    """The evidence for one metric after the intervals seen so far.

    Attributes
    ----------
    name, type, direction
        The metric, its type (``ratio``, ``histogram``, ``samples``) and which change is bad.
    status
        See `MetricStatus`.
    estimate
        Canary relative to baseline: the rate ratio (``ratio``), the exceedance ratio at the
        decisive threshold (``histogram``: the share of canary requests slower than ``threshold``
        over the baseline's), the ratio of means (``samples``). ``nan`` without data.
    interval
        An anytime-valid confidence interval for ``estimate`` at level ``1 - alpha_metric``
        (``nan`` from the ``kayenta`` judge, whose interval is of the shift and is in ``reason``).
    evalue
        The e-value against "the canary is no worse than the baseline" (rollback evidence).
    promote_evalue
        The e-value against "the canary is worse than its tolerance" (promotion evidence; for a
        histogram, the smallest over the thresholds that must pass).
    pvalue
        Anytime-valid p-value for "no worse": ``min(1, 1 / max e-value so far)``.
    statistic
        The standardized statistic (z for counts, t for samples) of the decisive test.
    threshold
        For histograms, the decisive bucket bound ``le`` (in the metric's unit).
    intervals, canary_count, baseline_count
        The amount of data seen: intervals with data, per-track totals (requests or samples).
    covered
        The intervals of time that data covers: `intervals` plus the looks without data that a
        later look's counts were read back over (their ``span``); the traffic per interval is a
        count over this.
    dispersion
        The estimated overdispersion factor applied (1 = binomial; larger values temper evidence).
    tolerance, rollback_threshold, promote_threshold
        The tolerance applied and the e-value thresholds that decide.
    reason
        One sentence for people.
    final_pvalue
        At the final look (the maximum duration) only: the p-value of the fixed-horizon test
        against "worse than the tolerance"; ``None`` before, and for metrics without that test.
    ceiling_evalue
        For ratio metrics with a ceiling (``max_rate``): the e-value against "the canary's rate is
        at least the ceiling" (`analysis.ceiling`); ``None`` otherwise.
    plan
        While undecided, the evidence plan: the intervals of data the metric needs at the traffic
        seen so far (`analysis.outlook`); ``None`` once decided, without data, for samples.
    baseline_rate
        For ratio and histogram metrics: the baseline's rate of the counted event per request
        (bad events; requests slower than the decisive bound); ``nan`` otherwise.
    leans_worse
        The metric's change detector leans towards "worse since some interval" (it blocks a
        promotion; `analysis.detection.BLOCK`).
    """

    name: str
    type: str
    direction: str
    status: MetricStatus
    estimate: float
    interval: tuple[float, float]
    evalue: float
    promote_evalue: float
    pvalue: float
    statistic: float
    intervals: int
    canary_count: float
    baseline_count: float
    dispersion: float
    tolerance: float
    rollback_threshold: float
    promote_threshold: float
    reason: str
    threshold: float | None = None
    final_pvalue: float | None = None
    ceiling_evalue: float | None = None
    plan: EvidencePlan | None = None
    baseline_rate: float = math.nan
    leans_worse: bool = False
    covered: float = math.nan

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping (non-finite numbers become ``null``; ``ceiling_evalue`` only with a
        ceiling)."""
        out: dict[str, object] = {
            "type": self.type,
            "direction": self.direction,
            "status": self.status,
            "estimate": _finite_or_none(self.estimate),
            "interval": [_finite_or_none(self.interval[0]), _finite_or_none(self.interval[1])],
            "evalue": _finite_or_none(self.evalue),
            "promote_evalue": _finite_or_none(self.promote_evalue),
            "pvalue": _finite_or_none(self.pvalue),
            "statistic": _finite_or_none(self.statistic),
            "threshold": _finite_or_none(self.threshold),
            "intervals": self.intervals,
            "canary_count": _finite_or_none(self.canary_count),
            "baseline_count": _finite_or_none(self.baseline_count),
            "dispersion": _finite_or_none(self.dispersion),
            "tolerance": _finite_or_none(self.tolerance),
            "final_pvalue": _finite_or_none(self.final_pvalue),
            "reason": self.reason,
        }
        if self.ceiling_evalue is not None:
            out["ceiling_evalue"] = _finite_or_none(self.ceiling_evalue)
        if self.plan is not None:
            out["plan"] = self.plan.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's answer after interval ``interval`` (1-based: it has seen intervals 1..interval).

    Attributes
    ----------
    decision
        See `Decision`. ``final`` is true for ``promote``, ``rollback`` and ``inconclusive``.
    reason
        One sentence for people.
    metrics
        Evidence per metric name, in the order of the settings.
    judge
        ``sequential`` or ``kayenta``.
    score
        The Kayenta score (0-100) for the ``kayenta`` judge, ``None`` otherwise.
    """

    decision: Decision
    interval: int
    reason: str
    metrics: Mapping[str, MetricEvidence] = field(default_factory=dict)
    judge: str = "sequential"
    score: float | None = None

    @property
    def final(self) -> bool:
        return self.decision != "continue"

    def to_dict(self) -> dict[str, object]:
        """The JSON object ``canaryflow replay`` prints for this interval."""
        out: dict[str, object] = {
            "interval": self.interval,
            "decision": self.decision,
            "final": self.final,
            "judge": self.judge,
            "reason": self.reason,
        }
        if self.score is not None:
            out["score"] = self.score
        out["metrics"] = {name: ev.to_dict() for name, ev in self.metrics.items()}
        return out
