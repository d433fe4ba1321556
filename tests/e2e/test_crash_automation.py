"""Rollout runs stopped under their worker, end to end: a run killed ends Crashed and the crash
automation of ``deployments/prefect.yaml`` rolls its canary back; a run cancelled in Prefect ends
Cancelled and its ``on_cancellation`` hook rolls its canary back before the process goes.

Everything is the real thing: ``prefect deploy`` creates the two deployments and the automation
from ``deployments/prefect.yaml`` on the test run's Prefect API; a ``prefect worker`` of the
process pool runs the flow runs as subprocesses, against the local control plane (``KUBECONFIG``)
and a real Prometheus; the rollout sets a 20 % split and holds it in a long pause, its process is
killed with SIGKILL, the worker reports the run Crashed, the server's triggers fire the
automation, and the worker runs the cleanup deployment with the crashed run's spec and rollout id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE
from canaryflow.history import read_history
from canaryflow.reports import scan_statuses
from canaryflow.status import RolloutPhase
from tests.e2e.conftest import App

pytestmark = [pytest.mark.kube, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POOL = "canaryflow-process"
AUTOMATION = "canaryflow-cleanup-after-crashed-rollout"

SPEC = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {{name: web-crash}}
spec:
  target: {{namespace: {namespace}, deployment: web, container: web, service: web}}
  baseline: true
  progressDeadline: 1m
  steps:
    - setWeight: 20
    - pause: {{duration: 1h}}
"""

APPROVAL_SPEC = SPEC.replace("pause: {{duration: 1h}}", "pause: {{approval: true, timeout: 1h}}")


def _until(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    """Poll `check` (state on the API server or in the cluster) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text().splitlines()[-40:]) if log and log.exists() else ""
            raise AssertionError(f"not within {timeout:g} s: {what}\n{tail}")
        time.sleep(0.5)
    return found


@pytest.fixture
def prefect_env(prefect_harness: Any, tmp_path: Path) -> dict[str, str]:
    """The environment of the ``prefect`` commands: this test run's API, a home of their own."""
    return {
        **os.environ,
        "PREFECT_API_URL": str(prefect_harness.api.url),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def deployed(prefect_env: dict[str, str]) -> Iterator[None]:
    """The work pool, and ``prefect deploy --all`` of ``deployments/prefect.yaml`` (as its header
    says); the automation and the deployments are deleted afterwards, so that later crashes in this
    test run do not schedule cleanups nobody runs."""
    from prefect.client.orchestration import get_client

    _prefect(prefect_env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
    _prefect(prefect_env, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
    yield
    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(AUTOMATION):
            client.delete_automation(automation.id)
        for name in ("rollout/rollout", "cleanup/cleanup"):
            client.delete_deployment(client.read_deployment_by_name(name).id)


@pytest.fixture
def worker(
    deployed: None, prefect_env: dict[str, str], app: App, prometheus: Any, tmp_path: Path
) -> Iterator[Path]:
    """A process worker of the pool whose flow runs use the local control plane; yields its log."""
    env = {
        **prefect_env,
        "KUBECONFIG": str(app.kubeconfig),
        "CANARYFLOW_PROMETHEUS_URL": prometheus.url,
        "CANARYFLOW_REPORTS_DIR": str(tmp_path / "reports"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)  # the test is over: a worker still waiting on its runs is killed
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _runs_of(deployment: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def _holder_pid(app: App) -> int | None:
    from prefect.variables import Variable

    from flows.slots import slot_name

    record = Variable.get(slot_name(app.target), default=None)
    holder = (record or {}).get("holder") or {}
    return int(holder["pid"]) if holder.get("pid") else None


def test_a_crashed_rollout_run_is_cleaned_up_by_the_automation(
    worker: Path, app: App, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(namespace=app.namespace))
    request = {"spec": str(spec), "image": GOOD_IMAGE, "triggered_by": "test"}
    started = run_deployment("rollout/rollout", parameters={"request": request}, timeout=0)

    # The run sets its split and pauses; then its process dies without a word.
    split = _until(
        "the rollout run holds a 20 % split",
        lambda: (s := app.read()).state is not None and s.state.weight == 20 and s.canary is not None and s,
        timeout=180,
        log=worker,
    )
    assert split.canary.image == GOOD_IMAGE
    pid = _until("the rollout run records its process", lambda: _holder_pid(app), timeout=30, log=worker)
    os.kill(pid, signal.SIGKILL)

    with get_client(sync_client=True) as client:
        crashed = _until(
            "the worker reports the killed run Crashed",
            lambda: (r := client.read_flow_run(started.id)).state is not None and r.state.is_crashed() and r,
            timeout=120,
            log=worker,
        )
    assert crashed.name == split.state.rollout_id

    cleanup = _until(
        "the automation's cleanup run completes",
        lambda: [r for r in _runs_of("cleanup/cleanup") if r.state is not None and r.state.is_final()],
        timeout=180,
        log=worker,
    )
    (run,) = cleanup
    assert run.state.is_completed(), run.state
    assert run.parameters["target"] == {"spec": str(spec), "rollout_id": crashed.name}
    status = app.read()
    assert (status.state, status.canary, status.baseline) == (None, None, None)
    assert status.stable.image == STABLE_IMAGE
    assert (status.stable.replicas, status.stable.ready) == (10, 10)
    # status and get no longer show the crashed run progressing; the history has its end
    (report,) = scan_statuses(tmp_path / "reports").found
    assert (report.phase, report.result) == (RolloutPhase.ROLLED_BACK, "rolled-back")
    assert report.reason is not None
    assert report.reason.startswith("its run ended before the rollout did; the cleanup rolled back ")
    (record,) = read_history(tmp_path / "reports").records
    assert (record.result, record.flow_run_id) == ("rolled-back", str(started.id))
    assert record.started_at == crashed.start_time  # read from the Prefect API


def test_a_rollout_run_cancelled_under_its_worker_rolls_its_canary_back(
    worker: Path, app: App, prefect_env: dict[str, str], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    spec = tmp_path / "spec.yaml"
    spec.write_text(APPROVAL_SPEC.format(namespace=app.namespace))
    request = {"spec": str(spec), "image": GOOD_IMAGE, "triggered_by": "test"}
    started = run_deployment("rollout/rollout", parameters={"request": request}, timeout=0)

    # The run sets its split and waits for an approval: no checkpoint of its own runs meanwhile,
    # so only the cancellation hook can roll it back.
    _until(
        "the rollout run holds a 20 % split",
        lambda: (s := app.read()).state is not None and s.state.weight == 20 and s.canary is not None,
        timeout=180,
        log=worker,
    )
    with get_client(sync_client=True) as client:
        _until(
            "the rollout run waits for approval",
            lambda: (r := client.read_flow_run(started.id)).state is not None and r.state.is_paused(),
            timeout=60,
            log=worker,
        )
        _prefect(prefect_env, "flow-run", "cancel", str(started.id))
        cancelled = _until(
            "the cancelled run ends Cancelled",
            lambda: (r := client.read_flow_run(started.id)).state is not None and r.state.is_final() and r,
            timeout=120,
            log=worker,
        )
    assert cancelled.state.is_cancelled(), cancelled.state
    status = _until(
        "the hook rolls the canary back",
        lambda: (s := app.read()).canary is None and s.baseline is None and s,
        timeout=120,
        log=worker,
    )
    assert status.state is None
    assert status.stable.image == STABLE_IMAGE
    assert _runs_of("cleanup/cleanup") == []  # the hook did it, not the crash automation
    # and the report says so (the run could not write it any more: the hook did)
    (report,) = scan_statuses(tmp_path / "reports").found
    assert (report.phase, report.result, report.reason) == (
        RolloutPhase.ABORTED,
        "aborted",
        "cancelled in Prefect: rolled back",
    )
    (record,) = read_history(tmp_path / "reports").records
    assert (record.result, record.reason, record.flow_run_id) == (
        "aborted",
        "cancelled in Prefect: rolled back",
        str(started.id),
    )
    # kubectl describe shows it on the stable, and the run's labels keep it in Prefect's history
    condition = _until(
        "the stable's Canary condition says aborted", lambda: app.harness.condition("web"), timeout=30
    )
    assert condition[:2] == ("False", "Aborted")
    assert condition[2].endswith(": cancelled in Prefect: rolled back")
    with get_client(sync_client=True) as client:
        labels = client.read_flow_run(started.id).labels
    assert (labels["canaryflow.result"], labels["canaryflow.target"]) == ("aborted", f"{app.namespace}/web")
