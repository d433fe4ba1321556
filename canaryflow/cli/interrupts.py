"""Ctrl-C of the rollout flows a terminal runs in its own process (``rollout``, ``demo``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["ctrl_c_stops_rollouts"]


@contextmanager
def ctrl_c_stops_rollouts(message: str) -> Iterator[None]:
    """While inside, Ctrl-C stops the rollout flows this process runs: the first one says
    `message`, sets `flows.stops.interrupted_here` (the run's next checkpoint sees it, where Prefect
    swallows the KeyboardInterrupt raised here) and raises KeyboardInterrupt; so does each one
    after it. Outside the main thread it changes nothing."""
    from canaryflow.cli.output import say
    from flows.stops import interrupted_here

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if not interrupted_here.is_set():
            interrupted_here.set()
            say(message)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupt) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        interrupted_here.clear()
