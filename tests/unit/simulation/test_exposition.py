"""``/metrics`` of the simulator: standard series, real counter semantics, clean shutdown."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import PodInfo
from canaryflow.simulation import AppRef, MetricsServer, RealTimeDriver, TrafficSimulator
from canaryflow.simulation.exposition import le_label


class TwoPods:
    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        return [PodInfo("web-0", "stable", "web:v1", True), PodInfo("web-c", "canary", "web:v2", True)]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=5.0).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _labels(pod: str, track: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": "shop", "app": "web", "track": track, "pod": pod, **extra}.items()))


def test_metrics_expose_requests_by_code_and_latency_buckets() -> None:
    clock = ManualClock()
    sim = TrafficSimulator(TwoPods(), [AppRef("shop", "web")], clock=clock, seed=5, rate_per_pod=30.0)
    with MetricsServer(sim) as server:
        first = scrape(server.url)  # pods appear at 0, both codes present
        assert first[("http_requests_total", _labels("web-c", "canary", code="500"))] == 0
        clock.advance(20.0)
        second = scrape(server.url)
    truth = {s.pod: s for s in sim.series()}
    for name, track in (("web-0", "stable"), ("web-c", "canary")):
        ok = second[("http_requests_total", _labels(name, track, code="200"))]
        bad = second[("http_requests_total", _labels(name, track, code="500"))]
        assert (ok, bad) == (truth[name].ok, truth[name].errors)
        inf = second[("http_request_duration_seconds_bucket", _labels(name, track, le="+Inf"))]
        assert inf == ok + bad == second[("http_request_duration_seconds_count", _labels(name, track))]
        buckets = [
            second[("http_request_duration_seconds_bucket", _labels(name, track, le=le_label(b)))]
            for b in sim.le
        ]
        assert buckets == list(truth[name].buckets)
    assert all(second[key] >= value for key, value in first.items())  # monotonic


def test_the_server_releases_its_port_on_stop() -> None:
    sim = TrafficSimulator(TwoPods(), [AppRef("shop", "web")], clock=ManualClock(), seed=1)
    server = MetricsServer(sim).start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


def test_the_real_time_driver_keeps_the_simulator_at_its_clock() -> None:
    clock = ManualClock()
    sim = TrafficSimulator(TwoPods(), [AppRef("shop", "web")], clock=clock, seed=1)
    with RealTimeDriver(sim, tick=0.01):
        target = clock.advance(5.0).timestamp()
        deadline = time.monotonic() + 5.0
        while sim.now < target and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sim.now == target


class CountedPods(TwoPods):
    """Two pods; records which thread listed them."""

    def __init__(self) -> None:
        self.listed_by: list[str] = []
        self.listed = threading.Event()

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        self.listed_by.append(threading.current_thread().name)
        self.listed.set()
        return super().pods(namespace, app)


def test_while_a_driver_runs_only_it_lists_the_pods_and_a_scrape_draws_with_those_it_followed() -> None:
    pods = CountedPods()
    sim = TrafficSimulator(pods, [AppRef("shop", "web")], clock=ManualClock(), seed=1)
    with MetricsServer(sim) as server:
        with RealTimeDriver(sim, tick=3600.0):  # one listing at its start, then it sleeps
            assert pods.listed.wait(5.0)
            assert sim.driven
            scrape(server.url)
            scrape(server.url)
            assert set(pods.listed_by) == {"traffic-simulator"}
        assert not sim.driven
        after = scrape(server.url)  # without a driver a scrape follows the pods itself
    assert len(pods.listed_by) > 1
    assert pods.listed_by[-1] != "traffic-simulator"
    assert ("http_requests_total", _labels("web-c", "canary", code="500")) in after


class BrokenPods(CountedPods):
    """Two pods; the driver's thread gets an error it cannot follow the pods through."""

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if threading.current_thread().name == "traffic-simulator":
            raise RuntimeError("the pods cannot be listed")
        return super().pods(namespace, app)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_driver_that_dies_hands_listing_back_to_the_scrapes() -> None:
    pods = BrokenPods()
    sim = TrafficSimulator(pods, [AppRef("shop", "web")], clock=ManualClock(), seed=1)
    driver = RealTimeDriver(sim, tick=3600.0).start()
    try:
        assert driver._thread is not None
        driver._thread.join(5.0)  # it died at its first listing
        assert not driver._thread.is_alive()
        assert not sim.driven
        with MetricsServer(sim) as server:
            after = scrape(server.url)
    finally:
        driver.stop()
    assert len(pods.listed_by) == 1  # the scrape listed them itself
    assert ("http_requests_total", _labels("web-c", "canary", code="500")) in after
