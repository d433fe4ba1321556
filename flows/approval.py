"""Manual approval: a paused flow run with a typed form, and the same from the terminal.

``pause: {approval: true}`` pauses the flow run with `Approval` as its input: the Prefect UI shows a
form (approve or reject, a reason, and who decides) under a description of what is decided (the
image, the split in place, the evidence so far, the deadline: `wait_for_approval`'s `context`), and
the server validates what is sent. ``canaryflow promote``
finds the rollout's paused flow run by its name (the rollout id) and resumes it with the same input;
``canaryflow abort`` finds the running or paused run (`active_run_of`) and, for a paused one, does
the same with a rejection after recording the abort (`flows.control.abort`). A pause that times
out is a rejection: it never promotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Running
from pydantic import Field

from canaryflow.errors import InputError
from canaryflow.status import RolloutStatus

__all__ = [
    "Answer",
    "Approval",
    "active_run_of",
    "answer_paused_rollout",
    "approval_context",
    "held_key",
    "newest_run_of",
    "paused_run_of",
    "wait_for_approval",
]


class Approval(RunInput):
    """Go on with the rollout, or reject it (the canary is rolled back)."""

    decision: Literal["approve", "reject"] = Field(
        description="approve: go on with the rollout; reject: roll the canary back."
    )
    reason: str = Field(default="", max_length=500, description="Why (recorded with the decision).")
    by: str = Field(default="", max_length=200, description="Who decides (recorded with the decision).")


@dataclass(frozen=True)
class Answer:
    """What came of a pause: approved, rejected (with the reason) or timed out."""

    approved: bool
    reason: str
    #: Who answered, as the form or the command line said ("" when nobody said).
    by: str = ""

    def words(self) -> str:
        """E.g. ``approved by ana@laptop: looks good`` or ``not approved: checkout is slow``."""
        who = f" by {self.by}" if self.by else ""
        return f"{'approved' if self.approved else 'not approved'}{who}: {self.reason}"


def wait_for_approval(
    timeout_seconds: float, *, key: str, what: str, poll_seconds: int, context: str | None = None
) -> Answer:
    """Pause the current flow run until somebody answers, at most `timeout_seconds`.

    `key` names this pause among the run's pauses (lowercase letters, digits and dashes);
    `poll_seconds` is how often the paused run checks whether it was resumed; `context` (Markdown)
    is shown above the form in the Prefect UI.
    """
    form = Approval if context is None else Approval.with_initial_data(description=context)
    try:
        approval = pause_flow_run(
            wait_for_input=form,
            timeout=max(1, round(timeout_seconds)),
            poll_interval=poll_seconds,
            key=key,
        )
    except FlowPauseTimeout:
        _running_again()  # the run rolls back next; the server still has it paused
        return Answer(approved=False, reason=f"nobody approved {what} within {timeout_seconds:g} s")
    if approval.decision == "approve":
        return Answer(approved=True, reason=approval.reason or "approved", by=approval.by)
    return Answer(approved=False, reason=approval.reason or "rejected", by=approval.by)


def approval_context(status: RolloutStatus, *, question: str, deadline: datetime) -> str:
    """What the person deciding sees above the form (Markdown): the question, the target and
    image, the split in place, the judge's latest verdict, the deadline and the commands."""
    verdict = status.verdict
    evidence = (
        f"{verdict.decision} at interval {verdict.interval}: {verdict.reason}"
        if verdict is not None
        else "no analysis yet"
    )
    split = f"{status.weight} % requested, {status.effective_weight:.1f} % of the Ready pods"
    rows = [
        ("target", f"`{status.target}`"),
        ("image", f"`{status.image}`"),
        ("step", f"{status.step or 0} of {status.steps}"),
        ("canary", split),
        ("evidence so far", evidence),
        ("deadline", f"{deadline:%Y-%m-%d %H:%M} UTC: rejected (rolled back) if nobody answers"),
        ("triggered by", status.triggered_by),
    ]
    table = "\n".join(f"| {name} | {value.replace('|', '/')} |" for name, value in rows)
    rid = status.rollout_id
    return (
        f"**{question}**\n\n| | |\n|---|---|\n{table}\n\nFrom a terminal: "
        f"`canaryflow promote {rid} --reason WHY` or `canaryflow abort {rid} --reason WHY`."
    )


def _running_again() -> None:
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Running(message="approval timed out"), force=True)


def paused_run_of(rollout_id: str) -> UUID | None:
    """The id of the paused flow run of `rollout_id` (its flow run name), if one waits."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[rollout_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
            ),
            limit=1,
        )
    return runs[0].id if runs else None


def active_run_of(rollout_id: str) -> tuple[UUID, bool]:
    """The newest running or paused flow run of `rollout_id`, and whether it is paused.

    Raises
    ------
    InputError
        No flow run of that rollout is running or paused: the message says whether it has not
        started yet, is being cancelled, has ended or never ran.
    """
    active = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[rollout_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=active)),
            ),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    if not runs:
        raise InputError(_not_active(rollout_id))
    run = runs[0]
    return run.id, run.state is not None and run.state.is_paused()


def _not_active(rollout_id: str) -> str:
    """Why `rollout_id` cannot be steered: its run has not started (or is being cancelled), it has
    ended, or no rollout of that id ever ran."""
    newest = newest_run_of(rollout_id)
    if newest is None:
        return (
            f"no running or paused rollout {rollout_id!r}: none of that id has run "
            "(`canaryflow status` lists the rollouts and their phases)"
        )
    state = newest.state
    how = f" ({_words(state.name)})" if state is not None and state.name else ""
    if state is not None and state.type == StateType.CANCELLING:
        return f"no running or paused rollout {rollout_id!r}: it is being cancelled"
    if state is not None and not state.is_final():  # scheduled, late, awaiting retry
        return (
            f"no running or paused rollout {rollout_id!r}: its run is not running now{how}; "
            f"try again once it runs (`canaryflow status {rollout_id}` shows its phase)"
        )
    return (
        f"no running or paused rollout {rollout_id!r}: it has ended{how}; "
        f"`canaryflow status {rollout_id}` shows how"
    )


def _words(state_name: str) -> str:
    """A Prefect state's name as words: ``RolledBack`` -> ``rolled back``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", state_name).lower()


def newest_run_of(rollout_id: str) -> FlowRun | None:
    """The newest flow run named `rollout_id`, in any state (None when there is none)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[rollout_id])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    return runs[0] if runs else None


def held_key(run_id: UUID) -> str | None:
    """The key of the pause the flow run `run_id` waits in, when it is a hold by ``canaryflow
    pause`` (``hold-...``); None for any other state or pause."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    key = state.state_details.pause_key if state is not None and state.is_paused() else None
    return key if key and key.startswith("hold-") else None


def answer_paused_rollout(
    rollout_id: str, decision: Literal["approve", "reject"], reason: str = "", *, by: str = ""
) -> UUID:
    """Resume the paused run of `rollout_id` with `decision` (`by`: who); InputError when none waits."""
    run_id = paused_run_of(rollout_id)
    if run_id is None:
        raise InputError(
            f"no paused rollout {rollout_id!r} is waiting for approval "
            "(`canaryflow status` lists the rollouts and their phases)"
        )
    if decision == "approve" and held_key(run_id) is not None:  # a hold is not an approval
        raise InputError(
            f"rollout {rollout_id!r} is held by `canaryflow pause`, not waiting for approval: "
            f"`canaryflow resume {rollout_id}` lets it go on"
        )
    resume_flow_run(run_id, run_input={"decision": decision, "reason": reason, "by": by})
    return run_id
