"""`InMemoryRolloutStarter`: a `RolloutStarter` that records what it was asked to start.

It keeps the port's contract (one flow run per idempotency key; `TriggerUnavailableError` while
`available` is false, with nothing recorded), so tests and the webhook benchmark can stand in for
Prefect without a server.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

from canaryflow.errors import TriggerUnavailableError
from canaryflow.requests import RolloutRequest
from canaryflow.triggers.port import FlowRunId

__all__ = ["InMemoryRolloutStarter", "StartedRollout"]


@dataclass(frozen=True, slots=True)
class StartedRollout:
    """One rollout the in-memory starter started."""

    flow_run_id: FlowRunId
    request: RolloutRequest
    idempotency_key: str


class InMemoryRolloutStarter:
    """Thread-safe in-memory starter. Set `available = False` to simulate an unreachable orchestrator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, StartedRollout] = {}
        self.available = True

    def start(self, request: RolloutRequest, *, idempotency_key: str) -> FlowRunId:
        """Record `request` (once per idempotency key) and return its flow run id."""
        with self._lock:
            if not self.available:
                raise TriggerUnavailableError("the in-memory orchestrator is marked unavailable")
            existing = self._by_key.get(idempotency_key)
            if existing is not None:
                return existing.flow_run_id
            started = StartedRollout(FlowRunId(str(uuid.uuid4())), request, idempotency_key)
            self._by_key[idempotency_key] = started
            return started.flow_run_id

    @property
    def started(self) -> list[StartedRollout]:
        """Every rollout started so far, oldest first."""
        with self._lock:
            return list(self._by_key.values())
