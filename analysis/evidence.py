"""Per-metric evidence for the sequential judge: run the metric's test on its history, say why.

`MetricPlan` is one metric's resolved settings (tolerance, error shares, minimum evidence);
`MetricHistory` the intervals in which it had data. `assess` turns both into `MetricEvidence`
with a status and a one-sentence reason. Pure functions; the judge owns the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from analysis.histogram import histogram_test
from analysis.ratio import ratio_test
from analysis.samples import samples_test
from analysis.verdicts import MetricEvidence, MetricStatus

__all__ = ["MetricHistory", "MetricPlan", "assess"]


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One metric's resolved settings.

    ``alpha`` is the metric's share of the rollback budget, ``beta`` the promotion error bound;
    ``le`` the histogram's bucket bounds once known.
    """

    name: str
    type: str
    direction: str
    tolerance: float
    critical: bool
    weight: float
    alpha: float
    beta: float
    min_intervals: int
    min_count: float
    unit: str = ""


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """What one metric saw, interval by interval (only intervals with data), and its latches.

    ``canary`` and ``baseline`` hold per interval: ``(bad, total)`` for ratios, the cumulative
    counts for histograms, the values for samples. ``regressed`` and ``within`` latch once their
    e-process crossed (an e-process that crossed has already spent its error budget).
    """

    canary: tuple[tuple[float, ...], ...] = ()
    baseline: tuple[tuple[float, ...], ...] = ()
    le: tuple[float, ...] = ()
    regressed: bool = False
    within: bool = False
    max_evalue: float = 1.0
    last: MetricEvidence | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class _Numbers:
    estimate: float
    interval: tuple[float, float]
    evalue: float
    promote_evalue: float
    statistic: float
    dispersion: float
    canary_count: float
    baseline_count: float
    detail: str
    threshold: float | None = None


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %" if math.isfinite(value) else "n/a"


def _num(value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else ("0" if value == 0 else "n/a")
    return f"{value:.3g}"


class _TestResult(Protocol):
    """What every test result (`RatioTestResult`, `HistogramTestResult`, ...) reports."""

    @property
    def estimate(self) -> float: ...

    @property
    def interval(self) -> tuple[float, float]: ...

    @property
    def evalue(self) -> float: ...

    @property
    def promote_evalue(self) -> float: ...

    @property
    def statistic(self) -> float: ...


def _numbers(
    r: _TestResult,
    *,
    counts: tuple[float, float],
    detail: str,
    dispersion: float = 1.0,
    threshold: float | None = None,
) -> _Numbers:
    return _Numbers(
        estimate=r.estimate,
        interval=r.interval,
        evalue=r.evalue,
        promote_evalue=r.promote_evalue,
        statistic=r.statistic,
        dispersion=dispersion,
        canary_count=counts[0],
        baseline_count=counts[1],
        detail=detail,
        threshold=threshold,
    )


def _ratio_numbers(plan: MetricPlan, history: MetricHistory) -> _Numbers:
    r = ratio_test(
        [bad for bad, _ in history.canary],
        [total for _, total in history.canary],
        [bad for bad, _ in history.baseline],
        [total for _, total in history.baseline],
        tolerance=plan.tolerance,
        direction=plan.direction,
        alpha=plan.alpha,
    )
    rc = r.canary_bad / r.canary_total if r.canary_total else math.nan
    rb = r.baseline_bad / r.baseline_total if r.baseline_total else math.nan
    detail = f"canary rate {_pct(rc)} vs baseline {_pct(rb)}"
    return _numbers(r, counts=(r.canary_total, r.baseline_total), detail=detail, dispersion=r.dispersion)


def _histogram_numbers(plan: MetricPlan, history: MetricHistory) -> _Numbers:
    r = histogram_test(
        history.le,
        history.canary,
        history.baseline,
        tolerance=plan.tolerance,
        direction=plan.direction,
        alpha=plan.alpha,
    )
    unit = f" {plan.unit}" if plan.unit else ""
    detail = (
        f"{_pct(r.canary_share)} of canary vs {_pct(r.baseline_share)} of baseline requests "
        f"slower than {_num(r.threshold)}{unit}"
    )
    counts = (r.canary_total, r.baseline_total)
    return _numbers(r, counts=counts, detail=detail, dispersion=r.dispersion, threshold=r.threshold)


def _samples_numbers(plan: MetricPlan, history: MetricHistory) -> _Numbers:
    r = samples_test(
        history.canary, history.baseline, tolerance=plan.tolerance, direction=plan.direction, alpha=plan.alpha
    )
    counts = (float(r.canary_count), float(r.baseline_count))
    return _numbers(r, counts=counts, detail=f"canary mean {_num(r.estimate)} x baseline")


_NUMBERS = {"ratio": _ratio_numbers, "histogram": _histogram_numbers, "samples": _samples_numbers}


def _status(plan: MetricPlan, history: MetricHistory, numbers: _Numbers) -> tuple[MetricStatus, bool, bool]:
    intervals = len(history.canary)
    if intervals == 0:
        return "no_data", history.regressed, history.within
    if history.regressed or numbers.evalue >= 1.0 / plan.alpha:
        enough = (
            intervals >= plan.min_intervals
            and min(numbers.canary_count, numbers.baseline_count) >= plan.min_count
        )
        if history.regressed or enough:
            return "regressed", True, history.within
    if intervals < plan.min_intervals or min(numbers.canary_count, numbers.baseline_count) < plan.min_count:
        return "insufficient", False, False
    if history.within or numbers.promote_evalue >= 1.0 / plan.beta:
        return "within", False, True
    return "undecided", False, False


def _reason(plan: MetricPlan, status: MetricStatus, numbers: _Numbers, intervals: int, pvalue: float) -> str:
    ci = f"{_num(numbers.interval[0])}-{_num(numbers.interval[1])}"
    head = f"{plan.name}: {numbers.detail} (ratio {_num(numbers.estimate)}, interval {ci})"
    if status == "regressed":
        evalue, bound = _num(numbers.evalue), _num(1 / plan.alpha)
        return f"{head}; regression: e-value {evalue} >= {bound} (p <= {_num(pvalue)})."
    if status == "within":
        return (
            f"{head}; within +{100 * plan.tolerance:.0f} % tolerance: promotion e-value "
            f"{_num(numbers.promote_evalue)} >= {_num(1 / plan.beta)}."
        )
    if status == "insufficient":
        need = f"{intervals} of {plan.min_intervals} intervals, min count {plan.min_count:g}"
        return f"{head}; not enough evidence yet ({need})."
    return (
        f"{head}; undecided after {intervals} intervals (e-value {_num(numbers.evalue)}, "
        f"promotion e-value {_num(numbers.promote_evalue)})."
    )


def assess(plan: MetricPlan, history: MetricHistory) -> tuple[MetricHistory, MetricEvidence]:
    """Run the metric's test on its history; return the history with updated latches and the evidence."""
    intervals = len(history.canary)
    if intervals == 0:
        evidence = MetricEvidence(
            name=plan.name, type=plan.type, direction=plan.direction, status="no_data", estimate=math.nan,
            interval=(math.nan, math.nan), evalue=1.0, promote_evalue=1.0, pvalue=1.0, statistic=0.0,
            intervals=0, canary_count=0.0, baseline_count=0.0, dispersion=1.0, tolerance=plan.tolerance,
            rollback_threshold=1 / plan.alpha, promote_threshold=1 / plan.beta,
            reason=f"{plan.name}: no data yet.",
        )  # fmt: skip
        return history, evidence
    numbers = _NUMBERS[plan.type](plan, history)
    status, regressed, within = _status(plan, history, numbers)
    max_e = max(history.max_evalue, numbers.evalue)
    pvalue = min(1.0, 1.0 / max_e)
    evidence = MetricEvidence(
        name=plan.name, type=plan.type, direction=plan.direction, status=status, estimate=numbers.estimate,
        interval=numbers.interval, evalue=numbers.evalue, promote_evalue=numbers.promote_evalue,
        pvalue=pvalue,
        statistic=numbers.statistic, intervals=intervals, canary_count=numbers.canary_count,
        baseline_count=numbers.baseline_count, dispersion=numbers.dispersion, tolerance=plan.tolerance,
        rollback_threshold=1 / plan.alpha, promote_threshold=1 / plan.beta,
        reason=_reason(plan, status, numbers, intervals, pvalue), threshold=numbers.threshold,
    )  # fmt: skip
    updated = MetricHistory(
        canary=history.canary, baseline=history.baseline, le=history.le, regressed=regressed,
        within=within, max_evalue=max_e, last=evidence,
    )  # fmt: skip
    return updated, evidence
