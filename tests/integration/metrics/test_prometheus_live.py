"""The Prometheus adapter against a real Prometheus scraping the traffic simulator.

Ground truth bracket: Prometheus stamps a scrape with its start time and the simulator's counters
are read a moment later, scrapes are 1 s apart (plus jitter), and ``increase()`` extrapolates the
change between the first and last sample in the window to the whole window. So for a window of W
seconds and a skew s covering one scrape interval plus the collection lag::

    truth(start + s, end - s)  <=  observed  <=  truth(start, end + s) * W / (W - 2 s)

where truth(a, b) is the simulator's exact count between a and b. Both bounds are on realised
counts, not expectations, so the check is deterministic given the run.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from analysis.observations import HistogramCounts, RatioCounts, Samples
from canaryflow.errors import MetricsUnavailableError, NoDataError, QueryError
from canaryflow.metrics.port import AnalysisTrack, MetricQuery
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource
from canaryflow.simulation import TrackCounts
from tests.fixtures.prometheus import running_prometheus
from tests.integration.metrics.conftest import (
    ERROR_RATE,
    LATENCY,
    POD_ERROR_RATIO,
    RATE_PER_POD,
    RESTART_AT,
    RESTART_GAP,
    Live,
)

pytestmark = pytest.mark.prometheus

WINDOW = 10.0
SKEW = 1.5


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _bracket(live: Live, app: str, track: str, end: float) -> tuple[TrackCounts, TrackCounts, float]:
    start = end - WINDOW
    low = live.simulator.track_counts("metrics-live", app, track, start=start + SKEW, end=end - SKEW)
    high = live.simulator.track_counts("metrics-live", app, track, start=start, end=end + SKEW)
    return low, high, WINDOW / (WINDOW - 2 * SKEW)


@pytest.mark.parametrize("track", ["baseline", "canary"])
def test_ratio_matches_the_simulators_counts_within_one_scrape(live: Live, track: AnalysisTrack) -> None:
    end = live.safe_end()
    observed = live.source.observe(
        ERROR_RATE,
        namespace="metrics-live",
        app="web",
        track=track,
        end=_at(end),
        window=timedelta(seconds=WINDOW),
    )
    assert isinstance(observed, RatioCounts)
    low, high, factor = _bracket(live, "web", track, end)
    assert low.requests <= observed.total <= high.requests * factor
    assert low.errors <= observed.bad <= high.errors * factor
    assert observed.total > 0.5 * RATE_PER_POD * WINDOW  # one pod per track, most of the window


def test_canary_error_ratio_is_the_profiles(live: Live) -> None:
    window = timedelta(seconds=WINDOW)
    end = _at(live.safe_end())
    canary = live.source.observe(
        ERROR_RATE, namespace="metrics-live", app="web", track="canary", end=end, window=window
    )
    baseline = live.source.observe(
        ERROR_RATE, namespace="metrics-live", app="web", track="baseline", end=end, window=window
    )
    assert isinstance(canary, RatioCounts)
    assert isinstance(baseline, RatioCounts)
    assert 0.06 < canary.bad / canary.total < 0.14
    assert baseline.bad / baseline.total < 0.03


def test_histogram_matches_the_simulators_buckets_within_one_scrape(live: Live) -> None:
    end = live.safe_end()
    observed = live.source.observe(
        LATENCY,
        namespace="metrics-live",
        app="web",
        track="canary",
        end=_at(end),
        window=timedelta(seconds=WINDOW),
    )
    assert isinstance(observed, HistogramCounts)
    low, high, factor = _bracket(live, "web", "canary", end)
    assert observed.le == live.simulator.le
    assert observed.le[-1] == math.inf
    for le, got, lo, hi in zip(observed.le, observed.counts, low.buckets, high.buckets, strict=True):
        assert lo <= got <= hi * factor, f"le={le}: {got} not in [{lo}, {hi * factor}]"
    assert list(observed.counts) == sorted(observed.counts)
    assert low.requests <= observed.total <= high.requests * factor


def test_samples_give_one_value_per_pod(live: Live) -> None:
    window = timedelta(seconds=WINDOW)
    end = _at(live.safe_end())
    canary = live.source.observe(
        POD_ERROR_RATIO, namespace="metrics-live", app="api", track="canary", end=end, window=window
    )
    web = live.source.observe(
        POD_ERROR_RATIO, namespace="metrics-live", app="web", track="canary", end=end, window=window
    )
    assert isinstance(canary, Samples)
    assert isinstance(web, Samples)
    assert len(canary.values) == 2  # api-canary-0 and api-canary-1
    assert all(0.0 <= v <= 1.0 for v in canary.values)
    assert len(web.values) == 1
    assert 0.06 < web.values[0] < 0.14


def test_a_counter_reset_inside_the_window_is_handled(live: Live) -> None:
    # api-canary-0 disappears at RESTART_AT and comes back (same name, counters from zero) after the gap.
    end = live.started + RESTART_AT + RESTART_GAP + 4.0
    assert end <= live.safe_end(), "the fixture did not wait long enough for the restart window"
    observed = live.source.observe(
        ERROR_RATE,
        namespace="metrics-live",
        app="api",
        track="canary",
        end=_at(end),
        window=timedelta(seconds=WINDOW),
    )
    assert isinstance(observed, RatioCounts)
    low, high, factor = _bracket(live, "api", "canary", end)
    # The restarted pod's requests between its last scrape and its disappearance are never scraped.
    lost = 2 * RATE_PER_POD * SKEW
    assert low.requests - lost <= observed.total <= high.requests * factor
    assert observed.total > RATE_PER_POD * WINDOW  # two pods: a reset read as a drop would be far less


def test_an_app_without_traffic_is_no_data(live: Live) -> None:
    with pytest.raises(NoDataError) as info:
        live.source.observe(
            ERROR_RATE,
            namespace="metrics-live",
            app="ghost",
            track="canary",
            end=_at(live.safe_end()),
            window=timedelta(seconds=WINDOW),
        )
    assert info.value.query is not None
    assert 'app="ghost"' in info.value.query


def test_bad_promql_is_a_query_error_with_prometheus_message(live: Live) -> None:
    broken = MetricQuery(
        "broken", "samples", {"query": 'sum(rate(http_requests_total{app="{app}"}[{interval}])'}
    )
    with pytest.raises(QueryError) as info:
        live.source.observe(
            broken,
            namespace="metrics-live",
            app="web",
            track="canary",
            end=_at(time.time()),
            window=timedelta(seconds=5),
        )
    assert "parse error" in str(info.value)
    assert info.value.query == 'sum(rate(http_requests_total{app="web"}[5s])'
    assert live.source.is_online()


def test_a_stopped_prometheus_is_retryable_within_the_timeout() -> None:
    with running_prometheus() as server:
        config = PrometheusConfig(url=server.url, timeout=2.0, retries=2, backoff=0.1)
        with PrometheusMetricsSource(config) as source:
            assert source.is_online()
            server.stop()
            begun = time.monotonic()
            with pytest.raises(MetricsUnavailableError) as info:
                source.observe(
                    ERROR_RATE,
                    namespace="metrics-live",
                    app="web",
                    track="canary",
                    end=_at(time.time()),
                    window=timedelta(seconds=30),
                )
            elapsed = time.monotonic() - begun
            assert not source.is_online()
    assert elapsed <= config.worst_case_seconds
    assert info.value.query is not None
    assert "http_requests_total" in info.value.query
    assert isinstance(info.value.__cause__, Exception)


def test_the_stables_history_is_one_range_query_that_reads_as_each_window_would(live: Live) -> None:
    from canaryflow.metrics import stable_history
    from canaryflow.metrics.collect import each_window
    from canaryflow.metrics.port import HistorySource

    assert isinstance(live.source, HistorySource)  # so stable_history asks for a range
    end = live.safe_end()
    window = timedelta(seconds=2)
    served = end - live.started
    where = {"namespace": "metrics-live", "app": "web", "end": _at(end), "window": window, "intervals": 200}
    ratios = stable_history(live.source, ERROR_RATE, **where)
    histograms = stable_history(live.source, LATENCY, **where)

    # 200 windows reach back 400 s; those before the simulator served have no data and are left out
    assert 3 <= len(ratios) <= served / 2 + 1
    assert all(isinstance(o, RatioCounts) and o.total > 0 for o in ratios)
    assert all(isinstance(o, HistogramCounts) and o.total > 0 for o in histograms)
    # the range query (Prometheus's query_range, one per template) reads what one instant query
    # per window reads, window by window, oldest first
    assert ratios == each_window(live.source, ERROR_RATE, **where)
    assert histograms == each_window(live.source, LATENCY, **where)
