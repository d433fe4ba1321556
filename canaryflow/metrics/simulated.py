"""The simulated adapter of `MetricsSource`: reads the traffic simulator's counters directly.

It is the embedded default when no Prometheus is installed. It returns the same observation types
as the Prometheus adapter, computed exactly from the simulator's per-step ground truth (the counters
at the window end minus those at the window start, per track; a pod that disappeared still counts).

Interpretation (documented choice): the simulator produces one kind of traffic, so a metric is
interpreted by its **type**, and its templates are not read:

- ``ratio``: HTTP 500 responses out of all requests of the track;
- ``histogram``: the request-latency buckets (``http_request_duration_seconds``), cumulative;
- ``samples``: the error ratio of each pod of the track that served requests in the window.

No requests in the window is `NoDataError`; a window that ends after the simulated present is
`MetricsUnavailableError` with the wait as ``retry_after``; one older than the kept history is
`NoDataError` (like a Prometheus past its retention).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from analysis.observations import HistogramCounts, RatioCounts, Samples, TrackObservation
from canaryflow.errors import MetricsUnavailableError, NoDataError
from canaryflow.metrics.port import MetricQuery, ObservedTrack, check_window
from canaryflow.simulation.traffic import TrafficSimulator

__all__ = ["SimulatedMetricsSource"]


class SimulatedMetricsSource:
    """`MetricsSource` over a `TrafficSimulator` (no network, no Prometheus). While a `RealTimeDriver`
    runs, a read draws with the pods the driver last followed (up to one tick old)."""

    def __init__(self, simulator: TrafficSimulator) -> None:
        self.simulator = simulator

    def is_online(self) -> bool:
        return True

    def observe(
        self,
        query: MetricQuery,
        *,
        namespace: str,
        app: str,
        track: ObservedTrack,
        end: datetime,
        window: timedelta,
    ) -> TrackObservation:
        check_window(end, window)
        label = f"simulated {query.type} {query.name!r} of {namespace}/{app} {track}"
        stop = end.timestamp()
        start = stop - window.total_seconds()
        now = self.simulator.sync()
        if stop > now:
            raise MetricsUnavailableError(
                f"{label}: the window ends {stop - now:.3f}s after the simulated present",
                query=label,
                retry_after=stop - now,
            )
        try:
            if query.type == "samples":
                return self._samples(namespace, app, track, start, stop, label)
            counts = self.simulator.track_counts(namespace, app, track, start=start, end=stop)
        except LookupError as exc:
            raise NoDataError(f"{label}: {exc}", query=label) from exc
        if counts.requests == 0:
            raise NoDataError(f"{label}: no requests in the window", query=label)
        if query.type == "ratio":
            return RatioCounts(bad=float(counts.errors), total=float(counts.requests))
        return HistogramCounts(le=counts.le, counts=tuple(float(c) for c in counts.buckets))

    def _samples(
        self, namespace: str, app: str, track: str, start: float, stop: float, label: str
    ) -> Samples:
        pods = self.simulator.pod_counts(namespace, app, track, start=start, end=stop)
        values = tuple(p.errors / p.requests for p in pods if p.requests > 0)
        if not values:
            raise NoDataError(f"{label}: no pod served requests in the window", query=label)
        return Samples(values=values)
