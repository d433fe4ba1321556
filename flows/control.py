"""What the command line asks of Prefect: run a rollout in this process, resume one, answer a pause.

`run_rollout` runs the flow here (against the configured Prefect API) on the runtime the caller
built; ``--resume`` takes the rollout id and image from the annotations in the cluster.
`answer` resumes the paused flow run of a rollout with an approval or a rejection; `steer` asks a
rollout at any moment to abort, pause or promote in full (a running one at its next checkpoint,
within one analysis interval; a paused one at once), and `resume` lets a paused one go on.
`retry_request` is what ``canaryflow retry`` starts again: the request of a rollout's last run when
that run ended without a promotion, and the deployment that ran it (if any). The command line
(`canaryflow.cli`) imports this module inside its commands, so that commands which do not need
Prefect never load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run

from canaryflow.errors import InputError, NotFoundError, PermanentError, RolloutAborted
from canaryflow.plan import RolloutOutcome, plan_rollout
from canaryflow.requests import RolloutRequest, started_by_demo
from flows.approval import active_run_of, answer_paused_rollout, held_key, newest_run_of
from flows.rollout import outcome_of, rollout
from flows.runtime import Runtime, use_runtime
from flows.slots import Action, request, slot_held_by

__all__ = [
    "Retry",
    "answer",
    "flush_logs",
    "resume",
    "resume_request",
    "retry_request",
    "run_request",
    "run_rollout",
    "start_on_deployment",
    "steer",
]


def resume_request(spec: Path, runtime: Runtime) -> RolloutRequest:
    """The request that resumes the rollout recorded on the spec's target (NotFoundError if none)."""
    probe = plan_rollout(RolloutRequest(spec=str(spec), image="registry.example.com/probe:0"))
    state = runtime.cluster.read(probe.target).state
    if state is None:
        raise NotFoundError(f"no rollout to resume on {probe.target}: it carries no canaryflow annotations")
    return RolloutRequest(
        spec=str(spec), image=state.canary_image, rollout_id=state.rollout_id, triggered_by="resume"
    )


def run_rollout(spec: Path, image: str | None, *, resume: bool, runtime: Runtime) -> RolloutOutcome:
    """Run the rollout flow here on `runtime`; return its outcome (a superseded run raises
    RolloutAborted)."""
    if resume:
        request = resume_request(spec, runtime)
    elif image is None:
        raise PermanentError("give --image IMAGE (or --resume to continue an interrupted rollout)")
    else:
        request = RolloutRequest(spec=str(spec), image=image, triggered_by="canaryflow rollout")
    return run_request(request, runtime)


def run_request(request: RolloutRequest, runtime: Runtime) -> RolloutOutcome:
    """Run the rollout flow for `request` here on `runtime`; its outcome (a superseded or cancelled
    run raises RolloutAborted)."""
    with use_runtime(runtime):
        state = rollout(request, return_state=True)
    if state.is_cancelled():
        raise RolloutAborted(state.message or "cancelled")
    return outcome_of(state)


@dataclass(frozen=True)
class Retry:
    """What ``canaryflow retry`` starts again: the request (marked as a retry, with who and why),
    the flow run it repeats, how that run ended, and its deployment (None: it ran in a terminal),
    with the work queue and job variables the run had (a release's cell sets both: its run goes
    where the cell's workers are, with the cell's environment)."""

    request: RolloutRequest
    previous_run: UUID
    ended: str
    deployment_id: UUID | None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)


def retry_request(rollout_id: str, reason: str, *, by: str) -> Retry:
    """The request to start `rollout_id` again, from its newest flow run.

    Raises
    ------
    InputError
        No run of that rollout; its newest run is still going (abort it first) or was promoted
        (nothing to retry: ``canaryflow undo`` takes a promotion back); its parameters are not a
        rollout request; ``canaryflow demo`` ran it (its stack ended with the demo).
    """
    run = newest_run_of(rollout_id)
    if run is None:
        raise InputError(f"no rollout {rollout_id!r} in Prefect (`canaryflow status` lists the rollouts)")
    state = run.state
    name = (state.name if state is not None else None) or "unknown"
    if state is None or not state.is_final():
        raise InputError(
            f"rollout {rollout_id!r} is still {name.lower()} (flow run {run.id}); "
            f"`canaryflow abort {rollout_id}` stops it, then it can be retried"
        )
    if state.is_completed():
        raise InputError(
            f"rollout {rollout_id!r} was promoted (flow run {run.id}): nothing to retry; "
            "`canaryflow undo SPEC` takes a promotion back"
        )
    try:
        previous = RolloutRequest.model_validate(run.parameters.get("request"))
    except ValueError as exc:
        raise InputError(f"flow run {run.id} of {rollout_id!r} has no rollout request to repeat") from exc
    if started_by_demo(previous.triggered_by):
        raise InputError(
            f"rollout {rollout_id!r} was run by `canaryflow demo`, whose cluster, traffic and Prometheus "
            "ended with it: nothing to retry; `canaryflow demo` runs the good and the bad rollout again"
        )
    request = previous.model_copy(
        update={"triggered_by": f"retry of {rollout_id} ({name}) by {by}: {reason}", "rollout_id": rollout_id}
    )
    return Retry(
        request,
        run.id,
        name,
        run.deployment_id,
        work_queue_name=run.work_queue_name,
        job_variables=dict(run.job_variables or {}),
    )


def start_on_deployment(
    deployment_id: UUID,
    request: RolloutRequest,
    *,
    work_queue_name: str | None = None,
    job_variables: dict[str, Any] | None = None,
) -> str:
    """Create a flow run of the deployment `deployment_id` for `request` (its workers run it, from
    `work_queue_name` when given, with `job_variables` over the deployment's); its id."""
    flow_run = run_deployment(
        name=deployment_id,
        parameters={"request": request.model_dump(mode="json", exclude_none=True)},
        timeout=0,
        as_subflow=False,
        work_queue_name=work_queue_name,
        job_variables=job_variables or None,
    )
    if not isinstance(flow_run, FlowRun):  # only on an event loop, which the command line has not
        raise TypeError("start_on_deployment blocks; call it outside an event loop")
    return str(flow_run.id)


def answer(rollout_id: str, decision: Literal["approve", "reject"], reason: str, *, by: str = "") -> str:
    """Approve or reject the paused rollout (`by`: who); return its flow run id."""
    return str(answer_paused_rollout(rollout_id, decision, reason, by=by))


def steer(rollout_id: str, action: Action, reason: str, *, by: str) -> tuple[str, str]:
    """Ask the running or paused rollout `rollout_id` to `action` (abort, pause, promote in full);
    return what happened and its flow run id.

    What happened: ``"requested"`` (the run honours it at its next checkpoint, within one
    analysis interval), or for a run waiting in a pause ``"rejected"`` (abort) or ``"resumed"``
    (promote; it promotes at once).

    Raises
    ------
    InputError
        No running or paused rollout of that id; it has not taken its target yet; or a pause
        asked of a rollout that already waits.
    """
    run_id, paused = active_run_of(rollout_id)
    if paused and action == "pause":
        raise InputError(
            f"rollout {rollout_id!r} is already paused (`canaryflow status {rollout_id}` says why)"
        )
    slot = slot_held_by(str(run_id))
    if slot is None:
        raise InputError(
            f"rollout {rollout_id!r} has not taken its target yet (it waits for another rollout); "
            "try again in a moment"
        )
    request(slot, str(run_id), action, by=by, reason=reason)
    if paused:
        decision: Literal["approve", "reject"] = "reject" if action == "abort" else "approve"
        resume_flow_run(run_id, run_input={"decision": decision, "reason": f"{action} by {by}: {reason}"})
        return ("rejected" if action == "abort" else "resumed"), str(run_id)
    return "requested", str(run_id)


def resume(rollout_id: str, *, by: str) -> str:
    """Resume the rollout `rollout_id` held by ``canaryflow pause``; return its flow run id.

    Raises
    ------
    InputError
        No rollout of that id is running or paused; it runs and is not paused; or it waits for
        approval (answered with ``promote`` or ``abort``), not held by a pause.
    """
    run_id, paused = active_run_of(rollout_id)
    if not paused:
        raise InputError(
            f"rollout {rollout_id!r} is running, not paused: there is nothing to resume "
            f"(`canaryflow status {rollout_id}` shows its phase)"
        )
    if held_key(run_id) is None:
        raise InputError(
            f"rollout {rollout_id!r} is not held by `canaryflow pause` "
            "(a rollout waiting for approval is answered with promote or abort)"
        )
    resume_flow_run(run_id, run_input={"decision": "approve", "reason": f"resumed by {by}"})
    return str(run_id)


def flush_logs() -> None:
    """Send the run logs still queued to the Prefect API now (before a server that is about to be
    stopped can no longer take them)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
