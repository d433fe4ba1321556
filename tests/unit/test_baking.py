"""A wave's bake (`canaryflow.baking.WaveBake`): the promoted cells' stable traffic against the
cells not updated yet, judged, read through the simulated metrics adapter (one traffic simulator
per cell, on a manual clock).

What it shows: a release that behaves like the old image is shown within tolerance, not before
the bake's ``minDuration`` and its ``minRequests``; one with five times the errors is found worse,
also when it turns bad after the judge found it within tolerance but before ``minRequests``; a
Prometheus that does not answer never lets a bake pass, nor a promoted cell without data; a query
Prometheus refuses ends the bake inconclusive; a bake that cannot reach its ``minRequests`` ends
inconclusive at ``maxDuration``; the verdict depends only on the start and the metrics (a bake
begun again later reaches the same verdict at the same interval); a bake that learns its warm-up
from the cells' history before the wave began decides a good release sooner, still finds a bad
one worse, reads no window it judges (against later waves or its own history), waits for a
Prometheus that does not answer its history as for an interval, and learns the same when resumed;
a group's warm-up is its largest cell's bound plus the other group's, at most the cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from analysis.dispersion import DispersionBound
from analysis.observations import HistogramCounts, RatioCounts, Samples
from canaryflow.baking import WaveBake, combine, group_warmup
from canaryflow.cells import cell_run
from canaryflow.errors import MetricsUnavailableError, NoDataError, QueryError
from canaryflow.metrics.port import MetricQuery, MetricsSource
from canaryflow.plan import RolloutPlan, plan_rollout
from canaryflow.simulation import BehaviourProfile
from canaryflow.spec.loading import load_release_text
from canaryflow.spec.release import Bake
from tests.fixtures.celltraffic import NEW, OLD, CellTraffic, Unanswered

RELEASE = load_release_text(
    """\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/demo.yaml
  prometheus: http://prometheus.monitoring:9090
  cells:
    - {name: eu-1, context: eu-1, workPool: p, labels: {cluster: eu-1}}
    - {name: eu-2, context: eu-2, workPool: p, labels: {cluster: eu-2}}
    - {name: us-1, context: us-1, workPool: p, labels: {cluster: us-1}}
  waves:
    - {cells: [eu-1], bake: {minDuration: 1m, maxDuration: 10m}}
    - {cells: [eu-2, us-1]}
""",
)


class Cells(CellTraffic):
    def bake(
        self,
        bake: Bake,
        *,
        sources: Mapping[str, MetricsSource] | None = None,
        began: datetime | None = None,
        started: datetime | None = None,
    ) -> WaveBake:
        chosen = sources or self.sources
        return WaveBake(
            0,
            bake,
            promoted={"eu-1": _plan("eu-1")},
            compared={"eu-2": _plan("eu-2"), "us-1": _plan("us-1")},
            sources=lambda cell: chosen[cell],
            started=started or self.clock.now(),
            began=began,
        )


def _bake(least: str, most: str, requests: int = 0) -> Bake:
    return Bake.model_validate({"minDuration": least, "maxDuration": most, "minRequests": requests})


def _plan(cell: str) -> RolloutPlan:
    return plan_rollout(cell_run(RELEASE, cell, image=NEW, triggered_by="test").request)


def _run(cells: Cells, bake: WaveBake, *, step: float = 5.0, limit: float = 900.0) -> list[str]:
    """The verdict after each `step` seconds until the bake decides (or `limit`)."""
    seen = []
    while cells.clock.monotonic() < limit:
        cells.clock.advance(step)
        seen.append(bake.advance(cells.clock.now()).verdict)
        if seen[-1] != "pending":
            break
    return seen


def test_a_release_like_the_old_image_is_within_tolerance_after_the_minimum_bake() -> None:
    cells = Cells(BehaviourProfile())
    bake = cells.bake(_bake("1m", "10m"))

    seen = _run(cells, bake)

    assert seen[-1] == "within", bake.progress
    assert bake.judged * 5 >= 60  # not before minDuration
    assert bake.requests == pytest.approx(bake.judged * 5 * 3 * 20, rel=0.2)  # eu-1 alone
    assert bake.progress.describe().startswith(f"wave 1 bake: {bake.judged} of 120 interval(s)")


def test_a_release_within_tolerance_still_waits_for_its_minimum_requests() -> None:
    cells = Cells(BehaviourProfile())
    quick = cells.bake(_bake("1m", "10m"))
    needy = cells.bake(_bake("1m", "10m", 30_000))

    seen = _run(cells, quick)
    while needy.advance(cells.clock.now()).verdict == "pending" and cells.clock.monotonic() < 900:
        assert needy.requests < 30_000
        cells.clock.advance(5.0)

    assert seen[-1] == "within"
    assert needy.progress.verdict == "within"
    assert needy.judged > quick.judged
    assert needy.requests >= 30_000


def test_an_interval_is_read_the_bakes_read_lag_after_its_end() -> None:
    cells = Cells(BehaviourProfile())
    usual = cells.bake(_bake("1m", "10m"))  # 30 s: all of an interval scraped at 15 s scrapes
    prompt = cells.bake(Bake.model_validate({"minDuration": "1m", "maxDuration": "10m", "readLag": "2s"}))

    cells.clock.advance(7.0)  # the first 5 s interval ended 2 s ago
    usual.advance(cells.clock.now())
    prompt.advance(cells.clock.now())
    assert (usual.judged, prompt.judged) == (0, 1)

    cells.clock.advance(28.0)  # 35 s in: the first interval ended 30 s ago, the sixth 5 s ago
    usual.advance(cells.clock.now())
    prompt.advance(cells.clock.now())
    assert (usual.judged, prompt.judged) == (1, 6)


def test_a_release_with_five_times_the_errors_is_found_worse() -> None:
    cells = Cells(BehaviourProfile(error_rate=0.05))

    seen = _run(cells, cells.bake(_bake("5m", "10m")))

    assert seen[-1] == "worse"
    assert len(seen) < 60  # found before minDuration: a rollback needs no minimum


def _against_history(new: BehaviourProfile) -> tuple[Cells, WaveBake]:
    """eu-1 ran the old image for 10 minutes, then the new one; its bake begins a minute later and
    compares it with its own last 10 minutes before the switch."""
    cells = Cells(new, images={"eu-1": OLD})
    cells.warm(10)
    switched = cells.clock.now()
    cells.switch("eu-1", NEW)
    cells.clock.advance(60.0)
    bake = WaveBake(
        0,
        _bake("1m", "10m"),
        promoted={"eu-1": _plan("eu-1")},
        compared={},
        sources=lambda cell: cells.sources[cell],
        started=cells.clock.now(),
        history=switched,
    )
    return cells, bake


def test_against_its_history_a_release_like_the_old_image_is_within_tolerance() -> None:
    cells, bake = _against_history(BehaviourProfile())

    seen = _run(cells, bake, limit=cells.clock.monotonic() + 900.0)

    assert seen[-1] == "within", bake.progress
    observed = bake.recorder.log().intervals
    assert len(observed) == bake.judged
    pair = observed[0]["error-rate"]
    assert pair is not None
    assert pair.baseline.has_data  # the history before the switch


def test_against_its_history_a_release_with_five_times_the_errors_is_found_worse() -> None:
    # The cell now runs only the new image: compared with itself now it could never be worse.
    cells, bake = _against_history(BehaviourProfile(error_rate=0.05))

    seen = _run(cells, bake, limit=cells.clock.monotonic() + 900.0)

    assert seen[-1] == "worse"


class Windows:
    """A metrics source that records the end of every window it is asked for, per track call."""

    def __init__(self, inner: MetricsSource) -> None:
        self.inner = inner
        self.ends: list[Any] = []

    def observe(self, query: MetricQuery, **where: Any) -> Any:
        self.ends.append(where["end"])
        return self.inner.observe(query, **where)

    def is_online(self) -> bool:
        return True


@pytest.mark.parametrize(("most", "intervals"), [("10m", 120), ("10m3s", 120), ("2s", 1)])
def test_the_history_window_is_the_bakes_intervals_ending_when_the_wave_began(
    most: str, intervals: int
) -> None:
    # Each bake interval reads the promoted cells now (its own end) and then in the history: the
    # history's first interval ends `intervals` intervals before the wave began, its last then.
    cells = Cells(BehaviourProfile(), images={"eu-1": OLD})
    cells.warm(15)
    began = cells.clock.now()
    cells.clock.advance(60.0)
    spy = Windows(cells.sources["eu-1"])
    bake = WaveBake(
        0, _bake("1s", most), promoted={"eu-1": _plan("eu-1")}, compared={},
        sources=lambda cell: spy, started=cells.clock.now(), history=began,
    )  # fmt: skip
    assert bake.intervals == intervals
    step = bake.interval
    cells.clock.advance((step * intervals).total_seconds() + 60.0)
    bake.advance(cells.clock.now())  # every interval has ended: judged until the verdict
    history = [end for end in spy.ends if end <= began]  # the bake's own windows end after `began`
    per_interval = len(bake.queries)
    assert history[0] == began - step * intervals + step
    assert max(history) <= began
    assert len(history) == per_interval * bake.judged
    if bake.judged == intervals:
        assert max(history) == began


def test_a_bake_against_history_needs_the_history_to_end_before_it_starts() -> None:
    cells = Cells(BehaviourProfile())
    now = cells.clock.now()

    def alone(history: datetime | None) -> WaveBake:
        return WaveBake(
            0, _bake("1m", "10m"), promoted={"eu-1": _plan("eu-1")}, compared={},
            sources=lambda cell: cells.sources[cell], started=now, history=history,
        )  # fmt: skip

    with pytest.raises(ValueError, match="the history must end before the bake starts"):
        alone(now + timedelta(minutes=1))
    with pytest.raises(ValueError, match="cells not updated yet or their history"):
        alone(None)


def test_too_little_traffic_for_the_minimum_requests_is_inconclusive_at_max_duration() -> None:
    cells = Cells(BehaviourProfile())
    bake = cells.bake(_bake("1m", "3m", 10**9))

    seen = _run(cells, bake)

    assert seen[-1] == "inconclusive"
    assert bake.judged == 36
    assert bake.progress.reason.startswith("maxDuration reached: the promoted cells served")


def test_a_prometheus_that_does_not_answer_never_lets_a_bake_pass() -> None:
    cells = Cells(BehaviourProfile())
    sources = {**cells.sources, "us-1": Unanswered()}
    bake = cells.bake(_bake("1m", "3m"), sources=sources)

    seen = _run(cells, bake)

    assert set(seen[:-1]) == {"pending"}
    assert seen[-1] == "inconclusive"
    assert bake.requests == 0


def test_a_bake_begun_again_later_reaches_the_same_verdict() -> None:
    cells = Cells(BehaviourProfile(error_rate=0.03))
    first = cells.bake(_bake("5m", "10m"))
    started = cells.clock.now()
    seen = _run(cells, first)

    again = WaveBake(
        0,
        first.bake,
        promoted=first.promoted,
        compared=first.compared,
        sources=lambda cell: cells.sources[cell],
        started=started,
    )
    resumed = again.advance(cells.clock.now())

    assert (resumed.verdict, resumed.judged, resumed.reason) == (
        seen[-1],
        first.judged,
        first.progress.reason,
    )


def test_cells_observations_add_up_and_mismatched_buckets_are_refused() -> None:
    assert combine([RatioCounts(1, 10), RatioCounts(2, 30)], query="e") == RatioCounts(3, 40)
    le = (0.1, float("inf"))
    assert combine([HistogramCounts(le, (1, 2)), HistogramCounts(le, (3, 5))], query="l") == HistogramCounts(
        le, (4, 7)
    )
    assert combine([Samples((0.1,)), Samples((0.2, 0.3))], query="s") == Samples((0.1, 0.2, 0.3))
    with pytest.raises(QueryError, match="cannot be added up"):
        combine([HistogramCounts(le, (1, 2)), HistogramCounts((0.2, float("inf")), (1, 2))], query="l")


def test_a_release_that_turns_bad_while_the_bake_waits_for_its_requests_is_found_worse() -> None:
    bad = "shop/web:2.0.0-bad"
    cells = Cells(BehaviourProfile(), others={bad: BehaviourProfile(error_rate=0.1)})
    bake = cells.bake(_bake("1m", "10m", 10**6))
    while "waiting for 1000000 requests" not in bake.progress.reason and cells.clock.monotonic() < 900:
        cells.clock.advance(5.0)
        bake.advance(cells.clock.now())
    assert bake.progress.verdict == "pending"  # within tolerance, too few requests

    cells.pods["eu-1"].image = bad
    seen = _run(cells, bake, limit=cells.clock.monotonic() + 300)

    assert seen[-1] == "worse", bake.progress


class Silent(Unanswered):
    def observe(self, query: MetricQuery, **where: Any) -> RatioCounts:
        raise NoDataError("no samples for eu-1: its exporter is gone")


class Refusing(Unanswered):
    def observe(self, query: MetricQuery, **where: Any) -> RatioCounts:
        raise QueryError("bad_data: parse error at char 12", query="sum(increase(x[30s]")


def test_a_promoted_cell_without_data_never_lets_the_bake_pass_and_a_refused_query_ends_it() -> None:
    cells = Cells(BehaviourProfile())
    silent = cells.bake(_bake("1m", "3m"), sources={**cells.sources, "eu-1": Silent()})
    refused = cells.bake(_bake("1m", "3m"), sources={**cells.sources, "us-1": Refusing()})

    seen = _run(cells, silent)
    refused.advance(cells.clock.now())

    assert set(seen[:-1]) == {"pending"}
    assert seen[-1] == "inconclusive"
    assert silent.requests == 0
    assert refused.progress.verdict == "inconclusive"
    assert refused.progress.reason.startswith("its metrics cannot be read: bad_data: parse error")


def _released(new: BehaviourProfile) -> tuple[Cells, datetime]:
    """Every cell on the old image for 20 minutes at 600 req/s each (3 pods); then eu-1's rollout (a
    minute) puts it on the new one. The cells' clock is at the bake's start; returns when eu-1's
    rollout began. (At that rate the bound fixed in advance, not the requests, holds a bake back.)"""
    cells = Cells(new, images={"eu-1": OLD, "eu-2": OLD, "us-1": OLD}, rate=200.0)
    cells.warm(20)
    began = cells.clock.now()
    cells.clock.advance(60.0)
    cells.switch("eu-1", NEW)
    return cells, began


def test_a_bake_warmed_up_on_the_cells_history_shows_a_good_release_within_sooner() -> None:
    cells, began = _released(BehaviourProfile())
    cold = cells.bake(_bake("15s", "10m"))
    warm = cells.bake(_bake("15s", "10m"), began=began)

    seen = _run(cells, warm, limit=cells.clock.monotonic() + 900.0)
    while cold.advance(cells.clock.now()).verdict == "pending" and cells.clock.monotonic() < 3000:
        cells.clock.advance(5.0)

    assert (seen[-1], cold.progress.verdict) == ("within", "within")
    assert set(warm.warmup) == {"error-rate", "latency"}, warm.warmup
    assert warm.judged < cold.judged, (warm.judged, cold.judged)
    header = warm.recorder.log().metrics["error-rate"]
    assert header.dispersion == warm.warmup["error-rate"]  # the bake's log replays with it


def test_a_bake_warmed_up_on_the_cells_history_still_finds_five_times_the_errors_worse() -> None:
    cells, began = _released(BehaviourProfile(error_rate=0.05))
    cold = cells.bake(_bake("15s", "10m"))
    warm = cells.bake(_bake("15s", "10m"), began=began)

    seen = _run(cells, warm, limit=cells.clock.monotonic() + 900.0)
    cold.advance(cells.clock.now())

    assert (seen[-1], warm.judged) == ("worse", 1)  # after one interval (read 30 s after its end)
    assert (cold.progress.verdict, cold.judged) == ("pending", 1)  # the bound fixed in advance: not yet


def test_the_warm_up_reads_each_cell_before_the_wave_began_and_never_a_window_it_judges() -> None:
    cells, began = _released(BehaviourProfile())
    spies = {cell: Windows(source) for cell, source in cells.sources.items()}
    bake = cells.bake(_bake("15s", "10m"), sources=spies, began=began)

    cells.clock.advance(40.0)
    bake.advance(cells.clock.now())

    for cell, spy in spies.items():
        warmup = [end for end in spy.ends if end <= began]
        judged = [end for end in spy.ends if end > began]
        assert len(warmup) == 2 * 120, cell  # two metrics, 120 intervals of 5 s each
        assert max(warmup) == began
        assert min(judged) > bake.started, cell
    assert bake.judged >= 1


class Down:
    """A cell's metrics source that does not answer while `down` is set."""

    def __init__(self, inner: MetricsSource) -> None:
        self.inner, self.down = inner, True

    def observe(self, query: MetricQuery, **where: Any) -> Any:
        if self.down:
            raise MetricsUnavailableError("Prometheus at http://prometheus.monitoring:9090 did not answer")
        return self.inner.observe(query, **where)

    def is_online(self) -> bool:
        return not self.down


def test_a_bake_waits_for_its_history_as_for_an_interval_and_a_resumed_one_learns_the_same() -> None:
    cells, began = _released(BehaviourProfile())
    down = Down(cells.sources["us-1"])
    bake = cells.bake(_bake("15s", "10m"), sources={**cells.sources, "us-1": down}, began=began)
    started = bake.started

    cells.clock.advance(40.0)
    waiting = bake.advance(cells.clock.now())
    down.down = False
    seen = _run(cells, bake, limit=cells.clock.monotonic() + 900.0)
    again = cells.bake(_bake("15s", "10m"), began=began, started=started)  # resumed elsewhere later
    resumed = again.advance(cells.clock.now())

    assert (waiting.verdict, waiting.judged) == ("pending", 0)
    assert waiting.reason.startswith("waiting for Prometheus to answer")
    assert seen[-1] == "within"
    assert set(bake.warmup) == {"error-rate", "latency"}
    assert again.warmup == bake.warmup
    assert (resumed.verdict, resumed.judged, resumed.reason) == ("within", bake.judged, bake.progress.reason)


def test_a_cell_without_history_leaves_the_bound_fixed_in_advance() -> None:
    short = Cells(BehaviourProfile())  # no traffic before the wave began
    fresh = short.bake(_bake("15s", "10m"), began=short.clock.now())

    short.clock.advance(40.0)
    fresh.advance(short.clock.now())

    assert fresh.warmup == {}
    assert fresh.judged >= 1


def test_against_history_the_warm_up_ends_where_the_paired_history_window_starts() -> None:
    cells = Cells(BehaviourProfile(), images={"eu-1": OLD})
    cells.warm(30)
    began = cells.clock.now()
    cells.switch("eu-1", NEW)
    cells.clock.advance(60.0)
    spy = Windows(cells.sources["eu-1"])
    bake = WaveBake(
        0, _bake("15s", "1m"), promoted={"eu-1": _plan("eu-1")}, compared={},
        sources=lambda cell: spy, started=cells.clock.now(), history=began, began=began,
    )  # fmt: skip
    paired = began - bake.interval * bake.intervals  # where the bake's baseline window starts

    cells.clock.advance(40.0)
    bake.advance(cells.clock.now())

    warmup = [end for end in spy.ends if end <= paired]
    assert len(warmup) == 2 * 120  # two metrics, 120 intervals, all before the paired window
    assert max(warmup) == paired
    assert min(end for end in spy.ends if end > paired) > paired + bake.interval / 2  # the pairs
    assert set(bake.warmup) == {"error-rate", "latency"}


def _bound(kappa: float, learned: bool = True) -> DispersionBound:
    return DispersionBound(kappa, kappa / 2, 20, 1000.0, learned=learned)


def test_a_groups_warm_up_is_its_largest_cell_bound_plus_the_other_groups() -> None:
    # Each cell's bound was learned with spread (1, 1): twice its per-track bound.
    assert group_warmup([_bound(0.02)], [_bound(0.04), _bound(0.01)], cap=0.5) == pytest.approx(0.03)
    assert group_warmup([_bound(0.02), _bound(0.06)], [_bound(0.01)], cap=0.5) == pytest.approx(0.035)
    # A cell at the cap may be above it: the warm-up is the cap, not half of it.
    assert group_warmup([_bound(0.5)], [_bound(0.02), _bound(0.02)], cap=0.5) == 0.5
    assert group_warmup([_bound(0.4)], [_bound(0.4)], cap=0.5) == 0.4
    assert group_warmup([_bound(0.02)], [_bound(0.02, learned=False)], cap=0.5) is None
    buckets = group_warmup([{0.1: 0.2, 0.2: 0.1}], [{0.1: 0.4}, {0.1: 0.1, 0.2: 2.0}], cap=2.0)
    assert buckets == {0.1: pytest.approx(0.3)}  # 0.2 is not bounded by every cell
    assert group_warmup([{0.1: 0.2}], [{0.1: 2.0}], cap=2.0) == {0.1: 2.0}


def test_a_bake_begun_again_later_with_its_warm_up_reaches_the_same_verdict() -> None:
    cells, began = _released(BehaviourProfile(error_rate=0.012))
    first = cells.bake(_bake("1m", "10m"), began=began)
    started = first.started
    seen = _run(cells, first, limit=cells.clock.monotonic() + 900.0)

    again = cells.bake(_bake("1m", "10m"), began=began)
    again.started = started
    resumed = again.advance(cells.clock.now())

    assert first.warmup
    assert (resumed.verdict, resumed.judged, resumed.reason) == (
        seen[-1],
        first.judged,
        first.progress.reason,
    )
