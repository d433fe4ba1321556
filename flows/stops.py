"""Whether a running rollout must stop, hold or jump to promotion now, asked at every checkpoint.

Between steps, before an analysis interval and every few seconds of a timed pause, `check_stop`
raises when one of these happened since the last checkpoint:

- somebody ran ``canaryflow abort`` for this run, a newer image asked for the target, or the
  target's slot was lost (`flows.slots.check_slot`; the run rolls back);
- the run was cancelled in Prefect (the UI's Cancel, ``prefect flow-run cancel``): its state on
  the server is Cancelling or Cancelled (`CancelledInPrefect`; the run rolls back and ends
  Cancelled). A run started by the command line has no worker to stop its process, so Prefect
  only records the wish; the run honours it here;
- somebody ran ``canaryflow promote --full`` (`PromoteRequested`; the run promotes now, skipping
  the remaining steps).

A ``canaryflow pause`` is not raised: `check_stop` returns it, and the flow holds its split
where it can pause (`flows.rollout.checkpoint`).

A Ctrl-C in the terminal that runs the flow in its own process (``canaryflow rollout``) sets
`interrupted_here` and raises KeyboardInterrupt, which the flow takes as an abort. Prefect may
swallow that exception (it can land inside Prefect's own calls), so `check_stop` raises
`InterruptedHere` at the next checkpoint too: either way the run rolls back holding its slot.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run

from canaryflow.errors import RolloutAborted
from canaryflow.plan import RolloutOutcome, RolloutPlan
from flows.slots import AbortRequested, check_slot

__all__ = [
    "INTERRUPTED",
    "CancelledInPrefect",
    "InterruptedHere",
    "PromoteRequested",
    "check_stop",
    "interrupted_here",
    "was_interrupted",
]

#: The reason of a rollout stopped by Ctrl-C in the terminal that ran it (``canaryflow rollout``).
INTERRUPTED = "interrupted (Ctrl-C in the terminal that ran it)"


def was_interrupted(outcome: RolloutOutcome) -> bool:
    """Whether the rollout ended because of a Ctrl-C in the terminal that ran it (the command
    that ran it exits 130)."""
    return outcome.result == "aborted" and outcome.reason == INTERRUPTED


#: Set by the terminal that runs the rollout flow in its process, when Ctrl-C is pressed.
interrupted_here = threading.Event()


class InterruptedHere(AbortRequested):
    """Ctrl-C in the terminal that runs this rollout (`interrupted_here`): it rolls back."""

    def __init__(self) -> None:
        super().__init__("the terminal", INTERRUPTED)
        self.args = (INTERRUPTED,)


_CANCELLED = (StateType.CANCELLING, StateType.CANCELLED)


class CancelledInPrefect(RolloutAborted):
    """The rollout's flow run was cancelled in Prefect."""

    def __init__(self, message: str) -> None:
        super().__init__(f"cancelled in Prefect{': ' + message if message else ''}")


class PromoteRequested(Exception):  # noqa: N818 - control flow inside the flow, never escapes it
    """Somebody asked to promote now (``canaryflow promote --full``), skipping the remaining steps."""

    def __init__(self, by: str, reason: str) -> None:
        super().__init__(f"promoted in full by {by}: {reason}")
        self.by = by
        self.reason = reason


def check_stop(plan: RolloutPlan) -> dict[str, Any] | None:
    """Raise when this rollout must stop or promote now (see the module notes); return a pause
    request for this run (who, why, when), if one waits."""
    if interrupted_here.is_set():
        raise InterruptedHere()
    requests = check_slot(plan)
    run_id = flow_run.get_id()
    if run_id is not None:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(str(run_id))).state
        if state is not None and state.type in _CANCELLED:
            raise CancelledInPrefect(state.message or "")
    promote = requests.get("promote")
    if promote is not None:
        raise PromoteRequested(str(promote.get("by") or "somebody"), str(promote.get("reason") or ""))
    return requests.get("pause")
