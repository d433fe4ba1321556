"""``canaryflow demo --cells N``: one release across N local clusters in two waves, then a bad one.

Each cell is a local control plane of its own (`canaryflow.dev.kube.planes`: separate state,
ports and kubeconfig context) with the example app, its own simulated traffic and its own real
Prometheus scraping it. A Prefect server (canaryflow's local one, or the one the environment
names) gets a work pool per cell with the ``rollout``, ``undo`` and ``cleanup`` deployments and a
worker each (`canaryflow.dev.workers`), so every cell's rollout is a real flow run in a process of
its own, as in production. The release flow runs here, like ``canaryflow release``.

Two releases of shop/web, waves [cell-1] then [the other cells] with a bake between:

1. the good image: promoted in cell-1, baked against the other cells, then promoted in them;
2. an image that is bad only in the later cells (the waves' point: it looks fine in the first):
   promoted in cell-1, baked, rolled back in the second wave, and cell-1 undone (the default
   ``onFailure: rollback-all``).

It ends with a table of the releases and their cells' phases and exits 0 when both ended as
expected.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from canaryflow.dev.stacks import BAD_IMAGE, DEMO_SPEC, GOOD_IMAGE, PROFILES, STABLE_IMAGE
from canaryflow.dev.workers import check_workers
from canaryflow.errors import LocalPrometheusError, UsageError
from canaryflow.simulation import BehaviourProfile

if TYPE_CHECKING:
    from rich.console import Console

    from canaryflow.dev.kube.controlplane import ControlPlane
    from canaryflow.dev.stacks import KubeStack
    from canaryflow.metrics import MetricsSource
    from canaryflow.plan import RolloutPlan
    from flows.release import ReleaseOutcome

__all__ = [
    "MAX_CELLS",
    "MIN_CELLS",
    "DemoCell",
    "cell_names",
    "cell_profiles",
    "cell_rollout_spec_text",
    "release_spec_text",
    "run_cells_demo",
    "start_cells",
    "wait_for_traffic",
]

MIN_CELLS = 2
MAX_CELLS = 5
#: Requests per second per Ready pod: the demo's rate (`canaryflow.cli.demorun.DEMO_RATE_PER_POD`).
RATE_PER_POD = 1000.0
#: What each release is expected to end as.
_EXPECTED = {GOOD_IMAGE: "released", BAD_IMAGE: "rolled-back"}
#: How often the release asks its cells' runs where they are (the flow's default is 10 s).
POLL_SECONDS = 2.0


def cell_names(count: int) -> list[str]:
    """The cells' names (``cell-1`` ...), or `UsageError` when `count` is out of range."""
    if not MIN_CELLS <= count <= MAX_CELLS:
        raise UsageError(
            f"demo --cells {count}: give between {MIN_CELLS} and {MAX_CELLS} cells "
            f"(the first wave is one cell, the second the others)"
        )
    return [f"cell-{i}" for i in range(1, count + 1)]


def cell_profiles(index: int) -> dict[str, BehaviourProfile]:
    """How each image behaves in the cell at `index` (0 is the first wave's): the bad image fails
    only in the later cells, as a change that depends on something those cells have."""
    if index == 0:
        return {**PROFILES, BAD_IMAGE: PROFILES[STABLE_IMAGE]}
    return dict(PROFILES)


#: The demo's rollout spec with its two analyses (at 20 % and 50 %) made one, at 50 %: a cell's
#: rollout takes half as long, and the release's point is the waves.
_ONE_STEP = """    - setWeight: 50
    - analyze: {interval: 5s, maxDuration: 2m}
"""


def cell_rollout_spec_text() -> str:
    """The rollout spec each cell runs: the demo's (`DEMO_SPEC`) with one analysis, at 50 %."""
    text = DEMO_SPEC.read_text()
    head, _, tail = text.partition("  steps:\n")
    rest = tail[tail.index("  failurePolicy:") :]
    return f"{head}  steps:\n{_ONE_STEP}{rest}"


def release_spec_text(rollout: Path, prometheus: dict[str, str]) -> str:
    """The demo's release spec: `rollout` in every cell, each cell on its own context, work pool
    and Prometheus (`prometheus` by cell), waves [first] then [the others]."""
    cells = list(prometheus)
    lines = [
        "apiVersion: canaryflow/v1",
        "kind: Release",
        "metadata: {name: web}",
        "spec:",
        f"  rollout: {rollout}",
        "  cells:",
    ]
    lines += [
        f"    - {{name: {cell}, context: {cell}, workPool: {cell}, prometheus: '{url}'}}"
        for cell, url in prometheus.items()
    ]
    lines += [
        "  waves:",
        f"    - cells: [{cells[0]}]",
        # readLag: the cells' Prometheus scrape every second, so 3 s reads all of an interval
        "      bake: {minDuration: 20s, maxDuration: 3m, minRequests: 10000, readLag: 3s}",
        f"    - cells: [{', '.join(cells[1:])}]",
        "  onFailure: rollback-all",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class DemoCell:
    """One cell of the demo while it runs: its control plane, its stack (cluster and traffic) and
    its Prometheus."""

    plane: ControlPlane
    stack: KubeStack
    metrics: MetricsSource
    prometheus: str


def run_cells_demo(*, cells: int, ui: bool = False, reports_dir: Path | None = None) -> int:
    """Run the cells demo; return the exit code (0 when the good release reached every cell and
    the bad one was rolled back in every cell; 130 on a Ctrl-C, after stopping what it started)."""
    names = cell_names(cells)
    prometheus_binary = shutil.which("prometheus")
    if prometheus_binary is None:
        raise LocalPrometheusError(
            "demo --cells needs Prometheus (each cell's rollout reads its own): install it "
            "(`make setup` does, with apt) and run again"
        )
    from canaryflow.dev.kube import find_binaries

    binaries = find_binaries(required=True)
    assert binaries is not None  # required=True raised otherwise, saying how to build them
    if reports_dir is None:
        from canaryflow.environment import reports_dir as reports_from_env

        reports_dir = reports_from_env(os.environ)
    from rich.console import Console

    console = Console()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _first_ctrl_c_only) if main else None
    try:
        return _run_cells(names, binaries, prometheus_binary, reports_dir, ui=ui, console=console)
    except KeyboardInterrupt:  # said here, with what the demo stopped
        from canaryflow.cli.output import say

        say(
            "canaryflow: interrupted: the demo's clusters, their Prometheus and the workers are "
            f"stopped; reports so far: {reports_dir.resolve()}"
        )
        return 130
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _first_ctrl_c_only(signum: int, frame: FrameType | None) -> None:
    """The first Ctrl-C stops the demo; those after it are ignored, so that it stops everything
    it started (a second one would cut that short and leave processes behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _run_cells(
    names: list[str], binaries: Path, prometheus_binary: str, reports_dir: Path, *, ui: bool, console: Console
) -> int:
    from canaryflow.cli.demorun import prefect_for_demo, serve_until_interrupted

    with ExitStack() as resources:
        server = prefect_for_demo(resources, ui=ui, console=console)
        started = time.monotonic()
        with ExitStack() as stack:
            workdir = reports_dir / "cells-demo"  # kept: the specs and the workers' logs
            workdir.mkdir(parents=True, exist_ok=True)
            kubeconfig, running = start_cells(
                stack, names, binaries=binaries, prometheus_binary=prometheus_binary, say=console.print
            )
            rollout = workdir / "rollout.yaml"
            rollout.write_text(cell_rollout_spec_text())
            spec = workdir / "release.yaml"
            spec.write_text(
                release_spec_text(rollout, {name: cell.prometheus for name, cell in running.items()})
            )
            waves = f"waves [{names[0]}], then [{', '.join(names[1:])}]"
            console.print(f"Release spec: {spec} ({waves}); each cell runs {rollout}", markup=False)
            workers = _start_workers(
                stack, names, workdir, kubeconfig=kubeconfig, reports_dir=reports_dir, console=console
            )
            outcomes = []
            for image in (GOOD_IMAGE, BAD_IMAGE):
                check_workers(workers, names, workdir)  # a pool without its worker would wait for ever
                wait_for_traffic(spec, running, say=console.print)
                outcomes.append(_release(spec, image, reports_dir, console))
        code = _summary(console, outcomes, reports_dir, time.monotonic() - started)
        if ui and server is not None:
            serve_until_interrupted(server, console)
    return code


def start_cells(
    stack: ExitStack,
    names: list[str],
    *,
    binaries: Path,
    prometheus_binary: str,
    say: Callable[[str], None],
) -> tuple[Path, dict[str, DemoCell]]:
    """Each cell's control plane, example app, traffic (`cell_profiles`) and Prometheus (stopped
    with `stack`); returns the kubeconfig with a context per cell and the running cells."""
    from canaryflow.dev.kube.planes import local_planes
    from canaryflow.dev.localprometheus import LocalPrometheus
    from canaryflow.dev.stacks import kube_stack, kubectl_binary
    from canaryflow.metrics.factory import create_metrics_source
    from canaryflow.metrics.prometheus import PrometheusConfig
    from canaryflow.simulation import MetricsServer, RealTimeDriver

    say(f"Starting {len(names)} local control planes, one per cell ...")
    planes = stack.enter_context(local_planes(names, binaries=binaries, say=say))
    kubectl = kubectl_binary(binaries)
    running: dict[str, DemoCell] = {}
    for index, name in enumerate(names):
        kube = stack.enter_context(
            kube_stack(
                planes.planes[name].kubeconfig,
                kubectl=kubectl,
                rate_per_pod=RATE_PER_POD,
                seed=7 + index,
                profiles=cell_profiles(index),
            )
        )
        stack.enter_context(RealTimeDriver(kube.simulator, tick=0.25))
        server = stack.enter_context(MetricsServer(kube.simulator))
        prometheus = stack.enter_context(LocalPrometheus.start(prometheus_binary))
        prometheus.add_targets("simulator", [server.target])
        metrics = create_metrics_source("prometheus", prometheus=PrometheusConfig(url=prometheus.url))
        running[name] = DemoCell(
            plane=planes.planes[name], stack=kube, metrics=metrics, prometheus=prometheus.url
        )
        say(f"Cell {name}: shop/web on {STABLE_IMAGE}, traffic scraped by Prometheus {prometheus.url}")
    return planes.kubeconfig, running


def _start_workers(
    stack: ExitStack,
    names: list[str],
    workdir: Path,
    *,
    kubeconfig: Path,
    reports_dir: Path,
    console: Console,
) -> list[subprocess.Popen[bytes]]:
    """A work pool per cell with its deployments and one worker each, on this process's Prefect
    (on a server the environment names, the pools and deployments stay there afterwards)."""
    from canaryflow.dev.workers import cell_workers

    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "CANARYFLOW_REPORTS_DIR": str(reports_dir.resolve()),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    api = os.environ.get("PREFECT_API_URL", "")
    console.print(f"Prefect: making the work pools {', '.join(names)} and their deployments on {api} ...")
    return stack.enter_context(cell_workers(names, env=env, workdir=workdir, say=console.print))


def wait_for_traffic(
    spec: Path, running: dict[str, DemoCell], *, say: Callable[[str], None], timeout: float = 90.0
) -> None:
    """Wait until every cell's preflight passes (its stable has served long enough for each metric
    to have data in its Prometheus: after a promotion the stable's pods are new), then until its
    stable's history is long enough for the judges' warm-up (`_wait_for_history`)."""
    from canaryflow.cells import cell_run
    from canaryflow.cli.demorun import wait_for_stable_data
    from canaryflow.plan import plan_rollout
    from canaryflow.requests import BY_DEMO
    from canaryflow.spec.loading import load_release

    release = load_release(spec)
    deadline = time.monotonic() + timeout
    plans = {
        name: plan_rollout(cell_run(release, name, image=GOOD_IMAGE, triggered_by=BY_DEMO).request)
        for name in running
    }
    for name, cell in running.items():
        waiting = f"Cell {name}: waiting for metrics of the stable track ..."
        wait_for_stable_data(
            plans[name], cell.stack, cell.metrics, deadline=deadline, waiting=waiting, say=say
        )
    for name, cell in running.items():
        _wait_for_history(name, plans[name], cell, deadline=deadline, say=say)


def _wait_for_history(
    name: str, plan: RolloutPlan, cell: DemoCell, *, deadline: float, say: Callable[[str], None]
) -> None:
    """Wait until the cell's stable history teaches each ratio and histogram metric its warm-up,
    as a rollout's analysis and a bake read it (`canaryflow.metrics.collect.learn_warmup`: five
    intervals with data): a production cell has served for hours before a release, the demo's only
    for seconds. Without it they would start from the bound fixed in advance and decide a minute
    later, so at `deadline` the demo goes on anyway."""
    from analysis.dispersion import DispersionBound
    from canaryflow.baking import bake_interval
    from canaryflow.errors import MetricsError, MetricsUnavailableError
    from canaryflow.metrics.collect import history_intervals, learn_warmup, stable_history

    window = bake_interval(plan).interval
    queries = [q for q in plan.queries() if q.type in ("ratio", "histogram")]
    said = False
    where = {"namespace": plan.target.namespace, "app": plan.target.app}
    while time.monotonic() < deadline:
        end, count = cell.stack.clock.now(), history_intervals(window)
        try:
            seen = [
                stable_history(cell.metrics, q, **where, end=end, window=window, intervals=count)
                for q in queries
            ]
        except (MetricsError, MetricsUnavailableError):
            seen = []
        learned = [learn_warmup(query, history, 1.0) for query, history in zip(queries, seen, strict=False)]
        if learned and all(bool(w.learned if isinstance(w, DispersionBound) else w) for w in learned):
            return
        if not said:
            say(f"Cell {name}: waiting for a few intervals of the stable's history (the judges' warm-up) ...")
            said = True
        cell.stack.clock.sleep(1.0)


def _release(spec: Path, image: str, reports_dir: Path, console: Console) -> ReleaseOutcome:
    from canaryflow.requests import BY_DEMO, new_release_request
    from flows.release import run_release, wiring_for_run

    console.rule(f"Release of {image}")
    request = new_release_request(spec=str(spec), image=image, triggered_by=BY_DEMO)
    wiring = dataclasses.replace(
        wiring_for_run(), poll_seconds=POLL_SECONDS, reports_dir=reports_dir, say=console.print
    )
    return run_release(request, wiring)


def _summary(console: Console, outcomes: list[ReleaseOutcome], reports_dir: Path, seconds: float) -> int:
    from rich.table import Table

    from canaryflow.cli.output import print_uncut

    table = Table(title=f"canaryflow demo --cells: {seconds:.0f} s")
    for column in ("release", "image", "result", "cells"):
        table.add_column(column, no_wrap=column != "cells")
    table.add_column("reason", overflow="fold", ratio=1)
    for outcome in outcomes:
        phases = ", ".join(f"{cell} {phase}" for cell, phase in outcome.cells.items())
        table.add_row(outcome.release_id, outcome.image, outcome.outcome, phases, outcome.reason)
    print_uncut(console, table)
    console.print(f"Reports (releases/<id>/release.json, each cell's rollout): {reports_dir.resolve()}")
    as_expected = all(o.outcome == _EXPECTED.get(o.image, o.outcome) for o in outcomes)
    return 0 if len(outcomes) == len(_EXPECTED) and as_expected else 1
