"""The rollout flow: a canary from start to promotion or rollback, the way the runbook says.

    take the target's slot (a newer image supersedes the running rollout)
    prepare: read the target; resume our own rollout, or clean up one left behind
    for each step: setWeight | pause (a duration, or until approved) | analyze
    promote when every step passed with evidence; otherwise roll back

Anything that stops the rollout (a rollback verdict, a rejection, an approval that timed out, an
inconclusive analysis under ``onInconclusive: rollback``, a Kubernetes error after its retries)
rolls the canary back; a supersede also rolls back and ends the run Cancelled. The cluster holds
the truth (annotations on the canary), so a run killed at any point is resumed or cleaned up by the
next run for the target. Adapters come from the current `flows.runtime.Runtime`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Cancelled

from canaryflow.errors import CanaryflowError
from canaryflow.requests import RolloutRequest
from canaryflow.spec import Pause
from flows.approval import wait_for_approval
from flows.judging import analyze
from flows.plan import RolloutOutcome, RolloutPlan, plan_rollout
from flows.reporting import Reporter
from flows.runtime import current_runtime
from flows.slots import Superseded, check_superseded, request_target, target_slot
from flows.steps import hold, promote_canary, read_target, roll_back_canary, set_weight, with_retries

__all__ = ["RolloutStopped", "rollout", "run_name"]


class RolloutStopped(Exception):  # noqa: N818 - control flow inside the flow, never escapes it
    """The rollout cannot go on; `reason` says why in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run_name() -> str:
    """The flow run's name: the rollout id (how ``canaryflow promote ROLLOUT`` finds it)."""
    raw: Any = flow_run.parameters.get("request")
    request = raw if isinstance(raw, RolloutRequest) else RolloutRequest.model_validate(raw)
    try:
        return plan_rollout(request).rollout_id
    except CanaryflowError:
        return request.rollout_id or "rollout-with-invalid-spec"


@flow(name="rollout", flow_run_name=run_name, persist_result=False)
def rollout(request: RolloutRequest) -> RolloutOutcome | State[Any]:
    """Roll out `request.image` to the target of the spec at `request.spec`, step by step."""
    plan = plan_rollout(request)
    request_target(plan)
    with target_slot(plan):
        reporter = Reporter(plan, current_runtime())
        try:
            start = prepare(plan, reporter)
            if isinstance(start, RolloutOutcome):
                return start
            evidence = walk_steps(plan, reporter, start)
        except Superseded as exc:
            roll_back(plan, reporter, str(exc), result="superseded")
            return Cancelled(message=str(exc))
        except RolloutStopped as exc:
            return roll_back(plan, reporter, exc.reason)
        except CanaryflowError as exc:
            return roll_back(plan, reporter, f"{type(exc).__name__}: {exc}")
        return promote(plan, reporter, evidence)


def prepare(plan: RolloutPlan, reporter: Reporter) -> int | RolloutOutcome:
    """Where to start: step 0, the step of our own interrupted rollout, or its finished end."""
    state = with_retries(read_target)(plan.target).state
    if state is None:
        reporter.say("%s: starting the rollout of %s to %s", plan.rollout_id, plan.image, plan.target)
        return 0
    if state.rollout_id != plan.rollout_id:
        reporter.say(
            "%s: rollout %s (%s) was left behind on %s; rolling it back first",
            plan.rollout_id, state.rollout_id, state.canary_image, plan.target,
        )  # fmt: skip
        with_retries(roll_back_canary)(
            plan.target, rollout_id=state.rollout_id, progress_deadline=plan.spec.spec.progress_deadline
        )
        return 0
    if state.phase == "promoting":
        return promote(plan, reporter, "resumed an interrupted promotion")
    if state.phase == "rolling-back":
        return roll_back(plan, reporter, "resumed an interrupted rollback")
    reporter.say("%s: resuming at step %d (weight %d%%)", plan.rollout_id, state.step + 1, state.weight)
    return state.step


def walk_steps(plan: RolloutPlan, reporter: Reporter, start: int) -> str:
    """Run the steps from `start`; return the evidence for promotion (RolloutStopped otherwise)."""
    evidence: list[str] = []
    for index in range(start, len(plan.spec.steps)):
        check_superseded(plan)
        reporter.step(index)
        step = plan.spec.steps[index]
        if step.set_weight is not None:
            apply_weight(plan, reporter, index, step.set_weight)
        elif step.pause is not None:
            evidence += pause(plan, reporter, index, step.pause)
        else:
            evidence += analysis(plan, reporter, index)
    check_superseded(plan)
    if evidence:
        return "; ".join(evidence)
    if any(step.analyze is not None for step in plan.spec.steps):
        raise RolloutStopped("no analysis showed the canary within tolerance: never promote without evidence")
    return "every step passed (the spec has no analysis)"


def apply_weight(plan: RolloutPlan, reporter: Reporter, index: int, weight: int) -> None:
    _split, status = with_retries(set_weight)(
        plan.target,
        weight,
        rollout_id=plan.rollout_id,
        image=plan.image,
        step=index,
        baseline=plan.spec.spec.baseline,
        progress_deadline=plan.spec.spec.progress_deadline,
    )
    reporter.weight(weight, status.effective_weight)


def pause(plan: RolloutPlan, reporter: Reporter, index: int, step: Pause) -> list[str]:
    if not step.approval:
        assert step.duration is not None
        hold(step.duration.total_seconds(), why=f"pause of {plan.rollout_id}")
        return []
    reporter.phase("waiting for approval")
    reporter.say("%s: waiting for approval (canaryflow promote/abort %s)", plan.rollout_id, plan.rollout_id)
    answer = wait_for_approval(
        step.approval_timeout.total_seconds(), key=f"step-{index + 1}", what=f"step {index + 1}"
    )
    check_superseded(plan)
    if not answer.approved:
        raise RolloutStopped(f"not approved: {answer.reason}")
    reporter.say("%s: approved (%s)", plan.rollout_id, answer.reason)
    return [f"approved at step {index + 1}: {answer.reason}"]


def analysis(plan: RolloutPlan, reporter: Reporter, index: int) -> list[str]:
    verdict = analyze(plan, index, reporter, checkpoint=lambda: check_superseded(plan))
    if verdict.decision == "promote":
        return [f"analysis at step {index + 1}: {verdict.reason}"]
    if verdict.decision == "inconclusive" and plan.spec.spec.failure_policy.on_inconclusive == "continue":
        reporter.say("%s: %s Going on (onInconclusive: continue).", plan.rollout_id, verdict.reason)
        return []
    return on_failure(plan, reporter, index, verdict.reason)


def on_failure(plan: RolloutPlan, reporter: Reporter, index: int, reason: str) -> list[str]:
    """``onFailure: pause`` holds the split until a person decides; ``rollback`` stops now."""
    if plan.spec.spec.failure_policy.on_failure != "pause":
        raise RolloutStopped(reason)
    reporter.say(
        "%s: %s Holding the split until a person decides (onFailure: pause).", plan.rollout_id, reason
    )
    answer = wait_for_approval(
        24 * 3600, key=f"failure-{index + 1}", what=f"step {index + 1} after: {reason}"
    )
    check_superseded(plan)
    if not answer.approved:
        raise RolloutStopped(f"{reason} Not approved: {answer.reason}")
    return [f"approved at step {index + 1} despite: {reason} ({answer.reason})"]


def promote(plan: RolloutPlan, reporter: Reporter, evidence: str) -> RolloutOutcome:
    reporter.phase("promoting")
    with_retries(promote_canary)(
        plan.target, rollout_id=plan.rollout_id, progress_deadline=plan.spec.spec.progress_deadline
    )
    reporter.weight(100, 100.0)
    return _outcome(plan, reporter, "promoted", evidence)


def roll_back(
    plan: RolloutPlan, reporter: Reporter, reason: str, *, result: str = "rolled-back"
) -> RolloutOutcome:
    reporter.phase("rolling back")
    with_retries(roll_back_canary)(
        plan.target, rollout_id=plan.rollout_id, progress_deadline=plan.spec.spec.progress_deadline
    )
    reporter.weight(0, 0.0)
    return _outcome(plan, reporter, result, reason)


def _outcome(plan: RolloutPlan, reporter: Reporter, result: Any, reason: str) -> RolloutOutcome:
    outcome = RolloutOutcome(
        rollout_id=plan.rollout_id,
        target=str(plan.target),
        image=plan.image,
        result=result,
        reason=reason,
        report=str(reporter.directory),
    )
    reporter.finished(outcome)
    return outcome
