"""Starting rollouts: the `RolloutStarter` port and its adapters.

What belongs here: the port (`port.py`), the in-memory adapter used by tests and benchmarks
(`memory.py`) and the Prefect adapter that creates a flow run of the rollout deployment
(`prefect_runs.py`, the only module of the core package that imports Prefect besides `flows/`).
What must not: HTTP handling (that is `canaryflow.webhooks`), route matching, payload parsing.

Importing this package never imports Prefect: the Prefect adapter is loaded only by the code that
builds it (`canaryflow.webhooks.serve`).
"""

from __future__ import annotations

from canaryflow.triggers.memory import InMemoryRolloutStarter, StartedRollout
from canaryflow.triggers.port import FlowRunId, RolloutStarter

__all__ = ["FlowRunId", "InMemoryRolloutStarter", "RolloutStarter", "StartedRollout"]
