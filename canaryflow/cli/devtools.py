"""``canaryflow dev kube | prefect  up | down | env``: the local control plane and Prefect server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.output import say

__all__ = ["kube_down", "kube_env", "kube_up", "prefect_down", "prefect_env", "prefect_init", "prefect_up"]

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


def prefect_up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 120.0,
) -> None:
    """Start canaryflow's local Prefect server in the background (idempotent); its database is
    prepared first, once. Commands find it without PREFECT_API_URL."""
    from canaryflow.dev.prefectserver import LocalPrefect, default_home

    server = LocalPrefect(default_home(), say=say).up(timeout=timeout)
    typer.echo(f"export PREFECT_API_URL={server.api_url}")
    say(f"the Prefect UI: {server.ui_url} (stop it with: canaryflow dev prefect down)")


def prefect_down() -> None:
    """Stop canaryflow's local Prefect server (its database stays, with the runs' history)."""
    from canaryflow.dev.prefectserver import LocalPrefect, default_home

    say("stopped" if LocalPrefect(default_home()).down() else "nothing was running")


def prefect_env() -> None:
    """Print `export PREFECT_API_URL=...` for the running local Prefect server."""
    from canaryflow.dev.prefectserver import default_home, running_server
    from canaryflow.errors import TriggerUnavailableError

    server = running_server(default_home())
    if server is None:
        raise TriggerUnavailableError(
            "canaryflow's local Prefect server is not running: start it with `canaryflow dev prefect up`"
        )
    typer.echo(f"export PREFECT_API_URL={server.api_url}")


def prefect_init() -> None:
    """Create (or migrate) the local server's database now, so that the first start is quick."""
    from canaryflow.dev.prefectserver import default_home, prepare_database

    home = default_home()
    prepare_database(home, say=say)
    say(f"Prefect's database is ready in {home}")
