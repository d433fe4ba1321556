"""``canaryflow get release ID [--watch]``: one release, wave by wave, cell by cell.

What the release's report says (``<reports>/releases/<id>/release.json``,
`canaryflow.releasereport`): the image, what the release does now, each wave's cells with their
phase, and how it ended. ``--watch`` follows the report until the release ends, redrawn in place
on a terminal and one line per change elsewhere; it exits 0 when the release was released and 6
when it was rolled back or held, like ``canaryflow release``; it may start before the release
does and waits ``--wait-for`` for its report (10 minutes by default), then exits 1 as an unknown id
does. An id that cannot be a release's is refused before any file is read. Prefect is never
imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    from canaryflow.errors import InputError
    from canaryflow.releasereport import ReleaseStatus

__all__ = ["get_release", "render_release"]

#: How often ``--watch`` looks at the report.
POLL_SECONDS = 0.5
#: Where a person finds a release's id.
_LISTED = "`canaryflow release` prints it first, `canaryflow history --releases` lists those that ended"


def get_release(release_id: str, *, watch: bool, terminal: bool, wait_for: timedelta) -> None:
    """Show (or with `watch`, follow, waiting at most `wait_for` for its report) the release
    `release_id`."""
    from canaryflow.environment import reports_dir
    from canaryflow.errors import InputError
    from canaryflow.releasereport import read_release_status, release_report
    from canaryflow.reports import is_report_id

    if not is_report_id(release_id):
        raise InputError(
            f"{release_id!r} is not a release id (lowercase letters, digits and '-', at most 63, "
            f"like demo-1a2b3c4d): {_LISTED}"
        )
    path = release_report(reports_dir(os.environ), release_id)
    if not watch:
        if not path.is_file():
            raise _missing(release_id, path)
        typer.echo("\n".join(render_release(read_release_status(path))))
        return
    final = _follow(path, release_id, terminal=terminal, wait_for=wait_for)
    raise typer.Exit(0 if final.outcome == "released" else 6)


def _missing(release_id: str, path: Path, *, waited: timedelta | None = None) -> InputError:
    """The error for a release whose report is not at `path` (after `waited`, for ``--watch``)."""
    from canaryflow.errors import InputError
    from canaryflow.spec.durations import format_duration

    where = f"no report of release {release_id!r} in {path.parent.parent} (CANARYFLOW_REPORTS_DIR)"
    if waited is None:
        return InputError(f"{where}: check the id ({_LISTED})")
    return InputError(
        f"{where} after waiting {format_duration(waited)}: check the id ({_LISTED}), "
        "or wait longer with --wait-for"
    )


def _follow(path: Path, release_id: str, *, terminal: bool, wait_for: timedelta) -> ReleaseStatus:
    from canaryflow.cli.output import follow_report
    from canaryflow.releasereport import read_release_status

    return follow_report(
        path,
        read_release_status,
        what=f"release {release_id}",
        stamp=lambda status: status.updated_at,
        render=render_release,
        line=_line,
        final=lambda status: status.final or status.interrupted is not None,
        terminal=terminal,
        poll_seconds=POLL_SECONDS,
        wait_for=wait_for,
        missing=lambda: _missing(release_id, path, waited=wait_for),
    )


def _line(status: ReleaseStatus) -> str:
    cells = ", ".join(f"{cell} {phase}" for cell, phase in status.cells.items())
    said = status.step if status.outcome is None else f"{status.outcome}: {status.step}"
    if status.outcome is None and status.interrupted:
        said = f"{said}; {status.interrupted}"
    return f"{status.updated_at:%H:%M:%S} {status.release_id} {said} [{cells}]"


def render_release(status: ReleaseStatus) -> list[str]:
    """The detail view of one release, as lines (long values are never cut)."""
    lines = [
        f"Release:   {status.release_id}",
        f"Image:     {status.image}",
        f"Spec:      {status.spec}",
        f"Started:   {status.started_at:%Y-%m-%d %H:%M:%S} UTC",
        f"Now:       {status.step}"
        if status.outcome is None
        else f"Result:    {status.outcome}: {status.step}",
        *([f"Stopped:   {status.interrupted}"] if status.outcome is None and status.interrupted else []),
        "Waves:",
    ]
    for index, wave in enumerate(status.waves):
        cells = ", ".join(f"{cell} {status.cells.get(cell, 'pending')}" for cell in wave)
        lines.append(f"  {index + 1}  {cells}")
    if status.bakes:
        lines.append("Bakes:")
    for bake in status.bakes:
        lines.append(
            f"  {bake.wave}  {bake.verdict} since {bake.started_at:%H:%M:%S}: {bake.intervals_judged} "
            f"of {bake.intervals_max} interval(s), {bake.requests:.0f} request(s) on the new image; "
            f"{bake.reason}"
        )
    return lines
