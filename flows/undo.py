"""The undo flow: take back the last promotion of one target (a release's cell), from a worker near it.

    read the rollout spec and the cell's target
    take the target's lock (refused while a rollout holds it)
    the stable back to the image it ran before the promotion, no analysis
    record who and why (on the stable, in the history)

It is what a release runs in each promoted cell it takes back (`canaryflow.triggers.prefect_cells`:
a run of ``undo/<work pool>`` with the cell's environment), and what ``canaryflow undo`` does in a
terminal (`canaryflow.undoing` is the one implementation). Running it again after it finished
changes nothing more: the stable already runs the image from before the promotion.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict

from canaryflow.cluster.port import TargetRef
from canaryflow.errors import CanaryflowError
from canaryflow.liveness import this_process
from canaryflow.requests import UndoRequest
from canaryflow.spec import RolloutSpec, load_spec
from canaryflow.undoing import undo_target
from flows.runtime import runtime_for_run

__all__ = ["UndoOutcome", "undo"]


class UndoOutcome(BaseModel):
    """What the undo did to the target: the rollout it took back (None: no promotion to undo)."""

    model_config = ConfigDict(frozen=True)

    target: str
    rollout_id: str | None
    image: str


def _target(request: UndoRequest) -> tuple[TargetRef, RolloutSpec]:
    """The target of the request (the spec's, with the cell's overrides) and its spec."""
    spec = load_spec(request.spec)
    t = spec.target if request.cell is None else spec.target.model_copy(update=request.cell.overrides())
    target = TargetRef(
        namespace=t.namespace, deployment=t.deployment, container=t.container, service=t.service
    )
    return target, spec


def run_name() -> str:
    raw = flow_run.parameters.get("request")
    try:
        request = raw if isinstance(raw, UndoRequest) else UndoRequest.model_validate(raw)
        cell = "" if request.cell is None else f"-{request.cell.name}"
        return f"undo-{_target(request)[0].deployment}{cell}"
    except (ValueError, CanaryflowError):
        return "undo"


@flow(name="undo", flow_run_name=run_name, persist_result=False)
def undo(request: UndoRequest) -> UndoOutcome:
    """Undo the last promotion of the target of `request.spec` (the cell's, for a cell)."""
    runtime = runtime_for_run()
    target, spec = _target(request)
    logger = get_run_logger()
    done = undo_target(
        runtime.cluster,
        target,
        progress_deadline=spec.spec.progress_deadline,
        note=f"by {request.by}: {request.reason}",
        identity=f"undo/{flow_run.get_id() or 'local'}",
        details={**this_process(), "image": "undo"},
        reports_dir=runtime.reports_dir,
        triggered_by=request.by,
        say=lambda line: logger.info("%s", line),
        clock=runtime.clock,
        only=request.rollout_id,
        cell=None if request.cell is None else request.cell.name,
    )
    promotion = done.promotion
    return UndoOutcome(
        target=str(target),
        rollout_id=None if promotion is None else promotion.rollout_id,
        image=done.status.stable.image,
    )
