"""One analysis interval: every metric for baseline and canary, no data as ``None``.

This is the loop the analysis step runs after each interval, and what `ObservationRecorder`
records. Only `NoDataError` becomes ``None`` (no data is an observation, never a pass); every other
error (unavailable backend, bad query) propagates, so the caller can retry or stop.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from analysis.dispersion import DispersionBound, bucket_dispersion, stable_dispersion
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, TrackObservation
from canaryflow.errors import NoDataError
from canaryflow.metrics.port import HistorySource, MetricQuery, MetricsSource

__all__ = [
    "HISTORY_INTERVALS",
    "HISTORY_SECONDS",
    "each_window",
    "history_intervals",
    "learn_warmup",
    "observe_interval",
    "stable_history",
]

#: The stable's history read before an analysis (or a bake): at most this many intervals, and at
#: most an hour.
HISTORY_INTERVALS = 120
HISTORY_SECONDS = 3600.0


def observe_interval(
    source: MetricsSource,
    queries: Sequence[MetricQuery],
    *,
    namespace: str,
    app: str,
    end: datetime,
    window: timedelta,
    missing: dict[str, tuple[str, ...]] | None = None,
    windows: Mapping[str, timedelta] | None = None,
) -> dict[str, PairedObservation | None]:
    """Per metric name: the paired observation over ``(end - window, end]`` (a metric in `windows`:
    over its own window there), or ``None`` without data (then, in `missing` when given, the tracks
    that had none: a hint at how the pods are scraped)."""
    observed: dict[str, PairedObservation | None] = {}
    for query in queries:
        seen: dict[str, TrackObservation] = {}
        own = (windows or {}).get(query.name, window)
        for track in ("baseline", "canary"):
            with contextlib.suppress(NoDataError):
                seen[track] = source.observe(
                    query, namespace=namespace, app=app, track=track, end=end, window=own
                )
        if len(seen) == 2:
            observed[query.name] = PairedObservation(baseline=seen["baseline"], canary=seen["canary"])
            continue
        observed[query.name] = None
        if missing is not None:
            missing[query.name] = tuple(t for t in ("baseline", "canary") if t not in seen)
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


def history_intervals(window: timedelta) -> int:
    """How many intervals of length `window` of the stable's history a warm-up reads: at most
    `HISTORY_INTERVALS` and at most `HISTORY_SECONDS` of them (at least one)."""
    return max(1, min(HISTORY_INTERVALS, math.floor(HISTORY_SECONDS / window.total_seconds())))


def learn_warmup(
    query: MetricQuery, seen: Sequence[TrackObservation], spread: float
) -> DispersionBound | dict[float, float]:
    """The warm-up from the stable's observations `seen` (`stable_history`): a ratio's bound, or a
    histogram's learned bounds (bucket bound -> kappa, only those the history taught) under the
    bucket layout most of the intervals have; `spread` as in `analysis.dispersion`, for both
    tracks."""
    if query.type == "ratio":
        ratios = [o for o in seen if isinstance(o, RatioCounts)]
        return stable_dispersion([o.bad for o in ratios], [o.total for o in ratios], spread=(spread, spread))
    histograms = [o for o in seen if isinstance(o, HistogramCounts)]
    if not histograms:
        return {}
    layout = Counter(o.le for o in histograms).most_common(1)[0][0]
    bounds = bucket_dispersion(
        layout, [o.counts for o in histograms if o.le == layout], spread=(spread, spread)
    )
    return {bound: found.kappa for bound, found in bounds.items() if found.learned}
