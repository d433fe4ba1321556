"""What commands print besides their results: lines for people, and whether ``--debug`` is on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

__all__ = ["Report", "debugging", "follow_report", "print_uncut", "say"]

Report = TypeVar("Report")


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


def follow_report(
    path: Path,
    read: Callable[[Path], Report],
    *,
    what: str,
    stamp: Callable[[Report], object],
    render: Callable[[Report], list[str]],
    line: Callable[[Report], str],
    final: Callable[[Report], bool],
    terminal: bool,
    poll_seconds: float,
) -> Report:
    """Print the report at `path` as it changes (its `stamp`) until it is `final`; the last one.

    On a terminal the view (`render`) is redrawn in place, elsewhere (a pipe, a CI log) one
    `line` per change is printed. A report being written while read is read again next time."""
    from canaryflow.errors import ReportError

    if not path.is_file():
        typer.echo(f"waiting for {what} to report in {path.parent.parent} ...")
    seen: object = None
    while True:
        try:
            report = read(path) if path.is_file() else None
        except ReportError:  # written while read: the next look sees it whole
            report = None
        if report is not None and stamp(report) != seen:
            seen = stamp(report)
            typer.echo("\033[2J\033[H" + "\n".join(render(report)) if terminal else line(report))
            if final(report):
                return report
        time.sleep(poll_seconds)
