"""``canaryflow rollout | status | promote | abort``: start a rollout, see it, answer its pause."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.output import say

__all__ = ["abort", "promote", "rollout", "status"]


def rollout(
    spec: Annotated[Path, typer.Argument(help="Rollout spec YAML.")],
    image: Annotated[str | None, typer.Option(help="The new image for the target container.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume or clean up an interrupted rollout.")] = False,
) -> None:
    """Roll out a new image of the spec's target, step by step, judged by the analysis."""
    from flows.control import run_rollout
    from flows.runtime import runtime_from_env

    outcome = run_rollout(spec, image, resume=resume, runtime=runtime_from_env(os.environ))
    typer.echo(f"{outcome.rollout_id} {outcome.result}: {outcome.reason}")
    typer.echo(f"report: {outcome.report}")
    raise typer.Exit(0 if outcome.result == "promoted" else 1)


def status(
    rollout_id: Annotated[str | None, typer.Argument(help="Rollout id (default: all).")] = None,
) -> None:
    """Show rollouts: step, weights, the latest verdict and its evidence."""
    from rich.console import Console

    from canaryflow.cli.statusview import render_status

    reports = Path(os.environ.get("CANARYFLOW_REPORTS_DIR", "reports"))
    if render_status(reports, rollout_id, Console()) == 0:
        say(f"no rollouts reported in {reports}")


def promote(rollout_id: Annotated[str, typer.Argument(help="Rollout id.")]) -> None:
    """Approve a rollout waiting in a pause (same as approving in the Prefect UI)."""
    from flows.control import answer

    run = answer(rollout_id, "approve", "approved with canaryflow promote")
    typer.echo(f"approved {rollout_id} (flow run {run})")


def abort(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    reason: Annotated[str, typer.Option(help="Why, recorded with the rollback.")] = "aborted",
) -> None:
    """Reject a rollout: roll its canary back."""
    from flows.control import answer

    run = answer(rollout_id, "reject", reason)
    typer.echo(f"rejected {rollout_id} (flow run {run}): its canary is rolled back")
