"""What one cell's rollout run gets from its release: where it runs, what it reaches, what it rolls out.

A release (`canaryflow.spec.release.ReleaseSpec`) starts each cell's rollout as a run of the
``rollout`` deployment on the cell's work pool, so that a worker near the cell's cluster does the
work. That worker builds the run's adapters from its environment
(`flows.runtime.runtime_from_env`), so what tells cells apart travels in two places:

- the run's job variables (``env``): the cell's kubeconfig context (or ``CANARYFLOW_IN_CLUSTER``),
  its Prometheus (its own or the release's shared one) and the labels of its series there
  (``CANARYFLOW_PROMETHEUS_LABELS``, which queries take through ``{cell}``);
- the request: the rollout spec every cell runs, the image, and the cell with its own target
  where it differs from the spec's (`canaryflow.requests.CellTarget`).

`cell_run` answers both for one cell. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canaryflow.querytemplates import format_labels
from canaryflow.requests import CellTarget, RolloutRequest
from canaryflow.spec.release import PrometheusAccess, ReleaseSpec

__all__ = ["CellRun", "cell_run"]


@dataclass(frozen=True)
class CellRun:
    """How to start one cell's rollout: on `work_pool` (and `work_queue`), with `env` as the run's
    environment job variables, for `request`; and how the release's own process reaches the cell's
    Prometheus when not with its own settings (`access`, not part of `env`: the cell's workers
    read theirs with their own environment's)."""

    cell: str
    work_pool: str
    work_queue: str | None
    env: Mapping[str, str]
    request: RolloutRequest
    access: PrometheusAccess | None = None


def cell_run(release: ReleaseSpec, name: str, *, image: str, triggered_by: str) -> CellRun:
    """The run of `release`'s cell `name` rolling out `image` (KeyError for an unknown cell).

    The release spec has been validated (`canaryflow.spec.loading.load_release`): every cell has a
    context or runs in-cluster, a Prometheus, labels when it shares one, and label values a
    variable can carry.
    """
    cell = release.cell(name)
    env: dict[str, str] = {}
    if cell.in_cluster:
        env["CANARYFLOW_IN_CLUSTER"] = "true"
    else:
        assert cell.context is not None  # the release's cross-check: a context or in-cluster
        env["CANARYFLOW_KUBE_CONTEXT"] = cell.context
    prometheus = cell.prometheus or release.spec.prometheus
    assert prometheus is not None  # the release's cross-check: the cell's own or a shared one
    env["CANARYFLOW_PROMETHEUS_URL"] = prometheus
    if cell.labels:
        env["CANARYFLOW_PROMETHEUS_LABELS"] = format_labels(cell.labels)
    request = RolloutRequest(
        spec=release.spec.rollout,
        image=image,
        triggered_by=triggered_by,
        cell=CellTarget(name=cell.name, **cell.target.overrides()),
    )
    return CellRun(
        cell=cell.name,
        work_pool=cell.work_pool,
        work_queue=cell.work_queue,
        env=env,
        request=request,
        access=cell.prometheus_access,
    )
