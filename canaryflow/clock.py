"""Time, one way for everything: a monotonic clock for deadlines, a sleep, and the wall time.

The cluster adapters measure deadlines and poll with it, the rollout flow paces pauses and
analysis intervals with it, and the traffic simulator draws requests up to its now. `SystemClock`
is the real one. `ManualClock` moves only when told (`advance`) or when something sleeps on it
(`sleep` returns at once), so tests and simulations run faster than real time and reproducibly.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...

    def now(self) -> datetime:
        """The wall time, timezone-aware UTC (``now().timestamp()`` for seconds since the epoch)."""
        ...


class SystemClock:
    """The process's clocks and `time.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that advances only through `advance` or `sleep` (which returns at once).

    Safe to share between threads (the demo's simulator reads it from its driver thread).
    """

    #: 2025-01-01T00:00:00Z: a fixed, round default start.
    DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or self.DEFAULT_START
        if self._start.tzinfo is None:
            raise ValueError(f"start must be timezone-aware, got {self._start!r}")
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (not negative); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self._elapsed += seconds
            return self._start + timedelta(seconds=self._elapsed)

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)
