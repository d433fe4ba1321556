"""Simulated traffic: per-pod request outcomes and latencies, exposed as Prometheus metrics.

What belongs here: behaviour profiles per image (`BehaviourProfile`), the vectorised simulator
(`TrafficSimulator`) that follows the pods of any `PodLister` (both cluster adapters are one) on a
`canaryflow.clock.Clock` (`ManualClock` in tests, faster than real time; `SystemClock` in the
demo), and the ``/metrics`` server (`MetricsServer`, prometheus_client on a private registry) with
its real-time driver.

What must not: Prefect, Kubernetes, anything of ``canaryflow.cluster`` (the simulator names the
little it needs of a pod in the `Pod` protocol), the Prometheus query client, global registries,
module-level state. Randomness comes only from the seeded numpy Generator a simulator owns, so a
run is reproducible from its seed and clock.
"""

from __future__ import annotations

from canaryflow.simulation.exposition import MetricsServer, RealTimeDriver, SimulatorCollector
from canaryflow.simulation.profiles import DEFAULT_BUCKETS, BehaviourProfile, geometric_buckets
from canaryflow.simulation.traffic import (
    AppRef,
    Pod,
    PodCounts,
    PodLister,
    PodSeries,
    TrackCounts,
    TrafficSimulator,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "AppRef",
    "BehaviourProfile",
    "MetricsServer",
    "Pod",
    "PodCounts",
    "PodLister",
    "PodSeries",
    "RealTimeDriver",
    "SimulatorCollector",
    "TrackCounts",
    "TrafficSimulator",
    "geometric_buckets",
]
