"""Cell runs whose process died with its machine: marked Crashed when their heartbeats stop.

A release waits on its cells' runs (`canaryflow.triggers.prefect_cells`). A worker whose machine
dies takes its flow-run processes with it, and nothing tells Prefect: the run stays ``Running``
and the release would wait on it for ever. A run's process sends the event
``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (180 unless
set, at least 30) while it lives. `apply_unresponsive_automation` makes the automation Prefect's
guide to zombie flows describes, scoped to canaryflow's cell runs (the runs tagged
``canaryflow-release:<id>``): a run that sent a heartbeat and then, for `MISSED_HEARTBEATS`
heartbeat intervals, neither another one nor an end, is set ``Crashed``. The release then sees a
crashed cell: it converges the cell with a cleanup run on the cell's pool (which waits for a
worker there) and applies its ``onFailure``.

The automation is one per Prefect server (`AUTOMATION`), made or updated in place by every
release that starts, for the heartbeat interval of the release's own settings, which the release
also gives its cell runs (`canaryflow.triggers.prefect_cells.run_env`). Its window never shrinks:
runs of another release with a longer interval may still be going. A run that never sent a
heartbeat is never marked, and a run that ended is not either (Prefect refuses a Crashed state
after a final one, and the automation does not force it). What it cannot tell
apart: a run whose process lives but whose heartbeats do not reach the Prefect server for that
long (a network partition) is set Crashed too, and its cleanup converges the target while the
process may still run: the cleanup takes the target's lease over (its holder's run ended) and
fences the target, so the process's later writes are refused (the README's lock of one
rollout per target).
"""

from __future__ import annotations

import math
from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from canaryflow.errors import TriggerUnavailableError

__all__ = [
    "AUTOMATION",
    "ENDS",
    "MISSED_HEARTBEATS",
    "apply_unresponsive_automation",
    "unresponsive_automation",
]

#: The automation's name on the Prefect server.
AUTOMATION = "canaryflow-crash-unresponsive-cell-runs"
#: How many heartbeat intervals without a heartbeat (or an end) make a cell run Crashed.
MISSED_HEARTBEATS = 3
#: Prefect's least heartbeat interval, in seconds (a smaller setting is raised to it).
MIN_HEARTBEAT_SECONDS = 30
#: The names of the states a cell run ends in (Prefect's, and the rollout flow's ``RolledBack`` and
#: ``Aborted``, `flows.rollout.NOT_PROMOTED_STATES`): after one of these no heartbeat comes, and
#: none is missed.
ENDS = ("Completed", "Failed", "Cancelled", "Crashed", "RolledBack", "Aborted")
#: What the run's state says.
MESSAGE = (
    "canaryflow: no heartbeat from the flow run's process for {seconds} s (its worker's machine is gone?)"
)


def unresponsive_automation(heartbeat_seconds: int) -> AutomationCore:
    """The automation for runs that send a heartbeat every `heartbeat_seconds` seconds."""
    seconds = MISSED_HEARTBEATS * max(heartbeat_seconds, MIN_HEARTBEAT_SECONDS)
    return AutomationCore(
        name=AUTOMATION,
        description=(
            "canaryflow: a release's cell run with no heartbeat for "
            f"{seconds} s is set Crashed (made by the release flow)."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{name}" for name in ENDS)},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={
                "prefect.resource.role": "tag",
                "prefect.resource.id": "prefect.tag.canaryflow-release:*",
            },
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=MESSAGE.format(seconds=seconds))],
    )


def apply_unresponsive_automation(heartbeat_seconds: int | None) -> str | None:
    """Make or update `AUTOMATION` on the Prefect API of the settings for runs that send a
    heartbeat every `heartbeat_seconds`; a line saying what it does, or None when
    `heartbeat_seconds` is None (no heartbeats here: nothing made or changed). The automation's
    window never shrinks: one already there with a longer window (made for runs with a longer
    heartbeat interval, which may still be going) is kept as it is.

    Raises
    ------
    TriggerUnavailableError
        The Prefect API did not answer or refused the automation.
    """
    if heartbeat_seconds is None:
        return None
    automation = unresponsive_automation(heartbeat_seconds)
    within = _window(automation)
    try:
        with get_client(sync_client=True) as client:
            existing = client.read_automations_by_name(AUTOMATION)
            if existing:
                kept = _window(existing[0])
                if kept > within:
                    automation, within = unresponsive_automation(math.ceil(kept / MISSED_HEARTBEATS)), kept
                client.update_automation(existing[0].id, automation)
                for extra in existing[1:]:
                    client.delete_automation(extra.id)
            else:
                client.create_automation(automation)
    except Exception as exc:  # the API's answer or its absence, in one line
        raise TriggerUnavailableError(
            f"the Prefect API did not take the automation {AUTOMATION}: {exc}"
        ) from exc
    return f"a cell run without a heartbeat for {within:g} s is set Crashed (automation {AUTOMATION})"


def _window(automation: AutomationCore) -> float:
    """How long the automation waits for a heartbeat, in seconds (0 for another kind of trigger)."""
    trigger = automation.trigger
    return trigger.within.total_seconds() if isinstance(trigger, EventTrigger) else 0.0
