"""One analyze step: every interval, observe canary and baseline, ask the judge, record what was seen.

Each interval ends at the runtime clock's now after waiting the step's interval, and its window is
the interval. A ratio or histogram metric that had no data at a look (a backend that did not
answer, a query without series) is read at its next look over a window that reaches back to the
end of the last look before the gap (at most ``CATCH_UP_INTERVALS`` intervals). Its counts are
counters' increases: where the backend kept scraping and only the queries failed, what the gap held
(a canary that crashed for those seconds) is counted then, not lost, and the observation log
records the look's ``span`` (how many intervals its counts cover). Samples that Prometheus never
took (a scrape gap) stay lost: ``increase()`` sees only the samples in its window. The query
templates must put ``{interval}`` in the range of an ``increase()`` for this to hold. A metrics
backend that is down (`MetricsUnavailableError` after the observe task's retry) counts as an
interval without data: the judge waits and never promotes on it, and an inconclusive verdict then
says that it was a metrics outage, for how many intervals. The step
ends on the judge's first final verdict, or at ``maxDuration`` with `SequentialJudge.finish`
(inconclusive unless decided). Every interval is appended to the step's observation log
(``observations-step<N>.json``, written after each interval, so a killed run leaves it behind).

Before the first interval the step reads the stable's own counts of each ratio and histogram metric
for up to an hour before it (`canaryflow.metrics.stable_history`) and learns from them how much the
rates vary from interval to interval (`analysis.dispersion`); the judge weighs its first intervals
by that instead of by the largest jitter it allows. A history that is too short, or a backend that
does not answer it, leaves the bound fixed in advance. The log's header records what the judge was
given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from analysis.dispersion import DispersionBound, Warmup, spread_for_weight
from analysis.judge import SequentialJudge
from analysis.observations import PairedObservation
from analysis.verdicts import Verdict
from canaryflow.errors import MetricsError, MetricsUnavailableError
from canaryflow.metrics import MetricQuery, ObservationRecorder
from canaryflow.metrics.collect import HISTORY_INTERVALS, HISTORY_SECONDS, history_intervals, learn_warmup
from canaryflow.plan import RolloutPlan
from canaryflow.reports import observation_log
from flows.charts import render_chart
from flows.reporting import Reporter
from flows.runtime import Runtime
from flows.steps import hold, observe, observe_stable_history

__all__ = [
    "CATCH_UP_INTERVALS",
    "HISTORY_INTERVALS",
    "HISTORY_SECONDS",
    "analyze",
    "catch_up_windows",
    "look_spans",
    "record_missed",
]

#: The longest window a ratio or histogram metric is read over after looks without its data, in
#: intervals: a short gap is counted in full, a long outage does not become one huge look.
CATCH_UP_INTERVALS = 10

#: Called between intervals; raises (e.g. `RolloutAborted`) to stop the analysis.
Checkpoint = Callable[[], None]

#: Called with a verdict that is not final and what was observed (each count with its ``span``).
Undecided = Callable[[Verdict, dict[str, PairedObservation | None]], None]


def analyze(
    plan: RolloutPlan,
    runtime: Runtime,
    index: int,
    *,
    reporter: Reporter,
    checkpoint: Checkpoint,
    decided: Callable[[Verdict], None] = lambda verdict: None,
    undecided: Undecided = lambda verdict, seen: None,
) -> Verdict:
    """Run the analyze step `index` of `plan` on `runtime`'s clock and metrics source to its verdict
    (promote, rollback or inconclusive). `decided` is called with the verdict as soon as it is
    known, before it is reported (the caller records a decision in the cluster there);
    `undecided` with every verdict that is not final, what was observed then (``None`` for a
    metric without data: the caller counts the canary's traffic every interval, and may raise its
    weight on one where every metric had data; a count read back over looks without its data
    says how many intervals it covers, its ``span``: `look_spans`)."""
    step = plan.analyze_step(index)
    interval = step.interval.total_seconds()
    queries = plan.queries()
    units = {q.name: q.unit for q in queries if q.unit}
    dispersion = _warm_up(plan, runtime, index, queries, reporter, checkpoint)
    judge = SequentialJudge(
        plan.spec.analysis_settings(step), interval_seconds=interval, units=units, dispersion=dispersion
    )
    recorder = ObservationRecorder(queries, interval_seconds=interval, dispersion=dispersion)
    log = observation_log(reporter.directory, index)
    observe_io = observe.with_options(retries=1, retry_delay_seconds=min(interval / 4, 5.0))
    intervals = max(1, math.floor(step.max_duration.total_seconds() / interval + 1e-9))
    verdict: Verdict | None = None
    unanswered: list[str] = []
    clock = runtime.clock
    # maxDuration is time, not a count of looks: a look is taken one interval after the last one's
    # end (windows never overlap, a slow query or checkpoint does not push the next look back),
    # and none is started whose end would fall after maxDuration.
    last = clock.monotonic()
    ends = last + step.max_duration.total_seconds() + 1e-6
    since: dict[str, datetime] = {}  # per count metric that missed a look: where its data stops
    previous: datetime | None = None  # the latest look's end
    for _ in range(intervals):
        checkpoint()
        planned, now = last + interval, clock.monotonic()
        if verdict is not None and planned > ends:
            break
        reporter.next(
            f"analysis interval {_judged(verdict) + 1} of {intervals} (the judge decides at the "
            f"latest after interval {intervals})",
            at=max(0.0, planned - now),
        )
        end = hold(clock, max(0.0, planned - now), why=f"analysis interval of {plan.rollout_id}")
        last = planned if planned >= now else clock.monotonic()  # on time, or as soon as it could
        windows = catch_up_windows(since, end=end, interval=step.interval)
        try:
            observed, missing = observe_io(
                runtime.metrics,
                queries,
                namespace=plan.target.namespace,
                app=plan.target.app,
                end=end,
                window=step.interval,
                windows=windows,
            )
        except MetricsUnavailableError as exc:
            reporter.say("metrics unavailable, counted as an interval without data: %s", exc)
            unanswered.append(str(exc))
            observed, missing = dict.fromkeys((q.name for q in queries), None), {}
        for name, window in windows.items():
            if observed.get(name) is not None:
                reporter.say(
                    "%s: read over the last %gs, after looks without its data", name, window.total_seconds()
                )
        spans = look_spans(windows, observed, interval=step.interval)
        observed = {
            n: p if p is None or n not in spans else replace(p, span=spans[n]) for n, p in observed.items()
        }
        record_missed(since, queries, observed, start=end - step.interval if previous is None else previous)
        previous = end
        for name, tracks in missing.items():
            reporter.say("%s: %s", name, _no_data(tracks, plan.target.app))
        verdict = _judge(judge, recorder, observed, log)
        reporter.interval(index, observed, verdict, log)
        if verdict.final:
            break
        undecided(verdict, observed)
    if verdict is None or not verdict.final:
        verdict = judge.finish()
    if verdict.decision == "inconclusive" and unanswered:
        verdict = replace(
            verdict, reason=_outage_reason(unanswered, judge_intervals=verdict.interval) + verdict.reason
        )
    decided(verdict)
    settings = plan.spec.analysis_settings(step)
    tolerances = {m.name: settings.tolerance_for(m) for m in settings.metrics}
    reporter.verdict(index, verdict, log, chart=_chart(recorder, log, tolerances))
    return verdict


def catch_up_windows(
    since: Mapping[str, datetime], *, end: datetime, interval: timedelta
) -> dict[str, timedelta]:
    """The window of each count metric that missed its latest looks: back to `since` (the end of its
    last look with data), at least one interval and at most ``CATCH_UP_INTERVALS`` of them."""
    longest = interval * CATCH_UP_INTERVALS
    return {name: min(max(end - start, interval), longest) for name, start in since.items()}


def look_spans(
    windows: Mapping[str, timedelta], observed: Mapping[str, PairedObservation | None], *, interval: timedelta
) -> dict[str, float]:
    """How many intervals the data of each metric read over a longer window (`catch_up_windows`)
    cover, for those that had data at this look."""
    return {name: window / interval for name, window in windows.items() if observed.get(name) is not None}


def record_missed(
    since: dict[str, datetime],
    queries: list[MetricQuery],
    observed: Mapping[str, PairedObservation | None],
    *,
    start: datetime,
) -> None:
    """Update `since` after a look whose data would start at `start` (the previous look's end): a
    ratio or histogram metric without data keeps the point its next window reaches back to (`start`,
    at its first look without data); one with data drops out. Samples metrics are values at the
    end, not increases: nothing to catch up."""
    for query in queries:
        if observed.get(query.name) is not None:
            since.pop(query.name, None)
        elif query.type != "samples":
            since.setdefault(query.name, start)


def _warm_up(
    plan: RolloutPlan,
    runtime: Runtime,
    index: int,
    queries: list[MetricQuery],
    reporter: Reporter,
    checkpoint: Checkpoint,
) -> dict[str, Warmup]:
    """Metric name -> the warm-up dispersion the stable's history bounds (a number for a ratio,
    bound -> number for a histogram), for the metrics whose history taught something; the others
    start from the bound fixed in advance. A backend that does not answer ends the reading at once
    (the analysis starts without it); `checkpoint` is called before each metric."""
    requested = next(
        (s.set_weight for s in reversed(plan.spec.steps[:index]) if s.set_weight is not None), None
    )
    if not requested:
        return {}
    # The split may serve a little less than asked (whole pods): the smaller weight, the larger spread.
    effective = reporter.status.effective_weight
    weight = min(float(requested), effective) if effective > 0 else float(requested)
    window = plan.analyze_step(index).interval
    count = history_intervals(window)
    end = runtime.clock.now()
    spread = spread_for_weight(weight)
    learned: dict[str, Warmup] = {}
    for query in (q for q in queries if q.type in ("ratio", "histogram")):
        checkpoint()
        try:
            seen = observe_stable_history(
                runtime.metrics, query, namespace=plan.target.namespace, app=plan.target.app,
                end=end, window=window, intervals=count,
            )  # fmt: skip
        except (MetricsError, MetricsUnavailableError) as exc:
            reporter.say(
                "%s: the stable's history could not be read, so the analysis starts from the "
                "dispersion bound fixed in advance: %s",
                query.name,
                exc,
            )
            if isinstance(exc, MetricsUnavailableError):
                break  # the backend is down or slow: do not wait for it again before the analysis
            continue
        warmup = learn_warmup(query, seen, spread)
        reporter.say("%s: %s", query.name, _describe(warmup, len(seen)))
        if isinstance(warmup, DispersionBound):
            if warmup.learned:
                learned[query.name] = warmup.kappa
        elif warmup:
            learned[query.name] = warmup
    return learned


def _describe(warmup: DispersionBound | dict[float, float], intervals: int) -> str:
    """What the run's log says about a metric's warm-up."""
    if isinstance(warmup, DispersionBound):
        return warmup.describe()
    if warmup:
        return (
            f"the stable's last {intervals} intervals bound the dispersion at {len(warmup)} of its "
            "bucket bounds (the others start from the bound fixed in advance)"
        )
    return (
        f"the stable's history ({intervals} intervals) has no bucket bound with five requests on "
        "each side in five intervals: the analysis starts from the bound fixed in advance"
    )


def _judged(verdict: Verdict | None) -> int:
    """The intervals judged so far (0 before the first verdict)."""
    return 0 if verdict is None else verdict.interval


def _no_data(tracks: tuple[str, ...], app: str) -> str:
    """Which tracks had no data in an interval, and what the queries were rendered with for them."""
    which = " and ".join(tracks)
    labels = " and ".join(f'{{track}}="{track}"' for track in tracks)
    return (
        f"no data for the {which} track{'s' if len(tracks) > 1 else ''} in this interval (its queries "
        f'rendered with {{app}}="{app}" and {labels}: are the pods scraped with those labels? a new '
        "pod may not be scraped yet)"
    )


def _outage_reason(unanswered: list[str], *, judge_intervals: int) -> str:
    """Why an inconclusive analysis lacked data, when the metrics backend was down: an outage is
    reported as one, not as a canary without evidence."""
    return (
        f"Metrics outage: the metrics backend did not answer for {len(unanswered)} of {judge_intervals} "
        f"intervals (last: {unanswered[-1]}). "
    )


def _judge(
    judge: SequentialJudge,
    recorder: ObservationRecorder,
    observed: dict[str, PairedObservation | None],
    log: Path,
) -> Verdict:
    recorder.record(observed)
    recorder.write(log)
    return judge.update(observed)


def _chart(recorder: ObservationRecorder, log: Path, tolerances: dict[str, float]) -> str | None:
    """The step's chart as a markdown image (None when nothing was observed)."""
    return render_chart(recorder.log(), log.with_suffix(".png"), tolerances)
