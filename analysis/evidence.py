"""Per-metric evidence for the sequential judge: keep the metric's test up to date, say why.

`MetricPlan` is one metric's resolved settings (tolerance, error shares, minimum evidence);
`MetricHistory` what the metric saw so far: the incremental state of its test (`RatioState`,
`HistogramState`, or the samples themselves), its change detector (`analysis.detection`) and its
latches. `record` adds one interval in constant time (samples keep their values); `assess` turns
the state into `MetricEvidence` with a status and a one-sentence reason. Pure functions; the
judge owns the state.

A metric's share of the rollback budget, ``alpha``, is split: ``1 - DETECTOR_SHARE`` for the
cumulative test (``rollback_alpha``), ``DETECTOR_SHARE`` for the change detector, whose alarm
level is ``log(T / alpha_d)`` for at most ``T`` intervals (`analysis.detection`). A rollback needs
no minimum of intervals: both are e-processes, valid from the first look. A promotion needs the
minimum evidence (``min_intervals``, ``min_count``), the promotion e-value at ``1/beta``, and a
detector that does not lean towards a regression (the recent intervals must agree).

A count metric's promotion budget ``beta`` is split the same way: ``beta - final_beta`` for the
anytime promotion e-value (``promote_beta``), ``final_beta`` (``FINAL_SHARE`` of it) for one
fixed-horizon test at the maximum duration (`analysis.counts.CountState.final_log_pvalue`), far
more powerful at that one look than an anytime bound. A metric is within tolerance when either
says so; the probability of a wrong "within" is at most ``beta`` by the union bound.

While a count metric is undecided, `assess` adds its evidence plan (`analysis.outlook`): the
intervals of data its final look needs, at the traffic seen, to show a canary like its baseline
within tolerance (for a ratio metric with an absolute tolerance, the shorter of its two final
looks' plans). It is reported, never decided on.

A ratio or histogram metric with a ceiling (``max_rate``; for a histogram the share of requests
slower than ``slower_than``) gives ``CEILING_SHARE`` of its ``beta`` to the
ceiling test of `analysis.ceiling` (``ceiling_beta``) and the rest to the relative tests above.
"Worse than the tolerance" then means worse than both the relative tolerance and the ceiling, so
a wrong "within" needs one of the tests to err: at most ``beta`` again by the union bound.

A ratio metric with an absolute tolerance (``max_increase``) gives ``INCREASE_SHARE`` of its
``beta`` to the tests of `analysis.increase` (``increase_beta``): ``INCREASE_FINAL_SHARE`` of it
to the fixed-horizon test at the maximum duration (``increase_final_beta``: the weighted
difference of the two rates against the margin), the rest to the anytime bound (the largest
increase of the canary's rate over the baseline's that the data allow, from the rate ratio's
confidence sequence and the two tracks' rate bounds, each at a third of it); the relative tests
share the rest of ``beta``, and the union bound holds as for the ceiling. A histogram's
absolute tolerance (``shift``) is part of its promotion test (`analysis.histogram`) and takes no
share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeAlias

from analysis.ceiling import CeilingState, RateBound
from analysis.detection import Detector
from analysis.histogram import HistogramState
from analysis.increase import FINAL_LEVEL_FACTOR, IncreaseSums, increase_bound
from analysis.observations import HistogramCounts, PairedObservation, percent
from analysis.outlook import (
    EvidencePlan,
    chance_within,
    increase_chance,
    increase_intervals,
    rate_bounds,
    required_intervals,
)
from analysis.ratio import RatioState
from analysis.samples import SamplesState
from analysis.verdicts import MetricEvidence, MetricStatus

__all__ = [
    "CEILING_SHARE",
    "DETECTOR_SHARE",
    "FINAL_SHARE",
    "INCREASE_FINAL_SHARE",
    "INCREASE_SHARE",
    "MetricHistory",
    "MetricPlan",
    "assess",
    "record",
]

#: The change detector's share of a count metric's rollback budget.
DETECTOR_SHARE = 0.3
#: The final look's share of a count metric's promotion budget (of what the ceiling and the
#: absolute tolerance leave): the larger part, as at ordinary traffic the final look decides most
#: good canaries and a fixed-horizon test is far more powerful at its one look than the anytime
#: bound. With 0.8 instead of 0.5 the decision benchmark promoted 77.8 % of its good canaries at
#: >= 10 req/s instead of 73.2 %; canaries exactly at their tolerance were promoted in at most
#: 3.3 % of 1000 runs per cell (BENCHMARKS.md, "The final look's share").
FINAL_SHARE = 0.8
#: The ceiling test's share of a ratio metric's promotion budget, when it has a ceiling.
CEILING_SHARE = 0.1
#: The absolute tolerance's share of a ratio metric's promotion budget, when it has one: the
#: larger part, as a user who sets it means it to decide.
INCREASE_SHARE = 0.5
#: The absolute tolerance's final look's share of its budget (the anytime bound has the rest): the
#: larger part, as where the rate is low the final look decides most analyses.
INCREASE_FINAL_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One metric's resolved settings.

    ``alpha`` is the metric's share of the rollback budget (split between the cumulative test and
    the detector for count metrics), ``beta`` the promotion error bound (split between the
    anytime test, the final look, ``final_beta``, 0 without a final look, the ceiling,
    ``ceiling_beta``, and the absolute tolerance, ``increase_beta``, 0 without them),
    ``detector_threshold`` the detector's alarm level (``log(T / alpha_d)``; ``inf`` without a
    detector).
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
    detector_threshold: float = math.inf
    final_beta: float = 0.0
    max_rate: float | None = None
    ceiling_beta: float = 0.0
    slower_than: float | None = None
    max_increase: float | None = None
    increase_beta: float = 0.0
    shift: float = 0.0
    #: The warm-up dispersion bound learned from the stable's history (`analysis.dispersion`);
    #: None for the bound fixed in advance. Ratio metrics.
    kappa_start: float | None = None
    #: The same per finite bucket bound, (bound, kappa) pairs; a bound not listed starts from the
    #: bound fixed in advance. Histogram metrics.
    bucket_kappa: tuple[tuple[float, float], ...] = ()

    @property
    def promote_beta(self) -> float:
        """The anytime promotion test's level: what the final look, the ceiling and the absolute
        tolerance leave of ``beta``."""
        return self.beta - self.final_beta - self.ceiling_beta - self.increase_beta

    @property
    def increase_final_beta(self) -> float:
        """The absolute tolerance's final look's share: ``INCREASE_FINAL_SHARE`` of ``increase_beta``."""
        return self.increase_beta * INCREASE_FINAL_SHARE

    @property
    def increase_anytime_beta(self) -> float:
        """The absolute tolerance's anytime bound's share: the rest of ``increase_beta``."""
        return self.increase_beta - self.increase_final_beta

    @property
    def rollback_alpha(self) -> float:
        """The cumulative test's level: all of ``alpha`` without a detector."""
        return self.alpha if math.isinf(self.detector_threshold) else self.alpha * (1.0 - DETECTOR_SHARE)


_Process: TypeAlias = RatioState | HistogramState | SamplesState


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """What one metric saw (the state of its test over the intervals with data) and its latches.

    ``regressed`` and ``within`` latch once their e-process crossed (an e-process that crossed
    has already spent its error budget); ``changed`` latches once the detector alarmed.
    ``intervals`` counts the intervals with data; ``ceiling`` is the ceiling test's state (ratio
    metrics with ``max_rate``); ``baseline_bound`` the baseline's rate bound (ratio metrics with
    ``max_increase``), ``canary_bound`` the canary's, ``increase`` the sums of the absolute
    tolerance's final look (`analysis.increase.IncreaseSums`).
    """

    process: _Process | None = None
    ceiling: CeilingState | None = None
    baseline_bound: RateBound | None = None
    canary_bound: RateBound | None = None
    increase: IncreaseSums | None = None
    detector: Detector = field(default_factory=Detector)
    #: The detector over the same intervals weighted by the warm-up bound: it only keeps a promotion
    #: back (`leans_worse`), never rolls back; it runs only when a warm-up was learned, so an
    #: analysis without one decides as before.
    guard: Detector = field(default_factory=Detector)
    intervals: int = 0
    #: The intervals of time those intervals' data cover (their spans' sum: a look read back over
    #: looks without data covers them too): the traffic per interval is the counts over this.
    covered: float = 0.0
    regressed: bool = False
    changed: bool = False
    within: bool = False
    max_evalue: float = 1.0
    last: MetricEvidence | None = field(default=None, compare=False)

    @property
    def leans_worse(self) -> bool:
        """Whether the latest intervals lean towards a regression, by the detector or its guard."""
        return self.detector.blocks_promotion or self.guard.blocks_promotion

    @property
    def le(self) -> tuple[float, ...]:
        return self.process.le if isinstance(self.process, HistogramState) else ()


def record(plan: MetricPlan, history: MetricHistory, pair: PairedObservation) -> MetricHistory:
    """`history` with one more interval of data (type-checked)."""
    c, b = pair.canary, pair.baseline
    if pair.kind != plan.type:
        raise ValueError(f"{plan.name}: expected {plan.type} observations, got {type(c).__name__}")
    process = history.process
    if isinstance(c, HistogramCounts) and isinstance(b, HistogramCounts):
        if c.le != b.le or (history.le and history.le != c.le):
            raise ValueError(f"{plan.name}: bucket bounds (le) differ between tracks or intervals")
        if not isinstance(process, HistogramState):
            learned = dict(plan.bucket_kappa)
            process = HistogramState.initial(
                c.le, tolerance=plan.tolerance, direction=plan.direction, shift=plan.shift,
                kappa_start=[learned.get(b, math.nan) for b in c.le if math.isfinite(b)],
            )  # fmt: skip
        process = process.step(c.counts, b.counts, span=pair.span)
        slow = _slow_requests(c, plan.slower_than)
        if plan.max_rate is not None and slow is not None and b.total > 0:
            ceiling = history.ceiling or CeilingState(plan.max_rate)
            history = replace(history, ceiling=ceiling.step(slow, c.total))
    elif pair.kind == "ratio":
        if not isinstance(process, RatioState):
            process = RatioState.initial(
                tolerance=plan.tolerance, direction=plan.direction, kappa_start=plan.kappa_start
            )
        process = process.step(*c.row, *b.row, span=pair.span)
        if plan.max_rate is not None and b.row[1] > 0:  # the intervals the relative test counts
            ceiling = history.ceiling or CeilingState(plan.max_rate)
            history = replace(history, ceiling=ceiling.step(*c.row))
        if plan.max_increase is not None and c.row[1] > 0 and b.row[1] > 0:  # as the ratio test
            level = plan.increase_anytime_beta / 3
            baseline_bound = (history.baseline_bound or RateBound(level)).step(*b.row)
            canary_bound = (history.canary_bound or RateBound(level)).step(*c.row)
            # The final look's weights take the relative test's dispersion bound, fixed before the
            # analysis (learned from the stable's history, or the one fixed in advance).
            sums = history.increase or IncreaseSums(
                plan.max_increase, dispersion=float(process.sides[0].kappa_start[0])
            )
            sums = sums.step(*c.row, *b.row, span=pair.span)
            history = replace(
                history, baseline_bound=baseline_bound, canary_bound=canary_bound, increase=sums
            )
    else:
        old = process if isinstance(process, SamplesState) else SamplesState()
        process = old.step(c.row, b.row)
    detector, guard = history.detector, history.guard
    if isinstance(process, RatioState | HistogramState):
        detector = detector.step(process.last_log_evalue(), process.change_log_evalue())
        if plan.kappa_start is not None or plan.bucket_kappa:  # nothing learned: no guard
            guard = guard.step(process.guard_log_evalue())
    return replace(
        history, process=process, detector=detector, guard=guard, intervals=history.intervals + 1,
        covered=history.covered + pair.span,
    )  # fmt: skip


def _slow_requests(counts: HistogramCounts, slower_than: float | None) -> float | None:
    """Requests above the largest bucket bound at or below `slower_than` (so that at least every
    request slower than it counts); None when no bound is that low."""
    if slower_than is None:
        return None
    bounds = [i for i, le in enumerate(counts.le) if le <= slower_than]
    return counts.total - counts.counts[bounds[-1]] if bounds else None


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
    final_pvalue: float = 1.0
    #: The baseline's rate of the counted event per request (errors; requests slower than the
    #: decisive bound); nan for samples.
    rate: float = math.nan
    #: For the evidence plan: (rate, tolerance on it, dispersion factor) of each count the
    #: promotion needs (one for a ratio, each resolved bound of a histogram:
    #: `analysis.histogram.HistogramTestResult.planned`).
    planned: tuple[tuple[float, float, float], ...] = ()


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

    @property
    def final_pvalue(self) -> float: ...


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
        final_pvalue=r.final_pvalue,
    )


def _evaluate(plan: MetricPlan, process: _Process, *, final: bool) -> _Numbers:
    alpha = plan.rollback_alpha
    if isinstance(process, RatioState):
        r = process.result(alpha=alpha, final=final)
        rc = r.canary_bad / r.canary_total if r.canary_total else math.nan
        rb = r.baseline_bad / r.baseline_total if r.baseline_total else math.nan
        detail = f"canary rate {percent(rc)} vs baseline {percent(rb)}"
        numbers = _numbers(
            r, counts=(r.canary_total, r.baseline_total), detail=detail, dispersion=r.dispersion
        )
        return replace(numbers, rate=rb, planned=((rb, plan.tolerance, r.plan_dispersion),))
    if isinstance(process, HistogramState):
        h = process.result(alpha=alpha, final=final)
        unit = f" {plan.unit}" if plan.unit else ""
        detail = (
            f"{percent(h.canary_share)} of canary vs {percent(h.baseline_share)} of baseline requests "
            f"slower than {_num(h.threshold)}{unit}"
        )
        counts = (h.canary_total, h.baseline_total)
        numbers = _numbers(h, counts=counts, detail=detail, dispersion=h.dispersion, threshold=h.threshold)
        return replace(numbers, rate=h.baseline_share, planned=h.planned)
    s = process.result(tolerance=plan.tolerance, direction=plan.direction, alpha=alpha)
    counts = (float(s.canary_count), float(s.baseline_count))
    return _numbers(s, counts=counts, detail=f"canary mean {_num(s.estimate)} x baseline")


def _status(
    plan: MetricPlan, history: MetricHistory, numbers: _Numbers, *, final: bool
) -> tuple[MetricStatus, bool, bool]:
    """The status, and the two latches (regressed or changed, within)."""
    if history.intervals == 0:
        return "no_data", history.regressed or history.changed, history.within
    changed = history.changed or history.detector.alarm(plan.detector_threshold)
    if history.regressed or changed or numbers.evalue >= 1.0 / plan.rollback_alpha:
        return "regressed", True, history.within
    short = history.intervals < plan.min_intervals
    if short or min(numbers.canary_count, numbers.baseline_count) < plan.min_count:
        return "insufficient", False, False
    within = history.within or numbers.promote_evalue >= 1.0 / plan.promote_beta
    within = within or (final and _final_within(plan, numbers)) or _under_ceiling(plan, history)
    within = within or _within_increase(plan, history) or (final and _final_increase_within(plan, history))
    if within and not history.leans_worse:
        return "within", False, True
    return "undecided", False, within


def _under_ceiling(plan: MetricPlan, history: MetricHistory) -> bool:
    return history.ceiling is not None and history.ceiling.evalue >= 1.0 / plan.ceiling_beta


def _increase(plan: MetricPlan, history: MetricHistory) -> float | None:
    """The largest increase of the canary's rate over the baseline's the data allow (`analysis.increase`),
    for a ratio metric with an absolute tolerance."""
    baseline, canary = history.baseline_bound, history.canary_bound
    if plan.max_increase is None or baseline is None or canary is None:
        return None
    if not isinstance(history.process, RatioState):
        return None
    lo, hi = history.process.sides[0].interval(0, alpha=plan.increase_anytime_beta / 3)
    if not lo < hi:  # an empty sequence (data that fit no ratio, e.g. a non-finite count): no bound
        hi = math.inf
    return increase_bound(hi, baseline.upper, canary.upper)


def _within_increase(plan: MetricPlan, history: MetricHistory) -> bool:
    bound = _increase(plan, history)
    return bound is not None and plan.max_increase is not None and bound < plan.max_increase


def _final_increase_within(plan: MetricPlan, history: MetricHistory) -> bool:
    """Whether the absolute tolerance's final look shows the metric within its margin
    (`analysis.increase.IncreaseSums`, at ``FINAL_LEVEL_FACTOR`` of its share)."""
    sums = history.increase
    level = plan.increase_final_beta * FINAL_LEVEL_FACTOR
    return sums is not None and level > 0 and sums.final_pvalue() <= level


def _points(rate: float) -> str:
    return f"{100 * rate:.3g} pp" if math.isfinite(rate) else "inf"


def _signed_points(rate: float) -> str:
    return f"+{_points(rate)}" if not rate < 0 else f"-{_points(-rate)}"


def _tolerance(plan: MetricPlan) -> str:
    """The tolerance in words: "+10 %", or "+10 % or +20 ms" with a histogram's shift (in ms when
    its unit is seconds)."""
    relative = f"+{100 * plan.tolerance:.0f} %"
    if plan.shift <= 0:
        return relative
    if plan.unit in ("seconds", "s") and plan.shift < 1.0:
        return f"{relative} or +{_num(1000.0 * plan.shift)} ms"
    unit = f" {plan.unit}" if plan.unit else ""
    return f"{relative} or +{_num(plan.shift)}{unit}"


def _final_within(plan: MetricPlan, numbers: _Numbers) -> bool:
    return plan.final_beta > 0 and numbers.final_pvalue <= plan.final_beta


def _reason(
    plan: MetricPlan,
    history: MetricHistory,
    status: MetricStatus,
    numbers: _Numbers,
    pvalue: float,
    *,
    final: bool,
) -> str:
    ci = f"{_num(numbers.interval[0])}-{_num(numbers.interval[1])}"
    head = f"{plan.name}: {numbers.detail} (ratio {_num(numbers.estimate)}, interval {ci})"
    intervals = history.intervals
    if status == "regressed":
        if numbers.evalue < 1.0 / plan.rollback_alpha and history.detector.log_change > -math.inf:
            change = _num(math.exp(min(history.detector.log_change, 700.0)))
            return (
                f"{head}; changed for the worse: the latest intervals alone give evidence {change} "
                f">= {_num(math.exp(plan.detector_threshold))}."
            )
        evalue, bound = _num(numbers.evalue), _num(1 / plan.rollback_alpha)
        return f"{head}; regression: e-value {evalue} >= {bound} (p <= {_num(pvalue)})."
    if status == "within":
        if _under_ceiling(plan, history) and numbers.promote_evalue < 1.0 / plan.promote_beta:
            assert history.ceiling is not None
            unit = f" {plan.unit}" if plan.unit else ""
            slow = (
                "" if plan.slower_than is None else f" of requests slower than {_num(plan.slower_than)}{unit}"
            )
            return (
                f"{head}; below the {percent(history.ceiling.ceiling)}{slow} ceiling: ceiling e-value "
                f"{_num(history.ceiling.evalue)} >= {_num(1 / plan.ceiling_beta)}."
            )
        if _within_increase(plan, history) and numbers.promote_evalue < 1.0 / plan.promote_beta:
            assert plan.max_increase is not None
            return (
                f"{head}; within +{_points(plan.max_increase)} of the baseline's rate: at most "
                f"+{_points(_increase(plan, history) or 0.0)}."
            )
        if (
            final
            and _final_increase_within(plan, history)
            and numbers.promote_evalue < 1.0 / plan.promote_beta
            and not _final_within(plan, numbers)
            and not history.within
        ):
            assert plan.max_increase is not None
            assert history.increase is not None
            level = plan.increase_final_beta * FINAL_LEVEL_FACTOR
            return (
                f"{head}; within +{_points(plan.max_increase)} of the baseline's rate at the final look: "
                f"increase {_signed_points(history.increase.increase)}, "
                f"p {_num(history.increase.final_pvalue())} <= {_num(level)}."
            )
        tolerance = _tolerance(plan)
        if numbers.promote_evalue >= 1.0 / plan.promote_beta or history.within or not final:
            return (
                f"{head}; within {tolerance} tolerance: promotion e-value "
                f"{_num(numbers.promote_evalue)} >= {_num(1 / plan.promote_beta)}."
            )
        return (
            f"{head}; within {tolerance} tolerance at the final look: "
            f"p {_num(numbers.final_pvalue)} <= {_num(plan.final_beta)}."
        )
    if status == "insufficient":
        need = f"{intervals} of {plan.min_intervals} intervals, min count {plan.min_count:g}"
        return f"{head}; not enough evidence yet ({need})."
    if history.leans_worse:
        return f"{head}; the latest intervals lean towards a regression: no promotion now."
    return (
        f"{head}; undecided after {intervals} intervals (e-value {_num(numbers.evalue)}, "
        f"promotion e-value {_num(numbers.promote_evalue)})."
    )


def _plan(
    plan: MetricPlan, history: MetricHistory, numbers: _Numbers, final_interval: int
) -> EvidencePlan | None:
    """The metric's evidence plan (`analysis.outlook`), for count metrics with a final look: the
    longest of the plans of the counts its promotion needs (every one must pass), and the
    smallest of their chances."""
    seen = history.covered
    if plan.final_beta <= 0 or math.isnan(numbers.rate) or seen < 1 or not numbers.planned:
        return None
    if min(numbers.canary_count, numbers.baseline_count) <= 0:
        return None
    if not all(math.isfinite(value) for planned in numbers.planned for value in planned):
        return None  # data that fit no rate (a non-finite count): nothing to plan on
    canary, baseline = numbers.canary_count / seen, numbers.baseline_count / seen
    ceiling = plan.max_rate if plan.type == "ratio" else None
    ceiling_level = plan.ceiling_beta if ceiling is not None else None
    needs: list[float | None] = []
    chances: list[float] = []
    for rate, tolerance, dispersion in numbers.planned:
        if tolerance <= 0.0:  # a bound the buckets cannot pass for a canary like its baseline
            needs.append(None)
            chances.append(0.0)
            continue
        needs.append(required_intervals(
            rate=rate, canary_per_interval=canary, baseline_per_interval=baseline, tolerance=tolerance,
            level=plan.final_beta, dispersion=dispersion, ceiling=ceiling, ceiling_level=ceiling_level,
        ))  # fmt: skip
        low, high = rate_bounds(rate * numbers.baseline_count, numbers.baseline_count)
        # The upper bound only halfway to 1: at a share near 1 (a latency bound near the fastest
        # requests) the approximation has no spread left and would say 0.
        favourable = (low, min(high, (1.0 + rate) / 2.0))
        chances.append(chance_within(
            rate=favourable, canary_per_interval=canary, baseline_per_interval=baseline,
            intervals=final_interval, tolerance=tolerance, level=plan.final_beta, ceiling=ceiling,
            ceiling_level=ceiling_level,
        ))  # fmt: skip
    needed = None if None in needs else max(n for n in needs if n is not None)
    chance = min(chances)
    absolute = plan.max_increase is not None and plan.type == "ratio"
    if absolute:  # either route suffices: the shorter plan, the larger chance
        assert plan.max_increase is not None
        rate = numbers.rate
        level = plan.increase_final_beta * FINAL_LEVEL_FACTOR
        dispersion = numbers.planned[0][2] if numbers.planned else 1.0
        need = increase_intervals(
            rate=rate, canary_per_interval=canary, baseline_per_interval=baseline, margin=plan.max_increase,
            level=level, dispersion=dispersion,
        )  # fmt: skip
        needed = need if needed is None else min(needed, need)
        low, _ = rate_bounds(rate * numbers.baseline_count, numbers.baseline_count)
        chance = max(chance, increase_chance(
            rate=low, canary_per_interval=canary, baseline_per_interval=baseline, intervals=final_interval,
            margin=plan.max_increase, level=level,
        ))  # fmt: skip
    if needed is not None and not math.isfinite(needed):  # counts so small that no plan is computable
        needed = None
    return EvidencePlan(
        None if needed is None else max(1, math.ceil(needed)), final_interval, chance, absolute=absolute
    )


def assess(
    plan: MetricPlan, history: MetricHistory, *, final: bool = False, final_interval: int | None = None
) -> tuple[MetricHistory, MetricEvidence]:
    """The metric's evidence now; the history with its latches updated. ``final``: this is the
    analysis's last look (the maximum duration), where the fixed-horizon test may show the metric
    within tolerance. `final_interval` (the final look's interval): while the metric is
    undecided, add its evidence plan (`analysis.outlook`) to the evidence and its reason."""
    if history.process is None or history.intervals == 0:
        evidence = MetricEvidence(
            name=plan.name, type=plan.type, direction=plan.direction, status="no_data", estimate=math.nan,
            interval=(math.nan, math.nan), evalue=1.0, promote_evalue=1.0, pvalue=1.0, statistic=0.0,
            intervals=0, canary_count=0.0, baseline_count=0.0, dispersion=1.0, tolerance=plan.tolerance,
            rollback_threshold=1 / plan.rollback_alpha, promote_threshold=1 / plan.promote_beta,
            reason=f"{plan.name}: no data yet.",
        )  # fmt: skip
        return history, evidence
    numbers = _evaluate(plan, history.process, final=final)
    status, regressed, within = _status(plan, history, numbers, final=final)
    max_e = max(history.max_evalue, numbers.evalue)
    pvalue = min(1.0, 1.0 / max_e)
    reason = _reason(plan, history, status, numbers, pvalue, final=final)
    ahead = None
    # The plan counts the relative tolerance, the ceiling and a ratio's absolute tolerance, not a
    # histogram's shift.
    planned = final_interval is not None and plan.shift == 0
    if planned and status in ("undecided", "insufficient") and not final:
        assert final_interval is not None
        ahead = _plan(plan, history, numbers, final_interval)
        if ahead is not None:
            reason = f"{reason.rstrip('.')}; {ahead.sentence()}."
    evidence = MetricEvidence(
        name=plan.name, type=plan.type, direction=plan.direction, status=status, estimate=numbers.estimate,
        interval=numbers.interval, evalue=numbers.evalue, promote_evalue=numbers.promote_evalue,
        pvalue=pvalue, statistic=numbers.statistic, intervals=history.intervals, covered=history.covered,
        canary_count=numbers.canary_count, baseline_count=numbers.baseline_count,
        dispersion=numbers.dispersion, tolerance=plan.tolerance,
        rollback_threshold=1 / plan.rollback_alpha, promote_threshold=1 / plan.promote_beta,
        reason=reason, threshold=numbers.threshold,
        final_pvalue=numbers.final_pvalue if final and plan.final_beta > 0 else None,
        ceiling_evalue=None if history.ceiling is None else history.ceiling.evalue, plan=ahead,
        baseline_rate=numbers.rate, leans_worse=history.leans_worse,
    )  # fmt: skip
    changed = history.changed or history.detector.alarm(plan.detector_threshold)
    updated = replace(
        history, regressed=regressed, changed=changed, within=within, max_evalue=max_e, last=evidence
    )
    return updated, evidence
