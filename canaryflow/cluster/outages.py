"""Riding out an API server that does not answer, for a bounded time.

A control plane that blinks for a minute (an upgrade, a leader election, an etcd hiccup) is normal
at scale; a rollout must not give up on it, nor wait for it forever. `Patience` is what one cluster
operation (a step's writes and waits, a promotion, a rollback) does about it:

- every `ClusterUnavailableError` (connection refused, a timeout, a 5xx or a 429) starts or
  continues an **outage**; the operation sleeps and tries again with exponential backoff (0.5 s
  doubling up to `MAX_BACKOFF_SECONDS`, or the server's ``Retry-After`` when it is longer);
- any answer ends the outage: an operation can ride out several outages, each up to the tolerance;
- an outage that lasts longer than the tolerance raises `ClusterOutageError`, which says how long
  the server did not answer and what it said last. The retry policies of the flow's tasks do not
  retry it again: the patience is spent;
- `lost` is the time spent in outages, so that a wait for pods can leave it out of its progress
  deadline (the deadline counts only time the API server was answering).

Tolerances: a step's writes use the spec's ``apiOutageTolerance`` (`DEFAULT_OUTAGE_TOLERANCE`,
never longer than the progress deadline); a promotion or a rollback, once decided, is never given
up for an outage shorter than `FINISH_OUTAGE_TOLERANCE`, because the alternative is a target left
half done until a person comes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from canaryflow.clock import Clock
from canaryflow.errors import ClusterOutageError, ClusterUnavailableError

__all__ = [
    "DEFAULT_OUTAGE_TOLERANCE",
    "FINISH_OUTAGE_TOLERANCE",
    "MAX_BACKOFF_SECONDS",
    "Patience",
    "describe_duration",
]

_T = TypeVar("_T")

#: How long a step's writes and waits ride out an API server that does not answer, by default.
DEFAULT_OUTAGE_TOLERANCE = timedelta(minutes=3)
#: How long a decided promotion or rollback rides out an outage before the run gives up (and the
#: cleanup automation takes over).
FINISH_OUTAGE_TOLERANCE = timedelta(hours=1)
#: The longest sleep between two attempts during an outage (unless the server asks for longer).
MAX_BACKOFF_SECONDS = 10.0
_FIRST_BACKOFF_SECONDS = 0.5


class Patience:
    """How long one operation waits for the API server to answer again (see the module's docs).

    Parameters
    ----------
    clock
        Paces the backoff and measures the outage (a `ManualClock` in tests).
    tolerance
        The longest single outage ridden out; zero gives up at the first error.
    what
        The operation, in words, for the error message (``"the split of step 2"``).
    on_outage
        Called once when an outage starts, with the error (to log that the operation is waiting).
    """

    def __init__(
        self,
        clock: Clock,
        tolerance: timedelta,
        *,
        what: str,
        on_outage: Callable[[ClusterUnavailableError], None] | None = None,
    ) -> None:
        if tolerance < timedelta(0):
            raise ValueError(f"tolerance must not be negative, got {tolerance}")
        self._clock = clock
        self._tolerance = tolerance.total_seconds()
        self._what = what
        self._on_outage = on_outage
        self._since: float | None = None
        self._backoff = _FIRST_BACKOFF_SECONDS
        #: Seconds spent in outages so far (sleeping between attempts that were not answered).
        self.lost = 0.0
        #: How many outages this operation rode out (or is in).
        self.outages = 0

    def call(self, attempt: Callable[[], _T]) -> _T:
        """`attempt()`, tried again through outages up to the tolerance; its result."""
        while True:
            try:
                result = attempt()
            except ClusterOutageError:
                raise  # a nested operation's patience is spent, and so is ours
            except ClusterUnavailableError as exc:
                self._wait_out(exc)
                continue
            self._since = None
            self._backoff = _FIRST_BACKOFF_SECONDS
            return result

    def _wait_out(self, exc: ClusterUnavailableError) -> None:
        now = self._clock.monotonic()
        if self._since is None:
            self._since = now
            self.outages += 1
            if self._on_outage is not None:
                self._on_outage(exc)
        elapsed = now - self._since
        if elapsed >= self._tolerance:
            raise ClusterOutageError(
                f"the API server did not answer for {describe_duration(elapsed)} during {self._what} "
                f"(apiOutageTolerance {describe_duration(self._tolerance)}); last error: {exc}",
                outage_seconds=elapsed,
            ) from exc
        delay = min(self._backoff, self._tolerance - elapsed)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self._tolerance - elapsed))
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
        self._clock.sleep(delay)
        self.lost += self._clock.monotonic() - now


def describe_duration(seconds: float) -> str:
    """``"45s"``, ``"3m"``, ``"2m30s"``, ``"1h"``: a duration as the specs write it."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
