"""A rollout's report directory, ``<reports>/<rollout-id>/``: its status, observation logs and charts.

The flow writes here while it runs (`write_status` after every change, atomically, so a reader or
a killed run's successor never sees half a file); ``canaryflow status`` and the demo read it back
with `read_statuses`. Files::

    status.json                  `canaryflow.status.RolloutStatus`
    observations-step<N>.json    the observation log of analyze step N (``canaryflow replay``)
    observations-step<N>.png     its chart
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from canaryflow.errors import ReportError
from canaryflow.files import write_atomic
from canaryflow.status import RolloutStatus

__all__ = ["STATUS_FILE", "observation_log", "read_status", "read_statuses", "write_status"]

STATUS_FILE = "status.json"


def observation_log(directory: Path, step_index: int) -> Path:
    """Where the observation log of the analyze step at `step_index` (0-based) goes."""
    return directory / f"observations-step{step_index + 1}.json"


def write_status(directory: Path, status: RolloutStatus) -> Path:
    """Write `status` as ``status.json`` in `directory` (created if needed), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    return write_atomic(directory / STATUS_FILE, status.dumps())


def read_status(path: Path) -> RolloutStatus:
    """One ``status.json``; `ReportError` naming the file when it cannot be read or is not one."""
    try:
        return RolloutStatus.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ReportError(f"{path}: not a rollout status ({where}: {first['msg']})") from exc


def read_statuses(reports_dir: Path, rollout_id: str | None = None) -> list[RolloutStatus]:
    """The status of every rollout under `reports_dir` (or of one), the latest update first."""
    if rollout_id:
        paths = [reports_dir / rollout_id / STATUS_FILE]
    else:
        paths = sorted(reports_dir.glob(f"*/{STATUS_FILE}"))
    found = [read_status(path) for path in paths if path.is_file()]
    return sorted(found, key=lambda s: s.updated_at.isoformat() if s.updated_at else "", reverse=True)
