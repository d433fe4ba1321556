"""One rollout per target: a Prefect global concurrency slot, and superseding the running rollout.

The slot is a global concurrency limit of 1 named after the target (`flows.plan.slot_name`), held
for the whole rollout, pauses included (a deployment's concurrency limit would be given up by a
paused run). Its lease is renewed in the background while the run lives; a killed run's lease
expires after ``slot_lease_seconds`` and the next run gets the slot.

Superseding: a Prefect variable of the same name records the holder (flow run id, image) and the
newest image that asked for the target. A run with a newer image writes its image there before it
waits for the slot, and resumes the holder with a rejection if the holder is paused. The holder
checks the variable between steps and intervals (`Superseded` from `check_superseded`), rolls back
its canary and ends Cancelled; then the new run gets the slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.flow_runs import resume_flow_run
from prefect.runtime import flow_run
from prefect.variables import Variable

from canaryflow.errors import RolloutAborted
from flows.plan import RolloutPlan, slot_name
from flows.runtime import current_runtime

__all__ = ["Superseded", "check_superseded", "request_target", "target_slot"]


class Superseded(RolloutAborted):
    """A rollout of the same target with a newer image asked for the target."""

    def __init__(self, image: str) -> None:
        super().__init__(f"superseded by {image}")
        self.image = image


def _read(name: str) -> dict[str, Any]:
    value = Variable.get(name, default=None)
    return dict(value) if isinstance(value, dict) else {}


def _write(name: str, value: dict[str, Any]) -> None:
    Variable.set(name, value, overwrite=True)


def request_target(plan: RolloutPlan) -> None:
    """Ask the running rollout of this target (if it rolls out another image) to give way."""
    name = slot_name(plan.target)
    record = _read(name)
    holder = record.get("holder") or {}
    if not holder or holder.get("image") == plan.image:
        return
    _write(name, {**record, "superseded_by": plan.image})
    run_id = holder.get("flow_run_id")
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    if run.state is not None and run.state.is_paused():
        resume_flow_run(run.id, run_input={"decision": "reject", "reason": f"superseded by {plan.image}"})


def check_superseded(plan: RolloutPlan) -> None:
    """Raise `Superseded` when a rollout with another image asked for this target."""
    newer = _read(slot_name(plan.target)).get("superseded_by")
    if newer and newer != plan.image:
        raise Superseded(newer)


@contextmanager
def target_slot(plan: RolloutPlan) -> Iterator[None]:
    """Hold the target's slot (waiting for it) and record this run as its holder."""
    name = slot_name(plan.target)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    lease = current_runtime().slot_lease_seconds
    with concurrency(name, occupy=1, lease_duration=lease, strict=True):
        record = _read(name)
        superseded_by = record.get("superseded_by")
        holder = {
            "flow_run_id": str(flow_run.get_id() or ""),
            "image": plan.image,
            "rollout_id": plan.rollout_id,
        }
        _write(
            name, {"holder": holder, "superseded_by": None if superseded_by == plan.image else superseded_by}
        )
        try:
            yield
        finally:
            record = _read(name)
            if (record.get("holder") or {}).get("flow_run_id") == holder["flow_run_id"]:
                _write(name, {**record, "holder": None})
