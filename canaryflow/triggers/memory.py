"""In-memory adapters of the orchestrator ports: `InMemoryRolloutStarter` and `InMemoryCellRuns`.

They keep their ports' contracts (one flow run per idempotency key, or per release and cell;
`TriggerUnavailableError` while `available` is false, with nothing recorded), so tests and the
webhook benchmark can stand in for Prefect without a server; the contract suites run the same
tests against the Prefect adapters.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from canaryflow.cells import CellRun
from canaryflow.errors import TriggerUnavailableError
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.triggers.port import FlowRunId, RunState, UndoRuns, cell_phase
from canaryflow.waves import CellPhase

__all__ = ["CellRunRecord", "InMemoryCellRuns", "InMemoryRolloutStarter", "StartedRollout"]


@dataclass(frozen=True, slots=True)
class StartedRollout:
    """One rollout the in-memory starter started."""

    flow_run_id: FlowRunId
    request: RolloutRequest | ReleaseRequest
    idempotency_key: str


class InMemoryRolloutStarter:
    """Thread-safe in-memory starter. Set `available = False` to simulate an unreachable orchestrator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, StartedRollout] = {}
        self.available = True

    def start(self, request: RolloutRequest | ReleaseRequest, *, idempotency_key: str) -> FlowRunId:
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


@dataclass(slots=True)
class CellRunRecord:
    """One run the in-memory cell runs started: a cell's rollout, undo or cleanup, and its state;
    `reason` is why (an abort, an undo), `rollout_id` the rollout an undo or a cleanup is about."""

    flow_run_id: FlowRunId
    release_id: str
    kind: Literal["rollout", "undo", "cleanup"]
    run: CellRun
    state: RunState = "active"
    reason: str = ""
    rollout_id: str = ""
    ended_at: datetime | None = None
    created_at: datetime | None = None


class InMemoryCellRuns:
    """Thread-safe in-memory `CellRuns`: runs are records whose state a test sets with `end` (what
    a worker's run would do); an abort ends a run at once, as Prefect ends a run no worker has
    picked up. Set `available = False` to simulate an unreachable orchestrator; a work pool in
    `absent_pools` has no deployments (`missing`); `now` stamps the runs created (a test's clock
    may replace it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[CellRunRecord] = []
        self.available = True
        self.absent_pools: set[str] = set()
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def missing(self, runs: Sequence[CellRun]) -> list[str]:
        return [
            f"no deployments for the work pool {pool!r}"
            for pool in sorted({r.work_pool for r in runs})
            if pool in self.absent_pools
        ]

    def start(self, release_id: str, run: CellRun) -> FlowRunId:
        with self._lock:
            self._check()
            existing = self._latest(release_id, run.cell, "rollout")
            if existing is not None:
                return existing.flow_run_id
            return self._add(release_id, "rollout", run)

    def phases(self, release_id: str) -> dict[str, CellPhase]:
        with self._lock:
            self._check()
            cells = dict.fromkeys(r.run.cell for r in self._runs if r.release_id == release_id)
            phases: dict[str, CellPhase] = {}
            for cell in cells:
                rollout = self._latest(release_id, cell, "rollout")
                undo = self._latest(release_id, cell, "undo")
                phases[cell] = cell_phase(
                    None if rollout is None else rollout.state, None if undo is None else undo.state
                )
            return phases

    def ended(self, release_id: str) -> dict[str, datetime]:
        with self._lock:
            self._check()
            cells = dict.fromkeys(r.run.cell for r in self._runs if r.release_id == release_id)
            latest = {cell: self._latest(release_id, cell, "rollout") for cell in cells}
            return {
                cell: record.ended_at
                for cell, record in latest.items()
                if record is not None and record.ended_at is not None
            }

    def began(self, release_id: str) -> dict[str, datetime]:
        with self._lock:
            self._check()
            began: dict[str, datetime] = {}
            for record in self._runs:
                wanted = record.release_id == release_id and record.kind == "rollout"
                if wanted and record.created_at is not None:
                    began.setdefault(record.run.cell, record.created_at)
            return began

    def undos(self, release_id: str) -> dict[str, UndoRuns]:
        with self._lock:
            self._check()
            found: dict[str, UndoRuns] = {}
            for record in self._runs:
                if record.release_id == release_id and record.kind == "undo":
                    failed_at = record.ended_at if record.state == "failed" else None
                    count = found[record.run.cell].count if record.run.cell in found else 0
                    found[record.run.cell] = UndoRuns(count + 1, failed_at)
            return found

    def abort(self, release_id: str, cell: str, reason: str) -> None:
        with self._lock:
            self._check()
            rollout = self._latest(release_id, cell, "rollout")
            if rollout is not None and rollout.state == "active":
                rollout.state, rollout.reason = "not-promoted", reason
                rollout.ended_at = self.now()

    def undo(self, release_id: str, run: CellRun, reason: str, rollout_id: str) -> FlowRunId:
        with self._lock:
            self._check()
            existing = self._latest(release_id, run.cell, "undo")
            if existing is not None and existing.state != "failed":
                return existing.flow_run_id
            return self._add(release_id, "undo", run, reason, rollout_id)

    def cleanup(self, release_id: str, run: CellRun, rollout_id: str) -> FlowRunId:
        with self._lock:
            self._check()
            existing = self._latest(release_id, run.cell, "cleanup")
            if existing is not None:
                return existing.flow_run_id
            return self._add(release_id, "cleanup", run, rollout_id=rollout_id)

    def end(self, flow_run_id: str, state: RunState, *, at: datetime | None = None) -> None:
        """Set the state of the run `flow_run_id` (KeyError for an unknown one); a state other
        than active ends it `at` (default: now)."""
        with self._lock:
            for record in self._runs:
                if record.flow_run_id == flow_run_id:
                    record.state = state
                    record.ended_at = None if state == "active" else (at or self.now())
                    return
        raise KeyError(flow_run_id)

    @property
    def runs(self) -> list[CellRunRecord]:
        """Every run started so far, oldest first."""
        with self._lock:
            return list(self._runs)

    def _check(self) -> None:
        if not self.available:
            raise TriggerUnavailableError("the in-memory orchestrator is marked unavailable")

    def _latest(self, release_id: str, cell: str, kind: str) -> CellRunRecord | None:
        mine = [r for r in self._runs if (r.release_id, r.run.cell, r.kind) == (release_id, cell, kind)]
        return mine[-1] if mine else None

    def _add(
        self,
        release_id: str,
        kind: Literal["rollout", "undo", "cleanup"],
        run: CellRun,
        reason: str = "",
        rollout_id: str = "",
    ) -> FlowRunId:
        flow_run_id = FlowRunId(str(uuid.uuid4()))
        record = CellRunRecord(
            flow_run_id, release_id, kind, run, reason=reason, rollout_id=rollout_id, created_at=self.now()
        )
        self._runs.append(record)
        return record.flow_run_id
