"""``canaryflow spec validate | schema``: check rollout, release and notifications specs; print
their JSON schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

__all__ = ["schema", "validate"]


def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Rollout, release or notifications specs, or webhook routes (YAML).")
    ],
) -> None:
    """Check rollout, release and notifications specs (by their kind) and webhook routes files;
    print every problem with file, line and path. Exit 1 when invalid."""
    from canaryflow.spec import validate_files

    raise typer.Exit(validate_files(files, sys.stdout, routes=_routes))


def _routes(path: Path) -> None:
    """A routes file, and the spec of each of its routes, as ``webhook serve`` checks them."""
    from canaryflow.routes import load_routes
    from canaryflow.webhooks.serve import check_route_specs

    check_route_specs(load_routes(path), path)


def schema(
    kind: Annotated[
        Literal["rollout", "release", "notifications"],
        typer.Option(help="Which kind of spec.", case_sensitive=False),
    ] = "rollout",
) -> None:
    """Print the JSON schema of a rollout (or release, or notifications) spec, for editors."""
    import json

    from canaryflow.spec import json_schema

    typer.echo(json.dumps(json_schema(kind.capitalize()), indent=2))
