"""A rollout's report directory, ``<reports>/<rollout-id>/``: its status, observation logs and charts.

The flow writes here while it runs (`write_status` after every change, atomically, so a reader or
a killed run's successor never sees half a file); ``canaryflow status`` and the metrics exporter
read it back with `scan_statuses`, which sets an unreadable one aside and says which. The
directory is named by the rollout id, which `is_report_id` checks before a path is made of it. Files::

    status.json                  `canaryflow.status.RolloutStatus`
    observations-step<N>.json    the observation log of analyze step N (``canaryflow replay``)
    observations-step<N>.png     its chart
    attempt-<K>/                 the files of earlier attempts that ended (a retry, a re-run)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from canaryflow.errors import ReportError
from canaryflow.files import read_report, write_atomic
from canaryflow.requests import ID_PATTERN
from canaryflow.status import RolloutStatus

__all__ = [
    "REPORT_ID",
    "STATUS_FILE",
    "Statuses",
    "archive_attempt",
    "is_report_id",
    "observation_log",
    "read_status",
    "scan_statuses",
    "write_status",
]

STATUS_FILE = "status.json"

#: What a rollout's or a release's id looks like, and so the name of its report directory: a DNS
#: label (lowercase letters, digits and '-', at most 63), the pattern a request takes an id with
#: (`canaryflow.requests.RolloutRequest`); a default one is a name and 8 hex digits
#: (``web-c455c59c``, `canaryflow.plan.rollout_id_for`).
REPORT_ID = ID_PATTERN
_REPORT_ID = re.compile(REPORT_ID)


def is_report_id(value: str) -> bool:
    """Whether `value` can be a rollout's or a release's id (never a path: no '/', no '..')."""
    return _REPORT_ID.fullmatch(value) is not None


def observation_log(directory: Path, step_index: int) -> Path:
    """Where the observation log of the analyze step at `step_index` (0-based) goes."""
    return directory / f"observations-step{step_index + 1}.json"


def write_status(directory: Path, status: RolloutStatus) -> Path:
    """Write `status` as ``status.json`` in `directory` (created if needed), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_atomic(directory / STATUS_FILE, status.dumps())


def archive_attempt(directory: Path) -> Path | None:
    """Before a new attempt of a rollout writes its report: if `directory` holds an attempt that
    ended (its status is final), move its files into ``attempt-<K>/`` (K counting from 1) and
    return that directory; None when there is nothing ended to keep (no report, or an attempt
    that did not end: a resume continues it)."""
    path = directory / STATUS_FILE
    if not path.is_file():
        return None
    try:
        ended = read_status(path).phase.final
    except ReportError:
        ended = True  # unreadable: keep it aside rather than mix it with the new attempt
    if not ended:
        return None
    count = len([p for p in directory.glob("attempt-*") if p.is_dir()])
    kept = directory / f"attempt-{count + 1}"
    kept.mkdir()
    for item in sorted(directory.iterdir()):
        if item.is_file():
            item.rename(kept / item.name)
    return kept


def read_status(path: Path) -> RolloutStatus:
    """One ``status.json``; `ReportError` naming the file when it cannot be read or is not one."""
    return read_report(path, RolloutStatus, "a rollout status")


@dataclass(frozen=True, slots=True)
class Statuses:
    """The statuses read (the latest update first) and, for each ``status.json`` that could not
    be read, its `ReportError` (which names the file and the problem)."""

    found: tuple[RolloutStatus, ...]
    unreadable: tuple[ReportError, ...] = ()


def scan_statuses(reports_dir: Path) -> Statuses:
    """The status of every rollout under `reports_dir`: one unreadable report (truncated, not a
    status, not readable by this user) is set aside with its error, never hides the others."""
    found: list[RolloutStatus] = []
    unreadable: list[ReportError] = []
    for path in sorted(reports_dir.glob(f"*/{STATUS_FILE}")):
        if not path.is_file():
            continue
        try:
            found.append(read_status(path))
        except ReportError as exc:
            unreadable.append(exc)
    latest_first = sorted(found, key=lambda s: s.updated_at.isoformat() if s.updated_at else "", reverse=True)
    return Statuses(tuple(latest_first), tuple(unreadable))
