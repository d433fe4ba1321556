"""`canaryflow demo --cluster kube`, reduced to its good rollout, on the test run's local control plane:
the example app is applied with kubectl, the simulator follows the real pods, the flow promotes, and
the cluster (observed with kubectl, not through the adapter) is left with the stable alone on the new
image. Applying the example app again brings the demo back to its starting point."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from canaryflow.cli.demorun import demo_stack, run_rollouts
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, apply_example_app, demo_metrics
from canaryflow.simulation import RealTimeDriver
from tests.fixtures.kube import LocalKube

pytestmark = [pytest.mark.kube, pytest.mark.slow]


def _deployments(kube: LocalKube) -> dict[str, dict[str, Any]]:
    """The Deployments of namespace shop by name, as kubectl reports them."""
    done = subprocess.run(
        [
            str(kube.kubectl),
            f"--kubeconfig={kube.kubeconfig}",
            "get",
            "deployments",
            "-n",
            "shop",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {item["metadata"]["name"]: item for item in json.loads(done.stdout)["items"]}


def _image(deployment: dict[str, Any]) -> str:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(container["image"])


def test_the_kube_demo_promotes_a_good_image_on_a_real_api_server(
    local_kube: LocalKube, prefect_harness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = io.StringIO()
    console = Console(file=output, width=200)

    with demo_stack("kube", kubeconfig=local_kube.kubeconfig, console=console) as stack:
        before = _deployments(local_kube)
        assert list(before) == ["web"]
        assert _image(before["web"]) == STABLE_IMAGE
        assert before["web"]["status"]["readyReplicas"] == 10
        with RealTimeDriver(stack.simulator, tick=0.25), demo_metrics(stack) as (metrics, _):
            (outcome,) = run_rollouts(
                stack, metrics, images=(GOOD_IMAGE,), reports_dir=tmp_path / "reports", console=console
            )
        assert stack.simulator.simulated_requests > 0  # it followed the real, Ready pods

    assert outcome.result == "promoted", outcome.reason
    after = _deployments(local_kube)
    assert list(after) == ["web"], "canary and baseline are gone"
    web = after["web"]
    assert _image(web) == GOOD_IMAGE
    assert web["spec"]["replicas"] == 10
    assert web["status"]["updatedReplicas"] == 10
    assert web["status"]["readyReplicas"] == 10
    assert f"export KUBECONFIG={local_kube.kubeconfig}" in output.getvalue()
    assert "get deploy -n shop" in output.getvalue()

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    apply_example_app(local_kube.kubectl, local_kube.kubeconfig)
    assert not home.exists(), "kubectl wrote into the user's home"  # its cache is the plane's
    assert (local_kube.kubeconfig.parent / "kubectl-cache").is_dir()

    reset = _deployments(local_kube)
    assert list(reset) == ["web"]
    assert _image(reset["web"]) == STABLE_IMAGE
    assert reset["web"]["status"]["updatedReplicas"] == 10
