"""``canaryflow release SPEC --image IMAGE``: one image across a release's cells, wave by wave.

The release flow runs in this process (like ``canaryflow rollout``) against the Prefect API; each
cell's rollout is a run of its work pool's ``rollout`` deployment, executed by a worker near the
cell's cluster. The spec, the image and the release id are checked before Prefect is asked for
anything. Interrupted, the release carries on where it stopped when run again with ``--id`` (the
id it printed first): its cells' runs are in Prefect.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from canaryflow.cli.output import debugging

__all__ = ["release"]


def release(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The release spec (YAML).")],
    image: Annotated[str, typer.Option(metavar="IMAGE", help="The new image for every cell.")],
    release_id: Annotated[
        str | None,
        typer.Option(
            "--id", metavar="ID", help="The release's id: give an interrupted release's to carry it on."
        ),
    ] = None,
) -> None:
    """Release IMAGE to the cells of a release spec, wave by wave; exits 0 when every cell is
    promoted, 6 when the release was rolled back, held or superseded."""
    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.requests import new_release_request
    from canaryflow.spec.loading import load_release

    loaded = load_release(spec)  # every problem of the spec, before Prefect is asked anything
    if release_id is None:  # known here, so that an interrupted release can say how to carry it on
        release_id = f"{loaded.name[:54]}-{secrets.token_hex(4)}"
    request = new_release_request(
        spec=str(spec), image=image, triggered_by="canaryflow release", release_id=release_id
    )
    api = connect(os.environ)
    use(api, debug=debugging())
    from flows.release import check_cells, run_release, wiring_for_run

    wiring = wiring_for_run()
    check_cells(loaded, request, wiring.runs)  # before the release's flow run is created
    resume = f"canaryflow release {spec} --image {image} --id {release_id}"
    try:
        outcome = run_release(request, dataclasses.replace(wiring, say=typer.echo))
    except KeyboardInterrupt:
        _interrupted(wiring.reports_dir, release_id, resume)
    for cell, phase in outcome.cells.items():
        typer.echo(f"  {cell}: {phase}")
    raise typer.Exit(0 if outcome.outcome == "released" else 6)


def _interrupted(reports: Path | None, release_id: str, resume: str) -> NoReturn:
    """Ctrl-C: the release stops; the cells' rollouts already started go on in their workers. Its
    report says so (``get release --watch`` stops there), and so does the terminal."""
    from datetime import UTC, datetime

    from canaryflow.cli.output import say
    from canaryflow.releasereport import mark_interrupted

    if reports is not None:
        mark_interrupted(reports, release_id, resume, datetime.now(UTC))
    say(
        f"canaryflow: interrupted: release {release_id} stopped (the cells' rollouts already started "
        f"go on in their workers); `{resume}` carries it on"
    )
    raise typer.Exit(130)
