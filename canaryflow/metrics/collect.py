"""One analysis interval: every metric for baseline and canary, no data as ``None``.

This is the loop the analysis step runs after each interval, and what `ObservationRecorder`
records. Only `NoDataError` becomes ``None`` (no data is an observation, never a pass); every other
error (unavailable backend, bad query) propagates, so the caller can retry or stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from analysis.observations import PairedObservation
from canaryflow.errors import NoDataError
from canaryflow.metrics.port import MetricQuery, MetricsSource

__all__ = ["observe_interval"]


def observe_interval(
    source: MetricsSource,
    queries: Sequence[MetricQuery],
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
) -> dict[str, PairedObservation | None]:
    """Per metric name: the paired observation over ``(end - window, end]``, or ``None`` without data."""
    observed: dict[str, PairedObservation | None] = {}
    for query in queries:
        try:
            baseline = source.observe(
                query, namespace=namespace, app=app, track="baseline", end=end, window=window
            )
            canary = source.observe(
                query, namespace=namespace, app=app, track="canary", end=end, window=window
            )
        except NoDataError:
            observed[query.name] = None
        else:
            observed[query.name] = PairedObservation(baseline=baseline, canary=canary)
    return observed
