"""What commands print besides their results: lines for people, and whether ``--debug`` is on."""

from __future__ import annotations

import os
from typing import Any

import typer

__all__ = ["debugging", "print_uncut", "say"]


def say(message: str) -> None:
    """A line for people on standard error (standard output stays for results)."""
    typer.echo(message, err=True)


def debugging() -> bool:
    """Whether ``--debug`` was given (anywhere on the command line) or ``CANARYFLOW_DEBUG=1``."""
    return os.environ.get("CANARYFLOW_DEBUG", "") not in ("", "0")


def print_uncut(console: Any, table: Any, *, last: int = 30) -> None:
    """Print `table` at least as wide as its columns need, the last (free text) at `last`
    characters: wider than the terminal rather than cut (the terminal wraps the line, as it does
    for kubectl)."""
    widths = [
        max([len(str(column.header)), *(len(str(cell)) for cell in column.cells)])
        for column in table.columns[:-1]
    ]
    need = sum(widths) + last + 3 * len(table.columns)
    width = console.width
    console.width = max(width, need)
    try:
        console.print(table)
    finally:
        console.width = width
