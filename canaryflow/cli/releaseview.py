"""``canaryflow get release ID [--watch]``: one release, wave by wave, cell by cell.

What the release's report says (``<reports>/releases/<id>/release.json``,
`canaryflow.releasereport`): the image, what the release does now, each wave's cells with their
phase, and how it ended. ``--watch`` follows the report until the release ends, redrawn in place
on a terminal and one line per change elsewhere; it exits 0 when the release was released and 6
when it was rolled back or held, like ``canaryflow release``. Prefect is never imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pathlib import Path

    from canaryflow.releasereport import ReleaseStatus

__all__ = ["get_release", "render_release"]

#: How often ``--watch`` looks at the report.
POLL_SECONDS = 0.5


def get_release(release_id: str, *, watch: bool, terminal: bool) -> None:
    """Show (or with `watch`, follow) the release `release_id`."""
    from canaryflow.environment import reports_dir
    from canaryflow.errors import NotFoundError
    from canaryflow.releasereport import read_release_status, release_report

    path = release_report(reports_dir(os.environ), release_id)
    if not watch:
        if not path.is_file():
            raise NotFoundError(
                f"no report of release {release_id!r} in {path.parent.parent} (CANARYFLOW_REPORTS_DIR)"
            )
        typer.echo("\n".join(render_release(read_release_status(path))))
        return
    final = _follow(path, release_id, terminal=terminal)
    raise typer.Exit(0 if final.outcome == "released" else 6)


def _follow(path: Path, release_id: str, *, terminal: bool) -> ReleaseStatus:
    from canaryflow.cli.output import follow_report
    from canaryflow.releasereport import read_release_status

    return follow_report(
        path,
        read_release_status,
        what=f"release {release_id}",
        stamp=lambda status: status.updated_at,
        render=render_release,
        line=_line,
        final=lambda status: status.final,
        terminal=terminal,
        poll_seconds=POLL_SECONDS,
    )


def _line(status: ReleaseStatus) -> str:
    cells = ", ".join(f"{cell} {phase}" for cell, phase in status.cells.items())
    said = status.step if status.outcome is None else f"{status.outcome}: {status.step}"
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
