"""What people see of a rollout while it runs: log lines in words, events, status and artifacts.

`Reporter` is the one object a rollout run tells what happened. It writes the run's log lines
(Prefect's run logger), sends events to the runtime's sink (live displays) and to Prefect
(`flows.notices`, for notifications), labels the run, when it ends, with what it rolled out
and how it ended (`flows.records`, the history in the Prefect API), shows the rollout as the
stable's ``Canary`` condition, keeps the rollout's `canaryflow.status.RolloutStatus` in
``<reports>/<rollout-id>/status.json`` (through `canaryflow.reports`, after every change) and
creates the Prefect artifacts (`flows.artifacts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.runtime import flow_run

from analysis.observations import PairedObservation
from analysis.verdicts import Verdict
from canaryflow.cluster.port import RolloutCondition, TargetStatus
from canaryflow.history import HistoryRecord, append_history
from canaryflow.plan import RolloutOutcome, RolloutPlan
from canaryflow.reports import archive_attempt, write_status
from canaryflow.status import RolloutPhase, RolloutStatus, TrackPods, VerdictReport
from flows import artifacts, notices, records
from flows.runtime import Runtime

__all__ = ["Reporter", "ended_condition"]

#: The stable's ``Canary`` condition once a rollout ends, by its result.
_CONDITIONS: dict[str, tuple[Literal["True", "False", "Unknown"], str]] = {
    "promoted": ("True", "Promoted"),
    "rolled-back": ("False", "RolledBack"),
    "aborted": ("False", "Aborted"),
    "superseded": ("False", "Superseded"),
}


def ended_condition(result: str, message: str) -> RolloutCondition:
    """The stable's ``Canary`` condition for a rollout that ended with `result` (also what the
    cleanup flow and the cancellation hook set when they end one)."""
    status, reason = _CONDITIONS[result]
    return RolloutCondition(status, reason, message)


class Reporter:
    """Logs, events, status and artifacts of one rollout (created in the flow run; one per run)."""

    def __init__(self, plan: RolloutPlan, runtime: Runtime) -> None:
        self.plan = plan
        self.runtime = runtime
        self.directory = runtime.reports_dir / plan.rollout_id
        self.directory.mkdir(parents=True, exist_ok=True)
        archive_attempt(self.directory)  # an earlier attempt that ended keeps its report
        self._key = plan.rollout_id.lower()
        self._progress: UUID | None = None
        self._table: tuple[int, UUID, list[dict[str, str]]] | None = None  # step, artifact, rows
        self._detected_at: datetime | None = None
        self.status = RolloutStatus(
            rollout_id=plan.rollout_id,
            target=str(plan.target),
            cell=plan.cell,
            container=plan.target.container,
            service=plan.target.service,
            image=plan.image,
            spec=plan.request.spec,
            triggered_by=plan.request.triggered_by,
            flow_run_id=str(flow_run.get_id() or "") or None,
            steps=len(plan.spec.steps),
        )
        self.log = get_run_logger()
        self.started_at = runtime.clock.now()  # the clock that paces the rollout
        notices.announce("started", plan, self.status)
        self._condition("Unknown", "Progressing", f"{plan.rollout_id}: rolling out {plan.image}")

    def say(self, message: str, *args: object) -> None:
        """A log line in words, and an event for live displays."""
        self.log.info(message, *args)
        self.runtime.emit(self.plan.rollout_id, "log", message=message % args if args else message)

    def step(self, index: int) -> None:
        description = self.plan.describe_step(index)
        self._update(step=index + 1, phase=RolloutPhase.PROGRESSING, step_name=description, next=None)
        self.say("%s: %s", self.plan.rollout_id, description)
        self._steps(
            100.0 * index / max(1, self.status.steps), f"step {index + 1}/{self.status.steps}: {description}"
        )
        self._condition(
            "Unknown", "Progressing", f"{self.plan.rollout_id} ({self.plan.image}): {description}"
        )

    def next(self, what: str | None, at: float | None = None) -> None:
        """What the rollout does next (``canaryflow get``), `at` seconds from now if given."""
        if what is not None and at is not None:
            when = self.runtime.clock.now() + timedelta(seconds=max(0.0, at))
            what = f"{what} at {when.strftime('%H:%M:%S')} UTC"
        self._update(next=what)

    def phase(self, phase: RolloutPhase) -> None:
        if phase == RolloutPhase.ROLLING_BACK and self._detected_at is None:
            self._detected_at = self.runtime.clock.now()  # the decision to roll back: its detection
        self._update(phase=phase)

    def waiting(self, reason: str | None = None) -> None:
        """The rollout waits for a person (an approval step, or a failure held by ``onFailure:
        pause``, with its `reason`): the event notifications send."""
        notices.announce("waiting-for-approval", self.plan, self.status, reason)
        rid = self.plan.rollout_id
        why = f" after: {reason}" if reason else ""
        self._condition(
            "Unknown",
            "WaitingForApproval",
            f"{rid} ({self.plan.image}) step {self.status.step} waits for a person{why} "
            f"(canaryflow promote {rid} / canaryflow abort {rid})",
        )

    def weight(self, requested: int, effective: float, target: TargetStatus | None = None) -> None:
        """The canary's weight changed (said in the progress artifact's description); `target`:
        the tracks as the change left them (their pods go into the status)."""
        pods = (
            self.status.pods
            if target is None
            else {t.track: TrackPods(ready=t.ready, replicas=t.replicas) for t in target.tracks}
        )
        self._update(weight=requested, effective_weight=round(effective, 1), pods=pods)
        step, steps = self.status.step, self.status.steps
        if self.status.result is None and step is not None:
            done = 100.0 * (step - 1) / max(1, steps)
            self._steps(done, f"step {step}/{steps}: canary {effective:.1f} % of the Ready pods")
        self.runtime.emit(self.plan.rollout_id, "weight", requested=requested, effective=effective)

    def interval(
        self, step: int, observed: Mapping[str, PairedObservation | None], verdict: Verdict, log: Path
    ) -> None:
        """One analysis interval: a row per metric in the analysis's one table artifact (updated in
        place, newest interval first), the verdict so far in the status."""
        ongoing = self._table if self._table is not None and self._table[0] == step else None
        rows = artifacts.interval_rows(observed=observed, verdict=verdict) + (ongoing[2] if ongoing else [])
        table = artifacts.analysis_table(
            ongoing[1] if ongoing else None,
            key=f"{self._key}-step{step + 1}-analysis",
            step=step,
            rows=rows,
            verdict=verdict,
        )
        self._table = (step, table, rows)
        self._update(verdict=VerdictReport.of(verdict), observations=str(log))
        self.say("interval %d: %s", verdict.interval, verdict.reason)
        self.runtime.emit(
            self.plan.rollout_id, "verdict", interval=verdict.interval, decision=verdict.decision
        )

    def verdict(self, step: int, verdict: Verdict, log: Path, chart: str | None = None) -> None:
        """The analysis step's final verdict as a markdown artifact."""
        artifacts.verdict_note(
            f"{self._key}-verdict",
            heading=self.plan.rollout_id,
            where=f"Target `{self.plan.target}`, image `{self.plan.image}`, step {step + 1}.",
            verdict=verdict,
            log=log,
            chart=chart,
        )

    def finished(self, outcome: RolloutOutcome) -> None:
        self._update(
            phase=RolloutPhase(outcome.result), result=outcome.result, reason=outcome.reason, next=None
        )
        append_history(
            self.runtime.reports_dir,
            HistoryRecord(
                rollout_id=outcome.rollout_id,
                target=outcome.target,
                image=outcome.image,
                result=outcome.result,
                cell=self.plan.cell,
                reason=outcome.reason,
                triggered_by=self.plan.request.triggered_by,
                started_at=self.started_at,
                finished_at=self.runtime.clock.now(),
                flow_run_id=self.status.flow_run_id,
                committed_at=self.plan.request.committed_at,
                detected_at=self._detected_at if outcome.result == "rolled-back" else None,
            ),
        )
        artifacts.outcome_note(
            f"{self._key}-outcome",
            heading=f"{outcome.rollout_id}: {outcome.result}",
            reason=outcome.reason,
            where=f"Target `{outcome.target}`, image `{outcome.image}`. Report: `{outcome.report}`.",
        )
        self.say("%s %s: %s", outcome.rollout_id, outcome.result, outcome.reason)
        notices.announce(outcome.result, self.plan, self.status, outcome.reason)
        self._steps(100.0, f"{outcome.result}: {outcome.reason}")
        detected = self._detected_at if outcome.result == "rolled-back" else None
        request = self.plan.request  # one write, when it ended (the labels merge on the server)
        started = records.started_labels(
            str(self.plan.target), self.plan.image, request.triggered_by, request.committed_at
        )
        records.label_run(started | records.ended_labels(outcome.result, outcome.reason, detected))
        said = f"{outcome.rollout_id} {outcome.result} {outcome.image}: {outcome.reason}"
        self.runtime.cluster.set_condition(self.plan.target, ended_condition(outcome.result, said))
        self.runtime.emit(self.plan.rollout_id, "finished", result=outcome.result, reason=outcome.reason)

    def _steps(self, value: float, description: str) -> None:
        """The progress artifact: how far through its steps the rollout is, in percent."""
        self._progress = artifacts.progress(
            self._progress,
            key=f"{self._key}-steps",
            value=value,
            description=f"{self.plan.rollout_id}, {self.plan.image} to {self.plan.target}: {description}",
        )

    def _condition(self, status: Literal["True", "False", "Unknown"], reason: str, message: str) -> None:
        """The stable's ``Canary`` condition (best effort: never stops the rollout)."""
        self.runtime.cluster.set_condition(self.plan.target, RolloutCondition(status, reason, message))

    def _update(self, **changes: Any) -> None:
        self.status = self.status.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
        write_status(self.directory, self.status)
