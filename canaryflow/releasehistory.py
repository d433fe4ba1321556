"""Every release that ended, and the delivery figures of releases (``canaryflow history --releases``).

``<reports>/releases/history.jsonl`` gets one JSON line per ended release, appended in one write
as the rollouts' history is (`canaryflow.files.append_line`); nothing is rewritten. A release's
figures are those of `canaryflow.history` seen at the scale of a release, which is what a change
means when a service runs in many cells:

- **releases per day**: releases that reached every cell, per day over the window;
- **lead time**: the release's start to its end when released (every wave, bake and rollout in
  it), median;
- **change failure rate**: releases rolled back or held, over every release that ended but those
  superseded (a newer release took over: neither a success nor a failure of this change);
- **time to restore**: for a rolled-back release, its start to the end of its rollback (every
  cell it promoted undone, or its failing wave aborted), median.

References
----------
.. [1] N. Forsgren, J. Humble and G. Kim, *Accelerate*, IT Revolution, 2018, ch. 2.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from canaryflow.files import append_line

__all__ = [
    "RELEASE_HISTORY",
    "ReleaseFigures",
    "ReleaseRecord",
    "append_release",
    "read_releases",
    "release_figures",
]

#: Where the release history is, in the reports directory.
RELEASE_HISTORY = Path("releases") / "history.jsonl"
_MAX_TEXT = 600


class ReleaseRecord(BaseModel):
    """One release that ended: which (id, release spec's name, image), who started it, how it
    ended and why, when, and where each cell was left."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    release_id: str
    release: str
    image: str
    outcome: Literal["released", "rolled-back", "held", "superseded"]
    reason: str
    triggered_by: str
    started_at: datetime
    finished_at: datetime
    cells: dict[str, str]
    flow_run_id: str | None = None

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at


def append_release(reports_dir: Path, record: ReleaseRecord) -> Path:
    """Append `record` to the release history of `reports_dir` in one write; the file's path."""
    short = record.model_copy(
        update={"reason": record.reason[:_MAX_TEXT], "triggered_by": record.triggered_by[:_MAX_TEXT]}
    )
    return append_line(reports_dir / RELEASE_HISTORY, short.model_dump_json() + "\n")


def read_releases(reports_dir: Path, *, since: datetime | None = None) -> tuple[list[ReleaseRecord], int]:
    """The releases that ended (since a time), oldest first, each once (a release run again after
    it ended has its last line), and how many lines could not be read (a torn line is counted,
    not fatal)."""
    path = reports_dir / RELEASE_HISTORY
    if not path.is_file():
        return [], 0
    records: list[ReleaseRecord] = []
    unreadable = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = ReleaseRecord.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            unreadable += 1
            continue
        if since is None or record.finished_at >= since:
            records.append(record)
    latest = {record.release_id: record for record in records}  # a release run again: its last end
    return sorted(latest.values(), key=lambda r: r.finished_at), unreadable


@dataclass(frozen=True, slots=True)
class ReleaseFigures:
    """The release figures over `days` days (see the module notes); ``None`` where nothing counts."""

    days: float
    ended: int
    released: int
    failed: int
    per_day: float
    lead_time: timedelta | None
    change_failure_rate: float | None
    time_to_restore: timedelta | None


def _median(values: Sequence[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def release_figures(records: Iterable[ReleaseRecord], *, days: float) -> ReleaseFigures:
    """The release figures of `records` (those of a window of `days` days)."""
    records = list(records)
    released = [r for r in records if r.outcome == "released"]
    failed = [r for r in records if r.outcome in ("rolled-back", "held")]
    counted = len([r for r in records if r.outcome != "superseded"])
    return ReleaseFigures(
        days=days,
        ended=len(records),
        released=len(released),
        failed=len(failed),
        per_day=len(released) / days if days > 0 else 0.0,
        lead_time=_median([r.duration for r in released]),
        change_failure_rate=len(failed) / counted if counted else None,
        time_to_restore=_median([r.duration for r in records if r.outcome == "rolled-back"]),
    )
