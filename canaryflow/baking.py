r"""The bake after a wave: the wave's promoted cells against the cells not updated yet, judged.

Once a wave's cells are promoted they serve the new image on their stable track, while the cells
of the later waves still serve the old one. A bake (`canaryflow.spec.release.Bake`) compares the
two groups on the rollout spec's metrics with the judge the rollouts use
(`analysis.judge.SequentialJudge`, with the settings of the spec's last analyze step): every
analysis interval since the bake started, the stable traffic of the promoted cells, summed, is the
judge's canary and that of the cells not updated yet, summed, its baseline. The verdict:

- ``worse``: the judge rolls back (the promoted cells are worse than the others beyond the
  tolerance), at any look;
- ``within``: the judge promotes (not before ``minDuration``: it is the judge's minimum exposure)
  at a look where the promoted cells have served ``minRequests`` (counted by the first ratio
  metric's total, else the first histogram's); a promotion before that does not end the judging:
  the judge looks on, and a regression found meanwhile is still ``worse``;
- ``inconclusive``: ``maxDuration`` passed without either, the judge saw early that it cannot
  show the release within tolerance by then, or the metrics cannot be read (a query refused,
  cells whose series cannot be added up, a Prometheus silent past ``maxDuration``): the release
  stops, since a bake never lets it go on without evidence;
- ``pending`` otherwise.

**Against history** (``against: history``, the last wave's default: no cells are left to compare
with): the promoted cells against themselves before the release reached them. Interval ``i``
of the bake is paired with interval ``i`` of as many intervals as the bake has, ending when the
first of the wave's rollout runs was created (`canaryflow.triggers.port.CellRuns.began`); both
are the cells' stable traffic. This pairing cancels nothing the two times do not share: a daily
pattern, an incident before or during the bake, or a change of the clients between the two
windows is read as the release's. And it knows only this release's runs: a history window that
holds an image of an earlier attempt (a release retried under a new id, one superseded, a
rollout by hand) compares with that image, not with the last one known good. It is the weaker
comparison; a bake against later waves is preferred wherever there are any.

**Warm-up.** Before its first interval a bake learns how much each cell's stable counts vary from
interval to interval, on the hour before the release reached the wave (intervals of the bake's
length, up to `canaryflow.metrics.collect.HISTORY_INTERVALS` of them, ending when the wave's
first rollout run was created; against history, ending where the paired history window starts),
as a rollout's analysis does before it (`analysis.dispersion`). The judge weighs its first
intervals by that bound instead of by the largest jitter it allows, which held a bake of busy
cells back by ten intervals or more; from its third interval with information its own estimate
takes over, as in an analysis. None of that history is an interval the bake judges, so the
argument of `analysis.counts` is unchanged. The history is read with the first interval (a
Prometheus that does not answer holds the bake the same way), so a resumed bake learns the same
warm-up; a metric whose query Prometheus refuses, or that any cell's history cannot bound, starts
from the bound fixed in advance (for a histogram, each bucket bound on its own).

Each cell's bound is learned on its own (the cells' series cannot be added up interval by
interval when one of them misses a scrape), and a group's is the largest of its cells'
(`group_warmup`). Why that is enough, to second order and for shares that do not change: let cell
:math:`k` count :math:`b_k` of :math:`t_k` requests at rate :math:`\lambda_k\xi_k`, with
:math:`\mathrm{Var}\,\xi_k = s_k^2`. The group's count :math:`\sum_k b_k` has the rate factor
:math:`\sum_k w_k\xi_k` with :math:`w_k` the cells' shares of the counted events
(:math:`\sum_k w_k = 1`), whose variance is :math:`\sum_k w_k^2 s_k^2 \le \max_k s_k^2` for
independent factors and at most :math:`(\sum_k w_k s_k)^2 \le \max_k s_k^2` for correlated ones.
The per-track :math:`\kappa = s^2/(1-\lambda)^2` then needs :math:`1-\lambda` of the group, the
event-weighted mean of the cells' :math:`1-\lambda_k`, not to be smaller than the cell's whose
:math:`s_k` is largest; for an error rate (:math:`1-\lambda` near 1 everywhere) that is immaterial,
for a histogram's low bounds it is not guaranteed, and neither is a mix of cells whose shares of
the traffic change from interval to interval (the group's rate then moves with the mix, which no
cell's history shows). Those cases are not simulated; the judge's own estimate, which rises above
the warm-up as soon as the bake's residuals say so, is what covers them from the third interval.
The judge's warm-up is the promoted group's bound plus the compared group's (``spread`` 1 for
each: both are the whole of their cells' stable traffic, in the bake as in the history).

An interval is read the bake's ``readLag`` after its end (all of it scraped by then, so a release
resumed later reads the same numbers; 30 s by default). One whose Prometheus
does not answer is read again at the next look, not skipped; one where a cell has no data is an
interval without data for the judge (it never promotes on it).

What the comparison assumes: the judge's error rates hold for two groups that would behave alike if
they ran the same image. Cells differ more than pods behind one Service (their clients, their load,
their dependencies), so a difference that was there before the release is read as the release's;
the judge's tolerance and its dispersion estimate absorb some of it. Choose cells of one kind for a
wave and the cells after it, and read a ``worse`` as "the cells now differ", which is what a
release should stop on.

A bake keeps nothing but its start (when the wave's last rollout run ended, which the runs keep):
a release resumed anywhere reads the same intervals from Prometheus again and, while Prometheus
keeps them, gets the same verdict. What it judged is also kept as an observation log
(`WaveBake.recorder`, the format ``canaryflow replay`` reads: the promoted cells are the canary,
what they are compared with the baseline), which the release writes next to its report and draws
once the bake decided.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from analysis.counts import KAPPA_MAX
from analysis.dispersion import DispersionBound, Warmup
from analysis.histogram import KAPPA_MAX_BUCKETS
from analysis.judge import JudgeState, advance, plan_for
from analysis.observations import (
    HistogramCounts,
    PairedObservation,
    RatioCounts,
    Samples,
    TrackObservation,
)
from canaryflow.errors import CanaryflowError, MetricsError, MetricsUnavailableError, NoDataError, QueryError
from canaryflow.metrics.collect import history_intervals, learn_warmup, stable_history
from canaryflow.metrics.port import MetricQuery, MetricsSource
from canaryflow.metrics.recording import ObservationRecorder
from canaryflow.plan import RolloutPlan
from canaryflow.spec.models import Analyze
from canaryflow.spec.release import READ_LAG, Bake, BakeAgainst
from canaryflow.waves import BakeVerdict

__all__ = [
    "READ_LAG",
    "UNANSWERED_GRACE",
    "BakeProgress",
    "WaveBake",
    "bake_interval",
    "combine",
    "group_warmup",
]

#: How long past ``maxDuration`` a bake waits for a Prometheus that does not answer.
UNANSWERED_GRACE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class BakeProgress:
    """Where a wave's bake stands: its verdict and why, since when, the intervals judged (of at
    most `intervals`) and the requests the promoted cells served."""

    wave: int
    verdict: BakeVerdict
    reason: str
    started: datetime
    judged: int
    intervals: int
    requests: float

    def describe(self) -> str:
        """E.g. ``wave 1 bake: 12 of 120 interval(s), 5300 request(s) on the new image: ...``."""
        return (
            f"wave {self.wave + 1} bake: {self.judged} of {self.intervals} interval(s), "
            f"{self.requests:.0f} request(s) on the new image: {self.reason}"
        )


def bake_interval(plan: RolloutPlan) -> Analyze:
    """The analyze step whose interval and settings a bake uses: the rollout spec's last one (or
    the defaults of one when the spec has none)."""
    steps = [step.analyze for step in plan.spec.steps if step.analyze is not None]
    return steps[-1] if steps else Analyze()


class WaveBake:
    """The bake of wave `wave`: `promoted` cells against `compared` cells, each a rollout plan (its
    target and metrics) read through `sources` (a cell's name -> its metrics source), from
    `started`; with `history` (when the wave's first rollout run was created) and no `compared`
    cells, against the promoted cells' own traffic of as many intervals as the bake has, ending at
    `history`. `began` (when the wave's first rollout run was created) is where the warm-up's
    history of the cells ends (against history, it ends where the paired window starts); without
    it the judge starts from the dispersion bound fixed in advance. Call `advance` with the time;
    it judges the intervals that ended since."""

    def __init__(
        self,
        wave: int,
        bake: Bake,
        *,
        promoted: Mapping[str, RolloutPlan],
        compared: Mapping[str, RolloutPlan],
        sources: Callable[[str], MetricsSource],
        started: datetime,
        history: datetime | None = None,
        began: datetime | None = None,
    ) -> None:
        if not promoted or (not compared and history is None):
            raise ValueError("a bake needs promoted cells, and cells not updated yet or their history")
        if started.tzinfo is None or (history is not None and history.tzinfo is None):
            raise ValueError(f"started and history must be timezone-aware, got {started!r}, {history!r}")
        if history is not None and history > started:
            raise ValueError(f"the history must end before the bake starts, got {history} after {started}")
        if began is not None and (began.tzinfo is None or began > started):
            raise ValueError(f"began must be timezone-aware and before the bake starts, got {began!r}")
        self.wave = wave
        self.bake = bake
        self.promoted = dict(promoted)
        self.compared = dict(compared)
        self.sources = sources
        self.started = started
        self.history = history
        self.began = began
        self.read_lag = bake.read_lag
        plan = next(iter(self.promoted.values()))
        step = bake_interval(plan)
        self.interval = step.interval
        self.queries: list[MetricQuery] = plan.queries()
        settings = plan.spec.analysis_settings(step).model_copy(
            update={
                "max_duration_seconds": bake.max_duration.total_seconds(),
                "min_exposure_seconds": bake.min_duration.total_seconds(),
            }
        )
        self._settings = settings
        self._units = {q.name: q.unit for q in self.queries if q.unit}
        #: Metric name -> the warm-up dispersion learned from the cells' history (read with the
        #: first interval; empty until then, and for metrics that start from the bound fixed in
        #: advance).
        self.warmup: dict[str, Warmup] = {}
        self._warmed = began is None
        self._start_judge()
        #: Each metric's relative tolerance, for a chart of the bake.
        self.tolerances = {m.name: settings.tolerance_for(m) for m in settings.metrics}
        self.intervals = self._plan.max_intervals
        self.judged = 0
        self.requests = 0.0
        self.progress = BakeProgress(
            wave, "pending", "the bake has just started", started, 0, self.intervals, 0.0
        )

    @property
    def against(self) -> BakeAgainst:
        """What the promoted cells are compared with: the later waves' cells, or their history."""
        return "history" if self.history is not None else "later-waves"

    def _start_judge(self) -> None:
        """The judge's plan and state before any interval, with the warm-up learned so far, and an
        empty record of what it judged."""
        seconds = self.interval.total_seconds()
        self._plan = plan_for(
            self._settings, interval_seconds=seconds, units=self._units, dispersion=self.warmup
        )
        self._state = JudgeState.initial(self._plan)
        #: The intervals judged, as an observation log (canary: the promoted cells).
        self.recorder = ObservationRecorder(self.queries, interval_seconds=seconds, dispersion=self.warmup)

    def advance(self, now: datetime) -> BakeProgress:
        """Judge every interval that ended by `now` (less the read lag) and is not judged yet; the
        progress. An interval whose Prometheus does not answer is not judged yet: it is read again
        at the next call (until ``maxDuration`` and `UNANSWERED_GRACE` have passed). The warm-up's
        history is read before the first interval, and waited for the same way."""
        while self.progress.verdict == "pending" and self.judged < self.intervals:
            end = self.started + self.interval * (self.judged + 1)
            if end + self.read_lag > now:
                break
            try:
                if not self._warmed:  # before the first interval, when the history's last is read too
                    self.warmup = self._learn()
                    self._warmed = True
                    self._start_judge()
                observed = self._observe(end)
            except MetricsUnavailableError as exc:
                if now > self.started + self.bake.max_duration + UNANSWERED_GRACE:
                    return self._set("inconclusive", f"its metrics cannot be read: {exc}")
                return self._set("pending", f"waiting for Prometheus to answer: {exc}")
            except MetricsError as exc:  # a query refused, or series that cannot be added up
                return self._set("inconclusive", f"its metrics cannot be read: {exc}")
            self.judged += 1
            self.requests += _requests(self.queries, observed)
            self._judge(observed)
            with contextlib.suppress(CanaryflowError):  # the record is for people, not the verdict
                self.recorder.record(observed)
        return self.progress

    def _judge(self, observed: Mapping[str, PairedObservation | None]) -> None:
        """One interval to the judge. A promotion before ``minRequests`` does not end the judging:
        the judge goes on looking (its rollback evidence and change detectors hold at every look
        up to its maximum, `analysis.judge`) and the bake is within once the judge promotes at a
        look where the requests are there too."""
        self._state, verdict = advance(self._plan, self._state, observed)
        if verdict.decision == "rollback":
            self._set("worse", verdict.reason)
        elif verdict.decision == "promote" and self.requests >= self.bake.min_requests:
            self._set("within", verdict.reason)
        elif self.judged >= self.intervals:
            why = (
                f"the promoted cells served {self.requests:.0f} of the {self.bake.min_requests} requests "
                "the bake needs"
                if verdict.decision == "promote"
                else verdict.reason
            )
            self._set("inconclusive", f"maxDuration reached: {why}")
        elif verdict.decision == "promote":  # within tolerance, too few requests yet: look on
            self._state = replace(self._state, decision="continue")
            self._set("pending", f"within tolerance; waiting for {self.bake.min_requests} requests")
        elif verdict.final:  # inconclusive early: the judge sees no chance to show it within
            self._set("inconclusive", verdict.reason)
        else:
            self._set("pending", verdict.reason)

    def _set(self, verdict: BakeVerdict, reason: str) -> BakeProgress:
        self.progress = BakeProgress(
            self.wave, verdict, reason, self.started, self.judged, self.intervals, self.requests
        )
        return self.progress

    def _observe(self, end: datetime) -> dict[str, PairedObservation | None]:
        observed: dict[str, PairedObservation | None] = {}
        for query in self.queries:
            canary = self._group(self.promoted, query, end)
            baseline = (
                self._group(self.compared, query, end)
                if self.compared
                else self._group(self.promoted, query, end - self._shift())
            )
            observed[query.name] = (
                None
                if canary is None or baseline is None
                else PairedObservation(baseline=baseline, canary=canary)
            )
        return observed

    def _learn(self) -> dict[str, Warmup]:
        """The judge's warm-up, metric name -> dispersion (see the module's notes)."""
        assert self.began is not None
        end = self.began if self.history is None else self.started - self._shift()
        count = history_intervals(self.interval)
        learned: dict[str, Warmup] = {}
        for query in (q for q in self.queries if q.type in ("ratio", "histogram")):
            try:
                canary = [
                    self._cell_warmup(cell, plan, query, end, count) for cell, plan in self.promoted.items()
                ]
                baseline = [
                    self._cell_warmup(cell, plan, query, end, count) for cell, plan in self.compared.items()
                ]
            except MetricsUnavailableError:
                raise  # the bake waits for it, as for an interval: a resumed one learns the same
            except MetricsError:
                continue  # a refused query: refused again on resume, so this metric never learns
            cap = KAPPA_MAX if query.type == "ratio" else KAPPA_MAX_BUCKETS
            warmup = group_warmup(canary, baseline or canary, cap=cap)
            if warmup is not None:
                learned[query.name] = warmup
        return learned

    def _cell_warmup(
        self, cell: str, plan: RolloutPlan, query: MetricQuery, end: datetime, count: int
    ) -> DispersionBound | dict[float, float]:
        seen = stable_history(
            self.sources(cell), query, namespace=plan.target.namespace, app=plan.target.app,
            end=end, window=self.interval, intervals=count,
        )  # fmt: skip
        return learn_warmup(query, seen, 1.0)

    def _shift(self) -> timedelta:
        """How far back the history interval paired with each bake interval ends: interval i of the
        bake's intervals that ended at `history` is paired with the bake's interval i (the last
        one ends at `history`, never after, whatever ``maxDuration`` and the interval)."""
        assert self.history is not None
        return self.started - self.history + self.interval * self.intervals

    def _group(
        self, plans: Mapping[str, RolloutPlan], query: MetricQuery, end: datetime
    ) -> TrackObservation | None:
        """The cells' observations added up; None when any cell has no data (a group judged
        without one of its cells would not be the group the bake compares)."""
        seen: list[TrackObservation] = []
        for cell, plan in plans.items():
            try:
                seen.append(
                    self.sources(cell).observe(
                        query,
                        namespace=plan.target.namespace,
                        app=plan.target.app,
                        track="stable",
                        end=end,
                        window=self.interval,
                    )
                )
            except NoDataError:
                return None
        return combine(seen, query=query.name)


def group_warmup(
    canary: Sequence[DispersionBound | Mapping[float, float]],
    baseline: Sequence[DispersionBound | Mapping[float, float]],
    *,
    cap: float,
) -> Warmup | None:
    """The judge's warm-up from each cell's, each learned with ``spread`` 1 for both tracks (so
    twice the cell's per-track bound, at most `cap`): the largest per-track bound of the `canary`
    group plus the largest of the `baseline` group, at most `cap`; a cell at `cap` puts the result
    there (its own bound may be higher). None when a cell's history bounds nothing; for a
    histogram, only the bucket bounds every cell's history bounds."""
    cells = [*canary, *baseline]
    ours, theirs = len(canary), len(baseline)
    if not ours or not theirs:
        raise ValueError("a group warm-up needs cells in both groups")

    def combined(values: Sequence[float]) -> float:
        if max(values) >= cap:
            return cap
        return min(cap, (max(values[:ours]) + max(values[ours:])) / 2)

    ratios = [c for c in cells if isinstance(c, DispersionBound)]
    if ratios:
        if len(ratios) != len(cells) or not all(c.learned for c in ratios):
            return None
        return combined([c.kappa for c in ratios])
    maps = [c for c in cells if not isinstance(c, DispersionBound)]
    common = set(maps[0]).intersection(*maps[1:])
    return {b: combined([m[b] for m in maps]) for b in sorted(common)} or None


def combine(observations: Sequence[TrackObservation], *, query: str) -> TrackObservation:
    """Several cells' observations of one metric as one: counts added (a histogram's buckets must
    match), samples put together.

    Raises
    ------
    QueryError
        Observations of different kinds, or histograms with different buckets.
    """
    first = observations[0]
    if isinstance(first, RatioCounts):
        ratios = [o for o in observations if isinstance(o, RatioCounts)]
        if len(ratios) == len(observations):
            return RatioCounts(bad=sum(o.bad for o in ratios), total=sum(o.total for o in ratios))
    elif isinstance(first, HistogramCounts):
        hists = [o for o in observations if isinstance(o, HistogramCounts) and o.le == first.le]
        if len(hists) == len(observations):
            counts = tuple(sum(column) for column in zip(*(o.counts for o in hists), strict=True))
            return HistogramCounts(le=first.le, counts=counts)
    else:
        samples = [o for o in observations if isinstance(o, Samples)]
        if len(samples) == len(observations):
            return Samples(values=tuple(v for o in samples for v in o.values))
    raise QueryError(
        f"metric {query!r}: the cells' series cannot be added up (different types or histogram buckets)",
        query=query,
    )


def _requests(queries: Sequence[MetricQuery], observed: Mapping[str, PairedObservation | None]) -> float:
    """The promoted cells' requests in one interval: the first ratio metric's total, else the first
    histogram's (0 without either, or without data)."""
    for kind in ("ratio", "histogram"):
        for query in queries:
            if query.type == kind:
                pair = observed.get(query.name)
                if pair is None:
                    return 0.0
                canary = pair.canary
                return canary.total if isinstance(canary, RatioCounts | HistogramCounts) else 0.0
    return 0.0
