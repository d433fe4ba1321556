"""A release's cells on one shared Prometheus: ``{cell}`` narrows every query to the cell's series.

One traffic simulator (namespace ``metrics-cells``) is scraped by the real test Prometheus twice,
as two jobs whose series carry ``cluster: eu-1`` and ``cluster: eu-2``, as two cells' identical
services would on a shared Prometheus. The default error-rate metric read for cell ``eu-1`` must
count that cell's requests only (within one scrape of the simulator's truth); without the cell's
labels the same query counts both; and a query without ``{cell}`` is refused rather than read
across cells.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from analysis.observations import RatioCounts
from canaryflow.clock import SystemClock
from canaryflow.cluster.port import PodInfo
from canaryflow.errors import QueryError
from canaryflow.metrics.port import MetricQuery
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource
from canaryflow.simulation import AppRef, BehaviourProfile, MetricsServer, RealTimeDriver, TrafficSimulator
from canaryflow.spec import DEFAULT_METRICS
from tests.fixtures.prometheus import PrometheusServer
from tests.integration.metrics.conftest import ERROR_RATE

pytestmark = pytest.mark.prometheus

NAMESPACE = "metrics-cells"
WINDOW, SKEW = 10.0, 1.5
DEFAULT_ERROR_RATE = MetricQuery("error-rate", "ratio", DEFAULT_METRICS[0].templates())


class _Pods:
    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        if (namespace, app) != (NAMESPACE, "web"):
            return []
        return [
            PodInfo("web-baseline-0", "baseline", "web:v1", True),
            PodInfo("web-canary-0", "canary", "web:v2", True),
        ]


@pytest.fixture(scope="module")
def cells(prometheus: PrometheusServer) -> Iterator[TrafficSimulator]:
    simulator = TrafficSimulator(
        _Pods(),
        [AppRef(NAMESPACE, "web")],
        clock=SystemClock(),
        seed=11,
        rate_per_pod=200.0,
        default_profile=BehaviourProfile(error_rate=0.02, latency_median=0.1, latency_p99=0.5),
        max_step=0.1,
    )
    with MetricsServer(simulator) as server, RealTimeDriver(simulator, tick=0.05):
        for cluster in ("eu-1", "eu-2"):
            prometheus.add_targets(f"cells-{cluster}", [server.target], labels={"cluster": cluster})
        for cluster in ("eu-1", "eu-2"):
            prometheus.wait_for_samples(
                f'http_requests_total{{namespace="{NAMESPACE}", cluster="{cluster}"}}', int(WINDOW) + 5
            )
        yield simulator


def _observe(prometheus: PrometheusServer, query: MetricQuery, end: float, **labels: str) -> RatioCounts:
    config = PrometheusConfig(url=prometheus.url, timeout=5.0, retries=1, labels=labels)
    with PrometheusMetricsSource(config) as source:
        observed = source.observe(
            query,
            namespace=NAMESPACE,
            app="web",
            track="canary",
            end=datetime.fromtimestamp(end, tz=UTC),
            window=timedelta(seconds=WINDOW),
        )
    assert isinstance(observed, RatioCounts)
    return observed


def test_a_cells_labels_narrow_the_default_metrics_to_its_own_series(
    prometheus: PrometheusServer, cells: TrafficSimulator
) -> None:
    end = time.time() - 1.6
    one_cell = _observe(prometheus, DEFAULT_ERROR_RATE, end, cluster="eu-1")
    low = cells.track_counts(NAMESPACE, "web", "canary", start=end - WINDOW + SKEW, end=end - SKEW)
    high = cells.track_counts(NAMESPACE, "web", "canary", start=end - WINDOW, end=end + SKEW)
    factor = WINDOW / (WINDOW - 2 * SKEW)
    assert low.requests <= one_cell.total <= high.requests * factor
    assert low.errors <= one_cell.bad <= high.errors * factor

    every_cell = _observe(prometheus, DEFAULT_ERROR_RATE, end)
    assert every_cell.total >= 2 * low.requests  # both cells' copies: what {cell} keeps out


def test_a_query_without_cell_is_refused_for_a_cell_instead_of_reading_every_cell(
    prometheus: PrometheusServer, cells: TrafficSimulator
) -> None:
    with pytest.raises(QueryError, match=r"no \{cell\} placeholder.*cluster=eu-1"):
        _observe(prometheus, ERROR_RATE, time.time() - 1.6, cluster="eu-1")
    assert _observe(prometheus, ERROR_RATE, time.time() - 1.6).total > 0  # outside a cell it is fine


def test_a_label_name_prometheus_would_refuse_is_refused_when_configured(
    prometheus: PrometheusServer,
) -> None:
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        PrometheusConfig(url=prometheus.url, labels={"cluster-name": "eu-1"})
