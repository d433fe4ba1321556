"""`canaryflow demo`: a good and a bad rollout on an embedded stack, start to finish, in minutes.

The stack (`simulated_stack`): a `SimulatedCluster` seeded with the example target (namespace
``shop``, Deployment and Service ``web``, 10 replicas of ``registry.example.com/shop/web:1.0.0``),
a `TrafficSimulator` that follows its pods, with a good and a bad behaviour profile, and a metrics
source: a real Prometheus scraping the simulator's ``/metrics`` when the ``prometheus`` binary is
installed, the simulated source otherwise. Tests build the same stack on a manual clock.

The demo runs the rollout flow under Prefect's ephemeral API (settings through the environment of
this process only), rolls out the good image (promoted) and then the bad one (rolled back) with a
live display, and ends with a summary table and where the reports are. This module and the CLI are
the only parts of ``canaryflow`` that may import ``flows``; they do so inside functions.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canaryflow.cluster.clock import Clock, SystemClock
from canaryflow.cluster.port import TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.errors import NotImplementedYetError
from canaryflow.metrics import MetricsSource, create_metrics_source
from canaryflow.simulation import AppRef, BehaviourProfile, MetricsServer, RealTimeDriver, TrafficSimulator

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "BAD_IMAGE",
    "DEMO_SPEC",
    "GOOD_IMAGE",
    "PROFILES",
    "STABLE_IMAGE",
    "SimulatedStack",
    "run_demo",
    "simulated_stack",
]

STABLE_IMAGE = "registry.example.com/shop/web:1.0.0"
GOOD_IMAGE = "registry.example.com/shop/web:1.1.0"
BAD_IMAGE = "registry.example.com/shop/web:1.2.0"
#: The demo's rollout spec, in the source tree next to the package.
DEMO_SPEC = Path(__file__).resolve().parents[1] / "config" / "rollouts" / "demo.yaml"
TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")

_NORMAL = BehaviourProfile(error_rate=0.01, latency_median=0.08, latency_p99=0.4)
#: The stable and the good image behave alike; the bad one fails five times as often and is slower.
PROFILES = {
    STABLE_IMAGE: _NORMAL,
    GOOD_IMAGE: _NORMAL,
    BAD_IMAGE: BehaviourProfile(error_rate=0.05, latency_median=0.12, latency_p99=0.8),
}


class _EpochClock:
    """A cluster clock as the simulator's clock (seconds since the epoch)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


@dataclass
class SimulatedStack:
    """The simulated cluster with the example target, its traffic, and a metrics source over it."""

    clock: Clock
    world: SimulatedWorld
    cluster: SimulatedCluster
    simulator: TrafficSimulator
    metrics: MetricsSource
    target: TargetRef = TARGET


def simulated_stack(
    clock: Clock,
    *,
    replicas: int = 10,
    rate_per_pod: float = 200.0,
    seed: int = 7,
    pod_ready_delay: float = 1.0,
) -> SimulatedStack:
    """The example target on a simulated cluster, its simulated traffic and the simulated source.

    The cluster and the simulator follow `clock` (a `ManualClock` in tests, `SystemClock` in the demo).
    """
    world = SimulatedWorld(clock=clock, pod_ready_delay=pod_ready_delay)
    labels = {"app": TARGET.app, "track": "stable"}
    world.add_deployment(
        TARGET.namespace, TARGET.deployment, image=STABLE_IMAGE, replicas=replicas, labels=labels
    )
    world.add_service(TARGET.namespace, TARGET.service, {"app": TARGET.app})
    cluster = SimulatedCluster(world, poll_interval=0.25)
    simulator = TrafficSimulator(
        cluster,
        [AppRef(TARGET.namespace, TARGET.app)],
        clock=_EpochClock(clock),
        seed=seed,
        rate_per_pod=rate_per_pod,
        profiles=PROFILES,
        default_profile=_NORMAL,
    )
    metrics = create_metrics_source("simulated", simulator=simulator)
    return SimulatedStack(clock=clock, world=world, cluster=cluster, simulator=simulator, metrics=metrics)


@contextmanager
def _metrics_for_demo(stack: SimulatedStack, console: Console) -> Iterator[tuple[MetricsSource, str]]:
    """A real Prometheus scraping the simulator when installed, else the embedded source."""
    binary = shutil.which("prometheus")
    if binary is None:
        console.print("Prometheus not installed: using the embedded metrics source")
        yield stack.metrics, "embedded (simulated)"
        return
    from canaryflow.metrics.localprometheus import LocalPrometheus
    from canaryflow.metrics.prometheus import PrometheusConfig

    with MetricsServer(stack.simulator) as server, LocalPrometheus.start(binary) as prometheus:
        prometheus.add_targets("simulator", [server.target])
        console.print(f"Prometheus {prometheus.url} scrapes the simulator at {server.url}")
        yield (
            create_metrics_source("prometheus", prometheus=PrometheusConfig(url=prometheus.url)),
            prometheus.url,
        )


def run_demo(*, cluster: str = "sim", ui: bool = False, reports_dir: Path = Path("reports")) -> int:
    """Run the demo; return the process exit code (0 when good was promoted and bad rolled back)."""
    if cluster not in ("sim", "simulated"):
        raise NotImplementedYetError(f"demo --cluster {cluster}: not implemented yet; use --cluster sim")
    from rich.console import Console

    console = Console()
    started = time.monotonic()
    with ExitStack() as stack:
        _prefect_environment(stack, ui=ui, console=console)
        sim = simulated_stack(SystemClock())
        stack.enter_context(RealTimeDriver(sim.simulator, tick=0.25))
        metrics, where = stack.enter_context(_metrics_for_demo(sim, console))
        outcomes = run_rollouts(sim, metrics, reports_dir=reports_dir, console=console)
    return _summary(console, outcomes, where, reports_dir, time.monotonic() - started)


def run_rollouts(
    sim: SimulatedStack, metrics: MetricsSource, *, reports_dir: Path, console: Console
) -> list[Any]:
    """Roll out the good image, then the bad one, with a live display; return their outcomes."""
    from rich.live import Live

    from canaryflow.requests import RolloutRequest
    from flows.rollout import rollout
    from flows.runtime import Runtime, use_runtime

    board = _Board()
    runtime = Runtime(
        cluster=sim.cluster, metrics=metrics, clock=sim.clock, reports_dir=reports_dir, events=board.event
    )
    outcomes = []
    with Live(board.render(), console=console, refresh_per_second=4) as live:
        board.live = live
        for image in (GOOD_IMAGE, BAD_IMAGE):
            with use_runtime(runtime):
                state = rollout(
                    RolloutRequest(spec=str(DEMO_SPEC), image=image, triggered_by="demo"), return_state=True
                )
            outcomes.append(state.result())
    return outcomes


class _Board:
    """The live display: one row per rollout (weight, latest verdict, last thing said)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}
        self.live: Any = None

    def event(self, rollout_id: str, event: str, details: Any) -> None:
        row = self.rows.setdefault(
            rollout_id, {"weight": "0%", "verdict": "", "said": "", "result": "running"}
        )
        if event == "weight":
            row["weight"] = f"{details['effective']:.0f}% (requested {details['requested']}%)"
        elif event == "verdict":
            row["verdict"] = f"interval {details['interval']}: {details['decision']}"
        elif event == "finished":
            row["result"] = details["result"]
        elif event == "log":
            row["said"] = str(details["message"])[:90]
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title="canaryflow demo: rollouts of shop/web")
        for column in ("rollout", "canary weight", "judge", "result", "last step"):
            table.add_column(column)
        for rollout_id, row in self.rows.items():
            table.add_row(rollout_id, row["weight"], row["verdict"], row["result"], row["said"])
        return table


def _prefect_environment(stack: ExitStack, *, ui: bool, console: Console) -> None:
    """Prefect settings for this process only: the ephemeral API, or a `prefect server` with --ui."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not ui:
        os.environ.pop("PREFECT_API_URL", None)
        os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
        return
    raise NotImplementedYetError("demo --ui: not implemented yet")


def _summary(console: Console, outcomes: list[Any], where: str, reports_dir: Path, seconds: float) -> int:
    from rich.table import Table

    table = Table(title=f"canaryflow demo: {seconds:.0f} s, metrics from {where}")
    for column in ("rollout", "image", "result", "reason"):
        table.add_column(column)
    for outcome in outcomes:
        table.add_row(outcome.rollout_id, outcome.image, outcome.result, outcome.reason)
    console.print(table)
    console.print(f"Reports (status, observation logs, charts): {reports_dir.resolve()}")
    results = [o.result for o in outcomes]
    return 0 if results == ["promoted", "rolled-back"] else 1
