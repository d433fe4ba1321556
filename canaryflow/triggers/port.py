"""The `RolloutStarter` port: start one rollout, get back the id of the flow run that performs it.

Adapters: `PrefectRolloutStarter` (a flow run of the Prefect ``rollout`` deployment) and
`InMemoryRolloutStarter` (records requests; tests and benchmarks). Callers hold a `RolloutStarter`.
"""

from __future__ import annotations

from typing import NewType, Protocol

from canaryflow.requests import RolloutRequest

__all__ = ["FlowRunId", "RolloutStarter"]

#: The id of the flow run that performs a rollout (a UUID in Prefect's text form).
FlowRunId = NewType("FlowRunId", str)


class RolloutStarter(Protocol):
    """Port to the orchestrator that runs rollouts."""

    def start(self, request: RolloutRequest, *, idempotency_key: str) -> FlowRunId:
        """Start a rollout for `request` and return its flow run id without waiting for it.

        Starting twice with the same `idempotency_key` starts one rollout: the second call returns
        the flow run id of the first. Raises `TriggerUnavailableError` when the orchestrator cannot
        be reached (the caller may retry later); nothing has been started then.
        """
        ...
