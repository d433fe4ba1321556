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
from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.output import debugging

__all__ = ["release"]

_EXAMPLE_IMAGE = "registry.example.com/shop/web:1.2.0"


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
    from pydantic import ValidationError

    from canaryflow.cli.prefectapi import connect, use
    from canaryflow.errors import InputError
    from canaryflow.requests import ReleaseRequest
    from canaryflow.spec.loading import load_release
    from canaryflow.waves import refuse_what_is_not_built

    loaded = load_release(spec)
    try:
        request = ReleaseRequest(
            spec=str(spec), image=image, triggered_by="canaryflow release", release_id=release_id
        )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "request"
        words = {
            "image": f"image {image!r} is not a valid image reference (like {_EXAMPLE_IMAGE})",
            "release_id": f"release id {release_id!r}: use lowercase letters, digits and '-' (at most 63)",
            "spec": f"spec {str(spec)!r}: give a .yaml or .yml file, without '..'",
        }
        raise InputError(words.get(field, f"{field}: {exc.errors()[0]['msg']}")) from None
    refuse_what_is_not_built(loaded, str(spec))
    api = connect(os.environ)
    use(api, debug=debugging())
    from flows.release import run_release, wiring_for_run

    wiring = wiring_for_run()
    outcome = run_release(request, dataclasses.replace(wiring, say=typer.echo))
    for cell, phase in outcome.cells.items():
        typer.echo(f"  {cell}: {phase}")
    raise typer.Exit(0 if outcome.outcome == "released" else 6)
