"""What people see of a release run: its log, its report file, a table in the Prefect UI.

At every change of what the release does (its step in words, or a cell's phase), `ReleaseReporter`
logs a line (and tells the terminal of ``canaryflow release``), writes the release's report
(`canaryflow.releasereport`, read by ``canaryflow get release``; and once it ends, its line in the
release history, `canaryflow.releasehistory`) and updates the release's
artifact in the Prefect UI (key ``release-<id>``): one row per cell, wave by wave, with its phase,
under what the release does now, then a row per bake. Each bake's observations are written next
to the report at every interval (``bake-wave<N>.json``, which ``canaryflow replay`` judges again:
the promoted cells are its canary, what they are compared with its baseline); once the bake
decided, its chart is drawn (``bake-wave<N>.png``) and shown as an artifact of its own
(``release-<id>-bake<N>``), so that the table's many versions do not each carry the images. Neither
a report nor an artifact that cannot be written stops a release: they are what people see of it,
not what it decides on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from canaryflow.baking import WaveBake
from canaryflow.errors import CanaryflowError
from canaryflow.releasehistory import ReleaseRecord, append_release
from canaryflow.releasereport import (
    BakeRecord,
    ReleaseStatus,
    bake_log,
    read_release_status,
    release_report,
    write_release_status,
)
from canaryflow.spec.release import ReleaseSpec
from canaryflow.waves import CellPhase
from flows.charts import render_chart

__all__ = ["ReleaseReporter", "bake_chart", "release_table"]


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
        self._written: dict[int, int] = {}  # wave (1-based) -> intervals written
        self._drawn: set[int] = set()  # waves (1-based) whose decided bake was drawn

    def tell(
        self,
        words: str,
        phases: Mapping[str, CellPhase],
        outcome: str | None = None,
        bakes: Sequence[BakeRecord] | None = None,
        observed: Mapping[int, WaveBake] | None = None,
    ) -> None:
        """The release does `words` now (or ended with `outcome`, `words` saying why), its cells
        are in `phases` (a missing cell is pending), its bakes are `bakes` (None: as before), and
        `observed` the bakes begun in this run (by 0-based wave), whose observations and charts
        are written when they judged more intervals."""
        cells: dict[str, str] = {name: phases.get(name, "pending") for name in self.status.cells}
        self._draw(observed or {})
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

    def _draw(self, observed: Mapping[int, WaveBake]) -> None:
        """Write the observations of each bake that judged more intervals since (cheap, every
        interval), and draw each bake once it decided: a chart of its own in the Prefect UI
        (``release-<id>-bake<N>``), so that the table's versions do not carry it."""
        if self.reports_dir is None:
            return
        for index, bake in observed.items():
            wave, intervals = index + 1, len(bake.recorder)
            if intervals == 0 or self._written.get(wave) == intervals:
                continue
            self._written[wave] = intervals
            path = bake_log(self.reports_dir, self.release_id, wave)
            try:
                bake.recorder.write(path)
                if bake.progress.verdict == "pending" or wave in self._drawn:
                    continue
                self._drawn.add(wave)
                chart = render_chart(bake.recorder.log(), path.with_suffix(".png"), bake.tolerances)
                if chart is not None:
                    create_markdown_artifact(
                        markdown=bake_chart(wave, bake.against, bake.progress.verdict, chart),
                        key=f"release-{self.release_id}-bake{wave}",
                        description=f"Release {self.release_id}: the bake of wave {wave}",
                    )
            except Exception as exc:  # a chart is for people: it never stops a release
                get_run_logger().warning(
                    "release %s: cannot write or draw the bake of wave %d: %s", self.release_id, wave, exc
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
            "| bake of wave | against | verdict | intervals | requests on the new image | why |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {bake.wave} | {bake.against} | {bake.verdict} | {bake.intervals_judged} of "
            f"{bake.intervals_max} | {bake.requests:.0f} | {bake.reason} |"
            for bake in status.bakes
        ]
    return "\n".join(lines) + "\n"


def bake_chart(wave: int, against: str, verdict: str, chart: str) -> str:
    """A decided bake's chart as Markdown: what was compared with what, its verdict, the chart."""
    compared = "their own traffic before the release" if against == "history" else "the cells not updated"
    return (
        f"### Bake of wave {wave}: {verdict}\n\n"
        f"The wave's promoted cells (canary) against {compared} (baseline).\n\n{chart}\n"
    )
