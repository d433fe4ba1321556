"""Prefect flows and tasks: where Prefect meets the cluster, the metrics and the judge.

What belongs here: the rollout flow (`flows.rollout`, reading like the runbook), the cleanup
flow (`flows.cleanup`), the undo flow (`flows.undo`), the release flow that runs a release's
cells wave by wave (`flows.release`), their small tasks (`flows.steps`), the analysis loop (`flows.judging`),
approval pauses (`flows.approval`), the one-rollout-per-target slot (`flows.slots`), why a
running rollout must stop now (`flows.stops`), what people see of a run (`flows.reporting`,
`flows.artifacts`, `flows.charts`), the events it tells Prefect (`flows.notices`) and the
notification automations on them (`flows.notifications`), what the command line asks of
Prefect (`flows.control`) and the wiring (`flows.runtime`: which cluster, metrics source and
clock a run uses, resolved once at its start). What must not: adapter internals, statistics (those live
in `analysis`), terminal rendering (`canaryflow.cli`), module-level clients. This is the only
package besides the deployment starter (`canaryflow.triggers`) that imports Prefect, and nothing
of ``canaryflow`` imports it but the command line.
"""

from __future__ import annotations

from flows.cleanup import cleanup
from flows.rollout import outcome_of, rollout
from flows.runtime import Runtime, runtime_for_run, runtime_from_env, use_runtime

__all__ = [
    "Runtime",
    "cleanup",
    "outcome_of",
    "rollout",
    "runtime_for_run",
    "runtime_from_env",
    "use_runtime",
]
