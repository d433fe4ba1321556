"""``canaryflow demo``: a good and a bad rollout on an embedded stack (`canaryflow.cli.demorun`)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    cluster: Annotated[
        str, typer.Option(metavar="KIND", help="sim (in memory) or kube (a real API server).")
    ] = "sim",
    ui: Annotated[
        bool, typer.Option("--ui", help="Keep the Prefect server up afterwards, to look at the runs.")
    ] = False,
) -> None:
    """Run a good and a bad rollout on the embedded stack and show what was decided."""
    from canaryflow.cli.demorun import run_demo

    raise typer.Exit(run_demo(cluster=cluster, ui=ui))
