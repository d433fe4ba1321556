"""What commands print besides their results: lines for people, and whether ``--debug`` is on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer

__all__ = ["Report", "debugging", "follow_report", "print_uncut", "say", "target_in_cell"]

Report = TypeVar("Report")


def say(message: str) -> None:
    """A line for people on standard error (standard output stays for results)."""
    typer.echo(message, err=True)


def debugging() -> bool:
    """Whether ``--debug`` was given (anywhere on the command line) or ``CANARYFLOW_DEBUG=1``."""
    return os.environ.get("CANARYFLOW_DEBUG", "") not in ("", "0")


def target_in_cell(target: str, cell: str | None) -> str:
    """A rollout's target as tables show it: ``shop/web``, or ``shop/web (cell eu-1)`` for a
    release cell's (several cells can share one namespace/deployment name)."""
    return f"{target} (cell {cell})" if cell else target


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
    wait_for: timedelta,
    missing: Callable[[], Exception],
) -> Report:
    """Print the report at `path` as it changes (its `stamp`) until it is `final`; the last one.

    On a terminal the view (`render`) is redrawn in place, elsewhere (a pipe, a CI log) one
    `line` per change is printed. A report being written while read is read again next time.
    The report may appear later (the watch may start before the run does), but within `wait_for`:
    else `missing()` is raised (or, when the file is there but never readable, its `ReportError`).
    Once it has been read, it is followed for as long as it takes to end."""
    from canaryflow.errors import ReportError
    from canaryflow.spec.durations import format_duration

    deadline = time.monotonic() + wait_for.total_seconds()
    found = said = False
    unreadable: ReportError | None = None
    seen: object = None
    while True:
        try:
            report = read(path) if path.is_file() else None
        except ReportError as exc:  # written while read: the next look sees it whole
            report, unreadable = None, exc
        if report is not None and (not found or stamp(report) != seen):
            found, seen = True, stamp(report)
            typer.echo("\033[2J\033[H" + "\n".join(render(report)) if terminal else line(report))
            if final(report):
                return report
        pause = poll_seconds
        if not found:
            if not said:  # not there yet, or not readable yet: say what it waits for, once
                where = path.parent.parent
                waits = f"to report in {where}" if unreadable is None else f"to be readable: {path}"
                typer.echo(f"waiting for {what} {waits} (up to {format_duration(wait_for)}) ...")
                said = True
            left = deadline - time.monotonic()
            if left <= 0:
                raise unreadable if unreadable is not None and path.is_file() else missing()
            pause = min(pause, left)
        time.sleep(pause)
