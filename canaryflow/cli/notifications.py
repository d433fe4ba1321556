"""``canaryflow notifications apply FILE``: tell people about rollouts, through Prefect.

The file is a notifications spec (``kind: Notifications``, `canaryflow.spec.notifications`); the
command makes the Prefect API's notification blocks and automations match it
(`flows.notifications.apply_notifications`) and prints one line per channel. The spec is checked
and every webhook URL resolved before Prefect is reached: an invalid file or an unset variable
changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.output import debugging

__all__ = ["apply"]


def apply(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="The notifications spec (e.g. deployments/notifications.yaml)."),
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Check the file and the URLs' variables, say what would change; change nothing."
        ),
    ] = False,
) -> None:
    """Create or update the Prefect notification blocks and automations of FILE's channels, and
    delete those of channels not in it: FILE is every channel of this Prefect."""
    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.spec import load_notifications
    from canaryflow.spec.notifications import resolve_urls

    spec = load_notifications(file)
    resolve_urls(spec, os.environ)  # every missing variable named before Prefect is reached
    use(connect(os.environ), debug=debugging())
    from flows.notifications import apply_notifications, plan_notifications

    if dry_run:  # what would change, deletions included: the file is every channel of this Prefect
        for line in plan_notifications(spec):
            typer.echo(line)
        typer.echo(f"{file}: ok (nothing changed: --dry-run)")
        return

    for line in apply_notifications(spec):
        typer.echo(line)
