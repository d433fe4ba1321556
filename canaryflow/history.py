"""Every rollout that ended, and the delivery figures they add up to (``canaryflow history``).

A rollout's report directory holds its latest run only (a re-run of the same image has the same
rollout id); the history keeps them all. ``<reports>/history.jsonl`` gets one JSON line per ended
rollout (and per ``canaryflow undo``), appended in one write (``O_APPEND``; a line is kept under
4 KiB, so concurrent writers on one machine never interleave). Nothing is ever rewritten.

`figures` turns records into the four figures of the DORA research program, as far as canaryflow
sees them:

- **deployment frequency**: promotions per day over the window;
- **lead time**: the time a change spends in its rollout, start to promotion, median; and, for
  rollouts started by a push (whose commit time the push carries), commit to promotion, median:
  the research program's own definition, build and queue included;
- **change failure rate**: rollouts that did not reach production safely (rolled back or
  aborted) plus promotions undone later, over every rollout that ended;
- **time to restore**: for a rolled-back rollout, start to the end of its rollback (the canary
  served part of the traffic that long); for an undo, promotion to the end of the undo; median;
- **time to detect** (beside them): for a rolled-back rollout, start to the decision to roll
  back, median.

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
    "HISTORY_FILE",
    "DeliveryFigures",
    "History",
    "HistoryRecord",
    "HistoryResult",
    "append_history",
    "figures",
    "read_history",
]

HISTORY_FILE = "history.jsonl"
_MAX_LINE = 4000
_MAX_REASON = 1000

#: How a rollout ended, or ``undone``: a promotion taken back by ``canaryflow undo``.
HistoryResult = Literal["promoted", "rolled-back", "superseded", "aborted", "undone"]


class HistoryRecord(BaseModel):
    """One rollout that ended (or one undo): what, where, who, how it ended, why, and when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    rollout_id: str
    target: str
    image: str
    result: HistoryResult
    #: The release cell it ran in (None for a plain rollout).
    cell: str | None = None
    reason: str
    triggered_by: str
    started_at: datetime
    finished_at: datetime
    flow_run_id: str | None = None
    #: When the rolled-out commit was made (pushes only): where its lead time starts.
    committed_at: datetime | None = None
    #: For a rollback: when the rollout decided to roll back (its detection).
    detected_at: datetime | None = None

    @property
    def duration(self) -> timedelta:
        return self.finished_at - self.started_at


def append_history(reports_dir: Path, record: HistoryRecord) -> Path:
    """Append `record` to ``<reports_dir>/history.jsonl`` in one write; the file's path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / HISTORY_FILE
    short = record.model_copy(update={"reason": record.reason[:_MAX_REASON]})
    line = short.model_dump_json() + "\n"
    if len(line.encode()) > _MAX_LINE:  # long names as well: cut the free text further
        shorter = short.model_copy(
            update={"reason": short.reason[:200], "triggered_by": short.triggered_by[:200]}
        )
        line = shorter.model_dump_json() + "\n"
    return append_line(path, line)


@dataclass(frozen=True, slots=True)
class History:
    """The records read (oldest first) and how many lines could not be read."""

    records: tuple[HistoryRecord, ...]
    unreadable: int = 0


def read_history(reports_dir: Path, *, target: str | None = None, since: datetime | None = None) -> History:
    """The records of ``<reports_dir>/history.jsonl`` (of one target, finished since a time),
    oldest first. A line that is not a record is counted, not fatal: one torn line must not hide
    the rest."""
    path = reports_dir / HISTORY_FILE
    if not path.is_file():
        return History(())
    records: list[HistoryRecord] = []
    unreadable = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = HistoryRecord.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            unreadable += 1
            continue
        if target is not None and record.target != target:
            continue
        if since is not None and record.finished_at < since:
            continue
        records.append(record)
    return History(tuple(sorted(records, key=lambda r: r.finished_at)), unreadable)


@dataclass(frozen=True, slots=True)
class DeliveryFigures:
    """The DORA figures over `days` days (see the module notes); ``None`` where nothing counts."""

    days: float
    ended: int
    promotions: int
    failed: int
    per_day: float
    lead_time: timedelta | None
    change_failure_rate: float | None
    time_to_restore: timedelta | None
    #: Commit to promotion, median over the promotions whose commit time is known (pushes).
    lead_time_from_commit: timedelta | None = None
    #: Rollout start to the rollback decision, median over the rollbacks that recorded it.
    time_to_detect: timedelta | None = None


def _median(values: Sequence[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def figures(records: Iterable[HistoryRecord], *, days: float) -> DeliveryFigures:
    """The delivery figures of `records` (those of a window of `days` days)."""
    records = list(records)
    rollouts = [r for r in records if r.result != "undone"]
    promoted = [r for r in rollouts if r.result == "promoted"]
    failed = [r for r in rollouts if r.result in ("rolled-back", "aborted")]
    undone = [r for r in records if r.result == "undone"]
    counted = len([r for r in rollouts if r.result != "superseded"])
    restores = [r.duration for r in failed] + [r.duration for r in undone]
    return DeliveryFigures(
        days=days,
        ended=len(rollouts),
        promotions=len(promoted),
        failed=len(failed) + len(undone),
        per_day=len(promoted) / days if days > 0 else 0.0,
        lead_time=_median([r.duration for r in promoted]),
        change_failure_rate=(len(failed) + len(undone)) / counted if counted else None,
        time_to_restore=_median(restores),
        lead_time_from_commit=_median(
            [r.finished_at - r.committed_at for r in promoted if r.committed_at is not None]
        ),
        time_to_detect=_median([r.detected_at - r.started_at for r in failed if r.detected_at is not None]),
    )
