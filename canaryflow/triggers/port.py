"""The ports to the orchestrator: start one rollout (`RolloutStarter`), run a release's cells (`CellRuns`).

Adapters: `PrefectRolloutStarter` (a flow run of the Prefect ``rollout`` deployment) and
`InMemoryRolloutStarter` (records requests; tests and benchmarks); `PrefectCellRuns` (flow runs of
each cell pool's ``rollout`` and ``undo`` deployments) and `InMemoryCellRuns`. Callers hold a port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NewType, Protocol, TypeAlias

from canaryflow.cells import CellRun
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.waves import CellPhase

__all__ = ["CellRuns", "FlowRunId", "RolloutStarter", "RunState", "UndoRuns", "cell_phase"]

#: The id of the flow run that performs a rollout (a UUID in Prefect's text form).
FlowRunId = NewType("FlowRunId", str)


class RolloutStarter(Protocol):
    """Port to the orchestrator that runs rollouts."""

    def start(self, request: RolloutRequest | ReleaseRequest, *, idempotency_key: str) -> FlowRunId:
        """Start a rollout (or a release) for `request` and return its flow run id without waiting.

        Starting twice with the same `idempotency_key` starts one rollout: the second call returns
        the flow run id of the first. Raises `TriggerUnavailableError` when the orchestrator cannot
        be reached (the caller may retry later); nothing has been started then.
        """
        ...


#: A cell run's state as a release sees it: still going (scheduled, running, paused, cancelling),
#: completed (a rollout promoted, an undo done), not promoted (a rollout rolled back, aborted or
#: cancelled: the target was converged) or failed (crashed, or ended in error).
RunState: TypeAlias = Literal["active", "completed", "not-promoted", "failed"]


def cell_phase(rollout: RunState | None, undo: RunState | None) -> CellPhase:
    """A cell's phase in its release from the state of its latest rollout run and latest undo run
    (None: none yet). An undo that has not completed leaves the cell promoted: the release asks for
    it again (`CellRuns.undo` starts a new one after a failed one)."""
    if undo == "completed":
        return "undone"
    if rollout is None:
        return "pending"
    return _ROLLOUT_PHASE[rollout]


_ROLLOUT_PHASE: dict[RunState, CellPhase] = {
    "active": "running",
    "completed": "promoted",
    "not-promoted": "rolled-back",
    "failed": "failed",
}


@dataclass(frozen=True, slots=True)
class UndoRuns:
    """A cell's undo runs in a release: how many were started, and when the latest ended if it
    failed (None while it runs, or once it completed)."""

    count: int
    failed_at: datetime | None = None


class CellRuns(Protocol):
    """Port to the orchestrator that runs a release's cells: each cell's rollout, and its undo.

    Every method is idempotent for a release and a cell, so a release flow killed at any point and
    run again asks the same questions and gets the same runs, never a second one.
    """

    def missing(self, runs: Sequence[CellRun]) -> list[str]:
        """What the orchestrator lacks to run these cells (e.g. a work pool's deployment), each in
        one line that says what to do; empty when nothing is missing or it cannot tell now."""
        ...

    def start(self, release_id: str, run: CellRun) -> FlowRunId:
        """Start the cell's rollout (`run`) for the release; a second call returns the first run.

        Raises `TriggerUnavailableError` when the orchestrator cannot be reached, nothing started.
        """
        ...

    def phases(self, release_id: str) -> dict[str, CellPhase]:
        """Each cell of the release that has a run, with its phase (`cell_phase`)."""
        ...

    def ended(self, release_id: str) -> dict[str, datetime]:
        """When each cell's latest rollout run ended (timezone-aware), for the cells whose rollout
        run has ended: where a wave's bake starts."""
        ...

    def began(self, release_id: str) -> dict[str, datetime]:
        """When each cell's first rollout run of the release was created (timezone-aware): before
        it the cell ran the old image, which a bake against history compares with."""
        ...

    def undos(self, release_id: str) -> dict[str, UndoRuns]:
        """Each cell's undo runs so far for the release (cells without any are left out)."""
        ...

    def abort(self, release_id: str, cell: str, reason: str) -> None:
        """Stop the cell's rollout run if it is still going: it rolls the canary back and ends
        not promoted. Nothing happens for a run that has ended."""
        ...

    def undo(self, release_id: str, run: CellRun, reason: str, rollout_id: str) -> FlowRunId:
        """Start the undo of the cell's promotion by `rollout_id` (the stable back to the image it
        ran before; a promotion by another rollout since is left alone); a second call returns the
        run already going or done, a call after a failed undo starts anew."""
        ...

    def cleanup(self, release_id: str, run: CellRun, rollout_id: str) -> FlowRunId:
        """Start the cleanup of the cell's target after its rollout run `rollout_id` failed or
        crashed (its canary converged: a decided promotion finished, anything else rolled back);
        once per release and cell, a second call returns the first run."""
        ...
