"""Whether a running rollout must stop now, asked at every checkpoint of the flow.

A rollout stops (and rolls back) when, between steps, before an analysis interval or every few
seconds of a timed pause, `check_stop` finds one of:

- somebody ran ``canaryflow abort`` for this run, a newer image asked for the target, or the
  target's slot was lost (`flows.slots.check_slot`);
- the run was cancelled in Prefect (the UI's Cancel, ``prefect flow-run cancel``): its state on
  the server is Cancelling or Cancelled (`CancelledInPrefect`). A run started by the command
  line has no worker to stop its process, so Prefect only records the wish; the run honours it
  here, rolls back, and ends Cancelled with the reason.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.runtime import flow_run

from canaryflow.errors import RolloutAborted
from canaryflow.plan import RolloutPlan
from flows.slots import check_slot

__all__ = ["CancelledInPrefect", "check_stop"]

_CANCELLED = (StateType.CANCELLING, StateType.CANCELLED)


class CancelledInPrefect(RolloutAborted):
    """The rollout's flow run was cancelled in Prefect."""

    def __init__(self, message: str) -> None:
        super().__init__(f"cancelled in Prefect{': ' + message if message else ''}")


def check_stop(plan: RolloutPlan) -> None:
    """Raise (a `RolloutAborted`) when this rollout must stop now; see the module notes."""
    check_slot(plan)
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(str(run_id))).state
    if state is not None and state.type in _CANCELLED:
        raise CancelledInPrefect(state.message or "")
