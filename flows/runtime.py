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
from canaryflow.cluster.factory import CLUSTER_KINDS, make_cluster
from canaryflow.cluster.port import Cluster
from canaryflow.errors import PermanentError
from canaryflow.metrics import MetricsSource, create_metrics_source

__all__ = [
    "EventSink",
    "Runtime",
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
    """A runtime for a real cluster, configured by environment variables.

    ``CANARYFLOW_CLUSTER`` (``kubernetes``, the default; ``simulated`` only works injected, as a
    fresh simulated cluster has no target), ``KUBECONFIG`` and ``CANARYFLOW_KUBE_CONTEXT`` (or
    ``CANARYFLOW_IN_CLUSTER=true`` for a pod's service account), ``CANARYFLOW_PROMETHEUS_URL``
    (required) and ``CANARYFLOW_PROMETHEUS_TIMEOUT`` (seconds), ``CANARYFLOW_REPORTS_DIR``.

    Raises
    ------
    PermanentError
        An unknown cluster kind, a simulated cluster, or no Prometheus URL.
    """
    kind = env.get("CANARYFLOW_CLUSTER", "kubernetes")
    canonical = CLUSTER_KINDS.get(kind)
    if canonical is None:
        known = ", ".join(sorted(CLUSTER_KINDS))
        raise PermanentError(f"CANARYFLOW_CLUSTER={kind!r} is not a cluster kind; choose one of: {known}")
    if canonical == "simulated":
        raise PermanentError(
            "CANARYFLOW_CLUSTER=simulated needs a runtime injected by its entry point "
            "(canaryflow demo, or use_runtime in tests): a fresh simulated cluster has no target"
        )
    url = env.get("CANARYFLOW_PROMETHEUS_URL")
    if not url:
        raise PermanentError("CANARYFLOW_PROMETHEUS_URL is not set: the rollout needs a Prometheus to judge")
    from canaryflow.metrics.prometheus import PrometheusConfig

    prometheus = PrometheusConfig(url=url, timeout=float(env.get("CANARYFLOW_PROMETHEUS_TIMEOUT", "10")))
    cluster = make_cluster(
        canonical,
        kubeconfig=env.get("KUBECONFIG") or None,
        context=env.get("CANARYFLOW_KUBE_CONTEXT") or None,
        in_cluster=env.get("CANARYFLOW_IN_CLUSTER", "").lower() == "true",
    )
    return Runtime(
        cluster=cluster,
        metrics=create_metrics_source("prometheus", prometheus=prometheus),
        reports_dir=Path(env.get("CANARYFLOW_REPORTS_DIR", "reports")),
    )
