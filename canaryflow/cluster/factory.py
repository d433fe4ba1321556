"""`make_cluster`: the one place that knows the concrete `Cluster` adapters.

Callers (CLI, flows, demo) name a kind and get a `Cluster`; an unknown kind is an error, never a
silent fallback. Adapters are imported lazily, so choosing the simulation does not load the
Kubernetes client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from canaryflow.errors import PermanentError

if TYPE_CHECKING:
    from canaryflow.clock import Clock
    from canaryflow.cluster.port import Cluster
    from canaryflow.cluster.simulated import SimulatedWorld

__all__ = ["CLUSTER_KINDS", "make_cluster"]

#: Accepted kinds, each with its short alias.
CLUSTER_KINDS = {
    "kubernetes": "kubernetes",
    "kube": "kubernetes",
    "simulated": "simulated",
    "sim": "simulated",
}


def make_cluster(
    kind: str,
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    world: SimulatedWorld | None = None,
    clock: Clock | None = None,
) -> Cluster:
    """A `Cluster` of `kind` (``kubernetes``/``kube`` or ``simulated``/``sim``).

    ``kubernetes`` uses `kubeconfig` and `context` (defaults: ``$KUBECONFIG`` or ``~/.kube/config``,
    its current context) or the pod's service account with `in_cluster`; the adapter owns its
    `ApiClient` (call ``close()`` when done). ``simulated`` runs on `world` (a new one by default).

    Raises
    ------
    PermanentError
        An unknown kind; the message lists the known ones.
    """
    canonical = CLUSTER_KINDS.get(kind)
    if canonical == "kubernetes":
        from canaryflow.cluster.kubernetes import KubernetesCluster

        return KubernetesCluster.from_kubeconfig(
            kubeconfig, context=context, in_cluster=in_cluster, clock=clock
        )
    if canonical == "simulated":
        from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld

        if world is None:
            world = SimulatedWorld(clock=clock)
        return SimulatedCluster(world)
    known = ", ".join(sorted(CLUSTER_KINDS))
    raise PermanentError(f"unknown cluster kind {kind!r}; choose one of: {known}")
