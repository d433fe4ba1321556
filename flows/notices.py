"""canaryflow's events in Prefect: what a rollout tells the world, for automations to act on.

A rollout run emits ``canaryflow.rollout.<what>`` events (`ROLLOUT_EVENTS`): started,
waiting-for-approval, promoted, rolled-back, aborted, superseded. Their resource is the rollout
(``canaryflow.rollout.<rollout id>``, named by the rollout id, labelled with target and image);
Prefect relates them to the run, its flow and deployment. The payload says what a person needs
in one message: ``headline`` (one line) and ``target``, ``image``, ``step``, ``weight``,
``reason``, ``triggered_by``, ``run_url`` (the run in the Prefect UI).
A run that fails or crashes needs no event of ours: Prefect's own
``prefect.flow-run.Failed`` / ``Crashed`` say it. The notification automations of
`flows.notifications` listen to both.

Emitting never stops a rollout: without a Prefect API that takes events the call does nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prefect.events import emit_event
from prefect.settings import get_current_settings

from canaryflow.plan import RolloutPlan
from canaryflow.status import RolloutStatus

__all__ = ["ROLLOUT_EVENTS", "announce"]

#: The events of a rollout run, by the word used in notifications specs.
ROLLOUT_EVENTS = {
    "started": "canaryflow.rollout.started",
    "waiting-for-approval": "canaryflow.rollout.waiting-for-approval",
    "promoted": "canaryflow.rollout.promoted",
    "rolled-back": "canaryflow.rollout.rolled-back",
    "aborted": "canaryflow.rollout.aborted",
    "superseded": "canaryflow.rollout.superseded",
}


def _headline(what: str, plan: RolloutPlan, status: RolloutStatus, reason: str | None) -> str:
    where = f"{plan.rollout_id} of {plan.image} to {plan.target}"
    if what == "started":
        return f"{where}: started ({len(plan.spec.steps)} steps, by {plan.request.triggered_by})"
    if what == "waiting-for-approval":
        why = f" ({reason})" if reason else ""
        return f"{where}: step {status.step} waits for a person at {status.weight}% canary weight{why}"
    return f"{where}: {what}" + (f": {reason}" if reason else "")


def run_url(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, from this process's settings (``PREFECT_UI_URL``, or the
    API's address without ``/api``), or None without a run or a UI address."""
    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui and flow_run_id else None


def announce(what: str, plan: RolloutPlan, status: RolloutStatus, reason: str | None = None) -> None:
    """Emit the event `what` (a key of `ROLLOUT_EVENTS`) of the rollout `plan` as it stands
    (`status`), with `reason` for an ending."""
    payload: dict[str, Any] = {
        "headline": _headline(what, plan, status, reason),
        "rollout_id": plan.rollout_id,
        "target": str(plan.target),
        "image": plan.image,
        "step": status.step,
        "steps": status.steps,
        "weight": status.weight,
        "reason": reason,
        "triggered_by": plan.request.triggered_by,
        "run_url": run_url(status.flow_run_id),
    }
    resource = {
        "prefect.resource.id": f"canaryflow.rollout.{plan.rollout_id}",
        "prefect.resource.name": plan.rollout_id,
        "canaryflow.target": str(plan.target),
        "canaryflow.image": plan.image,
    }
    event = ROLLOUT_EVENTS[what]
    with contextlib.suppress(Exception):  # an event lost is a message lost, never a rollout stopped
        emit_event(event, resource=resource, payload=payload)
