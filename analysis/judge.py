"""The sequential judge: continue, promote or roll back after every interval.

`SequentialJudge` is the object the rollout flow and ``canaryflow replay`` use::

    judge = SequentialJudge(settings, interval_seconds=30)
    for observations in intervals:
        verdict = judge.update(observations)
        if verdict.final:
            break
    else:
        verdict = judge.finish()

All state transitions happen in one pure function, `advance` (and `conclude` at the end);
the class only holds the current state.

Decision rule (after interval ``t``, with per-metric evidence from `analysis.evidence`):

1. **rollback** when a critical metric regressed, or the regressed non-critical metrics carry at
   least ``rollback_share`` of the total weight. A metric regresses when its evidence against
   "no worse than the baseline" reaches its threshold, at any look, from the first interval on
   (no minimum evidence delays a rollback). Each metric's budget ``alpha_m = alpha * weight /
   sum of weights`` (weighted Bonferroni) is split between two e-processes: the whole-analysis
   e-value (``1 - DETECTOR_SHARE`` of it; Ville's inequality) and a change detector for a canary
   that turns bad mid-analysis (``DETECTOR_SHARE`` of it; `analysis.detection`, whose
   Shiryaev-Roberts bound holds over the ``max_intervals`` looks). The probability of any false
   rollback, over all metrics and all looks, is at most ``alpha`` by the union bound.
2. **promote** when every metric is within its tolerance, the analysis ran at least
   ``min_exposure_seconds``, every metric had data in this interval (no promotion on a scrape
   gap), and no metric's change detector leans towards "worse since some interval"
   (`analysis.detection.BLOCK`), neither as it weighs the intervals nor weighing them by the warm-up
   bound learned from the stable's history (`analysis.dispersion`; this guard only holds a
   promotion back, so it spends no ``alpha``). A metric is within tolerance when its anytime e-value against
   "worse than the tolerance" reached ``1/promote_beta`` (what the other routes below leave of
   ``beta``) at some look, or, at the last
   look (``max_intervals``) only, when the fixed-horizon test of `analysis.counts` rejects
   "worse than the tolerance" at ``final_beta``, ``FINAL_SHARE`` of what the ceiling and the
   absolute tolerance leave of ``beta`` (count metrics), or, for
   a metric with a ceiling (``max_rate``), when the ceiling test of `analysis.ceiling`
   shows the canary's rate below it at ``ceiling_beta = CEILING_SHARE * beta`` (the relative
   tests then share the rest), or, for a ratio metric with an absolute tolerance
   (``max_increase``), when the largest increase of the canary's rate over the baseline's that
   the data allow is below it, or, at the last look only, when the fixed-horizon test of the
   difference of the two rates rejects "worse than the margin" (`analysis.increase`, the two
   sharing ``INCREASE_SHARE * beta``); a histogram's
   absolute tolerance (``max_increase`` in its unit) moves where its promotion test counts the
   canary (`analysis.histogram`) and needs no share of its own. The
   probability of promoting while some metric is worse than its tolerance (for a ceiling or an
   absolute tolerance: worse than the relative tolerance *and* than each of them) is
   at most ``beta`` (the union bound per metric; the rule is an intersection-union test across
   metrics).
3. **inconclusive** at ``max_duration_seconds`` (or when the caller calls `finish`), or
   **rollback** then if some metric regressed without reaching the share in 1; and
   **inconclusive** early, when no metric regressed and some ratio metric that had its minimum
   intervals has an evidence plan whose chance of showing a canary like its baseline within
   tolerance by the maximum duration is below ``min_chance`` (`analysis.outlook`): the promotion
   that waiting could bring is that unlikely. No promotion or rollback error is risked by it
   (nothing is promoted or rolled back on it by the judge; the caller's policy for inconclusive
   analyses decides).
4. otherwise **continue**. An interval without data for a metric adds nothing to its evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from analysis.detection import detector_threshold
from analysis.dispersion import Warmup
from analysis.evidence import (
    CEILING_SHARE,
    DETECTOR_SHARE,
    FINAL_SHARE,
    INCREASE_SHARE,
    MetricHistory,
    MetricPlan,
    assess,
    record,
)
from analysis.observations import (
    IntervalObservations,
    PairedObservation,
)
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Decision, MetricEvidence, Verdict

__all__ = ["GAVE_UP", "JudgePlan", "JudgeState", "SequentialJudge", "advance", "conclude", "plan_for"]


#: How the reason of an analysis the judge gave up on (rule 3) begins.
GAVE_UP = "Inconclusive early"


@dataclass(frozen=True, slots=True)
class JudgePlan:
    """Everything the judge needs from the settings, resolved once."""

    metrics: tuple[MetricPlan, ...]
    min_exposure_intervals: int
    max_intervals: int
    rollback_share: float
    min_chance: float = 0.0


@dataclass(frozen=True, slots=True)
class JudgeState:
    """The judge's state after ``interval`` intervals; ``decision`` is final once not ``continue``."""

    interval: int
    histories: tuple[MetricHistory, ...]
    decision: Decision = "continue"

    @classmethod
    def initial(cls, plan: JudgePlan) -> JudgeState:
        """The state before the first interval."""
        return cls(interval=0, histories=tuple(MetricHistory() for _ in plan.metrics))


def plan_for(
    settings: AnalysisSettings,
    *,
    interval_seconds: float,
    units: Mapping[str, str] | None = None,
    dispersion: Mapping[str, Warmup] | None = None,
) -> JudgePlan:
    """Resolve `settings` (which must list its metrics) for intervals of `interval_seconds`;
    `dispersion` maps ratio and histogram metrics to the warm-up dispersion learned before the
    analysis (`analysis.dispersion`)."""
    warmups = dispersion or {}
    if not settings.metrics:
        raise ValueError("the analysis settings list no metrics")
    total_weight = sum(m.weight for m in settings.metrics)
    max_intervals = max(1, math.floor(settings.max_duration_seconds / interval_seconds + 1e-9))

    def threshold(metric_type: str, alpha: float) -> float:
        if metric_type == "samples":  # no per-interval e-value: the cumulative test alone
            return math.inf
        return detector_threshold(max_intervals, alpha * DETECTOR_SHARE)

    plans = tuple(
        MetricPlan(
            name=m.name,
            type=m.type,
            direction=m.direction,
            tolerance=settings.tolerance_for(m),
            critical=m.critical,
            weight=m.weight,
            alpha=settings.alpha * m.weight / total_weight,
            beta=settings.beta,
            min_intervals=settings.min_intervals_for(m),
            min_count=m.min_count,
            unit=(units or {}).get(m.name, ""),
            detector_threshold=threshold(m.type, settings.alpha * m.weight / total_weight),
            final_beta=_final_beta(m, settings.beta),
            max_rate=m.ceiling,
            ceiling_beta=0.0 if m.ceiling is None else settings.beta * CEILING_SHARE,
            slower_than=m.slower_than,
            max_increase=m.max_increase if m.type == "ratio" else None,
            increase_beta=settings.beta * INCREASE_SHARE if m.type == "ratio" and m.max_increase else 0.0,
            shift=m.max_increase if m.type == "histogram" and m.max_increase else 0.0,
            kappa_start=_ratio_warmup(m, warmups.get(m.name)),
            bucket_kappa=_bucket_warmup(m, warmups.get(m.name)),
        )
        for m in settings.metrics
    )
    return JudgePlan(
        metrics=plans,
        min_exposure_intervals=max(1, math.ceil(settings.min_exposure_seconds / interval_seconds - 1e-9)),
        max_intervals=max_intervals,
        rollback_share=settings.rollback_share,
        min_chance=settings.min_chance,
    )


def _ratio_warmup(metric: MetricSettings, warmup: Warmup | None) -> float | None:
    if metric.type != "ratio" or isinstance(warmup, bool) or not isinstance(warmup, int | float):
        return None
    return float(warmup)


def _bucket_warmup(metric: MetricSettings, warmup: Warmup | None) -> tuple[tuple[float, float], ...]:
    if metric.type != "histogram" or warmup is None or isinstance(warmup, int | float):
        return ()
    return tuple(sorted((float(b), float(k)) for b, k in warmup.items()))


def _final_beta(metric: MetricSettings, beta: float) -> float:
    """The final look's share of `beta`: ``FINAL_SHARE`` of what the ceiling and the absolute
    tolerance leave (none for samples)."""
    if metric.type == "samples":
        return 0.0
    others = (CEILING_SHARE if metric.ceiling is not None else 0.0) + (
        INCREASE_SHARE if metric.type == "ratio" and metric.max_increase is not None else 0.0
    )
    return beta * (1.0 - others) * FINAL_SHARE


def _has_data(plan: MetricPlan, pair: PairedObservation | None) -> bool:
    return pair is not None and pair.has_data


def _decide(
    plan: JudgePlan, interval: int, evidence: Mapping[str, MetricEvidence], complete: bool
) -> tuple[Decision, str]:
    regressed = [m for m in plan.metrics if evidence[m.name].status == "regressed"]
    critical = [m.name for m in regressed if m.critical]
    total_weight = sum(m.weight for m in plan.metrics)
    share = sum(m.weight for m in regressed if not m.critical) / total_weight
    if critical or (regressed and share >= plan.rollback_share - 1e-12):
        names = critical or [m.name for m in regressed]
        return "rollback", "Roll back: " + " ".join(evidence[n].reason for n in names)
    within = all(evidence[m.name].status == "within" for m in plan.metrics)
    if within and complete and interval >= plan.min_exposure_intervals:
        return "promote", f"Promote: every metric is within its tolerance after {interval} intervals."
    if interval >= plan.max_intervals:
        return _at_the_end(plan, interval, evidence, complete=complete)
    out_of_reach = _out_of_reach(plan, evidence) if not regressed else None
    if out_of_reach is not None:
        return "inconclusive", out_of_reach
    waiting = [m.name for m in plan.metrics if evidence[m.name].status != "within"]
    if within and not complete:
        return "continue", "Continue: no promotion on an interval with missing data."
    if within:
        return (
            "continue",
            "Continue: every metric is within tolerance; minimum exposure is "
            f"{plan.min_exposure_intervals} intervals.",
        )
    return "continue", "Continue: waiting for " + ", ".join(waiting) + "."


def _out_of_reach(plan: JudgePlan, evidence: Mapping[str, MetricEvidence]) -> str | None:
    """Why the analysis gives up now (rule 3), or None: the metrics whose chance of being shown
    within tolerance by the maximum duration is below ``min_chance``."""
    hopeless = [
        m
        for m in plan.metrics
        if m.type == "ratio"  # a histogram's resolved bounds move: its plan is too rough to act on
        and m.max_increase is None  # the give-up rule was measured on the relative route only
        and (ahead := evidence[m.name].plan) is not None
        and ahead.chance is not None
        and ahead.chance < plan.min_chance
        and evidence[m.name].intervals >= m.min_intervals
    ]
    if not hopeless:
        return None
    return (
        f"{GAVE_UP}: at the traffic seen, a canary like its baseline cannot be shown within "
        f"tolerance by the maximum duration ({plan.max_intervals} intervals): "
        + " ".join(evidence[m.name].reason for m in hopeless)
        + " Raise maxDuration or the canary's weight, or set a ceiling (maxRate) or an absolute tolerance"
        " (maxIncrease)."
    )


def _at_the_end(
    plan: JudgePlan, interval: int, evidence: Mapping[str, MetricEvidence], *, complete: bool = True
) -> tuple[Decision, str]:
    regressed = [m.name for m in plan.metrics if evidence[m.name].status == "regressed"]
    if regressed:
        return "rollback", f"Roll back at the end ({interval} intervals): " + " ".join(
            evidence[n].reason for n in regressed
        )
    if all(evidence[m.name].status == "no_data" for m in plan.metrics):
        return "inconclusive", f"Inconclusive: no data in {interval} intervals."
    open_ = [m.name for m in plan.metrics if evidence[m.name].status != "within"]
    if not open_ and not complete:
        return (
            "inconclusive",
            f"Inconclusive after {interval} intervals: every metric is within tolerance, but the last "
            "interval had missing data (no promotion on missing data).",
        )
    if not open_:  # within, but the minimum exposure is longer than the analysis
        return (
            "inconclusive",
            f"Inconclusive after {interval} intervals: every metric is within tolerance, but the minimum "
            f"exposure is {plan.min_exposure_intervals} intervals.",
        )
    return (
        "inconclusive",
        f"Inconclusive after {interval} intervals: not shown within tolerance: {', '.join(open_)}.",
    )


def _evidence(state: JudgeState) -> dict[str, MetricEvidence]:
    return {h.last.name: h.last for h in state.histories if h.last is not None}


def advance(
    plan: JudgePlan, state: JudgeState, observations: IntervalObservations
) -> tuple[JudgeState, Verdict]:
    """One interval: record what came in, reassess the metrics that got data, decide.

    Pure: returns the next state and the verdict; `state` is not modified.
    """
    if state.decision != "continue":
        raise ValueError(f"the analysis is over ({state.decision} after {state.interval} intervals)")
    interval = state.interval + 1
    final = interval >= plan.max_intervals
    histories: list[MetricHistory] = []
    evidence: dict[str, MetricEvidence] = {}
    complete = True
    for metric, history in zip(plan.metrics, state.histories, strict=True):
        pair = observations.get(metric.name)
        if _has_data(metric, pair):
            assert pair is not None
            history = record(metric, history, pair)
            history, evidence[metric.name] = assess(
                metric, history, final=final, final_interval=plan.max_intervals
            )
        else:
            complete = False
            if history.last is None or final:
                history, evidence[metric.name] = assess(metric, history, final=final)
            else:
                evidence[metric.name] = history.last
        histories.append(history)
    decision, reason = _decide(plan, interval, evidence, complete)
    next_state = JudgeState(interval=interval, histories=tuple(histories), decision=decision)
    return next_state, Verdict(decision=decision, interval=interval, reason=reason, metrics=evidence)


def conclude(plan: JudgePlan, state: JudgeState) -> tuple[JudgeState, Verdict]:
    """End the analysis now (maximum duration, or the log ended): inconclusive unless decided."""
    evidence = {
        m.name: (h.last if h.last is not None else assess(m, h)[1])
        for m, h in zip(plan.metrics, state.histories, strict=True)
    }
    if state.decision != "continue":
        return state, Verdict(
            decision=state.decision, interval=state.interval, reason="Already decided.", metrics=evidence
        )
    decision, reason = _at_the_end(plan, state.interval, evidence)
    return replace(state, decision=decision), Verdict(
        decision=decision, interval=state.interval, reason=reason, metrics=evidence
    )


class SequentialJudge:
    """The anytime-valid sequential judge (see the module docstring for the rule).

    Parameters
    ----------
    settings : AnalysisSettings
        Must list its metrics (use `analysis.replaying.settings_for_log` to take them from a log).
    interval_seconds : float
        Length of one interval; converts the durations in `settings` into intervals.
    units : mapping, optional
        Metric name -> unit, used in the reasons.
    dispersion : mapping, optional
        Metric name -> the warm-up dispersion bound learned from the stable's history before the
        analysis: a number for a ratio metric (`analysis.dispersion.stable_dispersion`), bucket
        bound -> number for a histogram (`analysis.dispersion.bucket_dispersion`); the others, and
        bounds not given, start from the bound fixed in advance.
    """

    def __init__(
        self,
        settings: AnalysisSettings,
        *,
        interval_seconds: float,
        units: Mapping[str, str] | None = None,
        dispersion: Mapping[str, Warmup] | None = None,
    ) -> None:
        self.plan = plan_for(settings, interval_seconds=interval_seconds, units=units, dispersion=dispersion)
        self.state = JudgeState.initial(self.plan)

    def update(self, observations: IntervalObservations) -> Verdict:
        """Judge after one more interval."""
        self.state, verdict = advance(self.plan, self.state, observations)
        return verdict

    def finish(self) -> Verdict:
        """End the analysis (the maximum duration was reached or the data ended)."""
        self.state, verdict = conclude(self.plan, self.state)
        return verdict
