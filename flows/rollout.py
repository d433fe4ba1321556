"""The rollout flow: a canary from start to promotion or rollback, the way the runbook says.

    preflight: the spec, the cluster, the credentials and the metrics (nothing changed if one fails)
    take the target's slot (a newer image supersedes the running rollout)
    prepare: read the target; resume our own rollout, or clean up one left behind
    for each step: setWeight | pause (a duration, or until approved) | analyze
    promote when every step passed with evidence; otherwise roll back

Anything that stops the rollout (a rollback verdict, a rejection, an approval that timed out, an
inconclusive analysis under ``onInconclusive: rollback``, a Kubernetes error after its retries,
``canaryflow abort`` at any moment) rolls the canary back, and the run ends in a failed state
named ``RolledBack`` or ``Aborted`` (`final_state`); a supersede also rolls back and ends the run
Cancelled, and so does a Cancel in Prefect. People steer a running rollout at its
checkpoints (between steps, before each analysis interval, every few seconds of a timed pause;
`checkpoint`): abort, supersede and Cancel stop it, and so does an image somebody set on the
stable meanwhile (kept; `canaryflow.cluster.drift`), ``canaryflow promote --full`` promotes now,
``canaryflow pause`` holds the split until ``canaryflow resume`` (`hold_split`). The cluster
holds the truth (annotations on the canary), so a run killed at any point is resumed or cleaned
up by the next run for the target. A run that another holder of the target's lock fenced out
(`flows.slots`) writes nothing more and ends Cancelled, the target left to that holder.

The adapters are resolved once, at the start (`flows.runtime.runtime_for_run`: injected by the
entry point, or built from a worker's environment), kept in the `Run` with the plan and the
reporter, and handed to every task (`flows.steps`) as an argument.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_client
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed

from analysis.observations import HistogramCounts, PairedObservation, RatioCounts
from analysis.verdicts import Verdict
from canaryflow.cluster.port import RolloutId, TargetStatus, Track
from canaryflow.errors import (
    BaselineLostError,
    CanaryflowError,
    CanaryLostError,
    DriftError,
    FencedError,
    NotPromoted,
    ProgressDeadlineError,
    RolloutInProgressError,
    WeightError,
)
from canaryflow.exposure import RaiseAccount, next_weight
from canaryflow.plan import RolloutOutcome, RolloutPlan, plan_rollout
from canaryflow.replicas import raisable_splits
from canaryflow.requests import RolloutRequest
from canaryflow.spec import Pause
from canaryflow.status import RolloutPhase, RolloutResult
from flows.approval import approval_context, wait_for_approval
from flows.cleanup import converge_when_cancelled
from flows.judging import analyze
from flows.reporting import Reporter
from flows.runtime import Runtime, runtime_for_run
from flows.slots import AbortRequested, Superseded, clear_request, request_target, slot_name, target_slot
from flows.steps import (
    check_before_writing,
    hold_until_asked,
    look_for_drift,
    promote_canary,
    read_target,
    record_decision,
    roll_back_canary,
    set_weight,
    with_retries,
)
from flows.stops import INTERRUPTED, CancelledInPrefect, PromoteRequested, check_stop

__all__ = [
    "HOLD_SECONDS",
    "INTERRUPTED",
    "NOT_PROMOTED_STATES",
    "RolloutStopped",
    "Run",
    "final_state",
    "outcome_of",
    "rename_refused_run",
    "rollout",
    "run_name",
]

#: How long a rollout paused by ``canaryflow pause`` holds its split before it rolls back.
HOLD_SECONDS = 24 * 3600


class RolloutStopped(Exception):  # noqa: N818 - control flow inside the flow, never escapes it
    """The rollout cannot go on; `reason` says why in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Run:
    """One run of the rollout: what it is about, what it works on, and who it tells."""

    plan: RolloutPlan
    runtime: Runtime
    reporter: Reporter
    #: What this run did once and must not do twice (``"recreated-canary"``).
    done: set[str] = field(default_factory=set)

    @property
    def deadline(self) -> timedelta:
        """How long pods may take to become Ready (the spec's progress deadline)."""
        return self.plan.spec.spec.progress_deadline


def run_name() -> str:
    """The flow run's name: the rollout id (how ``canaryflow promote ROLLOUT`` finds it)."""
    raw: Any = flow_run.parameters.get("request")
    request = raw if isinstance(raw, RolloutRequest) else RolloutRequest.model_validate(raw)
    try:
        return plan_rollout(request).rollout_id
    except CanaryflowError:
        return request.rollout_id or "rollout-with-invalid-spec"


@flow(
    name="rollout",
    flow_run_name=run_name,
    persist_result=False,
    on_cancellation=[converge_when_cancelled],
)
def rollout(request: RolloutRequest) -> RolloutOutcome | State[Any]:
    """Roll out `request.image` to the target of the spec at `request.spec`, step by step."""
    runtime = runtime_for_run()
    plan = plan_rollout(request)
    try:
        with_retries(check_before_writing, runtime.retry_delays)(
            runtime.cluster, runtime.metrics, runtime.clock, plan
        )
    except CanaryflowError:
        rename_refused_run(plan.rollout_id)
        raise
    request_target(plan, runtime.cluster)
    with target_slot(plan, lease_seconds=runtime.slot_lease_seconds, cluster=runtime.cluster):
        run = Run(plan, runtime, Reporter(plan, runtime))
        try:
            start = prepare(run)
            if isinstance(start, RolloutOutcome):
                return final_state(start)
            evidence = walk_steps(run, start)
        except Superseded as exc:
            roll_back(run, str(exc), result="superseded")
            return Cancelled(message=str(exc))
        except AbortRequested as exc:
            return final_state(roll_back(run, str(exc), result="aborted"))
        except CancelledInPrefect as exc:
            roll_back(run, str(exc), result="aborted")
            return Cancelled(message=f"{exc}; the canary was rolled back")
        except PromoteRequested as exc:
            return final_state(promote(run, str(exc)))
        except RolloutStopped as exc:
            return final_state(roll_back(run, exc.reason))
        except FencedError as exc:  # another holder took the target: it is theirs to converge
            run.reporter.say("%s: %s", plan.rollout_id, exc)
            return Cancelled(message=f"{exc}: the target is left to the lock's new holder")
        except CanaryflowError as exc:
            return final_state(roll_back(run, f"{type(exc).__name__}: {exc}"))
        except KeyboardInterrupt:  # a run in a terminal: no worker, hook or automation would do this
            return final_state(roll_back(run, INTERRUPTED, result="aborted"))
        return final_state(promote(run, evidence))


#: The names of the failed states a rollout run ends in when it was not promoted.
NOT_PROMOTED_STATES = {"rolled-back": "RolledBack", "aborted": "Aborted"}


def final_state(outcome: RolloutOutcome) -> RolloutOutcome | State[Any]:
    """How the run ends in Prefect: Completed with the outcome when promoted; otherwise a Failed
    state named ``RolledBack`` or ``Aborted`` (the UI shows it as not successful) whose data is a
    `NotPromoted` carrying the outcome (`outcome_of` reads it back). The events these named states
    emit (``prefect.flow-run.RolledBack``) are not the crash automation's: the target is converged."""
    name = NOT_PROMOTED_STATES.get(outcome.result)
    if name is None:
        return outcome
    message = f"{outcome.result}: {outcome.reason}"
    return Failed(name=name, message=message, data=NotPromoted(message, outcome=outcome))


def outcome_of(state: State[Any]) -> RolloutOutcome:
    """The outcome of a finished rollout run's `state`: the promoted outcome, or the one a
    ``RolledBack`` / ``Aborted`` state carries. Raises the run's error for any other failure."""
    if state.is_failed() and state.name in NOT_PROMOTED_STATES.values():
        data = state.result(raise_on_failure=False)
        outcome = data.outcome if isinstance(data, NotPromoted) else data
    else:
        outcome = state.result()
    if not isinstance(outcome, RolloutOutcome):
        raise TypeError(f"the rollout flow returned {outcome!r}")
    return outcome


def rename_refused_run(rollout_id: str) -> None:
    """A run the preflight refused changed nothing: rename it ``<rollout id>-refused`` so that the
    rollout's name stays with the runs that did the rollout (best effort: a rename that fails
    leaves the name)."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        client.update_flow_run(UUID(str(run_id)), name=f"{rollout_id}-refused")


def prepare(run: Run) -> int | RolloutOutcome:
    """Where to start: step 0, the step of our own interrupted rollout, or its finished end."""
    plan, cluster = run.plan, run.runtime.cluster
    status = with_retries(read_target, run.runtime.retry_delays)(cluster, plan.target)
    state = status.state
    if state is None and status.canary_lost:
        run.reporter.say(
            "%s: a rollout whose canary was deleted left its marks on %s; restoring the stable first",
            plan.rollout_id, plan.target,
        )  # fmt: skip
        try:
            with_retries(roll_back_canary, run.runtime.retry_delays)(
                cluster, plan.target, rollout_id=plan.rollout_id, progress_deadline=run.deadline
            )
        except RolloutInProgressError as exc:  # the baseline left is another rollout's
            if exc.rollout_id is None:
                raise
            with_retries(roll_back_canary, run.runtime.retry_delays)(
                cluster, plan.target, rollout_id=RolloutId(exc.rollout_id), progress_deadline=run.deadline
            )
    if state is None:
        run.reporter.say("%s: starting the rollout of %s to %s", plan.rollout_id, plan.image, plan.target)
        return 0
    if state.rollout_id != plan.rollout_id:
        run.reporter.say(
            "%s: rollout %s (%s) was left behind on %s; rolling it back first",
            plan.rollout_id, state.rollout_id, state.canary_image, plan.target,
        )  # fmt: skip
        with_retries(roll_back_canary, run.runtime.retry_delays)(
            cluster, plan.target, rollout_id=state.rollout_id, progress_deadline=run.deadline
        )
        return 0
    if state.phase == RolloutPhase.PROMOTING:
        return promote(run, "resumed an interrupted promotion")
    if state.phase == RolloutPhase.ROLLING_BACK:
        return roll_back(run, "resumed an interrupted rollback")
    own = plan.spec.steps[state.step].set_weight if state.step < len(plan.spec.steps) else None
    raised = (
        f"; an analysis had raised it to {state.weight}%" if own is not None and own != state.weight else ""
    )
    weight = state.weight if own is None else own
    run.reporter.say(
        "%s: resuming at step %d (weight %d%%%s)", plan.rollout_id, state.step + 1, weight, raised
    )
    return state.step


def walk_steps(run: Run, start: int) -> str:
    """Run the steps from `start`; return the evidence for promotion (RolloutStopped otherwise)."""
    plan = run.plan
    evidence: list[str] = []
    for index in range(start, len(plan.spec.steps)):
        checkpoint(run)
        run.reporter.step(index)
        step = plan.spec.steps[index]
        if step.set_weight is not None:
            apply_weight(run, index, step.set_weight)
        elif step.pause is not None:
            evidence += pause(run, index, step.pause)
        else:
            evidence += analysis(run, index)
    checkpoint(run)
    if evidence:
        return "; ".join(evidence)
    if any(step.analyze is not None for step in plan.spec.steps):
        raise RolloutStopped("no analysis showed the canary within tolerance: never promote without evidence")
    return "every step passed (the spec has no analysis)"


def checkpoint(run: Run) -> None:
    """Stop, promote or hold here if somebody asked (`flows.stops.check_stop`); stop if somebody
    changed the target in a way the rollout must not override (`flows.steps.look_for_drift`)."""
    paused = check_stop(run.plan)
    if paused is not None:
        hold_split(run, paused)
    cluster, plan = run.runtime.cluster, run.plan
    try:
        seen = look_for_drift(cluster, plan.target, baseline=plan.spec.spec.baseline)
    except (CanaryLostError, BaselineLostError) as exc:
        recreate_track(run, "canary" if isinstance(exc, CanaryLostError) else "baseline", exc)
        return
    where = current_split(run) if seen is not None and seen.rescaled else None
    if seen is not None and where is not None:
        index, weight = where[0], raised_on(run, seen, *where)
        run.reporter.say(
            "%s: somebody scaled the stable; splitting %d%% again on its %d replicas",
            plan.rollout_id, weight, seen.capacity,
        )  # fmt: skip
        apply_weight(run, index, weight)


def raised_on(run: Run, status: TargetStatus, index: int, weight: int) -> int:
    """The weight to split the capacity of `status` at, for the split of setWeight `index` at
    `weight`: `weight`, or for an analysis's raise on a target whose HPA has room to grow the
    stable, the highest weight up to it that keeps that room (`canaryflow.replicas.raisable_splits`)."""
    own = run.plan.spec.steps[index].set_weight or 0
    if weight <= own or status.hpa_bounds is None:
        return weight
    splits = raisable_splits(
        status.capacity, own, baseline=run.plan.spec.spec.baseline, hpa_own_maximum=status.hpa_bounds[1]
    )
    return max((s.requested_weight for s in splits if s.requested_weight <= weight), default=weight)


def current_split(run: Run) -> tuple[int, int] | None:
    """The step that set the split in place and its weight (None before the first split)."""
    status = run.reporter.status
    steps = run.plan.spec.steps[: status.step or 0]  # `step` is 1-based: up to the current one
    weight_steps = [i for i, s in enumerate(steps) if s.set_weight is not None]
    if not weight_steps or status.weight <= 0:
        return None
    return weight_steps[-1], status.weight


def recreate_track(run: Run, track: Track, lost: DriftError) -> None:
    """Somebody deleted the canary or the baseline: recreate it once at the current split (a
    second deletion, or nothing to recreate, stops the rollout with `lost`)."""
    plan, where = run.plan, current_split(run)
    if f"recreated-{track}" in run.done or where is None:
        raise lost
    run.done.add(f"recreated-{track}")
    index, weight = where
    run.reporter.say(
        "%s: somebody deleted the %s; recreating it once at %d%% (deleted again, the rollout stops)",
        plan.rollout_id, track, weight,
    )  # fmt: skip
    run.runtime.cluster.announce(
        plan.target,
        f"{track.capitalize()}Recreated",
        f"{plan.rollout_id}: the {track} was deleted; recreated at {weight} %",
        warning=True,
    )
    apply_weight(run, index, weight)


def hold_split(run: Run, paused: dict[str, Any]) -> None:
    """``canaryflow pause``: hold the current split until ``canaryflow resume`` (or the Prefect UI's
    Resume), at most `HOLD_SECONDS`; an abort or a timeout rolls back."""
    plan = run.plan
    by, why = paused.get("by") or "somebody", paused.get("reason") or "paused"
    clear_request(slot_name(plan.target, plan.cell), "pause", paused)
    run.reporter.phase(RolloutPhase.PAUSED)
    before = run.reporter.status.next
    run.reporter.next(  # what ``status`` and ``get`` show while held, not the judge's last line
        f"paused by {by} ({why}): the split holds until canaryflow resume {plan.rollout_id}"
        f" (or abort); rolled back if neither comes within {HOLD_SECONDS // 3600} h"
    )
    run.reporter.say(
        "%s: paused by %s (%s); the split holds until `canaryflow resume %s`",
        plan.rollout_id, by, why, plan.rollout_id,
    )  # fmt: skip
    answer = wait_for_approval(
        HOLD_SECONDS,
        key="hold-" + re.sub(r"[^0-9]", "", str(paused.get("at") or "")),
        what=f"the rollout paused by {by}",
        poll_seconds=run.runtime.approval_poll_seconds,
    )
    checkpoint(run)
    if not answer.approved:
        raise RolloutStopped(f"paused by {by} ({why}) and not resumed: {answer.reason}")
    run.reporter.phase(RolloutPhase.PROGRESSING)
    run.reporter.next(before)  # what the step was doing when it was paused
    run.reporter.say("%s: resumed (%s)", plan.rollout_id, answer.reason)


def apply_weight(run: Run, index: int, weight: int) -> None:
    plan = run.plan
    _split, status = with_retries(set_weight, run.runtime.retry_delays)(
        run.runtime.cluster,
        run.runtime.clock,
        plan.target,
        weight,
        rollout_id=plan.rollout_id,
        image=plan.image,
        step=index,
        baseline=plan.spec.spec.baseline,
        progress_deadline=run.deadline,
        outage_tolerance=plan.spec.spec.outage_tolerance,
    )
    run.reporter.weight(weight, status.effective_weight, status)


def _after(plan: RolloutPlan, index: int) -> str:
    """What follows step `index`: the next step, or the promotion."""
    if index + 1 < len(plan.spec.steps):
        return plan.describe_step(index + 1)
    return "the promotion"


def pause(run: Run, index: int, step: Pause) -> list[str]:
    plan = run.plan
    if not step.approval:
        assert step.duration is not None
        left = step.duration.total_seconds()
        run.reporter.next(f"the pause of step {index + 1} ends, then {_after(plan, index)}", at=left)
        while left > 0:  # a `canaryflow pause` asked meanwhile holds the split here, then the rest
            left = hold_until_asked(
                run.runtime.clock,
                left,
                why=f"pause of {plan.rollout_id}",
                asked=lambda: check_stop(plan) is not None,
            )
            checkpoint(run)
        return []
    run.reporter.phase(RolloutPhase.WAITING_FOR_APPROVAL)
    run.reporter.waiting()
    run.reporter.say(
        "%s: waiting for approval (canaryflow promote/abort %s)", plan.rollout_id, plan.rollout_id
    )
    timeout = step.approval_timeout.total_seconds()
    run.reporter.next(
        f"a person approves (canaryflow promote {plan.rollout_id}) or rejects (canaryflow abort "
        f"{plan.rollout_id}) step {index + 1}, else it times out",
        at=timeout,
    )
    answer = wait_for_approval(
        timeout,
        key=f"step-{index + 1}",
        what=f"step {index + 1}",
        poll_seconds=run.runtime.approval_poll_seconds,
        context=approval_context(
            run.reporter.status,
            question=f"Go on with rollout {plan.rollout_id} after step {index + 1}?",
            deadline=run.runtime.clock.now() + timedelta(seconds=timeout),
        ),
    )
    checkpoint(run)
    if not answer.approved:
        raise RolloutStopped(answer.words())
    run.reporter.say("%s: %s", plan.rollout_id, answer.words())
    return [f"step {index + 1} {answer.words()}"]


def analysis(run: Run, index: int) -> list[str]:
    plan = run.plan
    before = run.reporter.status.weight
    account = RaiseAccount(base=_own_weight(run, index))
    verdict = analyze(
        plan,
        run.runtime,
        index,
        reporter=run.reporter,
        checkpoint=lambda: checkpoint(run),
        decided=lambda verdict: decide_early(run, verdict),
        undecided=lambda verdict, observed: expose(run, index, verdict, observed, account),
    )
    if verdict.decision == "promote":
        return [f"analysis at step {index + 1}: {verdict.reason.rstrip('.')}"]
    policy = plan.spec.spec.failure_policy
    if verdict.decision == "inconclusive" and policy.on_inconclusive == "continue":
        lower_after_raise(run, before)
        run.reporter.say("%s: %s Going on (onInconclusive: continue).", plan.rollout_id, verdict.reason)
        return []
    if policy.on_failure == "pause":
        lower_after_raise(run, before)  # a held split is the one the steps set, not a raise
    return on_failure(run, index, verdict.reason)


def _own_weight(run: Run, index: int) -> float:
    """The analyze step's own effective weight, which its risk budget does not account for: the
    weight now, unless an earlier step's raise is still in place (then the last setWeight's)."""
    status = run.reporter.status
    own = next(
        (s.set_weight for s in reversed(run.plan.spec.steps[:index]) if s.set_weight is not None), None
    )
    if own is None or status.weight == own:
        return status.effective_weight
    return float(own)


def expose(
    run: Run,
    index: int,
    verdict: Verdict,
    observed: dict[str, PairedObservation | None],
    account: RaiseAccount,
) -> None:
    """An analyze step with ``maxWeight`` raises the canary's weight when its analysis would not
    decide in time at the traffic seen, within its risk budget (`canaryflow.exposure`; `account`
    keeps the canary's traffic served above the step's own weight, every interval, each count over
    the intervals it covers: its ``span``), to the
    highest effective weight not above the one chosen among the splits of whole weights (each
    `plan_split`'s: the fewest pods within half a point of the closest, so a raise may land up to
    about a point below the closest split; with an HPA the step's own split leaves room to grow
    the stable, only splits that leave it room too, `canaryflow.replicas.raisable_splits`, and
    `raised_on` keeps it when the grown target is split again), on an interval where every metric
    had data. The split
    is recorded as the step's last setWeight's (a resumed run starts again at that setWeight's own
    weight, with a new account: the judge's state that justified the raise is gone). A pause or a
    stop asked meanwhile comes first; a raise that does not become ready in time restores the
    weight before it and raises no more."""
    plan, step = run.plan, run.plan.analyze_step(index)
    if step.max_weight is None:
        return
    now = run.reporter.status.effective_weight
    spans = {name: pair.span for name, pair in observed.items() if pair is not None}
    account.record({name: _canary_count(pair) for name, pair in observed.items()}, now, spans=spans)
    if any(pair is None for pair in observed.values()):
        return  # no raise on stale evidence
    where = current_split(run)
    if where is None or "exposure-stopped" in run.done:
        return
    if check_stop(plan) is not None:
        return  # a pause waits: the next checkpoint holds the split as it is
    base, _weight = where
    exposure = next_weight(
        verdict, weight=now, max_weight=step.max_weight, risk_budget=step.risk_budget, account=account
    )
    if exposure is None:
        return
    status = with_retries(read_target, run.runtime.retry_delays)(run.runtime.cluster, plan.target)
    baseline, own = plan.spec.spec.baseline, plan.spec.steps[base].set_weight or 0
    hpa_max = None if status.hpa_bounds is None else status.hpa_bounds[1]
    splits = raisable_splits(status.capacity, own, baseline=baseline, hpa_own_maximum=hpa_max)
    effective = {s.requested_weight: s.effective_weight for s in splits}
    fitting = [w for w, e in effective.items() if now < e <= exposure.weight]
    if not fitting:
        unheld = (
            []
            if hpa_max is None
            else raisable_splits(status.capacity, own, baseline=baseline, hpa_own_maximum=None)
        )
        for_hpa = any(now < s.effective_weight <= exposure.weight for s in unheld)
        run.reporter.say(
            "%s: %s; but %d pods cannot split above %.1f %% and at most %d %%%s: the weight stays",
            plan.rollout_id, exposure.reason, status.capacity, now, exposure.weight,
            f" and leave the HPA (maxReplicas {hpa_max}) room to grow the stable" if for_hpa else "",
        )  # fmt: skip
        return
    before = run.reporter.status.weight
    run.reporter.say("%s: %s", plan.rollout_id, exposure.reason)
    try:
        apply_weight(run, base, max(fitting, key=lambda w: effective[w]))
    except (ProgressDeadlineError, WeightError) as exc:
        run.done.add("exposure-stopped")
        run.reporter.say(
            "%s: the raise did not hold (%s); back to %d %%, no more raises", plan.rollout_id, exc, before
        )
        apply_weight(run, base, before)


def _canary_count(pair: PairedObservation | None) -> float | None:
    """The canary's requests in an interval: a ratio's total or a histogram's count (None for
    samples and without data)."""
    canary = None if pair is None else pair.canary
    return float(canary.total) if isinstance(canary, RatioCounts | HistogramCounts) else None


def lower_after_raise(run: Run, before: int) -> None:
    """Put an analyze step's raised canary back to the weight before it, when the step ends
    without a promotion and the rollout goes on (or holds): what follows was not sized for it."""
    where = current_split(run)
    if where is not None and where[1] != before:
        run.reporter.say("%s: the analysis raised the canary; back to %d %%", run.plan.rollout_id, before)
        apply_weight(run, where[0], before)


def decide_early(run: Run, verdict: Verdict) -> None:
    """A verdict that rolls the canary back (`analysis` and `on_failure` below) is recorded in the
    cluster at once, before its artifacts are drawn: a run killed from here on is resumed into the
    rollback, not into the analysis again (the bad canary would serve another analysis meanwhile)."""
    policy = run.plan.spec.spec.failure_policy
    if verdict.decision == "promote" or policy.on_failure == "pause":
        return
    if verdict.decision == "inconclusive" and policy.on_inconclusive == "continue":
        return
    with_retries(record_decision, run.runtime.retry_delays)(
        run.runtime.cluster, run.plan.target, rollout_id=run.plan.rollout_id, phase=RolloutPhase.ROLLING_BACK
    )


def on_failure(run: Run, index: int, reason: str) -> list[str]:
    """``onFailure: pause`` holds the split until a person decides; ``rollback`` stops now."""
    plan = run.plan
    if plan.spec.spec.failure_policy.on_failure != "pause":
        raise RolloutStopped(reason)
    run.reporter.say(
        "%s: %s Holding the split until a person decides (onFailure: pause).", plan.rollout_id, reason
    )
    run.reporter.waiting(reason)
    answer = wait_for_approval(
        24 * 3600,
        key=f"failure-{index + 1}",
        what=f"step {index + 1} after: {reason}",
        poll_seconds=run.runtime.approval_poll_seconds,
        context=approval_context(
            run.reporter.status,
            question=f"Go on with rollout {plan.rollout_id} despite: {reason}",
            deadline=run.runtime.clock.now() + timedelta(hours=24),
        ),
    )
    checkpoint(run)
    if not answer.approved:
        raise RolloutStopped(f"{reason} {answer.words()[0].upper()}{answer.words()[1:]}")
    return [f"step {index + 1} {answer.words()} despite: {reason}"]


def promote(run: Run, evidence: str) -> RolloutOutcome:
    """Promote; if somebody changed the stable's image meanwhile, roll back instead and keep it."""
    run.reporter.phase(RolloutPhase.PROMOTING)
    run.reporter.next(f"promote {run.plan.image} to the whole of {run.plan.target}")
    try:
        status = with_retries(promote_canary, run.runtime.retry_delays)(
            run.runtime.cluster,
            run.plan.target,
            rollout_id=run.plan.rollout_id,
            progress_deadline=run.deadline,
        )
    except DriftError as exc:
        return roll_back(run, f"{type(exc).__name__}: {exc}")
    run.reporter.weight(100, 100.0, status)
    return _outcome(run, "promoted", evidence)


def roll_back(run: Run, reason: str, *, result: RolloutResult = "rolled-back") -> RolloutOutcome:
    run.reporter.phase(RolloutPhase.ROLLING_BACK)
    run.reporter.next(f"put {run.plan.target} back on its stable image and remove the canary")
    status = with_retries(roll_back_canary, run.runtime.retry_delays)(
        run.runtime.cluster, run.plan.target, rollout_id=run.plan.rollout_id, progress_deadline=run.deadline
    )
    run.reporter.weight(0, 0.0, status)
    return _outcome(run, result, reason)


#: The Kubernetes Event reason of each outcome (`canaryflow.cluster.port.Cluster.announce`).
_EVENT_REASONS: dict[RolloutResult, str] = {
    "promoted": "RolloutPromoted",
    "rolled-back": "RolloutRolledBack",
    "aborted": "RolloutAborted",
    "superseded": "RolloutSuperseded",
}


def _outcome(run: Run, result: RolloutResult, reason: str) -> RolloutOutcome:
    plan = run.plan
    run.runtime.cluster.announce(
        plan.target,
        _EVENT_REASONS[result],
        f"{plan.rollout_id} {result} ({plan.image}): {reason}",
        warning=result != "promoted",
    )
    outcome = RolloutOutcome(
        rollout_id=plan.rollout_id,
        target=str(plan.target),
        image=plan.image,
        result=result,
        reason=reason,
        report=str(run.reporter.directory),
    )
    run.reporter.finished(outcome)
    return outcome
