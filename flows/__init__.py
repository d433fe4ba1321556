"""Prefect flows and tasks: where Prefect meets the cluster, the metrics and the judge.

What belongs here: the rollout flow (`flows.rollout`, reading like the runbook), its small tasks
(`flows.steps`), the analysis loop (`flows.judging`), approval pauses (`flows.approval`), the
one-rollout-per-target slot (`flows.slots`), artifacts and reports (`flows.reporting`,
`flows.charts`) and the runtime wiring (`flows.runtime`: which cluster, metrics source and clock a
run uses). What must not: adapter internals, statistics (those live in `analysis`), module-level
clients. This is the only package besides the deployment starter that imports Prefect.
"""

from __future__ import annotations

from flows.cleanup import cleanup
from flows.plan import RolloutOutcome, RolloutPlan, plan_rollout
from flows.rollout import rollout
from flows.runtime import Runtime, current_runtime, runtime_from_env, use_runtime

__all__ = [
    "RolloutOutcome",
    "RolloutPlan",
    "Runtime",
    "cleanup",
    "current_runtime",
    "plan_rollout",
    "rollout",
    "runtime_from_env",
    "use_runtime",
]
