"""A newer image supersedes the running rollout of the same target: it rolls back and ends Cancelled."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, SimulatedStack
from canaryflow.requests import RolloutRequest
from tests.e2e.conftest import RunState, write_spec


def test_a_newer_image_supersedes_a_paused_rollout(
    stack: SimulatedStack, rollout_of: Callable[..., Any], runtime: Any, tmp_path: Path
) -> None:
    from flows import rollout, use_runtime
    from flows.approval import paused_run_of

    waiting = write_spec(
        tmp_path, ["{setWeight: 20}", "{pause: {approval: true, timeout: 1m}}"], name="old.yaml"
    )
    newer = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {duration: 10s}}"], name="new.yaml")
    states: list[Any] = []

    def old_rollout() -> None:
        states.append(rollout_of(GOOD_IMAGE, spec=waiting, rollout_id="web-old"))

    old = threading.Thread(target=contextvars.copy_context().run, args=(old_rollout,), daemon=True)
    old.start()
    deadline = time.monotonic() + 60
    while paused_run_of("web-old") is None and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the Prefect API until the old run waits in its pause

    said: list[str] = []  # what `canaryflow rollout` prints (its event sink), not only the run's log

    def terminal(rollout_id: str, event: str, details: Mapping[str, Any]) -> None:
        if rollout_id == "web-new" and event == "log":
            said.append(str(details["message"]))

    with use_runtime(replace(runtime, events=terminal)):
        request = RolloutRequest(spec=newer, image=BAD_IMAGE, rollout_id="web-new")
        new_state = RunState(rollout(request, return_state=True))
    old.join(timeout=60)

    assert states[0].is_cancelled()
    assert states[0].message == f"superseded by {BAD_IMAGE}"
    outcome = new_state.result()
    assert outcome.rollout_id == "web-new"
    assert outcome.result == "promoted"  # no analysis in this spec: the steps alone decide
    assert stack.cluster.read(stack.target).stable.image == BAD_IMAGE
    waited = _logs_of(new_state.state_details.flow_run_id, "waiting for the slot")
    assert len(waited) == 1, waited  # said once, with who holds the target
    assert f"rollout web-old of {GOOD_IMAGE}" in waited[0]
    assert [line for line in said if "waiting for the slot" in line] == waited


def _logs_of(flow_run_id: Any, containing: str) -> list[str]:
    """The run's log messages that contain `containing`, once the API has them (logs are sent in
    batches: polled for a few seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + 15
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        found = [log.message for log in logs if containing in log.message]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)  # the log worker sends batches; no event to await from here
