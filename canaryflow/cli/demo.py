"""``canaryflow demo``: a good and a bad rollout on an embedded stack (`canaryflow.cli.demorun`),
or with ``--cells N`` a good and a bad release across N local clusters (`canaryflow.cli.cellsdemo`)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    cluster: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="sim (in memory, the default) or kube (a real API server)."),
    ] = None,
    cells: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Release across N local clusters (2-5) in two waves, with Prefect workers per cell.",
        ),
    ] = None,
    ui: Annotated[
        bool, typer.Option("--ui", help="Keep the Prefect server up afterwards, to look at the runs.")
    ] = False,
) -> None:
    """Run a good and a bad rollout on the embedded stack and show what was decided; with
    --cells, a good and a bad release across that many local clusters."""
    if cells is not None:
        from canaryflow.cli.cellsdemo import run_cells_demo
        from canaryflow.errors import UsageError

        if cluster is not None:
            raise UsageError(
                "demo --cells runs each cell on a local control plane of its own: leave out --cluster"
            )
        raise typer.Exit(run_cells_demo(cells=cells, ui=ui))
    from canaryflow.cli.demorun import run_demo

    raise typer.Exit(run_demo(cluster=cluster or "sim", ui=ui))
