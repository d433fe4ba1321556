"""Whether a process that recorded itself (host, pid, start time) still runs.

A holder of a target's lock records `this_process()`; a later run on the same host tells a dead
holder from a live one with `process_started` (a pid can be reused: the start time tells the new
process from the old one). Only /proc is read; without it a pid that exists counts as alive.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["process_started", "this_process"]


def this_process() -> dict[str, str]:
    """This process, so that a later run on the same host can tell whether it is still alive."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": str(pid), "started": process_started(pid) or ""}


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, from /proc), or None when it does not
    run (or has exited and awaits its parent). Without /proc: ``"running"`` while `pid` exists."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "running"
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command: the state (field 3 of proc(5)), ..., the start time (field 22).
    return None if fields[0] in ("Z", "X") else fields[19]
