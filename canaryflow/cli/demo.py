"""``canaryflow demo``: a good and a bad rollout on an embedded stack, start to finish, in minutes.

The stacks live in `canaryflow.dev.stacks`: ``--cluster sim`` (the default) rolls out on a
`SimulatedCluster`; ``--cluster kube`` applies the example app to a real API server (the running
local control plane, else a temporary one stopped at the end) and rolls out there, with the
simulated traffic following the real pods. Metrics come from a real Prometheus scraping the
simulator's ``/metrics`` when the ``prometheus`` binary is installed, else from the simulated source.

The demo runs the rollout flow under Prefect's ephemeral API, or with ``--ui`` under a
``prefect server`` of its own (`canaryflow.dev.prefectserver`; kept up after the rollouts until Ctrl-C),
with settings through the environment of this process only. It rolls out the good image (promoted)
and then the bad one (rolled back) with a live display, and ends with a summary table and where the
reports are. Like every command it imports ``flows`` inside its functions, so that the command
line starts fast.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from canaryflow.cli.board import Board
from canaryflow.clock import SystemClock
from canaryflow.cluster.factory import CLUSTER_KINDS
from canaryflow.dev.stacks import (
    BAD_IMAGE,
    DEMO_SPEC,
    GOOD_IMAGE,
    PROFILES,
    STABLE_IMAGE,
    DemoKubernetes,
    DemoStack,
    SimulatedStack,
    demo_kubernetes,
    demo_metrics,
    kube_stack,
    simulated_stack,
)
from canaryflow.errors import PermanentError
from canaryflow.simulation import RealTimeDriver

if TYPE_CHECKING:
    from rich.console import Console

    from canaryflow.dev.prefectserver import PrefectServer
    from canaryflow.metrics import MetricsSource

__all__ = [
    "BAD_IMAGE",
    "DEMO_RATE_PER_POD",
    "DEMO_SPEC",
    "GOOD_IMAGE",
    "PROFILES",
    "STABLE_IMAGE",
    "SimulatedStack",
    "demo",
    "demo_stack",
    "run_demo",
    "run_rollouts",
    "simulated_stack",
]

#: Requests per second per Ready pod in the demo: enough that a canary that behaves like its
#: baseline is shown to be within tolerance inside the spec's minute of analysis.
DEMO_RATE_PER_POD = 1000.0
#: What the demo expects of each image.
_EXPECTED = {GOOD_IMAGE: "promoted", BAD_IMAGE: "rolled-back"}


def run_demo(
    *,
    cluster: str = "sim",
    ui: bool = False,
    reports_dir: Path = Path("reports"),
    kubeconfig: Path | None = None,
    images: Sequence[str] = (GOOD_IMAGE, BAD_IMAGE),
) -> int:
    """Run the demo; return the process exit code (0 when every image ended as expected: the good
    one promoted, the bad one rolled back).

    `cluster` is ``sim`` or ``kube`` (see `canaryflow.cluster.factory.CLUSTER_KINDS`); `kubeconfig`
    picks the API server for ``kube`` (default: the running local control plane, else a temporary
    one). With `ui`, a Prefect server shows the runs and stays up after them until Ctrl-C.
    """
    kind = CLUSTER_KINDS.get(cluster)
    if kind is None:
        known = ", ".join(sorted(CLUSTER_KINDS))
        raise PermanentError(f"demo --cluster {cluster}: unknown cluster kind; choose one of: {known}")
    from rich.console import Console

    console = Console()
    with ExitStack() as resources:
        server = _prefect_environment(resources, ui=ui, console=console)
        started = time.monotonic()
        with ExitStack() as stack:
            demo = stack.enter_context(demo_stack(kind, kubeconfig=kubeconfig, console=console))
            stack.enter_context(RealTimeDriver(demo.simulator, tick=0.25))
            metrics, where = stack.enter_context(demo_metrics(demo, say=console.print))
            outcomes = run_rollouts(demo, metrics, images=images, reports_dir=reports_dir, console=console)
        code = _summary(console, outcomes, where, reports_dir, time.monotonic() - started)
        if server is not None:
            _serve_until_interrupted(server, console)
    return code


@contextmanager
def demo_stack(kind: str, *, kubeconfig: Path | None, console: Console) -> Iterator[DemoStack]:
    """The simulated stack, or the example app on a Kubernetes API server (with how to watch it)."""
    if kind == "simulated":
        yield simulated_stack(SystemClock(), rate_per_pod=DEMO_RATE_PER_POD)
        return
    with demo_kubernetes(kubeconfig, say=console.print) as kube:
        console.print(f"Applying the example app (deployments/kubernetes/example-app.yaml) on {STABLE_IMAGE}")
        with kube_stack(kube.kubeconfig, kubectl=kube.kubectl, rate_per_pod=DEMO_RATE_PER_POD) as stack:
            _how_to_watch(console, kube)
            yield stack


def _how_to_watch(console: Console, kube: DemoKubernetes) -> None:
    kubectl = "kubectl" if shutil.which("kubectl") == str(kube.kubectl) else str(kube.kubectl)
    lasts = " (it is stopped when the demo ends)" if kube.temporary else ""
    console.print(f"Watch the Deployments from another terminal{lasts}:")
    console.print(f"  export KUBECONFIG={kube.kubeconfig}", soft_wrap=True, highlight=False)
    console.print(f"  {kubectl} get deploy -n shop -L track -w", soft_wrap=True, highlight=False)


def run_rollouts(
    stack: DemoStack,
    metrics: MetricsSource,
    *,
    reports_dir: Path,
    console: Console,
    images: Sequence[str] = (GOOD_IMAGE, BAD_IMAGE),
) -> list[Any]:
    """Roll out each of `images` in turn (the good one, then the bad one) with a live display on
    `console`; return their outcomes."""
    from rich.live import Live

    from canaryflow.requests import RolloutRequest
    from flows.rollout import rollout
    from flows.runtime import Runtime, use_runtime

    board = Board()
    runtime = Runtime(
        cluster=stack.cluster, metrics=metrics, clock=stack.clock, reports_dir=reports_dir, events=board.event
    )
    outcomes = []
    with Live(board.render(), console=console, refresh_per_second=4) as live:
        board.live = live
        for image in images:
            with use_runtime(runtime):
                state = rollout(
                    RolloutRequest(spec=str(DEMO_SPEC), image=image, triggered_by="demo"), return_state=True
                )
            outcomes.append(state.result())
    return outcomes


def _prefect_environment(stack: ExitStack, *, ui: bool, console: Console) -> PrefectServer | None:
    """Prefect settings for this process only, set before Prefect is imported: the ephemeral API,
    or with `ui` a `prefect server` of the demo's own (stopped when `stack` closes)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not ui:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
        return None
    from canaryflow.dev.prefectserver import prefect_server

    console.print("Starting a Prefect server (prefect server start) for the UI ...")
    server = stack.enter_context(prefect_server())
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
    console.print(f"Prefect UI: {server.ui_url}/runs (the rollouts' flow runs appear there)")
    return server


def _serve_until_interrupted(server: PrefectServer, console: Console) -> None:
    """Keep the Prefect server up until Ctrl-C (or until it exits by itself)."""
    console.print(f"The Prefect server stays up at {server.ui_url}: press Ctrl-C to stop it")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        console.print("Stopping the Prefect server")
    else:
        console.print(f"The Prefect server exited ({server.process.returncode})")


def _summary(console: Console, outcomes: list[Any], where: str, reports_dir: Path, seconds: float) -> int:
    from rich.table import Table

    table = Table(title=f"canaryflow demo: {seconds:.0f} s, metrics from {where}")
    for column in ("rollout", "image", "result", "reason"):
        table.add_column(column)
    for outcome in outcomes:
        table.add_row(outcome.rollout_id, outcome.image, outcome.result, outcome.reason)
    console.print(table)
    console.print(f"Reports (status, observation logs, charts): {reports_dir.resolve()}")
    as_expected = all(o.result == _EXPECTED.get(o.image, o.result) for o in outcomes)
    return 0 if outcomes and as_expected else 1


def demo(
    cluster: Annotated[str, typer.Option(help="sim | kube")] = "sim",
    ui: Annotated[bool, typer.Option(help="Also start `prefect server` to watch the runs.")] = False,
) -> None:
    """Run a good and a bad rollout on the embedded stack and show what was decided."""
    raise typer.Exit(run_demo(cluster=cluster, ui=ui))
