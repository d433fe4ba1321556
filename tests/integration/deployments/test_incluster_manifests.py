"""canaryflow in a cluster: deployments/kubernetes/canaryflow/ applied for real to a local control
plane of its own. The API server creates and validates every object, the claims bind, the
scheduler places the pods and kwok reports them Running and Ready. kwok runs no containers, so
what runs inside them (the image, the probes' answers) is not exercised here; the Dockerfile's
build steps are the `uv sync --frozen` ones `make setup` runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.kube import LocalControlPlane
from tests.fixtures.kube import kube_binaries_or_skip

pytestmark = pytest.mark.kube

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "deployments" / "kubernetes" / "canaryflow"
SA = "system:serviceaccount:canaryflow:canaryflow"


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=120, check=False, input=stdin,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip() or done.stderr.strip()

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    binaries = kube_binaries_or_skip()
    plane = LocalControlPlane(
        tmp_path_factory.mktemp("incluster"), binaries=binaries, nodes=1, die_with_parent=True
    )
    try:
        yield Kubectl(binaries / "kubectl", plane.up(timeout=120).kubeconfig)
    finally:
        plane.down()


def volume(name: str, size: str) -> str:
    """A pre-provisioned volume for a claim (the local control plane has no provisioner)."""
    return json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": f"/var/lib/{name}"},
        },
    })  # fmt: skip


@pytest.fixture(scope="module")
def applied(kubectl: Kubectl) -> Kubectl:
    kubectl("apply", "-f", str(ROOT / "deployments" / "kubernetes" / "example-app.yaml"))
    for name, size in (("deliveries", "1Gi"), ("reports", "5Gi")):
        kubectl("apply", "-f", "-", stdin=volume(f"canaryflow-{name}", size))
    kubectl("apply", "-k", str(MANIFESTS))
    secret = "a-webhook-secret-of-enough-bytes"
    kubectl(
        "-n",
        "canaryflow",
        "create",
        "secret",
        "generic",
        "canaryflow-webhook",
        f"--from-literal=github={secret}",
    )
    for deployment in ("canaryflow-receiver", "canaryflow-worker"):
        kubectl("-n", "canaryflow", "rollout", "status", f"deployment/{deployment}", "--timeout=90s")
    return kubectl


def test_the_receiver_and_the_worker_are_scheduled_with_their_volumes(applied: Kubectl) -> None:
    claims = applied.json("-n", "canaryflow", "get", "pvc")["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == [
        ("canaryflow-deliveries", "Bound"),
        ("canaryflow-reports", "Bound"),
    ]
    pods = applied.json("-n", "canaryflow", "get", "pods")["items"]
    by_app = {p["metadata"]["labels"]["app"]: p for p in pods}
    assert sorted(by_app) == ["canaryflow-receiver", "canaryflow-worker"]
    assert all(p["status"]["phase"] == "Running" for p in pods)


def test_the_worker_runs_as_the_least_privilege_account_and_the_receiver_as_none(applied: Kubectl) -> None:
    worker = applied.json("-n", "canaryflow", "get", "deployment", "canaryflow-worker")["spec"]["template"][
        "spec"
    ]
    receiver = applied.json("-n", "canaryflow", "get", "deployment", "canaryflow-receiver")["spec"][
        "template"
    ]["spec"]

    assert worker["serviceAccountName"] == "canaryflow"
    assert receiver["automountServiceAccountToken"] is False
    env = {e["name"] for c in worker["containers"] for e in c.get("env", [])}
    assert "PREFECT_WORKER_WEBSERVER_PORT" in env
    settings = applied.json("-n", "canaryflow", "get", "configmap")
    generated = [c for c in settings["items"] if c["metadata"]["name"].startswith("canaryflow-settings-")]
    assert generated[0]["data"]["CANARYFLOW_IN_CLUSTER"] == "true"


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("patch", "deployments", "shop", "yes"),
        ("create", "events", "shop", "yes"),
        ("get", "secrets", "shop", "no"),
        ("patch", "deployments", "canaryflow", "no"),
        ("list", "deployments", "kube-system", "no"),
    ],
)
def test_the_service_account_may_do_exactly_what_rollouts_need(
    applied: Kubectl, verb: str, resource: str, namespace: str, allowed: str
) -> None:
    answer = applied("auth", "can-i", verb, resource, "-n", namespace, f"--as={SA}", check=False)
    assert answer == allowed


def test_applying_again_changes_nothing(applied: Kubectl) -> None:
    before = applied.json("-n", "canaryflow", "get", "deployment", "canaryflow-worker")["metadata"][
        "generation"
    ]
    applied("apply", "-k", str(MANIFESTS))
    after = applied.json("-n", "canaryflow", "get", "deployment", "canaryflow-worker")["metadata"][
        "generation"
    ]
    assert after == before
