"""The cleanup flow: converge one target to a safe state after a rollout run died.

    take the target's slot (so that no live rollout is touched; a dead holder's is released)
    read the rollout state from the canary's annotations
    nothing there: nothing to do
    promoting: finish the promotion (the decision was made; the stable may already run the canary)
    progressing or rolling-back: roll back (the stable keeps, or gets back, its image)
    say how the rollout ended in its report, its history record and its run's labels

It is what the crash automation of ``deployments/prefect.yaml`` runs when a rollout run ends
Crashed (the automation passes the crashed run's spec and rollout id), and what a person runs from
the Prefect UI for a target given by name. Running it again changes nothing: every cluster write
is idempotent and a clean target is left as it is. With ``rollout_id`` set, a target that another
rollout holds is left alone; that rollout (live, or its next run) converges it itself.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, suppress
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from prefect import Flow, flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field, model_validator

from canaryflow.cluster.port import RolloutId, RolloutState, TargetRef
from canaryflow.errors import CanaryflowError
from canaryflow.history import HistoryRecord, append_history
from canaryflow.reports import STATUS_FILE, read_status, write_status
from canaryflow.requests import CellTarget
from canaryflow.spec import load_spec
from canaryflow.status import RolloutPhase, RolloutResult
from flows.records import ended_labels, label_run, started_labels
from flows.reporting import ended_condition
from flows.runtime import Runtime, runtime_for_run, runtime_from_env
from flows.slots import cleanup_slot
from flows.steps import promote_canary, read_target, roll_back_canary, with_retries

__all__ = [
    "CleanupAction",
    "CleanupOutcome",
    "CleanupRequest",
    "cleanup",
    "converge_when_cancelled",
    "next_action",
    "report_end",
]

CleanupAction = Literal["nothing", "promote", "roll-back", "leave"]
_NAMED = ("namespace", "deployment", "container", "service")


class CleanupRequest(BaseModel):
    """The target to clean up: the one of a rollout spec, or one given by name (not both)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str | None = Field(
        default=None, description="Path of a rollout spec (YAML) whose target to clean up."
    )
    namespace: str | None = Field(default=None, description="Namespace of the target (without a spec).")
    deployment: str | None = Field(default=None, description="The stable Deployment (without a spec).")
    container: str | None = Field(default=None, description="The container whose image changes.")
    service: str | None = Field(default=None, description="The Service in front of the target.")
    rollout_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        description="Only clean up this rollout; leave the target alone if another one holds it.",
    )
    cell: CellTarget | None = Field(
        default=None,
        description="The release cell of the rollout (with a spec): the cell's target and its slot.",
    )
    progress_deadline_seconds: int = Field(
        default=600, ge=1, le=24 * 3600, description="How long pods may take to be Ready (without a spec)."
    )
    slot_timeout_seconds: int = Field(
        default=3600,
        ge=0,
        le=24 * 3600,
        description="How long to wait for the target's slot; a run holding it longer converges it itself.",
    )

    @model_validator(mode="after")
    def _spec_or_names(self) -> CleanupRequest:
        named = [getattr(self, name) for name in _NAMED]
        if self.spec is not None and any(value is not None for value in named):
            raise ValueError("give either a spec or namespace, deployment, container and service, not both")
        if self.spec is None and any(value is None for value in named):
            missing = ", ".join(name for name in _NAMED if getattr(self, name) is None)
            raise ValueError(f"without a spec, name the target in full (missing: {missing})")
        if self.spec is None and self.cell is not None:
            raise ValueError("a cell needs the spec whose target it overrides")
        return self

    def resolve(self) -> tuple[TargetRef, timedelta]:
        """The target and the progress deadline (the spec's when there is a spec)."""
        if self.spec is None:
            namespace, deployment, container, service = (str(getattr(self, name)) for name in _NAMED)
            target = TargetRef(
                namespace=namespace, deployment=deployment, container=container, service=service
            )
            return target, timedelta(seconds=self.progress_deadline_seconds)
        spec = load_spec(self.spec)
        t = spec.target if self.cell is None else spec.target.model_copy(update=self.cell.overrides())
        target = TargetRef(
            namespace=t.namespace, deployment=t.deployment, container=t.container, service=t.service
        )
        return target, spec.spec.progress_deadline


class CleanupOutcome(BaseModel):
    """What the cleanup did to the target (``action``) and to which rollout, in words."""

    model_config = ConfigDict(frozen=True)

    target: str
    action: CleanupAction
    rollout_id: str | None
    reason: str


def next_action(state: RolloutState | None, *, only: str | None = None) -> CleanupAction:
    """What converges a target whose canary carries `state` (pure; `only`: the rollout to clean)."""
    if state is None:
        return "nothing"
    if only is not None and state.rollout_id != only:
        return "leave"
    return "promote" if state.phase == RolloutPhase.PROMOTING else "roll-back"


def run_name() -> str:
    raw: Any = flow_run.parameters.get("target")
    try:
        request = raw if isinstance(raw, CleanupRequest) else CleanupRequest.model_validate(raw)
        target, _ = request.resolve()
    except (ValueError, CanaryflowError):
        return "cleanup"
    cell = "" if request.cell is None else f"-{request.cell.name}"
    return f"cleanup-{target.namespace}-{target.deployment}{cell}"


@flow(name="cleanup", flow_run_name=run_name, persist_result=False)
def cleanup(target: CleanupRequest) -> CleanupOutcome:
    """Converge `target` to a safe state: finish a promotion, roll back anything else left."""
    runtime = runtime_for_run()
    ref, deadline = target.resolve()
    logger = get_run_logger()
    with ExitStack() as slot:
        try:
            slot.enter_context(
                cleanup_slot(
                    ref,
                    cell=None if target.cell is None else target.cell.name,
                    timeout_seconds=target.slot_timeout_seconds,
                    lease_seconds=runtime.slot_lease_seconds,
                    cluster=runtime.cluster,
                )
            )
        except TimeoutError:
            reason = f"a live run held {ref} for {target.slot_timeout_seconds} s; it converges the target"
            logger.warning("%s", reason)
            return CleanupOutcome(target=str(ref), action="leave", rollout_id=None, reason=reason)
        return _converge(runtime, ref, deadline, only=target.rollout_id)


def _converge(runtime: Runtime, ref: TargetRef, deadline: timedelta, *, only: str | None) -> CleanupOutcome:
    logger = get_run_logger()
    cluster, delays = runtime.cluster, runtime.retry_delays
    found = with_retries(read_target, delays)(cluster, ref)
    state = found.state
    action = next_action(state, only=only)
    if state is None:
        reason = f"no rollout on {ref}: nothing to do"
        if only is not None:
            _report_gone(runtime, only, found.stable.image, f"the cleanup found no canary of it on {ref}")
    elif action == "leave":
        reason = f"{ref} is in rollout {state.rollout_id}, not {only}: left to that rollout"
        if only is not None:
            _report_gone(runtime, only, found.stable.image, f"rollout {state.rollout_id} took {ref} since")
    else:
        rollout_id = RolloutId(state.rollout_id)
        if action == "promote":
            with_retries(promote_canary, delays)(
                cluster, ref, rollout_id=rollout_id, progress_deadline=deadline
            )
            reason = f"finished the interrupted promotion of {state.canary_image}"
            ended = ended_condition("promoted", f"{rollout_id} promoted by the cleanup: {reason}")
        else:
            with_retries(roll_back_canary, delays)(
                cluster, ref, rollout_id=rollout_id, progress_deadline=deadline
            )
            reason = f"rolled back {state.canary_image} ({state.phase} at weight {state.weight}%)"
            ended = ended_condition("rolled-back", f"{rollout_id} rolled back by the cleanup: {reason}")
        cluster.set_condition(ref, ended)
        report_end(  # status and get no longer show the run as progressing; history has its end
            runtime,
            rollout_id,
            "promoted" if action == "promote" else "rolled-back",
            f"its run ended before the rollout did; the cleanup {reason}",
        )
    logger.info("%s: %s", ref, reason)
    return CleanupOutcome(
        target=str(ref), action=action, rollout_id=state.rollout_id if state else None, reason=reason
    )


def converge_when_cancelled(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """The rollout flow's ``on_cancellation`` hook: converge the cancelled run's target now.

    A Cancel on a run that a worker executes stops its process (SIGTERM, then a kill after the
    grace period); Prefect runs this hook first. It converges the target the way `cleanup` does,
    for this rollout only (`next_action` with the run's name, its rollout id), with plain adapter
    calls: the cancelled run still holds the target's slot and can no longer start tasks. A run
    in this process (``canaryflow rollout``) never gets here: it sees the Cancel at its next
    checkpoint (`flows.stops`) and rolls back itself.
    """
    cancelled = flow_run
    logger = logging.getLogger("canaryflow.cleanup")
    raw = (cancelled.parameters or {}).get("request") or {}
    spec = raw.get("spec") if isinstance(raw, dict) else getattr(raw, "spec", None)
    if not spec:
        logger.warning("%s was cancelled without a rollout spec: nothing to converge", cancelled.name)
        return
    cell = raw.get("cell") if isinstance(raw, dict) else getattr(raw, "cell", None)
    ref, deadline = CleanupRequest(spec=str(spec), rollout_id=cancelled.name, cell=cell).resolve()
    runtime = runtime_from_env(os.environ)  # a worker's run: its environment names the cluster
    status = runtime.cluster.read(ref)
    action = next_action(status.state, only=cancelled.name)
    if status.state is None or action == "leave":
        logger.info("%s was cancelled; %s carries no canary of it: nothing to converge", cancelled.name, ref)
        _report_cancel(runtime, cancelled, "cancelled in Prefect")
        return
    rollout_id = RolloutId(status.state.rollout_id)
    if action == "promote":
        runtime.cluster.promote(ref, rollout_id=rollout_id, progress_deadline=deadline)
        reason = "cancelled in Prefect during its promotion, which finished"
        runtime.cluster.set_condition(ref, ended_condition("promoted", f"{rollout_id}: {reason}"))
        _report_cancel(runtime, cancelled, reason, True)
    else:
        runtime.cluster.rollback(ref, rollout_id=rollout_id, progress_deadline=deadline)
        reason = "cancelled in Prefect: rolled back"
        runtime.cluster.set_condition(ref, ended_condition("aborted", f"{rollout_id}: {reason}"))
        _report_cancel(runtime, cancelled, reason)
    logger.warning("%s was cancelled in Prefect: %s %s on %s", cancelled.name, action, rollout_id, ref)


def _report_cancel(runtime: Runtime, cancelled: FlowRun, reason: str, promoted: bool = False) -> None:
    """The cancelled run's ``status.json`` and the history say how it ended (the run itself can no
    longer write them)."""
    report_end(runtime, cancelled.name, "promoted" if promoted else "aborted", reason, run=cancelled)


def _report_gone(runtime: Runtime, rollout_id: str, stable_image: str, why: str) -> None:
    """A crashed rollout whose canary is no longer on its target (its run, or a later rollout,
    removed it): its report, if still in progress, ends promoted when the stable runs its image,
    else rolled back."""
    path = runtime.reports_dir / rollout_id / STATUS_FILE
    try:
        status = read_status(path) if path.is_file() else None
    except CanaryflowError:
        return
    if status is None or status.phase.final:
        return
    result: RolloutResult = "promoted" if status.image == stable_image else "rolled-back"
    reason = f"its run ended before the rollout did; {why}, and the stable runs {stable_image}"
    report_end(runtime, rollout_id, result, reason)


def report_end(
    runtime: Runtime, rollout_id: str, result: RolloutResult, reason: str, *, run: FlowRun | None = None
) -> None:
    """Say in the rollout's ``status.json``, its history record and its run's labels how a rollout
    ended whose run could not say it (cancelled, or crashed and converged by `cleanup`). Best
    effort, as the run's own report is: a report already final (the run said it) is left as it
    is, and one that cannot be read is a warning. `run`: the ended run, else the one the report
    names (its start time goes into the history)."""
    path = runtime.reports_dir / rollout_id / STATUS_FILE
    if not path.is_file():
        if run is not None:
            label_run(ended_labels(result, reason), run.id)
        return
    try:
        status = read_status(path)
    except CanaryflowError as exc:
        logging.getLogger("canaryflow.cleanup").warning("%s: not updated: %s", path, exc.summary())
        return
    if status.phase.final:
        return
    run = run or _flow_run(status.flow_run_id)
    now = runtime.clock.now()
    write_status(
        path.parent,
        status.model_copy(
            update={"phase": RolloutPhase(result), "result": result, "reason": reason, "updated_at": now}
        ),
    )
    record = HistoryRecord(
        rollout_id=status.rollout_id,
        target=status.target,
        image=status.image,
        result=result,
        cell=status.cell,
        reason=reason,
        triggered_by=status.triggered_by,
        started_at=(run.start_time if run is not None else None) or now,
        finished_at=now,
        flow_run_id=str(run.id) if run is not None else status.flow_run_id,
    )
    append_history(runtime.reports_dir, record)
    if run is not None:
        started = started_labels(status.target, status.image, status.triggered_by)
        label_run(started | ended_labels(result, reason), run.id)


def _flow_run(run_id: str | None) -> FlowRun | None:
    """The flow run `run_id` as the Prefect API has it, or None (best effort: the history then
    takes the cleanup's time as the start)."""
    if run_id is None:
        return None
    with suppress(Exception), get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))
    return None
