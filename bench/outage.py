"""Benchmark: how long after an API-server outage a decided promotion or rollback converges.

    .venv/bin/python bench/outage.py [--outages 30,120,600] [--kube]

For each outage length, splits 10 replicas at 20 % (canary and baseline), makes the API server
stop answering just as the promotion (or, alternately, the rollback) starts, and measures the
time from the server answering again to the target converged (stable on its image at full size,
canary and baseline gone), and the whole operation. Without ``--kube`` the cluster is the
simulated one on a manual clock (the controller's backoff and polling are real code; the API
server and the pods are the simulation's: pods Ready 2 s after they start). With ``--kube`` a
local control plane (``tools/kube/build.sh``) is started in a temporary directory and its real
kube-apiserver is killed and started again on etcd's data (long outages there make the fake
nodes miss their leases: keep them under about 40 s). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import Cluster, RolloutId, TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.replicas import plan_split

DEADLINE = timedelta(minutes=5)
TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")


def simulated(outage: float, finish: str) -> tuple[float, float]:
    clock = ManualClock()
    world = SimulatedWorld(clock=clock, pod_ready_delay=2.0)
    world.add_deployment("shop", "web", image="web:1", replicas=10, labels={"app": "web"})
    world.add_service("shop", "web", {"app": "web"})
    cluster = SimulatedCluster(world)
    rid = RolloutId("web-v2")
    cluster.apply_split(
        TARGET,
        plan_split(10, 20, baseline=True),
        rollout_id=rid,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    start = clock.monotonic()
    world.outage(outage)
    _finish(cluster, finish, rid)
    done = clock.monotonic()
    return done - (start + outage), done - start


def kube(outages: list[float]) -> list[tuple[float, str, float, float]]:
    from canaryflow.cluster.kubernetes import KubernetesCluster
    from canaryflow.dev.kube import LocalControlPlane, find_binaries
    from canaryflow.dev.stacks import apply_example_app, kubectl_binary

    binaries = find_binaries(required=True)
    assert binaries is not None
    rows = []
    with tempfile.TemporaryDirectory(prefix="canaryflow-bench-outage-") as directory:
        plane = LocalControlPlane(Path(directory), binaries=binaries, nodes=3, die_with_parent=True)
        try:
            running = plane.up(timeout=120)
            apply_example_app(kubectl_binary(binaries), running.kubeconfig, replicas=10)
            with KubernetesCluster.from_kubeconfig(running.kubeconfig) as cluster:
                stable = cluster.read(TARGET).stable.image
                for number, outage in enumerate(outages):
                    finish = "promote" if number % 2 == 0 else "rollback"
                    rid = RolloutId(f"web-bench-{number}")
                    split = plan_split(10, 20, baseline=True)
                    image = f"{stable}-bench{number}"
                    cluster.apply_split(
                        TARGET, split, rollout_id=rid, image=image, step=0, progress_deadline=DEADLINE
                    )
                    back: list[float] = []

                    def restart(seconds: float = outage, back: list[float] = back) -> None:
                        time.sleep(seconds)  # the outage itself: nothing to await
                        plane.start_apiserver()
                        back.append(time.monotonic())

                    start = time.monotonic()
                    plane.stop_apiserver()
                    thread = threading.Thread(target=restart, daemon=True)
                    thread.start()
                    _finish(cluster, finish, rid)
                    done = time.monotonic()
                    thread.join()
                    rows.append((outage, finish, done - back[0], done - start))
                    stable = cluster.read(TARGET).stable.image
        finally:
            plane.down()
    return rows


def _finish(cluster: Cluster, finish: str, rid: RolloutId) -> None:
    act = cluster.promote if finish == "promote" else cluster.rollback
    status = act(TARGET, rollout_id=rid, progress_deadline=DEADLINE)
    assert (status.canary, status.baseline, status.stable.ready) == (None, None, 10), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="30,120,600", help="outage lengths in seconds, comma-separated")
    parser.add_argument("--kube", action="store_true", help="the real API server of a local control plane")
    args = parser.parse_args()
    outages = [float(x) for x in args.outages.split(",")]
    where = (
        "local control plane (real kube-apiserver killed and restarted)" if args.kube else "simulated cluster"
    )
    print(f"{platform.node()} {platform.processor() or platform.machine()}, {where}\n")
    print("| outage | operation | converged after the server answered | whole operation |")
    print("|---|---|---|---|")
    if args.kube:
        for outage, finish, after, whole in kube(outages):
            print(f"| {outage:.0f} s | {finish} | {after:.1f} s | {whole:.1f} s |")
        return
    for outage in outages:
        for finish in ("promote", "rollback"):
            after, whole = simulated(outage, finish)
            print(f"| {outage:.0f} s | {finish} | {after:.1f} s | {whole:.1f} s |")


if __name__ == "__main__":
    main()
