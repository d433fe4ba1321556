"""A release's report, ``<reports>/releases/<release-id>/release.json``: where its waves and cells are.

The release flow writes it after every change of step, atomically (`write_release_status`), and
``canaryflow get release ID [--watch]`` reads it back (`read_release_status`) without asking
Prefect anything, as ``canaryflow get`` reads a rollout's ``status.json``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from canaryflow.errors import ReportError
from canaryflow.files import read_report, write_atomic

__all__ = [
    "RELEASE_FILE",
    "BakeRecord",
    "ReleaseStatus",
    "mark_interrupted",
    "read_release_status",
    "release_report",
    "write_release_status",
]

RELEASE_FILE = "release.json"


class BakeRecord(BaseModel):
    """Where one wave's bake stands: the wave (1 is the first), the verdict (``pending`` while it
    judges, ``within``, ``worse`` or ``inconclusive``) and why, when it started, the intervals
    judged of at most `intervals_max`, the requests the wave's promoted cells served, and what
    they were compared with (``later-waves``, or their own ``history``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wave: int = Field(ge=1)
    verdict: str
    reason: str
    started_at: AwareDatetime
    intervals_judged: int = Field(ge=0)
    intervals_max: int = Field(ge=0)
    requests: float = Field(ge=0)
    against: Literal["later-waves", "history"] = "later-waves"


class ReleaseStatus(BaseModel):
    """Where a release is: its waves (cell names, in order), each cell's phase (pending, running,
    promoted, rolled-back, failed, undone), what it does now in words, its bakes so far (a resumed
    release shows a bake again once it has read it anew), and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: str
    image: str
    spec: str
    waves: list[list[str]]
    cells: dict[str, str]
    step: str
    bakes: list[BakeRecord] = Field(default_factory=list)
    outcome: Literal["released", "rolled-back", "held", "superseded"] | None = None
    interrupted: str | None = Field(
        default=None,
        description="The release's process stopped before it ended (Ctrl-C): when, and how to carry it on.",
    )
    started_at: AwareDatetime
    updated_at: AwareDatetime = Field(description="When this was written.")

    @property
    def final(self) -> bool:
        return self.outcome is not None

    def updated(self, now: datetime, **changes: object) -> ReleaseStatus:
        """This status with `changes`, written at `now`."""
        return self.model_copy(update={**changes, "updated_at": now})


def release_report(reports_dir: Path, release_id: str) -> Path:
    """Where the report of release `release_id` is."""
    return reports_dir / "releases" / release_id / RELEASE_FILE


def bake_log(reports_dir: Path, release_id: str, wave: int) -> Path:
    """Where the observation log of the bake of wave `wave` (1-based) of release `release_id` is
    (``canaryflow replay`` reads it: the promoted cells are its canary)."""
    return reports_dir / "releases" / release_id / f"bake-wave{wave}.json"


def write_release_status(reports_dir: Path, status: ReleaseStatus) -> Path:
    """Write `status` as its release's ``release.json`` (directories created), atomically."""
    path = release_report(reports_dir, status.release_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, status.model_dump_json(indent=2) + "\n")


def mark_interrupted(reports_dir: Path, release_id: str, resume: str, now: datetime) -> ReleaseStatus | None:
    """Say in the report of `release_id` that its process stopped before the release ended (what
    ``get release`` shows, and where ``get release --watch`` stops), and that `resume` carries it
    on; the report as written, or None when there is none to mark (none yet, unreadable, or ended).
    A release carried on writes a new report, without the mark."""
    path = release_report(reports_dir, release_id)
    try:
        status = read_release_status(path) if path.is_file() else None
    except ReportError:
        return None
    if status is None or status.final:
        return None
    marked = status.updated(
        now, interrupted=f"interrupted at {now:%Y-%m-%d %H:%M:%S} UTC: `{resume}` carries it on"
    )
    write_release_status(reports_dir, marked)
    return marked


def read_release_status(path: Path) -> ReleaseStatus:
    """One ``release.json``; `ReportError` naming the file when it cannot be read or is not one."""
    return read_report(path, ReleaseStatus, "a release status")
