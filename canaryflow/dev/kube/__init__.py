"""A real Kubernetes control plane on loopback, for tests and the demo (`canaryflow dev kube`).

Belongs here: generating its certificates, starting and stopping its processes, the kubeconfig,
and locating the binaries `tools/kube/build.sh` builds into a cache outside the repository.
Not here: anything a rollout does to a cluster (that is `canaryflow.cluster`), and the `kubernetes`
client (it lives in the cluster adapter only; this package speaks plain HTTPS).
"""

from __future__ import annotations

import os
from pathlib import Path

from canaryflow.dev.kube.binaries import find_binaries
from canaryflow.dev.kube.controlplane import ControlPlane, LocalControlPlane, running_control_plane
from canaryflow.dev.state import state_dir

__all__ = ["ControlPlane", "LocalControlPlane", "default_directory", "find_binaries", "running_control_plane"]


def default_directory() -> Path:
    """Where `canaryflow dev kube up` keeps its state: ``$CANARYFLOW_KUBE_DIR``, else
    ``kube/`` in canaryflow's state directory (`canaryflow.dev.state.state_dir`)."""
    explicit = os.environ.get("CANARYFLOW_KUBE_DIR")
    return Path(explicit) if explicit else state_dir() / "kube"
