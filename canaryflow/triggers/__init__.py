"""Starting rollouts and a release's cells: the orchestrator ports and their adapters.

What belongs here: the ports (`port.py`: start a rollout; run a release's cells), the in-memory
adapters used by tests and benchmarks (`memory.py`) and the Prefect adapters that create flow runs
of the rollout deployment (`prefect_runs.py`) and of each cell pool's rollout and undo deployments
(`prefect_cells.py`), and the automation that marks a cell run Crashed when its heartbeats stop
(`unresponsive.py`): the only modules of the core package that import Prefect besides `flows/`.
What must not: HTTP handling (that is `canaryflow.webhooks`), route matching, payload parsing.

Importing this package never imports Prefect: the Prefect adapters are loaded only by the code
that builds them (`canaryflow.webhooks.serve`, `flows.release`).
"""

from __future__ import annotations

from canaryflow.triggers.memory import InMemoryCellRuns, InMemoryRolloutStarter, StartedRollout
from canaryflow.triggers.port import CellRuns, FlowRunId, RolloutStarter

__all__ = [
    "CellRuns",
    "FlowRunId",
    "InMemoryCellRuns",
    "InMemoryRolloutStarter",
    "RolloutStarter",
    "StartedRollout",
]
