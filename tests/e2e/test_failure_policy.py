"""Failure policy end to end: no metrics is never a pass; Kubernetes timeouts are retried, and an
error that retrying cannot fix rolls back (outages: tests/e2e/test_api_outage.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from analysis.observations import TrackObservation
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.errors import ClusterError, MetricsUnavailableError, WeightError
from canaryflow.metrics import MetricQuery, MetricsSource
from tests.e2e.conftest import write_spec


class FlakyMetrics:
    """A metrics source that is down (`MetricsUnavailableError`) for the first `down_calls` calls of
    the analysis (canary or baseline); the preflight's look at the stable gets through, as if
    Prometheus went down after the rollout started."""

    def __init__(self, inner: MetricsSource, *, down_calls: float) -> None:
        self.inner = inner
        self.down_calls = down_calls
        self.calls = 0

    def is_online(self) -> bool:
        return self.calls >= self.down_calls

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") == "stable":
            return self.inner.observe(query, **kwargs)
        self.calls += 1
        if self.calls <= self.down_calls:
            raise MetricsUnavailableError("connection refused (Prometheus is down)")
        return self.inner.observe(query, **kwargs)


@pytest.fixture
def with_metrics(runtime: Any) -> Callable[[MetricsSource], None]:
    def swap(metrics: MetricsSource) -> None:
        object.__setattr__(runtime, "metrics", metrics)

    return swap


def test_prometheus_down_for_the_whole_analysis_rolls_back_never_promotes(
    stack: SimulatedStack, rollout_of: Callable[..., Any], with_metrics: Callable[[MetricsSource], None]
) -> None:
    with_metrics(FlakyMetrics(stack.metrics, down_calls=float("inf")))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("Metrics outage: the metrics backend did not answer for 24 of 24")
    assert "Inconclusive: no data" in outcome.reason  # and the judge's own words after it
    assert stack.cluster.read(stack.target).stable.image == STABLE_IMAGE


class HangingMetrics(FlakyMetrics):
    """Down for the whole analysis, each query hanging `hang` seconds of the stack's clock before
    it fails (a Prometheus that times out); records the clock at each of the canary's queries."""

    def __init__(self, stack: SimulatedStack, *, hang: float) -> None:
        super().__init__(stack.metrics, down_calls=float("inf"))
        self.clock, self.hang = stack.clock, hang
        self.queried: list[float] = []

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") != "stable":
            self.queried.append(self.clock.monotonic())
            self.clock.advance(self.hang)
        return super().observe(query, **kwargs)


def test_a_metrics_outage_does_not_stretch_an_analysis_beyond_its_max_duration(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    with_metrics: Callable[[MetricsSource], None],
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 10s, maxDuration: 1m}}"])
    hanging = HangingMetrics(stack, hang=8.0)  # a look: two tries (the task retries once), 16 s
    with_metrics(hanging)

    outcome = rollout_of(GOOD_IMAGE, spec=spec).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("Metrics outage")
    began = hanging.queried[0] - 10.0  # the first look is one interval after the analysis began
    ended = hanging.queried[-1] + hanging.hang
    assert ended - began <= 60.0 + 16.0  # maxDuration, and at most the last look's own time
    assert len(hanging.queried) == 2 * 4  # looks at 10, 26, 42 and 58 s: the next would end at 74


def test_the_judge_waits_while_prometheus_is_down_then_promotes(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    with_metrics: Callable[[MetricsSource], None],
    tmp_path: Path,
) -> None:
    # Three minutes of analysis at most: the two down intervals cost no evidence it needs.
    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 5s, maxDuration: 3m}}"])
    flaky = FlakyMetrics(
        stack.metrics, down_calls=4
    )  # two intervals: each tries twice (the task retries once)
    with_metrics(flaky)

    outcome = rollout_of(GOOD_IMAGE, spec=spec).result()

    assert outcome.result == "promoted"
    assert flaky.calls > 4
    status = (Path(outcome.report) / "observations-step2.json").read_text()
    assert '"error-rate": null' in status  # the down intervals are recorded as no data


class MissedLook:
    """Down (`MetricsUnavailableError`) for every query of the analysis's look number `missed`
    (1-based, counted by the looks' ends), as a Prometheus that misses one interval; records the
    window each query of every look asked for."""

    def __init__(self, inner: MetricsSource, *, missed: int) -> None:
        self.inner, self.missed = inner, missed
        self.ends: list[datetime] = []
        self.windows: dict[tuple[int, str], set[float]] = {}

    def is_online(self) -> bool:
        return True

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") == "stable":
            return self.inner.observe(query, **kwargs)
        end: datetime = kwargs["end"]
        if end not in self.ends:
            self.ends.append(end)
        look = self.ends.index(end) + 1
        self.windows.setdefault((look, query.name), set()).add(kwargs["window"].total_seconds())
        if look == self.missed:
            raise MetricsUnavailableError("connection refused (Prometheus is down)")
        return self.inner.observe(query, **kwargs)


def test_a_look_prometheus_did_not_answer_is_counted_at_the_next_one_nothing_served_in_the_gap_is_lost(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    with_metrics: Callable[[MetricsSource], None],
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 5s, maxDuration: 1m}}"])
    missed = MissedLook(stack.metrics, missed=2)
    with_metrics(missed)

    outcome = rollout_of(GOOD_IMAGE, spec=spec).result()

    # Counters' increases: the third look reaches back over the second (which failed at its first query).
    for name in ("error-rate", "latency"):
        assert [missed.windows.get((look, name)) for look in (1, 3, 4)] == [{5.0}, {10.0}, {5.0}]
    log = json.loads((Path(outcome.report) / "observations-step2.json").read_text())
    rows = log["intervals"]
    assert rows[1]["error-rate"] is None
    assert rows[2]["error-rate"]["span"] == rows[2]["latency"]["span"] == 2  # the log says so
    assert "span" not in rows[3]["error-rate"]
    looks = len(rows)
    served = stack.simulator.track_counts(
        "shop",
        "web",
        "canary",
        start=missed.ends[0].timestamp() - 5.0,
        end=missed.ends[looks - 1].timestamp(),
    )
    counted = sum(row["error-rate"]["canary"]["total"] for row in rows if row["error-rate"] is not None)
    assert counted == served.requests  # every request the canary served in the analysis, the gap's too


def test_inconclusive_with_on_inconclusive_continue_still_never_promotes_without_evidence(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    with_metrics: Callable[[MetricsSource], None],
    tmp_path: Path,
) -> None:
    spec = write_spec(
        tmp_path,
        ["{setWeight: 20}", "{analyze: {interval: 5s, maxDuration: 20s}}"],
        on_inconclusive="continue",
    )
    with_metrics(FlakyMetrics(stack.metrics, down_calls=float("inf")))

    outcome = rollout_of(GOOD_IMAGE, spec=spec).result()

    assert outcome.result == "rolled-back"
    assert "never promote without evidence" in outcome.reason


def test_prometheus_down_before_the_rollout_is_refused_by_the_preflight_and_nothing_is_created(
    stack: SimulatedStack, rollout_of: Callable[..., Any], with_metrics: Callable[[MetricsSource], None]
) -> None:
    class Down(FlakyMetrics):
        def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
            raise MetricsUnavailableError("connection refused (Prometheus is down)")

    with_metrics(Down(stack.metrics, down_calls=float("inf")))
    writes: list[str] = []
    stack.world.before_write = lambda verb, namespace, name: writes.append(f"{verb} {name}")

    state = rollout_of(GOOD_IMAGE)

    assert state.is_failed()
    with pytest.raises(MetricsUnavailableError, match="Prometheus did not answer for metric 'error-rate'"):
        state.result()
    assert writes == []  # no canary, no baseline, nothing scaled
    assert stack.world.deployment_names("shop") == ["web"]
    assert _run_name(state) == "web-c455c59c-refused"  # the rollout's own name stays with real attempts


def _run_name(state: Any) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(state.state_details.flow_run_id).name)


def test_kubernetes_timeouts_are_retried(stack: SimulatedStack, rollout_of: Callable[..., Any]) -> None:
    stack.world.timeouts = 2  # the first two API calls time out; the task's retries get through

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted"
    assert stack.world.timeouts == 0


def test_a_kubernetes_error_that_retrying_cannot_fix_rolls_back(
    stack: SimulatedStack, rollout_of: Callable[..., Any], with_metrics: Callable[[MetricsSource], None]
) -> None:
    metrics = FlakyMetrics(stack.metrics, down_calls=0)
    with_metrics(metrics)
    failures = {"left": 1}  # once the analysis has run, the next write is refused for good

    def before_write(verb: str, namespace: str, name: str) -> None:
        if metrics.calls > 0 and failures["left"] > 0:
            failures["left"] -= 1
            raise ClusterError("admission webhook denied the request: frozen namespace")

    stack.world.before_write = before_write
    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason == "ClusterError: admission webhook denied the request: frozen namespace"
    status = stack.cluster.read(stack.target)
    assert status.stable.image == STABLE_IMAGE
    assert status.canary is None


def test_a_weight_out_of_reach_at_the_capacity_an_hpa_holds_is_refused_by_the_preflight_before_any_write(
    stack: SimulatedStack, rollout_of: Callable[..., Any]
) -> None:
    stack.world.set_hpa("shop", "web", 1)  # one pod: 20 % with a baseline is 33 % at best
    writes: list[str] = []
    stack.world.before_write = lambda verb, namespace, name: writes.append(f"{verb} {name}")

    state = rollout_of(GOOD_IMAGE)

    assert state.is_failed()
    with pytest.raises(
        WeightError, match=r"shop/web: step 1 \(setWeight: 20\) of .* is out of reach: weight 20%"
    ):
        state.result()
    assert writes == []  # not mid-rollout: before the first pod
    assert stack.world.deployment_names("shop") == ["web"]


class StableHistoryDown:
    """Prometheus stops answering for the stable's track once the canary exists: the preflight saw
    the stable, the warm-up's history read fails, the analysis's own queries work."""

    def __init__(self, stack: SimulatedStack) -> None:
        self.stack, self.failed = stack, 0

    def is_online(self) -> bool:
        return True

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") == "stable" and self.stack.world.record("shop", "web-canary") is not None:
            self.failed += 1
            raise MetricsUnavailableError("connection refused (Prometheus is down)")
        return self.stack.metrics.observe(query, **kwargs)


def test_a_history_that_cannot_be_read_leaves_the_fixed_bound_and_rolls_nothing_back(
    stack: SimulatedStack, rollout_of: Callable[..., Any], with_metrics: Callable[[MetricsSource], None]
) -> None:
    from analysis.logs import parse_log

    down = StableHistoryDown(stack)
    with_metrics(down)
    stack.clock.advance(600.0)  # a history there would be to learn from

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted", outcome.reason
    # one failed read per analysis: after it the warm-up does not wait for the backend again
    assert down.failed == 2
    log = parse_log(json.loads((Path(outcome.report) / "observations-step2.json").read_text()))
    assert log.metrics["error-rate"].dispersion is None
    assert log.metrics["latency"].dispersion is None
