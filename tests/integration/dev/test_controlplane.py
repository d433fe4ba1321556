"""The local control plane is a real one: Deployments get ReplicaSets and Pods, kwok makes them
Ready, `down` and a killed parent leave no process behind, and the CLI drives it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canaryflow.dev.kube import LocalControlPlane, running_control_plane
from tests.fixtures.kube import LocalKube, kube_binaries_or_skip

pytestmark = pytest.mark.kube


def kubectl(kube: LocalKube, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kube.kubectl), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=check,
    )


def test_a_deployment_becomes_ready_through_replicasets_and_kwok(local_kube: LocalKube) -> None:
    kubectl(local_kube, "create", "namespace", "devkube-smoke")
    kubectl(
        local_kube, "-n", "devkube-smoke", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"
    )
    kubectl(local_kube, "-n", "devkube-smoke", "rollout", "status", "deployment/web", "--timeout=60s")
    deployment = json.loads(
        kubectl(local_kube, "-n", "devkube-smoke", "get", "deployment/web", "-o", "json").stdout
    )
    assert deployment["status"]["readyReplicas"] == 3
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
    replicasets = json.loads(kubectl(local_kube, "-n", "devkube-smoke", "get", "rs", "-o", "json").stdout)
    assert len(replicasets["items"]) == 1
    pods = json.loads(kubectl(local_kube, "-n", "devkube-smoke", "get", "pods", "-o", "json").stdout)["items"]
    assert len(pods) == 3
    assert all(
        p["status"]["phase"] == "Running" and p["spec"]["nodeName"].startswith("kwok-node-") for p in pods
    )


def test_rbac_is_enforced(local_kube: LocalKube) -> None:
    denied = kubectl(
        local_kube, "get", "pods", "-A", "--as=system:serviceaccount:default:nobody", check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def test_up_is_idempotent_and_down_stops_every_process(tmp_path: Path) -> None:
    binaries = kube_binaries_or_skip()
    plane = LocalControlPlane(tmp_path, binaries=binaries, nodes=1, die_with_parent=True)
    first = plane.up(timeout=120)
    try:
        assert plane.up(timeout=120) == first
        assert running_control_plane(tmp_path) == first
    finally:
        assert plane.down() is True
    assert not any(_alive(pid) for pid in first.pids.values())
    assert running_control_plane(tmp_path) is None
    assert plane.down() is False


def test_a_killed_parent_leaves_no_process_behind(tmp_path: Path) -> None:
    binaries = kube_binaries_or_skip()
    script = (
        "import sys, json, pathlib\n"
        "from canaryflow.dev.kube import LocalControlPlane\n"
        f"p = LocalControlPlane(pathlib.Path({str(tmp_path)!r}), binaries=pathlib.Path({str(binaries)!r}),"
        " nodes=1, die_with_parent=True).up(timeout=120)\n"
        "print(json.dumps(p.pids), flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        pids: dict[str, int] = json.loads(parent.stdout.readline())
        assert all(_alive(pid) for pid in pids.values())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel delivers SIGKILL asynchronously; nothing to await from here
    assert not [name for name, pid in pids.items() if _alive(pid)]


def test_cli_up_env_down(tmp_path: Path) -> None:
    kube_binaries_or_skip()
    env = {**os.environ, "CANARYFLOW_KUBE_DIR": str(tmp_path / "state")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "canaryflow", "dev", "kube", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )

    assert cli("env").returncode == 3  # nothing running yet: a clear error, not an empty answer
    up = cli("up", "--nodes", "1")
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = tmp_path / "state" / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout
        env_out = cli("env")
        assert env_out.returncode == 0
        assert f"export KUBECONFIG={kubeconfig}" in env_out.stdout
    finally:
        down = cli("down")
    assert down.returncode == 0
    assert cli("env").returncode == 3


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def test_pods_marked_not_ready_are_made_ready_again(local_kube: LocalKube) -> None:
    """After an API-server outage longer than the node lease, the restarted controller-manager may
    find the nodes' leases stale and mark their pods not Ready (whether it does depends on who is
    first after the restart: the controller or kwok renewing the leases). Marked so here, on
    purpose, the pods are made Ready again by kwok, as a kubelet would
    (`canaryflow.dev.kube.stages`)."""
    ns = "devkube-ready-again"
    kubectl(local_kube, "create", "namespace", ns)
    kubectl(local_kube, "-n", ns, "create", "deployment", "web", "--image=web:1", "--replicas=3")
    kubectl(local_kube, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    assert _ready_pods(local_kube, ns) == 3
    not_ready = json.dumps({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    for name in kubectl(local_kube, "-n", ns, "get", "pods", "-o", "name").stdout.split():
        kubectl(local_kube, "-n", ns, "patch", name, "--subresource=status", "-p", not_ready)

    deadline = time.monotonic() + 60
    while (ready := _ready_pods(local_kube, ns)) != 3:
        assert time.monotonic() < deadline, f"pods not Ready again within 60 s: {ready} of 3"
        time.sleep(0.5)


def _ready_pods(kube: LocalKube, namespace: str) -> int:
    listed = kubectl(kube, "-n", namespace, "get", "pods", "-l", "app=web", "-o", "json")
    pods = json.loads(listed.stdout)["items"]
    return sum(
        1
        for pod in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    )
