"""What a flow run works on: a cluster, a metrics source, a clock and a reports directory.

The flows' only parameters are their requests, so that deployments, webhooks and the Prefect UI
can start them; everything else a run needs is a `Runtime`, which each flow resolves once, at its
start, with `runtime_for_run`, and hands down to its steps and tasks as arguments. Where it comes
from is decided by the entry point:

- the command line, the demo and the tests build the adapters themselves and inject them::

      with use_runtime(Runtime(cluster=..., metrics=..., clock=...)):
          rollout(request)

- a deployment run that a worker started (Prefect sets ``PREFECT__FLOW_RUN_ID`` in its
  environment) builds them from the worker's environment (`runtime_from_env`);
- anything else is an error: a script or a test that forgot to inject one never reaches a real
  cluster by accident.

Nothing here is a module-level singleton: an injected runtime lives in a `ContextVar` for the
duration of the ``with`` block.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.clock import Clock, SystemClock
from canaryflow.cluster.port import Cluster
from canaryflow.environment import cluster_from_env, cluster_kind, metrics_from_env, reports_dir
from canaryflow.errors import PermanentError
from canaryflow.metrics import MetricsSource

__all__ = [
    "EventSink",
    "Runtime",
    "current_runtime",
    "runtime_for_run",
    "runtime_from_env",
    "use_runtime",
]

#: Called with (rollout id, event name, details) whenever the rollout changes (live displays).
EventSink = Callable[[str, str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class Runtime:
    """The adapters a rollout uses, and how long its retries and approval polls wait.

    ``clock`` paces the waits (pauses, analysis intervals): real time in production and the demo,
    a `ManualClock` in tests. ``retry_delays`` are the seconds between attempts of the tasks that
    talk to the cluster or the metrics backend. ``approval_poll_seconds`` is how often a paused run
    checks whether it was resumed. ``slot_lease_seconds`` is the lease of the target's
    concurrency slot (renewed while the run lives; how long a killed run blocks the next one when
    it cannot be shown dead, see `flows.slots`). Prefect accepts leases of 60 s or more.
    ``events`` receives progress events (optional).
    """

    cluster: Cluster
    metrics: MetricsSource
    clock: Clock = field(default_factory=SystemClock)
    reports_dir: Path = Path("reports")
    retry_delays: tuple[float, ...] = (2.0, 10.0, 30.0)
    approval_poll_seconds: int = 5
    slot_lease_seconds: float = 60.0
    events: EventSink | None = None

    def emit(self, rollout_id: str, event: str, **details: Any) -> None:
        """Tell the event sink (if any) what happened; a failing sink never stops a rollout."""
        if self.events is None:
            return
        with contextlib.suppress(Exception):  # a display must not break the rollout
            self.events(rollout_id, event, details)


_CURRENT: ContextVar[Runtime | None] = ContextVar("canaryflow_runtime", default=None)


@contextmanager
def use_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the current one inside the ``with`` block (nesting restores the outer one)."""
    token = _CURRENT.set(runtime)
    try:
        yield runtime
    finally:
        _CURRENT.reset(token)


def current_runtime() -> Runtime | None:
    """The runtime injected with `use_runtime` around this code, if any (a deployment run's is
    built by `runtime_for_run` and not current)."""
    return _CURRENT.get()


def runtime_for_run() -> Runtime:
    """The runtime of the flow run starting now: the injected one, or in a deployment run started
    by a worker, one built from the environment (`runtime_from_env`).

    Raises
    ------
    PermanentError
        Nothing was injected and this is not a deployment run.
    """
    runtime = _CURRENT.get()
    if runtime is not None:
        return runtime
    if os.environ.get("PREFECT__FLOW_RUN_ID"):
        return runtime_from_env(os.environ)
    raise PermanentError(
        "no runtime for this flow run: inject one with flows.use_runtime(Runtime(...)), or run the "
        "flow as a deployment, whose worker builds it from CANARYFLOW_* environment variables"
    )


def runtime_from_env(env: Mapping[str, str]) -> Runtime:
    """A runtime for a real cluster and Prometheus, configured by environment variables
    (`canaryflow.environment.SETTINGS`: ``KUBECONFIG``, ``CANARYFLOW_PROMETHEUS_URL``, ...).

    Raises
    ------
    InputError
        A variable is missing or wrong; the message names it and what to put there.
    ClusterError
        The kubeconfig cannot be loaded.
    """
    cluster_kind(env)  # what needs no I/O first: a wrong kind, a missing URL, then the kubeconfig
    metrics = metrics_from_env(env)
    return Runtime(cluster=cluster_from_env(env), metrics=metrics, reports_dir=reports_dir(env))
