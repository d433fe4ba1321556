"""A live set-up shared by the Prometheus integration tests of this folder.

A `TrafficSimulator` on the real clock serves ``/metrics`` for two apps in namespace
``metrics-live`` (its own: other tests leave ``shop`` series in the shared Prometheus):
``web`` (2 stable, 1 baseline on v1; 1 canary on v2, which fails 10x more and is twice as slow) and
``api`` (whose canary pod ``api-canary-0`` disappears for 1.5 s and comes back under the same name:
a counter reset). The shared test Prometheus scrapes it every second; the fixture returns once enough
samples are stored for the longest window the tests ask about.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from canaryflow.clock import SystemClock
from canaryflow.cluster.port import PodInfo
from canaryflow.metrics.port import MetricQuery
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource
from canaryflow.simulation import (
    AppRef,
    BehaviourProfile,
    MetricsServer,
    RealTimeDriver,
    TrafficSimulator,
)
from tests.fixtures.prometheus import PrometheusServer

SELECTOR = 'namespace="{namespace}",app="{app}",track="{track}"'
ERROR_RATE = MetricQuery(
    "error-rate",
    "ratio",
    {
        "bad": "sum(increase(http_requests_total{" + SELECTOR + ',code=~"5.."}[{interval}]))',
        "total": "sum(increase(http_requests_total{" + SELECTOR + "}[{interval}]))",
    },
)
LATENCY = MetricQuery(
    "latency",
    "histogram",
    {"query": "sum by (le) (increase(http_request_duration_seconds_bucket{" + SELECTOR + "}[{interval}]))"},
    unit="seconds",
)
POD_ERROR_RATIO = MetricQuery(
    "pod-error-ratio",
    "samples",
    {
        "query": "sum by (pod) (increase(http_requests_total{" + SELECTOR + ',code=~"5.."}[{interval}]))'
        " / sum by (pod) (increase(http_requests_total{" + SELECTOR + "}[{interval}]))"
    },
)

RATE_PER_POD = 200.0
#: Samples stored before the tests start: enough for three 5 s intervals ending 1.6 s ago.
SAMPLES_NEEDED = 20
#: Restart of api-canary-0, in seconds after the simulator starts.
RESTART_AT, RESTART_GAP = 12.0, 1.5


class LivePods:
    """The pods of metrics-live/web and metrics-live/api; api-canary-0 is away during the restart gap."""

    def __init__(self, started: float) -> None:
        self._started = started

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if namespace != "metrics-live":
            return []
        if app == "web":
            return [
                PodInfo("web-stable-0", "stable", "web:v1", True),
                PodInfo("web-stable-1", "stable", "web:v1", True),
                PodInfo("web-baseline-0", "baseline", "web:v1", True),
                PodInfo("web-canary-0", "canary", "web:v2", True),
            ]
        if app == "api":
            away = RESTART_AT <= time.time() - self._started < RESTART_AT + RESTART_GAP
            pods = [PodInfo("api-baseline-0", "baseline", "api:v1", True)]
            pods += [] if away else [PodInfo("api-canary-0", "canary", "api:v1", True)]
            return [*pods, PodInfo("api-canary-1", "canary", "api:v1", True)]
        return []


@dataclass
class Live:
    prometheus: PrometheusServer
    simulator: TrafficSimulator
    source: PrometheusMetricsSource
    started: float

    def safe_end(self) -> float:
        """A window end Prometheus has scraped past, with the simulator's truth known beyond it."""
        return time.time() - 1.6


@pytest.fixture(scope="session")
def live(prometheus: PrometheusServer) -> Iterator[Live]:
    started = time.time()
    simulator = TrafficSimulator(
        LivePods(started),
        [AppRef("metrics-live", "web"), AppRef("metrics-live", "api")],
        clock=SystemClock(),
        seed=7,
        rate_per_pod=RATE_PER_POD,
        profiles={"web:v2": BehaviourProfile(error_rate=0.10, latency_median=0.2, latency_p99=1.0)},
        default_profile=BehaviourProfile(error_rate=0.01, latency_median=0.1, latency_p99=0.5),
        max_step=0.1,
    )
    # A fractional timeout also checks that Prometheus accepts the server-side "timeout" parameter.
    config = PrometheusConfig(url=prometheus.url, timeout=2.5, retries=1, backoff=0.1)
    with (
        MetricsServer(simulator) as server,
        RealTimeDriver(simulator, tick=0.05),
        PrometheusMetricsSource(config) as source,
    ):
        prometheus.add_targets("simulator", [server.target])
        prometheus.wait_for_samples('http_requests_total{namespace="metrics-live"}', SAMPLES_NEEDED)
        yield Live(prometheus, simulator, source, started)
