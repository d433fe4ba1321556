"""The `Cluster` port: everything the rollout needs from the place the workloads run.

Adapters: `KubernetesCluster` (the official client) and `SimulatedCluster` (in memory). Only the
factory knows them; callers hold a `Cluster`. The port speaks in tracks: the **stable** Deployment
(the target), and the **canary** and **baseline** Deployments the rollout creates next to it,
all selected by the target's Service so that traffic splits by ready replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

__all__ = ["Cluster", "PodInfo", "Track"]

Track: TypeAlias = Literal["stable", "canary", "baseline"]


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod of a target: which track it belongs to, which image it runs, and whether it is Ready."""

    name: str
    track: Track
    image: str
    ready: bool


class Cluster(Protocol):
    """Port to a cluster. The full method set is defined with the adapters (rollout spec issue);
    `pods` is what the traffic simulator follows."""

    def pods(self, namespace: str, app: str) -> list[PodInfo]:
        """Every pod of the app (all tracks), Ready or not."""
        ...
