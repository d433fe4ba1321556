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
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canaryflow.cli.board import Board
from canaryflow.cli.output import print_uncut
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
from canaryflow.errors import UsageError
from canaryflow.simulation import RealTimeDriver

if TYPE_CHECKING:
    from rich.console import Console

    from canaryflow.dev.prefectserver import PrefectServer
    from canaryflow.metrics import MetricsSource
    from canaryflow.plan import RolloutPlan

__all__ = [
    "BAD_IMAGE",
    "DEMO_RATE_PER_POD",
    "DEMO_SPEC",
    "GOOD_IMAGE",
    "PROFILES",
    "STABLE_IMAGE",
    "SimulatedStack",
    "demo_stack",
    "prefect_for_demo",
    "run_demo",
    "run_rollouts",
    "serve_until_interrupted",
    "simulated_stack",
    "wait_for_stable_data",
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
    reports_dir: Path | None = None,
    kubeconfig: Path | None = None,
    images: Sequence[str] = (GOOD_IMAGE, BAD_IMAGE),
) -> int:
    """Run the demo; return the process exit code (0 when every image ended as expected: the good
    one promoted, the bad one rolled back).

    `cluster` is ``sim`` or ``kube`` (see `canaryflow.cluster.factory.CLUSTER_KINDS`); `kubeconfig`
    picks the API server for ``kube`` (default: the running local control plane, else a temporary
    one). With `ui`, a Prefect server shows the runs and stays up after them until Ctrl-C.
    A Ctrl-C during a rollout's steps rolls it back and skips the rest: 130 after the summary (one
    that stops a rollout outside its steps ends the demo at once, 130, the canary where it was).
    """
    if reports_dir is None:
        from canaryflow.environment import reports_dir as reports_from_env

        reports_dir = reports_from_env(os.environ)
    kind = CLUSTER_KINDS.get(cluster)
    if kind is None:
        known = ", ".join(sorted(CLUSTER_KINDS))
        raise UsageError(f"demo --cluster {cluster}: unknown cluster kind; choose one of: {known}")
    from rich.console import Console

    console = Console()
    with ExitStack() as resources:
        server = prefect_for_demo(resources, ui=ui, console=console)
        started = time.monotonic()
        with ExitStack() as stack:
            demo = stack.enter_context(demo_stack(kind, kubeconfig=kubeconfig, console=console))
            stack.enter_context(RealTimeDriver(demo.simulator, tick=0.25))
            metrics, where = stack.enter_context(demo_metrics(demo, say=console.print))
            outcomes = run_rollouts(demo, metrics, images=images, reports_dir=reports_dir, console=console)
        code = _summary(console, outcomes, where, reports_dir, time.monotonic() - started)
        from flows.stops import was_interrupted  # Prefect is set up by now

        if any(was_interrupted(o) for o in outcomes):
            return 130
        if ui and server is not None:
            serve_until_interrupted(server, console)
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


_INTERRUPTED = "canaryflow: interrupted: rolling the canary back; the demo ends after that"


def run_rollouts(
    stack: DemoStack,
    metrics: MetricsSource,
    *,
    reports_dir: Path,
    console: Console,
    images: Sequence[str] = (GOOD_IMAGE, BAD_IMAGE),
) -> list[Any]:
    """Roll out each of `images` in turn (the good one, then the bad one) with a live display on
    `console` (off a terminal, a line per thing a rollout does, as it does it); return their
    outcomes. Each waits until the stable's metrics arrive (after a promotion the stable's pods
    are new: their series need a scrape or two). A rollout stopped by Ctrl-C (rolled back by its
    flow) ends the demo: the rest are not started."""
    from rich.live import Live

    from canaryflow.cli.interrupts import ctrl_c_stops_rollouts
    from canaryflow.cli.progress import Progress
    from canaryflow.requests import BY_DEMO, RolloutRequest
    from flows.rollout import outcome_of, rollout
    from flows.runtime import Runtime, use_runtime
    from flows.stops import was_interrupted

    board = Board()
    # rich draws a Live's frame off a terminal only when it ends: a pipe or CI log would stay silent
    terminal = console.is_terminal
    events = board.event if terminal else Progress(console.file)
    runtime = Runtime(
        cluster=stack.cluster, metrics=metrics, clock=stack.clock, reports_dir=reports_dir, events=events
    )
    outcomes = []
    _wait_for_traffic(stack, metrics, console)
    display = Live(board.render(), console=console, refresh_per_second=4) if terminal else nullcontext()
    with display as live:
        board.live = live
        for index, image in enumerate(images):
            if index:
                _wait_for_traffic(stack, metrics, console)
            with use_runtime(runtime), ctrl_c_stops_rollouts(_INTERRUPTED):
                state = rollout(
                    RolloutRequest(spec=str(DEMO_SPEC), image=image, triggered_by=BY_DEMO), return_state=True
                )
            outcomes.append(outcome_of(state))
            if was_interrupted(outcomes[-1]):
                break
    return outcomes


def prefect_for_demo(stack: ExitStack, *, ui: bool, console: Console) -> PrefectServer | None:
    """Point this process's Prefect at the API (set before Prefect is imported): the one the
    environment names (`canaryflow.cli.prefectapi`), else canaryflow's local server, started for
    the demo (its database prepared first) and stopped when `stack` closes. Returns the server the
    demo started, if it did."""
    from canaryflow.cli.output import debugging
    from canaryflow.cli.prefectapi import PrefectApi, connect, find_api, use
    from canaryflow.dev.prefectserver import LocalPrefect, default_home

    if find_api(os.environ) is not None:
        api = connect(os.environ)
        console.print(f"Prefect: {api.url} (from {api.source})")
        use(api, debug=debugging())
        return None
    local = LocalPrefect(default_home(), say=console.print)
    console.print("Starting canaryflow's local Prefect server for the demo ...")
    server = local.up(die_with_caller=True)
    stack.callback(local.down)
    stack.callback(_flush_logs)  # runs first: the run logs reach the server before it stops
    use(PrefectApi(server.api_url, "the demo's local server"), debug=debugging())
    console.print(f"Prefect UI: {server.ui_url}/runs (the rollouts' flow runs appear there)")
    return server


def _flush_logs() -> None:
    if "prefect" in sys.modules:  # nothing to flush when no rollout ran
        from flows.control import flush_logs

        flush_logs()


def _wait_for_traffic(
    stack: DemoStack, metrics: MetricsSource, console: Console, timeout: float = 60.0
) -> None:
    """Wait until the preflight passes: the stable has served long enough for every metric to
    have data (a few seconds after the stack starts)."""
    from canaryflow.plan import plan_rollout
    from canaryflow.requests import BY_DEMO, RolloutRequest

    plan = plan_rollout(RolloutRequest(spec=str(DEMO_SPEC), image=GOOD_IMAGE, triggered_by=BY_DEMO))
    wait_for_stable_data(
        plan,
        stack,
        metrics,
        deadline=time.monotonic() + timeout,
        waiting=f"Waiting for metrics of the stable track of {plan.target} ...",
        say=console.print,
    )


def wait_for_stable_data(
    plan: RolloutPlan,
    stack: DemoStack,
    metrics: MetricsSource,
    *,
    deadline: float,
    waiting: str,
    say: Callable[[str], None],
) -> None:
    """Wait until `plan`'s preflight passes on `stack` and `metrics` (every metric has data for
    the stable); says `waiting` once if it has to wait; NoDataError after `deadline` (monotonic)."""
    from canaryflow.errors import NoDataError
    from canaryflow.preflight import check_target

    said = False
    while True:
        try:
            check_target(plan, cluster=stack.cluster, metrics=metrics, now=stack.clock.now())
            return
        except NoDataError:
            if time.monotonic() > deadline:
                raise
            if not said:
                say(waiting)
                said = True
            stack.clock.sleep(1.0)


def serve_until_interrupted(server: PrefectServer, console: Console) -> None:
    """Keep the Prefect server up until Ctrl-C (or until it exits by itself)."""
    console.print(f"The Prefect server stays up at {server.ui_url}: press Ctrl-C to stop it")
    try:
        if server.process is not None:
            server.process.wait()
    except KeyboardInterrupt:
        console.print("Stopping the Prefect server")
    else:
        console.print("The Prefect server exited")


def _summary(console: Console, outcomes: list[Any], where: str, reports_dir: Path, seconds: float) -> int:
    from rich.table import Table

    table = Table(title=f"canaryflow demo: {seconds:.0f} s, metrics from {where}")
    for column in ("rollout", "image", "result"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for outcome in outcomes:
        table.add_row(outcome.rollout_id, outcome.image, outcome.result, outcome.reason)
    print_uncut(console, table)
    console.print(f"Reports (status, observation logs, charts): {reports_dir.resolve()}")
    as_expected = all(o.result == _EXPECTED.get(o.image, o.result) for o in outcomes)
    return 0 if outcomes and as_expected else 1
