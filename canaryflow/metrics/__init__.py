"""Metrics: the `MetricsSource` port, its adapters, and the observation log recorder.

What belongs here: the port (`MetricQuery`, `MetricsSource`), the Prometheus adapter (the only
module that imports prometheus_api_client), the simulated adapter over the traffic simulator, the
factory that alone knows both, the conversion of query results into observations
(`canaryflow.metrics.vectors`), one interval's collection (`observe_interval`) and the
``canaryflow/observations@1`` recorder.

What must not: Prefect, Kubernetes, the judge's statistics (those live in `analysis`), module-level
clients or configuration read at import. Adapters raise the errors of `canaryflow.errors` and never
return a number they did not get.

Importing this package does not import the Prometheus client; use
`canaryflow.metrics.factory.create_metrics_source` or import `canaryflow.metrics.prometheus`.
"""

from __future__ import annotations

from canaryflow.metrics.collect import observe_interval, stable_history
from canaryflow.metrics.factory import KINDS, create_metrics_source
from canaryflow.metrics.port import (
    TEMPLATE_NAMES,
    AnalysisTrack,
    MetricQuery,
    MetricsSource,
    ObservedTrack,
    check_window,
)
from canaryflow.metrics.recording import FORMAT, ObservationRecorder

__all__ = [
    "FORMAT",
    "KINDS",
    "TEMPLATE_NAMES",
    "AnalysisTrack",
    "MetricQuery",
    "MetricsSource",
    "ObservationRecorder",
    "ObservedTrack",
    "check_window",
    "create_metrics_source",
    "observe_interval",
    "stable_history",
]
