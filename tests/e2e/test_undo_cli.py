"""``canaryflow undo`` from a terminal against the local control plane: the last promotion is taken
back at once, recorded with who and why, and every refusal is one line that changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from canaryflow.cluster.kubernetes import KubernetesCluster
from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.history import read_history
from canaryflow.replicas import plan_split
from tests.contract.harness import KubernetesHarness

pytestmark = [pytest.mark.kube, pytest.mark.slow]

DEADLINE = timedelta(seconds=90)
SPEC = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {{name: web}}
spec:
  target: {{namespace: {namespace}, deployment: web, container: web, service: web}}
  progressDeadline: 2m
  steps:
    - setWeight: 25
    - analyze: {{interval: 30s, maxDuration: 10m}}
"""


@pytest.fixture
def app(
    local_kube: Any, tmp_path: Path
) -> Iterator[tuple[KubernetesHarness, KubernetesCluster, TargetRef, Path]]:
    harness = KubernetesHarness(local_kube.kubeconfig)
    try:
        target = harness.create_app("web", image="web:1", replicas=4)
        spec = tmp_path / "web.yaml"
        spec.write_text(SPEC.format(namespace=harness.namespace))
        with KubernetesCluster.from_kubeconfig(local_kube.kubeconfig) as cluster:
            yield harness, cluster, target, spec
    finally:
        harness.close()


def _canaryflow(local_kube: Any, reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYFLOW_", "PREFECT_"))}
    env |= {
        "KUBECONFIG": str(local_kube.kubeconfig),
        "CANARYFLOW_REPORTS_DIR": str(reports),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def _promote(cluster: KubernetesCluster, target: TargetRef, rollout_id: str, image: str) -> None:
    rid = RolloutId(rollout_id)
    split = plan_split(4, 25, baseline=True)
    cluster.apply_split(target, split, rollout_id=rid, image=image, step=0, progress_deadline=DEADLINE)
    cluster.promote(target, rollout_id=rid, progress_deadline=DEADLINE)


def test_undo_takes_the_last_promotion_back_and_records_who_and_why(
    local_kube: Any, app: Any, tmp_path: Path
) -> None:
    harness, cluster, target, spec = app
    _promote(cluster, target, "web-v2", "web:2")

    done = _canaryflow(
        local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "5xx in the checkout", "--by", "ana"
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{target}: undoing web-v2 (web:2 -> web:1)",
        f"{target}: the stable runs web:1 again (4/4 ready)",
    ]
    observed = harness.observe("web")
    assert observed is not None
    assert observed.images == {"web": "web:1"}
    assert observed.annotations["canaryflow/undone"] == "web:2 of web-v2: by ana: 5xx in the checkout"
    assert "canaryflow/previous-image" not in observed.annotations

    again = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "twice")
    assert again.returncode == 3
    assert again.stderr.splitlines() == [
        f"canaryflow: error: {target} has no promotion by canaryflow to undo "
        "(last undo: web:2 of web-v2: by ana: 5xx in the checkout)"
    ]
    assert again.stdout == ""
    # the history keeps it (the delivery figures count it as a failed change)
    (record,) = read_history(tmp_path / "reports").records
    assert (record.rollout_id, record.result, record.image, record.target) == (
        "web-v2",
        "undone",
        "web:2",
        str(target),
    )
    assert record.reason == "by ana: 5xx in the checkout"


def test_undo_refuses_without_a_reason_a_spec_or_while_a_rollout_is_under_way(
    local_kube: Any, app: Any, tmp_path: Path
) -> None:
    harness, cluster, target, spec = app
    _promote(cluster, target, "web-v2", "web:2")

    no_reason = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec))
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
    no_spec = _canaryflow(
        local_kube, tmp_path / "reports", "undo", str(tmp_path / "missing.yaml"), "--reason", "x"
    )
    assert no_spec.returncode == 1
    assert len(no_spec.stderr.splitlines()) == 1
    assert "missing.yaml" in no_spec.stderr

    rid = RolloutId("web-v3")
    cluster.apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=rid,
        image="web:3",
        step=0,
        progress_deadline=DEADLINE,
    )
    busy = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "x")
    assert busy.returncode == 3
    assert busy.stderr.splitlines() == [
        f"canaryflow: error: {target} is in rollout web-v3: abort that rollout instead of undoing"
    ]
    for refused in (no_reason, no_spec, busy):
        assert "Traceback" not in refused.stderr
    observed = harness.observe("web")
    assert observed is not None
    assert observed.images == {"web": "web:2"}  # nothing was undone
    assert harness.deployments() == ["web", "web-baseline", "web-canary"]


def test_undo_refuses_while_a_rollout_holds_the_targets_lock(
    local_kube: Any, app: Any, tmp_path: Path
) -> None:
    harness, cluster, target, spec = app
    _promote(cluster, target, "web-v2", "web:2")
    # A rollout that has taken the lock and not written yet (no canary to see).
    assert cluster.lock(target, identity="web-v3/run-1", details={}, duration=timedelta(minutes=5)).granted

    busy = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "x")

    assert busy.returncode == 3
    assert busy.stderr.splitlines() == [
        f"canaryflow: error: {target}: web-v3/run-1 holds its lock: abort that rollout instead of undoing"
    ]
    observed = harness.observe("web")
    assert observed is not None
    assert observed.images == {"web": "web:2"}  # nothing was undone
    cluster.unlock(target, identity="web-v3/run-1")
    done = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "x")
    assert done.returncode == 0, done.stderr
    assert cluster.lock_holder(target) is None  # given back


def test_undo_takes_an_abandoned_lock_once_it_has_seen_it_go_unrenewed(
    local_kube: Any, app: Any, tmp_path: Path
) -> None:
    """A rollout that took the lock and died on another machine (nobody marked it): its Lease of
    2 s stops being renewed. The undo does not trust the holder's renewTime against its own clock:
    it watches the Lease for its duration, sees no renewal, and takes it."""
    harness, cluster, target, spec = app
    _promote(cluster, target, "web-v2", "web:2")
    short = timedelta(seconds=2)
    assert cluster.lock(
        target, identity="web-v3/run-1", details={"host": "elsewhere"}, duration=short
    ).granted
    harness.let_time_pass(3)  # its last renewal is now older than its duration

    done = _canaryflow(local_kube, tmp_path / "reports", "undo", str(spec), "--reason", "bad release")

    assert done.returncode == 0, done.stderr
    assert f"{target}: the lock of web-v3/run-1 looks expired" in done.stderr
    observed = harness.observe("web")
    assert observed is not None
    assert observed.images == {"web": "web:1"}  # undone
    assert cluster.lock_holder(target) is None  # the undo gave the lock back
