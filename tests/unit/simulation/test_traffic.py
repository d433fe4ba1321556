"""The traffic simulator: deterministic under a seed, follows pods, real counter semantics."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import PodInfo, Track
from canaryflow.errors import ClusterUnavailableError
from canaryflow.simulation import AppRef, BehaviourProfile, TrafficSimulator

APP = AppRef("shop", "web")


class Pods:
    """A mutable pod list for one app."""

    def __init__(self, *pods: PodInfo) -> None:
        self.current = list(pods)

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        return list(self.current) if (namespace, app) == ("shop", "web") else []


def pod(name: str, track: Track = "stable", image: str = "web:v1", ready: bool = True) -> PodInfo:
    return PodInfo(name, track, image, ready)


def make(pods: Pods, clock: ManualClock, *, seed: int = 1, **kwargs: object) -> TrafficSimulator:
    return TrafficSimulator(pods, [APP], clock=clock, seed=seed, **kwargs)  # type: ignore[arg-type]


def run(seed: int) -> list[object]:
    clock = ManualClock()
    sim = make(Pods(pod("a"), pod("b", "canary", "web:v2")), clock, seed=seed, rate_per_pod=50.0)
    for _ in range(5):
        clock.advance(3.0)
        sim.sync()
    return list(sim.series())


def test_same_seed_and_clock_moves_give_the_same_counts() -> None:
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_counts_follow_rate_error_rate_and_ready_pods() -> None:
    clock = ManualClock()
    pods = Pods(pod("s0"), pod("s1"), pod("c0", "canary", "web:v2"), pod("b0", "baseline", ready=False))
    profiles = {"web:v2": BehaviourProfile(error_rate=0.2)}
    sim = make(
        pods, clock, rate_per_pod=100.0, profiles=profiles, default_profile=BehaviourProfile(error_rate=0.01)
    )
    clock.advance(600.0)
    sim.sync()
    start, end = clock.now().timestamp() - 600.0, clock.now().timestamp()
    stable = sim.track_counts("shop", "web", "stable", start=start, end=end)
    canary = sim.track_counts("shop", "web", "canary", start=start, end=end)
    baseline = sim.track_counts("shop", "web", "baseline", start=start, end=end)
    assert abs(stable.requests - 120_000) < 5 * np.sqrt(120_000)
    assert abs(canary.requests - 60_000) < 5 * np.sqrt(60_000)
    assert baseline.requests == 0  # not ready: no traffic
    assert canary.errors / canary.requests == pytest.approx(0.2, abs=0.01)
    assert stable.errors / stable.requests == pytest.approx(0.01, abs=0.002)
    assert canary.buckets[-1] == canary.requests
    assert list(canary.buckets) == sorted(canary.buckets)
    assert canary.latency_sum / canary.requests == pytest.approx(0.127, rel=0.02)  # lognormal mean


class Unreachable(Pods):
    """Pods whose API server stops answering once `down` is set."""

    down = False

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if self.down:
            raise ClusterUnavailableError("the API server did not answer")
        return super().pods(namespace, app)


def test_pods_serve_on_while_their_api_server_does_not_answer_and_its_setting_changes_apply() -> None:
    clock = ManualClock()
    pods = Unreachable(pod("s0"), pod("s1"))
    sim = make(pods, clock, rate_per_pod=100.0)
    clock.advance(60.0)
    sim.sync()
    pods.down = True

    clock.advance(60.0)
    sim.sync()  # does not raise: the pods last seen serve on
    end = clock.now().timestamp()
    served = sim.track_counts("shop", "web", "stable", start=end - 60.0, end=end)
    sim.set_profile("web:v1", BehaviourProfile(error_rate=0.5))  # their dependency fails
    clock.advance(60.0)
    sim.sync()
    failing = sim.track_counts("shop", "web", "stable", start=end, end=end + 60.0)

    assert abs(served.requests - 12_000) < 5 * np.sqrt(12_000)
    assert failing.errors / failing.requests == pytest.approx(0.5, abs=0.03)


class Slow(Pods):
    """Pods whose listing, once `held` is set, waits until `answer` is set (a slow API server)."""

    def __init__(self, *pods: PodInfo) -> None:
        super().__init__(*pods)
        self.held = False
        self.listing = threading.Event()
        self.answer = threading.Event()

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if self.held:
            self.listing.set()
            assert self.answer.wait(timeout=30), "the test never answered"
        return super().pods(namespace, app)


def test_a_scrape_during_a_slow_pod_listing_draws_with_the_pods_known_and_the_listing_applies_after() -> None:
    clock = ManualClock()
    pods = Slow(pod("s0"), pod("s1"))
    sim = make(pods, clock, rate_per_pod=100.0)
    clock.advance(10.0)
    sim.sync()
    pods.held = True
    pods.current.append(pod("c0", "canary", "web:v2"))
    driver = threading.Thread(target=sim.sync)  # the real-time driver, stuck on the API server
    driver.start()
    assert pods.listing.wait(timeout=30)
    pods.held = False  # a scrape's own listing (if it made one) would answer at once
    clock.advance(10.0)
    scrape = threading.Thread(target=sim.sync)
    scrape.start()
    scrape.join(timeout=10)  # a deadlock guard: it returns at once unless it waits for the listing
    stuck = scrape.is_alive()
    pods.answer.set()
    driver.join(timeout=30)
    scrape.join(timeout=30)
    end = clock.now().timestamp()
    drawn = sim.track_counts("shop", "web", "stable", start=end - 10.0, end=end)
    canary_then = sim.track_counts("shop", "web", "canary", start=end - 10.0, end=end)
    followed = [s.pod for s in sim.series() if s.track == "canary"]
    clock.advance(10.0)
    sim.sync()

    assert not stuck  # the scrape did not wait for the API server
    assert not driver.is_alive()
    assert drawn.requests > 0  # it drew the last 10 s for the pods it knew
    assert canary_then.requests == 0  # not with the pods still being listed
    assert followed == ["c0"]  # the late listing applied when it came, before any other sync
    assert sim.track_counts("shop", "web", "canary", start=end, end=end + 10.0).requests > 0


def test_a_window_is_the_difference_of_the_counters_at_its_ends() -> None:
    clock = ManualClock()
    sim = make(Pods(pod("a")), clock, rate_per_pod=20.0)
    t0 = clock.now().timestamp()
    for _ in range(10):
        clock.advance(1.0)
        sim.sync()
    whole = sim.track_counts("shop", "web", "stable", start=t0, end=t0 + 10)
    first = sim.track_counts("shop", "web", "stable", start=t0, end=t0 + 4)
    rest = sim.track_counts("shop", "web", "stable", start=t0 + 4, end=t0 + 10)
    assert whole.requests == first.requests + rest.requests
    assert whole.buckets == tuple(a + b for a, b in zip(first.buckets, rest.buckets, strict=True))
    before_start = sim.track_counts("shop", "web", "stable", start=t0 - 100, end=t0)
    assert before_start.requests == 0
    with pytest.raises(LookupError, match="after the simulated time"):
        sim.track_counts("shop", "web", "stable", start=t0, end=t0 + 11)


def test_a_pod_that_comes_back_starts_from_zero_but_the_track_keeps_its_counts() -> None:
    clock = ManualClock()
    pods = Pods(pod("a"), pod("b"))
    sim = make(pods, clock, rate_per_pod=100.0)
    t0 = clock.now().timestamp()
    clock.advance(10.0)
    sim.sync()
    before = {s.pod: s for s in sim.series()}
    pods.current = [pod("a")]
    clock.advance(1.0)
    sim.sync()
    assert [s.pod for s in sim.series()] == ["a"]
    pods.current = [pod("a"), pod("b")]
    clock.advance(1.0)
    sim.sync()
    after = {s.pod: s for s in sim.series()}
    assert after["b"].ok + after["b"].errors < before["b"].ok + before["b"].errors  # a counter reset
    assert after["a"].ok >= before["a"].ok  # monotonic
    total = sim.track_counts("shop", "web", "stable", start=t0, end=clock.now().timestamp())
    assert total.requests >= before["a"].ok + before["b"].ok + before["b"].errors


def test_per_pod_counts_cover_the_pods_alive_at_the_window_end() -> None:
    clock = ManualClock()
    pods = Pods(pod("c0", "canary"), pod("c1", "canary"), pod("s0"))
    sim = make(pods, clock, rate_per_pod=10.0)
    clock.advance(5.0)
    sim.sync()
    counts = sim.pod_counts(
        "shop", "web", "canary", start=clock.now().timestamp() - 5.0, end=clock.now().timestamp()
    )
    assert [c.pod for c in counts] == ["c0", "c1"]
    assert (
        sum(c.requests for c in counts)
        == sim.track_counts(
            "shop", "web", "canary", start=clock.now().timestamp() - 5.0, end=clock.now().timestamp()
        ).requests
    )


def test_history_is_trimmed_to_its_horizon() -> None:
    clock = ManualClock()
    sim = make(Pods(pod("a")), clock, history_seconds=60.0)
    t0 = clock.now().timestamp()
    clock.advance(300.0)
    sim.sync()
    with pytest.raises(LookupError, match="older than"):
        sim.track_counts("shop", "web", "stable", start=t0 + 10, end=clock.now().timestamp())
    assert (
        sim.track_counts(
            "shop", "web", "stable", start=clock.now().timestamp() - 30, end=clock.now().timestamp()
        ).requests
        > 0
    )


def test_an_hour_of_traffic_is_simulated_in_one_sync() -> None:
    """(How fast is measured in bench/simulator.py, not asserted here.)"""
    clock = ManualClock()
    sim = make(Pods(*(pod(f"p{i}") for i in range(10))), clock, rate_per_pod=100.0)
    clock.advance(3600.0)
    sim.sync()
    assert sim.simulated_requests > 3_500_000


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="buckets"):
        make(Pods(), ManualClock(), buckets=(0.2, 0.1))
    with pytest.raises(ValueError, match="rate_per_pod"):
        make(Pods(), ManualClock(), rate_per_pod=-1.0)
    with pytest.raises(ValueError, match="does not go back"):
        ManualClock().advance(-1.0)
