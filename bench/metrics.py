"""Metrics benchmark: queries per analysis interval and time per query against a local Prometheus.

    .venv/bin/python bench/metrics.py [--pods 10] [--intervals 30] [--window 10]

Starts Debian's ``prometheus`` on a free 127.0.0.1 port (temporary TSDB, 1 s scrapes, removed at the
end) scraping the traffic simulator in real time, waits until a window of data is stored, then runs
`observe_interval` for three metrics (a ratio, a 158-bucket histogram, per-pod samples) over and
over through `PrometheusMetricsSource`, counting and timing every instant query. Also times the
simulated source for the same interval. Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from canaryflow.clock import SystemClock
from canaryflow.cluster.port import PodInfo
from canaryflow.metrics import MetricQuery, observe_interval
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource
from canaryflow.metrics.simulated import SimulatedMetricsSource
from canaryflow.simulation import (
    AppRef,
    BehaviourProfile,
    MetricsServer,
    RealTimeDriver,
    TrafficSimulator,
)
from tests.fixtures.prometheus import running_prometheus

SELECTOR = 'namespace="{namespace}",app="{app}",track="{track}"'
QUERIES = (
    MetricQuery(
        "error-rate",
        "ratio",
        {
            "bad": "sum(increase(http_requests_total{" + SELECTOR + ',code=~"5.."}[{interval}]))',
            "total": "sum(increase(http_requests_total{" + SELECTOR + "}[{interval}]))",
        },
    ),
    MetricQuery(
        "latency",
        "histogram",
        {
            "query": "sum by (le) (increase(http_request_duration_seconds_bucket{"
            + SELECTOR
            + "}[{interval}]))"
        },
    ),
    MetricQuery(
        "pod-errors",
        "samples",
        {
            "query": "sum by (pod) (increase(http_requests_total{" + SELECTOR + ',code=~"5.."}[{interval}]))'
            " / sum by (pod) (increase(http_requests_total{" + SELECTOR + "}[{interval}]))"
        },
    ),
)


class Pods:
    def __init__(self, count: int) -> None:
        self._pods = [PodInfo(f"web-{i}", "stable", "web:v1", True) for i in range(count - 2)]
        self._pods += [
            PodInfo("web-b", "baseline", "web:v1", True),
            PodInfo("web-c", "canary", "web:v2", True),
        ]

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        return list(self._pods)


class Timed(PrometheusMetricsSource):
    """Counts and times every instant query."""

    def __init__(self, config: PrometheusConfig) -> None:
        super().__init__(config)
        self.durations: list[float] = []

    def instant(self, promql: str, *, at: float) -> Any:
        begun = time.perf_counter()
        try:
            return super().instant(promql, at=at)
        finally:
            self.durations.append(time.perf_counter() - begun)


def _ms(values: list[float], q: float) -> str:
    return f"{statistics.quantiles(values, n=100)[int(q) - 1] * 1000:.1f}" if len(values) > 1 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--intervals", type=int, default=30, help="analysis intervals to time")
    parser.add_argument("--window", type=float, default=10.0, help="interval length in seconds")
    args = parser.parse_args()
    sim = TrafficSimulator(
        Pods(args.pods),
        [AppRef("shop", "web")],
        clock=SystemClock(),
        seed=1,
        rate_per_pod=100.0,
        profiles={"web:v2": BehaviourProfile(error_rate=0.05)},
        max_step=0.1,
    )
    window = timedelta(seconds=args.window)
    with (
        running_prometheus() as prometheus,
        MetricsServer(sim) as server,
        RealTimeDriver(sim),
        Timed(PrometheusConfig(url=prometheus.url, timeout=5.0)) as source,
    ):
        prometheus.add_targets("simulator", [server.target])
        prometheus.wait_for_samples('http_requests_total{namespace="shop"}', int(args.window) + 3)
        per_interval, walls = [], []
        for _ in range(args.intervals):
            end = datetime.fromtimestamp(time.time() - 1.0, tz=UTC)
            before, begun = len(source.durations), time.perf_counter()
            observe_interval(source, QUERIES, namespace="shop", app="web", end=end, window=window)
            walls.append(time.perf_counter() - begun)
            per_interval.append(len(source.durations) - before)
        simulated = SimulatedMetricsSource(sim)
        sim_walls = []
        for _ in range(args.intervals):
            end = datetime.fromtimestamp(time.time() - 1.0, tz=UTC)
            begun = time.perf_counter()
            observe_interval(simulated, QUERIES, namespace="shop", app="web", end=end, window=window)
            sim_walls.append(time.perf_counter() - begun)
        series = len(prometheus.query('{namespace="shop"}'))
    d = source.durations
    print("## Metrics queries\n")
    print(
        f"`python bench/metrics.py --pods {args.pods} --intervals {args.intervals} "
        f"--window {args.window:g}`; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"local Prometheus scraping {series} series every second.\n"
    )
    print("| what | value |")
    print("|---|---:|")
    print(f"| queries per analysis interval (3 metrics x 2 tracks) | {statistics.mean(per_interval):g} |")
    print(f"| time per query, median / p95 | {_ms(d, 50)} / {_ms(d, 95)} ms |")
    print(f"| one analysis interval through Prometheus, median | {statistics.median(walls) * 1000:.1f} ms |")
    sim_ms = statistics.median(sim_walls) * 1000
    print(f"| one analysis interval through the simulated source, median | {sim_ms:.2f} ms |")


if __name__ == "__main__":
    main()
