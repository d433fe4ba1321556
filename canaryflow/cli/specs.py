"""``canaryflow spec validate | schema``: check rollout specs, print their JSON schema."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["schema", "validate"]


def validate(
    files: Annotated[list[Path], typer.Argument(help="Rollout spec YAML files.")],
) -> None:
    """Check rollout specs; print every problem with file, line and path. Exit 1 when invalid."""
    from canaryflow.spec import validate_files

    raise typer.Exit(validate_files(files, sys.stdout))


def schema() -> None:
    """Print the JSON schema of a rollout spec (for editors)."""
    import json

    from canaryflow.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))
