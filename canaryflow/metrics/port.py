"""The `MetricsSource` port: one metric, one track, one time window -> one observation.

Adapters: Prometheus (queries rendered from the spec's templates) and simulated (reads the traffic
simulator directly; the embedded default when no Prometheus is installed). An adapter never returns
a number it did not get: no samples is `NoDataError`, a bad query `QueryError`, an unreachable or
failing backend `MetricsUnavailableError` (retryable).

A `MetricQuery` carries the spec's templates by name, per type:

- ``ratio``: ``bad`` and ``total`` (each one series: the bad events and all events in the window);
- ``histogram``: ``query`` (one series per ``le``, cumulative bucket counts in the window);
- ``samples``: ``query`` (a vector, one value per series).

Templates use ``{namespace} {app} {track} {interval} {cell}``; ``{interval}`` is the window as a
PromQL duration (``30s``), ``{cell}`` the labels of a release's cell
(`canaryflow.querytemplates`). Queries are evaluated at the window end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from analysis.observations import MetricType, TrackObservation
from canaryflow.querytemplates import unknown_variables

__all__ = [
    "TEMPLATE_NAMES",
    "AnalysisTrack",
    "HistorySource",
    "MetricQuery",
    "MetricsSource",
    "ObservedTrack",
    "SeriesNames",
    "check_window",
]

#: The tracks an analysis compares.
AnalysisTrack: TypeAlias = Literal["canary", "baseline"]
#: The tracks a source is asked about: the analysis' two, and the stable (the preflight checks that
#: every query has data for it before a rollout starts).
ObservedTrack: TypeAlias = Literal["canary", "baseline", "stable"]

#: Which templates each metric type needs.
TEMPLATE_NAMES: Mapping[MetricType, frozenset[str]] = MappingProxyType(
    {"ratio": frozenset({"bad", "total"}), "histogram": frozenset({"query"}), "samples": frozenset({"query"})}
)


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One metric of an analysis: its name, type, query templates by name, and unit (for the log)."""

    name: str
    type: MetricType
    templates: Mapping[str, str]
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TEMPLATE_NAMES:
            raise ValueError(f"metric {self.name!r}: unknown type {self.type!r} (ratio, histogram, samples)")
        expected = TEMPLATE_NAMES[self.type]
        if set(self.templates) != expected:
            raise ValueError(
                f"metric {self.name!r} ({self.type}) needs templates {sorted(expected)}, "
                f"got {sorted(self.templates)}"
            )
        for key, template in self.templates.items():
            unknown = unknown_variables(template)
            if unknown:
                raise ValueError(f"metric {self.name!r} template {key!r}: unknown variable(s) {unknown}")
        object.__setattr__(self, "templates", MappingProxyType(dict(self.templates)))

    def __hash__(self) -> int:
        return hash((self.name, self.type, tuple(sorted(self.templates.items())), self.unit))


class MetricsSource(Protocol):
    """Port to a metrics backend."""

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
        """What `track` of `app` did for `query` in the window ``(end - window, end]``.

        Returns `RatioCounts` (ratio), `HistogramCounts` (histogram) or `Samples` (samples).

        Raises
        ------
        NoDataError
            No samples, only NaN, or no events at all in the window.
        QueryError
            The backend rejected the query (its message and the rendered query attached).
        MetricsUnavailableError
            Timeout, connection failure or server error after the adapter's retries (retryable).
        """
        ...

    def is_online(self) -> bool:
        """Whether the backend answers now (never raises)."""
        ...


@runtime_checkable
class HistorySource(Protocol):
    """What a `MetricsSource` may also do: many consecutive windows at once (Prometheus: one range
    query). `canaryflow.metrics.stable_history` uses it when the source has it and reads window by
    window otherwise."""

    def observe_history(
        self,
        query: MetricQuery,
        *,
        namespace: str,
        app: str,
        track: ObservedTrack,
        end: datetime,
        window: timedelta,
        intervals: int,
    ) -> list[TrackObservation]:
        """What `MetricsSource.observe` gives for each of the `intervals` windows that end at
        ``end - i * window``, oldest first; windows without data are left out."""
        ...


@runtime_checkable
class SeriesNames(Protocol):
    """What a `MetricsSource` may also do: say which metric names its queries select that it has
    no series of at all (`canaryflow.preflight` warns of them: a typo in a ``bad`` query reads as
    no errors, not as no data)."""

    def unknown_names(
        self, query: MetricQuery, *, namespace: str, app: str, track: ObservedTrack, end: datetime
    ) -> list[str]:
        """The metric names `query`'s rendered templates select that had no series in the hour
        before `end` (any labels); empty when all had, or when the backend cannot tell now (never
        raises)."""
        ...


def check_window(end: datetime, window: timedelta) -> None:
    """Reject a naive `end` or a non-positive `window` (programming errors, not metrics outcomes)."""
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError(f"end must be timezone-aware, got {end!r}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window!r}")
