"""Simulated traffic: per-pod request outcomes and latencies, exposed as Prometheus metrics.

What belongs here: the clock abstraction (`ManualClock` for tests, faster than real time;
`SystemClock` for the demo), behaviour profiles per image (`BehaviourProfile`), the vectorised
simulator (`TrafficSimulator`) that follows the pods of any object with
``pods(namespace, app) -> list[PodInfo]`` (the cluster port), and the ``/metrics`` server
(`MetricsServer`, prometheus_client on a private registry) with its real-time driver.

What must not: Prefect, Kubernetes or the cluster adapters (the simulator takes the port), the
Prometheus query client, global registries, module-level state. Randomness comes only from the
seeded numpy Generator a simulator owns, so a run is reproducible from its seed and clock.
"""

from __future__ import annotations

from canaryflow.simulation.clock import Clock, ManualClock, SystemClock
from canaryflow.simulation.exposition import MetricsServer, RealTimeDriver, SimulatorCollector
from canaryflow.simulation.profiles import DEFAULT_BUCKETS, BehaviourProfile, geometric_buckets
from canaryflow.simulation.traffic import (
    AppRef,
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
    "Clock",
    "ManualClock",
    "MetricsServer",
    "PodCounts",
    "PodLister",
    "PodSeries",
    "RealTimeDriver",
    "SimulatorCollector",
    "SystemClock",
    "TrackCounts",
    "TrafficSimulator",
    "geometric_buckets",
]
