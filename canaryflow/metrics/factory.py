"""The one place that knows the concrete metrics adapters.

``create_metrics_source("prometheus", prometheus=PrometheusConfig(...))`` or
``create_metrics_source("simulated", simulator=...)``. An unknown kind is a `SpecError` naming the
known ones: there is no silent fallback to Prometheus, and the Prometheus adapter (with its client
library) is imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from canaryflow.errors import SpecError
from canaryflow.metrics.port import MetricsSource

if TYPE_CHECKING:
    from canaryflow.metrics.prometheus import PrometheusConfig
    from canaryflow.simulation.traffic import TrafficSimulator

__all__ = ["KINDS", "create_metrics_source"]

#: The metrics source kinds a configuration may name.
KINDS: tuple[str, ...] = ("prometheus", "simulated")


def create_metrics_source(
    kind: str,
    *,
    prometheus: PrometheusConfig | None = None,
    simulator: TrafficSimulator | None = None,
) -> MetricsSource:
    """A `MetricsSource` of `kind`, built from the configuration that kind needs."""
    if kind == "prometheus":
        if prometheus is None:
            raise SpecError(
                "metrics source 'prometheus' needs a Prometheus configuration (url, timeout, auth)"
            )
        from canaryflow.metrics.prometheus import PrometheusMetricsSource

        return PrometheusMetricsSource(prometheus)
    if kind == "simulated":
        if simulator is None:
            raise SpecError("metrics source 'simulated' needs a traffic simulator")
        from canaryflow.metrics.simulated import SimulatedMetricsSource

        return SimulatedMetricsSource(simulator)
    raise SpecError(f"unknown metrics source kind {kind!r}; known kinds: {', '.join(KINDS)}")
