"""What the metrics source saw for one metric, one track, one interval.

These are the values the judge consumes and the observation log (``canaryflow/observations@1``)
records. Counts are what happened *within* the interval (they may be fractional: Prometheus'
``increase()`` extrapolates). Histogram counts are cumulative over ``le`` like Prometheus buckets,
so the last count is the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "HistogramCounts",
    "IntervalObservations",
    "MetricType",
    "PairedObservation",
    "RatioCounts",
    "Samples",
    "TrackObservation",
]

MetricType: TypeAlias = Literal["ratio", "histogram", "samples"]


@dataclass(frozen=True, slots=True)
class RatioCounts:
    """``bad`` events out of ``total`` within one interval (e.g. 5xx responses out of requests)."""

    bad: float
    total: float


@dataclass(frozen=True, slots=True)
class HistogramCounts:
    """Cumulative counts per upper bound ``le`` (ascending, last is ``math.inf``) within one interval."""

    le: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return self.counts[-1] if self.counts else 0.0


@dataclass(frozen=True, slots=True)
class Samples:
    """A few values seen within one interval (e.g. per-pod CPU seconds per second)."""

    values: tuple[float, ...]


TrackObservation: TypeAlias = RatioCounts | HistogramCounts | Samples


@dataclass(frozen=True, slots=True)
class PairedObservation:
    """The same metric over the same window for the baseline and the canary."""

    baseline: TrackObservation
    canary: TrackObservation


#: One interval: metric name -> paired observation, or ``None`` when there was no data.
IntervalObservations: TypeAlias = Mapping[str, PairedObservation | None]
