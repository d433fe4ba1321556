"""``canaryflow replay``: re-run the judge over recorded observation logs (`canaryflow.cli.backtest`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["replay"]


def replay(
    logs: Annotated[
        list[Path], typer.Argument(metavar="LOG", help="Observation logs (canaryflow/observations@1).")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="SPEC", help="A rollout spec whose analysis settings apply (default: the project's)."
        ),
    ] = None,
    judge: Annotated[str, typer.Option(metavar="JUDGE", help="sequential or kayenta.")] = "sequential",
) -> None:
    """Re-run the judge over recorded observation logs (a backtest); one JSON line per interval."""
    from canaryflow.cli.backtest import run_replay

    raise typer.Exit(run_replay(logs, config=config, judge=judge, out=sys.stdout, err=sys.stderr))
