"""``canaryflow dev kube up | down | env``: the local Kubernetes control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.output import say

__all__ = ["kube_down", "kube_env", "kube_up"]

KubeDir = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="State directory (default: $CANARYFLOW_KUBE_DIR or ~/.local/state/canaryflow/kube)."
    ),
]


def kube_up(
    directory: KubeDir = None,
    nodes: Annotated[int, typer.Option(min=1, max=50, help="Fake nodes managed by kwok.")] = 3,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 60.0,
) -> None:
    """Start the local control plane and write its kubeconfig (idempotent)."""
    from canaryflow.dev import kube

    where = directory or kube.default_directory()
    binaries = kube.find_binaries()
    assert binaries is not None  # required=True raises instead
    plane = kube.LocalControlPlane(where, binaries=binaries, nodes=nodes, say=say).up(timeout=timeout)
    typer.echo(f"export KUBECONFIG={plane.kubeconfig}")
    typer.echo(f"export PATH={binaries}:$PATH")
    say("watch it with: kubectl get deploy -w")


def kube_down(directory: KubeDir = None) -> None:
    """Stop the local control plane and every process it started."""
    from canaryflow.dev import kube

    where = directory or kube.default_directory()
    stopped = kube.LocalControlPlane(where, binaries=Path()).down()
    say("stopped" if stopped else "nothing was running")


def kube_env(directory: KubeDir = None) -> None:
    """Print `export KUBECONFIG=...` for the running local control plane."""
    from canaryflow.dev import kube
    from canaryflow.errors import LocalClusterError

    where = directory or kube.default_directory()
    plane = kube.running_control_plane(where)
    if plane is None:
        raise LocalClusterError(
            f"no local control plane is running in {where}: start it with `canaryflow dev kube up`"
        )
    typer.echo(f"export KUBECONFIG={plane.kubeconfig}")
    binaries = kube.find_binaries(required=False)
    if binaries is not None:
        typer.echo(f"export PATH={binaries}:$PATH")
