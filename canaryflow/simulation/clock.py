"""Clocks for the simulator: real time for the demo, a manual clock for tests.

Time is a float of seconds since the Unix epoch, so that simulated timestamps line up with the
window ends (timezone-aware datetimes) that metrics sources are asked about.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where the simulator reads the current time."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock (`time.time`)."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to: tests run faster than real time and are reproducible."""

    #: 2023-11-14T22:13:20Z: a fixed, round default start.
    DEFAULT_START = 1_700_000_000.0

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (not negative); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go backwards (advance by {seconds})")
        with self._lock:
            self._now += seconds
            return self._now
