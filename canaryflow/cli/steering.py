"""``canaryflow promote | abort | pause | resume``: steer a rollout under way, from any shell.

Each finds the rollout's flow run by its name (the rollout id) on the Prefect API and records
who asked and why (`flows.control.steer`); the run honours the request at its next checkpoint,
within one analysis interval, or at once when it waits in a pause. The same run in the Prefect UI
shows the pause and its form (approve or reject, and a reason).
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import typer

from canaryflow.cli.output import debugging

__all__ = ["ByOption", "abort", "operator", "pause", "promote", "resume"]

RolloutArgument = Annotated[str, typer.Argument(metavar="ROLLOUT", help="The rollout id.")]
ByOption = Annotated[
    str | None, typer.Option(metavar="WHO", help="Who asks; recorded (default: user@host of this shell).")
]


def _connect(rollout_id: str) -> None:
    """Check `rollout_id`'s shape (nothing asked of Prefect for a target or a path given by
    mistake), then connect to the Prefect API."""
    from canaryflow.cli.getview import checked_rollout_id
    from canaryflow.cli.prefectapi import connect, use

    checked_rollout_id(rollout_id)
    use(connect(os.environ), debug=debugging())


def operator(by: str | None) -> str:
    """Who asks: `by`, or ``user@host`` of this shell."""
    if by:
        return by
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _steer(rollout_id: str, action: Literal["abort", "pause", "promote"], reason: str, by: str | None) -> str:
    _connect(rollout_id)
    from flows.control import steer

    what, run = steer(rollout_id, action, reason, by=operator(by))
    return f"(flow run {run})" if what == "requested" else f"(flow run {run}, {what} from its pause)"


def promote(
    rollout_id: RolloutArgument,
    full: Annotated[
        bool, typer.Option("--full", help="Skip the remaining steps and promote now (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded with the promotion.")] = None,
    by: ByOption = None,
) -> None:
    """Approve a rollout waiting in an approval pause (as the Prefect UI's form does); with
    --full, promote a rollout now, whatever step it is at."""
    if not full:
        _connect(rollout_id)
        from flows.control import answer

        run = answer(rollout_id, "approve", reason or "approved with canaryflow promote", by=operator(by))
        typer.echo(f"approved {rollout_id} (flow run {run})")
        return
    if not reason:
        from canaryflow.errors import UsageError

        raise UsageError("promote --full skips the remaining steps and their analysis: give --reason WHY")
    where = _steer(rollout_id, "promote", reason, by)
    typer.echo(
        f"promoting {rollout_id} in full {where}: at its next checkpoint, within one analysis interval"
    )


def abort(
    rollout_id: RolloutArgument,
    reason: Annotated[str, typer.Option(help="Why; recorded with the rollback.")] = "aborted",
    by: ByOption = None,
) -> None:
    """Stop a rollout now, whatever it is doing: its canary is rolled back (a running rollout
    within one analysis interval, a paused one at once)."""
    where = _steer(rollout_id, "abort", reason, by)
    typer.echo(f"aborted {rollout_id} {where}: its canary is rolled back")


def pause(
    rollout_id: RolloutArgument,
    reason: Annotated[str, typer.Option(help="Why; recorded with the pause.")] = "paused",
    by: ByOption = None,
) -> None:
    """Hold a running rollout at its current split (for up to a day) until `canaryflow resume`;
    `abort` or `promote --full` still work while it holds."""
    where = _steer(rollout_id, "pause", reason, by)
    typer.echo(f"pausing {rollout_id} {where}: it holds its split from its next checkpoint")


def resume(rollout_id: RolloutArgument, by: ByOption = None) -> None:
    """Let a rollout held by `canaryflow pause` go on."""
    _connect(rollout_id)
    from flows.control import resume as resume_rollout

    run = resume_rollout(rollout_id, by=operator(by))
    typer.echo(f"resumed {rollout_id} (flow run {run})")
