"""The session's Prefect API is real, and sync flows run without the per-run heartbeat."""

from __future__ import annotations

from typing import Any


def test_flows_run_against_the_harness_without_heartbeat(prefect_harness: Any) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client

    @flow
    def add(a: int, b: int) -> int:
        return a + b

    state = add(2, 3, return_state=True)
    assert state.result() == 5
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None
    assert run.state.is_completed()
    assert prefect_harness.flows.heartbeat_frequency is None
