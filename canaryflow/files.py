"""Writing files that a reader (or a killed writer's successor) never sees half-written, reading
such a file back as a model, and appending a line to a log in one write."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from canaryflow.errors import ReportError

__all__ = ["append_line", "read_report", "write_atomic"]

_Model = TypeVar("_Model", bound=BaseModel)


def read_report(path: Path, model: type[_Model], what: str) -> _Model:
    """The JSON file at `path` as `model`; `ReportError` naming the file when it cannot be read or
    is not `what` (e.g. "a rollout status")."""
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ReportError(f"{path}: not {what} ({where}: {first['msg']})") from exc


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write `data` to `path` through a temporary file next to it and a rename; return the path."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def append_line(path: Path, line: str) -> Path:
    """Append `line` (one JSON record and its newline, under 4 KiB) to `path` in one write
    (``O_APPEND``: concurrent writers on one machine never interleave); `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    return path
