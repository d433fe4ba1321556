"""The embedded stacks `canaryflow demo` rolls out on: the example target, its traffic, its metrics.

- `simulated_stack`: a `SimulatedCluster` seeded with the example target (namespace ``shop``,
  Deployment and Service ``web``, 10 replicas of `STABLE_IMAGE`) and a `TrafficSimulator` that
  follows its pods. Tests build it on a manual clock.
- `kube_stack`: the example app of ``deployments/kubernetes/example-app.yaml`` applied with
  ``kubectl`` to a real API server (the stable image set to `STABLE_IMAGE`, leftovers of an earlier
  demo removed), a `KubernetesCluster` for the rollouts and a second one the simulator follows the
  real pods through (kwok makes them Ready). `demo_kubernetes` finds that API server: the one given,
  the running local control plane (``canaryflow dev kube up``), or a temporary one for the demo.
- `demo_metrics`: a real Prometheus scraping the simulator's ``/metrics`` when the ``prometheus``
  binary is installed, the simulated source otherwise.

Not here: Prefect and the flows (`canaryflow.demo` runs the rollouts), the `kubernetes` client
(the cluster adapter owns it; the example app goes through ``kubectl``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ruamel.yaml import YAML

from canaryflow.clock import Clock, SystemClock
from canaryflow.cluster.port import Cluster, TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.dev.workers import SOURCE_TREE
from canaryflow.errors import LocalClusterError
from canaryflow.metrics import MetricsSource, create_metrics_source
from canaryflow.simulation import AppRef, BehaviourProfile, MetricsServer, TrafficSimulator

__all__ = [
    "BAD_IMAGE",
    "DEMO_SPEC",
    "EXAMPLE_APP",
    "GOOD_IMAGE",
    "PROFILES",
    "STABLE_IMAGE",
    "TARGET",
    "DemoKubernetes",
    "DemoStack",
    "KubeStack",
    "SimulatedStack",
    "apply_example_app",
    "demo_kubernetes",
    "demo_metrics",
    "example_app_documents",
    "kube_stack",
    "kubectl_binary",
    "simulated_stack",
]

STABLE_IMAGE = "registry.example.com/shop/web:1.0.0"
GOOD_IMAGE = "registry.example.com/shop/web:1.1.0"
BAD_IMAGE = "registry.example.com/shop/web:1.2.0"
#: The demo's rollout spec, in the source tree next to the package.
DEMO_SPEC = SOURCE_TREE / "config" / "rollouts" / "demo.yaml"
#: The example app the Kubernetes demo applies.
EXAMPLE_APP = SOURCE_TREE / "deployments" / "kubernetes" / "example-app.yaml"
TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")

_NORMAL = BehaviourProfile(error_rate=0.01, latency_median=0.08, latency_p99=0.4)
#: The stable and the good image behave alike; the bad one fails five times as often and is slower.
PROFILES = {
    STABLE_IMAGE: _NORMAL,
    GOOD_IMAGE: _NORMAL,
    BAD_IMAGE: BehaviourProfile(error_rate=0.05, latency_median=0.12, latency_p99=0.8),
}
Say = Callable[[str], None]


class DemoStack(Protocol):
    """What the demo rolls out on: a cluster with the example target, its traffic and a clock."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def simulator(self) -> TrafficSimulator: ...

    @property
    def metrics(self) -> MetricsSource: ...


def _simulator(
    pods: Any,
    clock: Clock,
    *,
    rate_per_pod: float,
    seed: int,
    profiles: Mapping[str, BehaviourProfile] = PROFILES,
) -> TrafficSimulator:
    return TrafficSimulator(
        pods,
        [AppRef(TARGET.namespace, TARGET.app)],
        clock=clock,
        seed=seed,
        rate_per_pod=rate_per_pod,
        profiles=dict(profiles),
        default_profile=_NORMAL,
    )


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
    simulator = _simulator(cluster, clock, rate_per_pod=rate_per_pod, seed=seed)
    metrics = create_metrics_source("simulated", simulator=simulator)
    return SimulatedStack(clock=clock, world=world, cluster=cluster, simulator=simulator, metrics=metrics)


@dataclass
class KubeStack:
    """The example app on a real API server, its simulated traffic, and the simulated source."""

    clock: Clock
    cluster: Cluster
    simulator: TrafficSimulator
    metrics: MetricsSource
    kubeconfig: Path
    target: TargetRef = TARGET


@dataclass(frozen=True)
class DemoKubernetes:
    """The API server the demo uses: its kubeconfig, a kubectl for it, and whether it is temporary."""

    kubeconfig: Path
    kubectl: Path
    temporary: bool


@contextmanager
def demo_kubernetes(kubeconfig: Path | None = None, *, say: Say = lambda _: None) -> Iterator[DemoKubernetes]:
    """The API server for the demo, for the duration of a ``with`` block.

    With `kubeconfig`, that cluster. Otherwise the local control plane running in the default
    directory (``canaryflow dev kube up``), else one started in a temporary directory and stopped
    (with everything in it) at the end of the block. The kubectl is the one built next to the
    control plane's binaries, else the one on PATH.

    Raises
    ------
    LocalClusterError
        The control plane is not built (the message says how to build it), did not start, or
        there is no kubectl.
    """
    from canaryflow.dev.kube import LocalControlPlane, default_directory, find_binaries, running_control_plane

    binaries = find_binaries(required=kubeconfig is None)
    kubectl = kubectl_binary(binaries)
    if kubeconfig is not None:
        yield DemoKubernetes(kubeconfig, kubectl, temporary=False)
        return
    running = running_control_plane(default_directory())
    if running is not None:
        say(f"Using the running local control plane {running.server}")
        yield DemoKubernetes(running.kubeconfig, kubectl, temporary=False)
        return
    assert binaries is not None  # find_binaries(required=True) raised otherwise
    with tempfile.TemporaryDirectory(prefix="canaryflow-demo-kube-") as directory:
        say("No local control plane is running: starting one for this demo (stopped at the end)")
        plane = LocalControlPlane(Path(directory), binaries=binaries, nodes=3, die_with_parent=True)
        try:
            started = plane.up(timeout=120)
            say(f"Local control plane {started.server} is up")
            yield DemoKubernetes(started.kubeconfig, kubectl, temporary=True)
        finally:
            plane.down()
            say("Stopped the demo's local control plane")


def kubectl_binary(binaries: Path | None) -> Path:
    if binaries is not None and (binaries / "kubectl").exists():
        return binaries / "kubectl"
    found = shutil.which("kubectl")
    if found is None:
        raise LocalClusterError(
            "no kubectl: build the local control plane (`make kube-build`), which builds one, "
            "or put kubectl on PATH"
        )
    return Path(found)


def example_app_documents(*, image: str = STABLE_IMAGE, replicas: int = 10) -> list[dict[str, Any]]:
    """The example app's objects with the target container on `image` at `replicas`."""
    documents = [d for d in YAML(typ="safe", pure=True).load_all(EXAMPLE_APP.read_text()) if d]
    for document in documents:
        if document.get("kind") == "Deployment" and document["metadata"]["name"] == TARGET.deployment:
            document["spec"]["replicas"] = replicas
            for container in document["spec"]["template"]["spec"]["containers"]:
                if container["name"] == TARGET.container:
                    container["image"] = image
    return documents


def apply_example_app(
    kubectl: Path,
    kubeconfig: Path,
    *,
    image: str = STABLE_IMAGE,
    replicas: int = 10,
    timeout: float = 120.0,
) -> None:
    """Bring the example app to its starting point and wait until the stable is rolled out.

    Removes a canary and a baseline an earlier, interrupted demo may have left, applies the
    namespace, the Deployment (on `image`, `replicas` pods) and the Service, then waits for
    ``kubectl rollout status``. Raises `LocalClusterError` with kubectl's message on failure.
    """
    namespace = TARGET.namespace
    leftovers = [TARGET.track_name("canary"), TARGET.track_name("baseline")]
    _kubectl(kubectl, kubeconfig, "delete", "deployment", *leftovers, "-n", namespace, "--ignore-not-found")
    items = example_app_documents(image=image, replicas=replicas)
    _kubectl(
        kubectl,
        kubeconfig,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    deployment = f"deployment/{TARGET.deployment}"
    _kubectl(
        kubectl,
        kubeconfig,
        "rollout",
        "status",
        deployment,
        "-n",
        namespace,
        f"--timeout={timeout:.0f}s",
        timeout=timeout + 10,
    )


def _kubectl(
    kubectl: Path, kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 60.0
) -> str:
    # The discovery cache goes with the control plane's kubeconfig, not into ~/.kube of the user.
    command = [
        str(kubectl),
        f"--kubeconfig={kubeconfig}",
        f"--cache-dir={kubeconfig.parent / 'kubectl-cache'}",
        *args,
    ]
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalClusterError(f"kubectl {' '.join(args)}: no answer within {timeout:g} s") from exc
    if done.returncode != 0:
        raise LocalClusterError(
            f"kubectl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


@contextmanager
def kube_stack(
    kubeconfig: Path,
    *,
    kubectl: Path,
    replicas: int = 10,
    rate_per_pod: float = 200.0,
    seed: int = 7,
    profiles: Mapping[str, BehaviourProfile] = PROFILES,
) -> Iterator[KubeStack]:
    """The example app applied to the cluster of `kubeconfig`, adapters over it, and its traffic.

    The rollouts get one `KubernetesCluster`; the simulator, which lists pods from the driver's
    thread, gets its own (and so its own `ApiClient`). Both are closed at the end of the block.
    """
    from canaryflow.cluster.kubernetes import KubernetesCluster

    apply_example_app(kubectl, kubeconfig, replicas=replicas)
    clock = SystemClock()
    with ExitStack() as stack:
        cluster = stack.enter_context(KubernetesCluster.from_kubeconfig(kubeconfig, clock=clock))
        watcher = stack.enter_context(KubernetesCluster.from_kubeconfig(kubeconfig, clock=clock))
        simulator = _simulator(watcher, clock, rate_per_pod=rate_per_pod, seed=seed, profiles=profiles)
        metrics = create_metrics_source("simulated", simulator=simulator)
        yield KubeStack(
            clock=clock, cluster=cluster, simulator=simulator, metrics=metrics, kubeconfig=kubeconfig
        )


@contextmanager
def demo_metrics(stack: DemoStack, *, say: Say = lambda _: None) -> Iterator[tuple[MetricsSource, str]]:
    """A real Prometheus scraping the simulator when installed, else the stack's simulated source.

    Yields the source and where its numbers come from (Prometheus' URL, or "embedded (simulated)").
    """
    binary = shutil.which("prometheus")
    if binary is None:
        say("Prometheus not installed: using the embedded metrics source")
        yield stack.metrics, "embedded (simulated)"
        return
    from canaryflow.dev.localprometheus import LocalPrometheus
    from canaryflow.metrics.prometheus import PrometheusConfig

    with MetricsServer(stack.simulator) as server, LocalPrometheus.start(binary) as prometheus:
        prometheus.add_targets("simulator", [server.target])
        say(f"Prometheus {prometheus.url} scrapes the simulator at {server.url}")
        yield (
            create_metrics_source("prometheus", prometheus=PrometheusConfig(url=prometheus.url)),
            prometheus.url,
        )
