"""One analysis interval: every metric for baseline and canary, no data as ``None``.

This is the loop the analysis step runs after each interval, and what `ObservationRecorder`
records. Only `NoDataError` becomes ``None`` (no data is an observation, never a pass); every other
error (unavailable backend, bad query) propagates, so the caller can retry or stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from analysis.observations import PairedObservation, TrackObservation
from canaryflow.errors import NoDataError
from canaryflow.metrics.port import HistorySource, MetricQuery, MetricsSource

__all__ = ["each_window", "observe_interval", "stable_history"]


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


def stable_history(
    source: MetricsSource,
    query: MetricQuery,
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
    intervals: int,
) -> list[TrackObservation]:
    """What the stable track did for the ratio or histogram metric `query` in the `intervals`
    windows of length `window` that end at or before `end`, oldest first; windows without data are
    left out. Other errors propagate, as in `observe_interval`."""
    if query.type == "samples":
        raise ValueError(f"metric {query.name!r} is a samples metric: it has no stable history to learn from")
    if isinstance(source, HistorySource):
        return source.observe_history(
            query, namespace=namespace, app=app, track="stable", end=end, window=window, intervals=intervals
        )
    return each_window(
        source, query, namespace=namespace, app=app, end=end, window=window, intervals=intervals
    )


def each_window(
    source: MetricsSource,
    query: MetricQuery,
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
    intervals: int,
) -> list[TrackObservation]:
    """`stable_history` one window at a time, through `MetricsSource.observe`."""
    seen: list[TrackObservation] = []
    for back in range(intervals - 1, -1, -1):
        try:
            seen.append(
                source.observe(
                    query,
                    namespace=namespace,
                    app=app,
                    track="stable",
                    end=end - back * window,
                    window=window,
                )
            )
        except NoDataError:
            continue
    return seen
