"""The simulated metrics source: exact windows of the simulator's counts, same errors as Prometheus."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from analysis.observations import HistogramCounts, RatioCounts, Samples
from canaryflow.clock import ManualClock
from canaryflow.cluster.port import PodInfo
from canaryflow.errors import MetricsUnavailableError, NoDataError
from canaryflow.metrics import MetricQuery, create_metrics_source, observe_interval
from canaryflow.metrics.simulated import SimulatedMetricsSource
from canaryflow.simulation import AppRef, BehaviourProfile, TrafficSimulator

RATIO = MetricQuery("error-rate", "ratio", {"bad": "ignored", "total": "ignored"})
LATENCY = MetricQuery("latency", "histogram", {"query": "ignored"})
PER_POD = MetricQuery("pod-errors", "samples", {"query": "ignored"})
WINDOW = timedelta(seconds=30)


class Pods:
    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if app != "web":
            return []
        return [
            PodInfo("web-b0", "baseline", "web:v1", True),
            PodInfo("web-c0", "canary", "web:v2", True),
            PodInfo("web-c1", "canary", "web:v2", True),
        ]


@pytest.fixture
def setup() -> tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource]:
    clock = ManualClock()
    sim = TrafficSimulator(
        Pods(),
        [AppRef("shop", "web")],
        clock=clock,
        seed=11,
        rate_per_pod=40.0,
        profiles={"web:v2": BehaviourProfile(error_rate=0.3)},
    )
    return clock, sim, SimulatedMetricsSource(sim)


def at(clock: ManualClock) -> datetime:
    return clock.now()


def test_observations_are_the_simulators_exact_window(
    setup: tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource],
) -> None:
    clock, sim, src = setup
    clock.advance(90.0)
    sim.sync()
    end = at(clock)
    truth = sim.track_counts(
        "shop", "web", "canary", start=clock.now().timestamp() - 30, end=clock.now().timestamp()
    )
    ratio = src.observe(RATIO, namespace="shop", app="web", track="canary", end=end, window=WINDOW)
    hist = src.observe(LATENCY, namespace="shop", app="web", track="canary", end=end, window=WINDOW)
    assert ratio == RatioCounts(bad=truth.errors, total=truth.requests)
    assert isinstance(hist, HistogramCounts)
    assert hist.counts == tuple(float(b) for b in truth.buckets)
    assert hist.le == sim.le
    samples = src.observe(PER_POD, namespace="shop", app="web", track="canary", end=end, window=WINDOW)
    assert isinstance(samples, Samples)
    assert len(samples.values) == 2
    assert all(0.15 < v < 0.45 for v in samples.values)


def test_observing_does_not_change_the_simulation(
    setup: tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource],
) -> None:
    clock, _, src = setup
    clock.advance(60.0)
    first = src.observe(RATIO, namespace="shop", app="web", track="baseline", end=at(clock), window=WINDOW)
    again = src.observe(RATIO, namespace="shop", app="web", track="baseline", end=at(clock), window=WINDOW)
    assert first == again


def test_no_traffic_is_no_data(setup: tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource]) -> None:
    clock, _, src = setup
    clock.advance(60.0)
    for query in (RATIO, LATENCY, PER_POD):
        with pytest.raises(NoDataError):
            src.observe(query, namespace="shop", app="ghost", track="canary", end=at(clock), window=WINDOW)


def test_a_window_in_the_future_is_retryable(
    setup: tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource],
) -> None:
    clock, _, src = setup
    end = at(clock) + timedelta(seconds=5)
    with pytest.raises(MetricsUnavailableError) as info:
        src.observe(RATIO, namespace="shop", app="web", track="canary", end=end, window=WINDOW)
    assert info.value.retry_after == pytest.approx(5.0)


def test_one_interval_pairs_tracks_and_turns_no_data_into_none(
    setup: tuple[ManualClock, TrafficSimulator, SimulatedMetricsSource],
) -> None:
    clock, sim, _ = setup
    src = create_metrics_source("simulated", simulator=sim)
    assert src.is_online()
    clock.advance(30.0)
    got = observe_interval(src, [RATIO, LATENCY], namespace="shop", app="web", end=at(clock), window=WINDOW)
    assert set(got) == {"error-rate", "latency"}
    pair = got["error-rate"]
    assert pair is not None
    assert isinstance(pair.baseline, RatioCounts)
    assert isinstance(pair.canary, RatioCounts)
    assert pair.canary.bad / pair.canary.total > pair.baseline.bad / pair.baseline.total
    missing: dict[str, tuple[str, ...]] = {}
    none = observe_interval(
        src, [RATIO], namespace="shop", app="ghost", end=at(clock), window=WINDOW, missing=missing
    )
    assert none == {"error-rate": None}
    assert missing == {"error-rate": ("baseline", "canary")}  # which tracks: a hint at the scraping
