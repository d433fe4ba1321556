"""Small helpers for what commands print."""

from __future__ import annotations

import typer

__all__ = ["say"]


def say(message: str) -> None:
    """A line for people on standard error (standard output stays for results)."""
    typer.echo(message, err=True)
