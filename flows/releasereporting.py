"""What people see of a release run: its log, its report file, a table in the Prefect UI.

At every change of what the release does (its step in words, or a cell's phase), `ReleaseReporter`
logs a line (and tells the terminal of ``canaryflow release``), writes the release's report
(`canaryflow.releasereport`, read by ``canaryflow get release``; and once it ends, its line in the
release history, `canaryflow.releasehistory`) and updates the release's
artifact in the Prefect UI (key ``release-<id>``): one row per cell, wave by wave, with its phase,
under what the release does now. Neither a report nor an artifact that cannot be written stops a
release: they are what people see of it, not what it decides on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from canaryflow.errors import CanaryflowError
from canaryflow.releasehistory import ReleaseRecord, append_release
from canaryflow.releasereport import (
    BakeRecord,
    ReleaseStatus,
    read_release_status,
    release_report,
    write_release_status,
)
from canaryflow.spec.release import ReleaseSpec
from canaryflow.waves import CellPhase

__all__ = ["ReleaseReporter", "release_table"]


class ReleaseReporter:
    """Tells each change of a release (see the module)."""

    def __init__(
        self,
        spec: ReleaseSpec,
        *,
        release_id: str,
        image: str,
        source: str,
        reports_dir: Path | None,
        say: Callable[[str], None] | None,
        triggered_by: str = "",
    ) -> None:
        now = datetime.now(UTC)
        before = _previous(reports_dir, release_id)  # a resumed release began before
        started = before.started_at if before is not None else now
        self.release = spec.name
        self.triggered_by = triggered_by
        self.release_id = release_id
        self.reports_dir = reports_dir
        self._say = say
        self.status = ReleaseStatus(
            release_id=release_id,
            image=image,
            spec=source,
            waves=[list(wave.cells) for wave in spec.spec.waves],
            cells={cell.name: "pending" for cell in spec.spec.cells},
            step="starting",
            started_at=started,
            updated_at=now,
            bakes=before.bakes if before is not None else [],
        )
        self._told: tuple[str, dict[str, str]] | None = None

    def tell(
        self,
        words: str,
        phases: Mapping[str, CellPhase],
        outcome: str | None = None,
        bakes: Sequence[BakeRecord] | None = None,
    ) -> None:
        """The release does `words` now (or ended with `outcome`, `words` saying why), its cells
        are in `phases` (a missing cell is pending), its bakes are `bakes` (None: as before)."""
        cells: dict[str, str] = {name: phases.get(name, "pending") for name in self.status.cells}
        if self._told == (words, cells) and outcome is None:
            return
        if self._told is None or self._told[0] != words or outcome is not None:
            line = words if outcome is None else f"{outcome}: {words}"
            get_run_logger().info("release %s: %s", self.release_id, line)
            if self._say is not None:
                self._say(f"{self.release_id}: {line}")
        self._told = (words, cells)
        changes: dict[str, object] = {"step": words, "cells": cells, "outcome": outcome}
        if bakes is not None:  # a resumed release keeps the bakes it does not read again
            merged = {bake.wave: bake for bake in self.status.bakes} | {bake.wave: bake for bake in bakes}
            changes["bakes"] = [merged[wave] for wave in sorted(merged)]
        self.status = self.status.updated(datetime.now(UTC), **changes)
        if self.reports_dir is not None:
            try:
                write_release_status(self.reports_dir, self.status)
                if self.status.outcome is not None:
                    append_release(self.reports_dir, self._record(self.status))
            except OSError as exc:
                get_run_logger().warning("release %s: cannot write its report: %s", self.release_id, exc)
        with contextlib.suppress(Exception):  # the UI's table must never stop a release
            create_markdown_artifact(
                markdown=release_table(self.status),
                key=f"release-{self.release_id}",
                description=f"Release {self.release_id}: its waves and cells",
            )

    def _record(self, status: ReleaseStatus) -> ReleaseRecord:
        assert status.outcome is not None
        return ReleaseRecord(
            release_id=status.release_id,
            release=self.release,
            image=status.image,
            outcome=status.outcome,
            reason=status.step,
            triggered_by=self.triggered_by,
            started_at=status.started_at,
            finished_at=status.updated_at,
            cells=status.cells,
            flow_run_id=flow_run.get_id(),
        )


def _previous(reports_dir: Path | None, release_id: str) -> ReleaseStatus | None:
    """The release's report so far (None without one: a new release)."""
    if reports_dir is None:
        return None
    try:
        return read_release_status(release_report(reports_dir, release_id))
    except (CanaryflowError, OSError):
        return None


def release_table(status: ReleaseStatus) -> str:
    """The release as Markdown: what it does now, a row per cell, wave by wave, and a row per bake."""
    outcome = f"**{status.outcome}**: " if status.outcome is not None else ""
    lines = [
        f"### Release {status.release_id}: {status.image}",
        "",
        f"{outcome}{status.step}",
        "",
        "| wave | cell | phase |",
        "|---|---|---|",
    ]
    for index, wave in enumerate(status.waves):
        lines += [f"| {index + 1} | {cell} | {status.cells.get(cell, 'pending')} |" for cell in wave]
    if status.bakes:
        lines += [
            "",
            "| bake of wave | verdict | intervals | requests on the new image | why |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {bake.wave} | {bake.verdict} | {bake.intervals_judged} of {bake.intervals_max} | "
            f"{bake.requests:.0f} | {bake.reason} |"
            for bake in status.bakes
        ]
    return "\n".join(lines) + "\n"
