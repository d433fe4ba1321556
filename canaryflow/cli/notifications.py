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
        bool, typer.Option("--dry-run", help="Check the file and the URLs' variables; change nothing.")
    ] = False,
) -> None:
    """Create or update the Prefect notification blocks and automations of FILE's channels (and
    delete those of channels no longer in it)."""
    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.spec import load_notifications
    from canaryflow.spec.notifications import resolve_urls

    spec = load_notifications(file)
    resolve_urls(spec, os.environ)  # every missing variable named before Prefect is reached
    if dry_run:
        for channel in spec.spec.channels:
            typer.echo(f"channel {channel.name} ({channel.kind}): events: {', '.join(channel.events)}")
        typer.echo(f"{file}: ok (nothing changed: --dry-run)")
        return
    use(connect(os.environ), debug=debugging())
    from flows.notifications import apply_notifications

    for line in apply_notifications(spec):
        typer.echo(line)
