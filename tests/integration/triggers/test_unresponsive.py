"""The automation that marks a release's cell runs Crashed when their heartbeats stop
(`canaryflow.triggers.unresponsive`), made on the real Prefect API (the test run's harness).

What it shows: the automation is made once and updated in place when a release applies it again
(three heartbeat intervals without a heartbeat, at least Prefect's 30 s each), and its window
only grows (runs with the longer interval may still be going); nothing is made without a
heartbeat interval; a cell run started by a release gets the release's interval; it watches only
runs tagged with a release and waits for every state a cell run ends in, the rollout flow's own
``RolledBack`` and ``Aborted`` included (a run that ended is never marked). That the server then
marks a run whose worker died is shown end to end in ``tests/e2e/test_release_faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from canaryflow.triggers.unresponsive import (
    AUTOMATION,
    apply_unresponsive_automation,
    unresponsive_automation,
)
from flows.rollout import NOT_PROMOTED_STATES


@pytest.fixture
def client(prefect_harness: Any) -> Iterator[Any]:
    from prefect.client.orchestration import get_client

    def clear() -> None:
        for automation in client.read_automations_by_name(AUTOMATION):
            client.delete_automation(automation.id)

    with get_client(sync_client=True) as client:
        clear()  # the harness's Prefect is shared: an earlier test's release may have made one
        yield client
        clear()


def test_the_automation_is_made_once_and_its_window_only_grows(client: Any) -> None:
    first = apply_unresponsive_automation(10)  # below Prefect's least interval: 30 s
    longer = apply_unresponsive_automation(60)
    shorter = apply_unresponsive_automation(30)  # runs at 60 s may still be going: kept at 180 s

    found = client.read_automations_by_name(AUTOMATION)
    assert len(found) == 1
    assert found[0].trigger.within == timedelta(seconds=180)
    assert first == f"a cell run without a heartbeat for 90 s is set Crashed (automation {AUTOMATION})"
    assert longer == f"a cell run without a heartbeat for 180 s is set Crashed (automation {AUTOMATION})"
    assert shorter == longer
    assert found[0].actions[0].type == "change-flow-run-state"
    assert found[0].actions[0].state.value == "CRASHED"


def test_nothing_is_made_when_heartbeats_are_off(client: Any) -> None:
    assert apply_unresponsive_automation(None) is None
    assert client.read_automations_by_name(AUTOMATION) == []


def test_it_watches_release_cell_runs_and_waits_for_every_end_a_cell_run_has() -> None:
    trigger = unresponsive_automation(30).trigger

    assert trigger.after == {"prefect.flow-run.heartbeat"}
    ends = {event.removeprefix("prefect.flow-run.") for event in trigger.expect}
    assert {"heartbeat", "Completed", "Failed", "Cancelled", "Crashed"} <= ends
    assert set(NOT_PROMOTED_STATES.values()) <= ends
    assert trigger.match_related.root == {
        "prefect.resource.role": "tag",
        "prefect.resource.id": "prefect.tag.canaryflow-release:*",
    }


def test_a_cell_run_gets_the_release_processs_heartbeat_interval(prefect_harness: Any) -> None:
    from prefect.settings import temporary_settings

    from canaryflow.triggers.prefect_cells import HEARTBEAT_VARIABLE, run_env

    with temporary_settings(updates={"flows.heartbeat_frequency": 45}):
        assert run_env({"KUBECONFIG": "/k", HEARTBEAT_VARIABLE: "600"}) == {
            "KUBECONFIG": "/k",
            HEARTBEAT_VARIABLE: "45",
        }
    assert run_env({"KUBECONFIG": "/k"}) == {"KUBECONFIG": "/k"}  # the session's runs send none
