"""The `Cluster` port and its adapters: where the stable, canary and baseline Deployments live.

What belongs here: the port (`port.py`: the protocol and its frozen values), the rollout state kept
in annotations, the one implementation of the port's logic (`actuation.py`) over small primitives
(`workloads.py`), the adapters that provide them (`kubernetes.py`, the only module importing the
Kubernetes client; `simulated.py`, in memory), clocks, and `factory.make_cluster`, the only code
that knows the concrete adapters. What must not: Prefect, metrics, the judge, spec parsing.
"""

from __future__ import annotations

from canaryflow.cluster.port import (
    Cluster,
    PodInfo,
    RolloutId,
    RolloutState,
    TargetRef,
    TargetStatus,
    Track,
    TrackStatus,
)

__all__ = [
    "Cluster",
    "PodInfo",
    "RolloutId",
    "RolloutState",
    "TargetRef",
    "TargetStatus",
    "Track",
    "TrackStatus",
]
