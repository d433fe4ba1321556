"""``canaryflow retry``: a rollout that was not promoted is started again with the same spec and
image, recorded as a retry with who and why; one that is still going or was promoted is refused.

The runs are the real flow under the Prefect test harness on the simulated stack. A rollout run in
a terminal is run again in this process (what the command does for it); one that ran from a
deployment gets a new flow run of that deployment, read back from the Prefect API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.errors import InputError
from canaryflow.requests import BY_DEMO, CellTarget, RolloutRequest, by_release
from tests.e2e.conftest import DEMO_SPEC


def test_a_rolled_back_rollout_runs_again_as_a_retry(
    rollout_of: Callable[..., Any], runtime: Any, stack: SimulatedStack
) -> None:
    from flows.control import retry_request, run_request

    first = rollout_of(BAD_IMAGE, rollout_id="web-retry").result()
    assert first.result == "rolled-back"

    again = retry_request("web-retry", "the error budget alert was a false alarm", by="ana@laptop")

    assert again.ended == "RolledBack"
    assert again.deployment_id is None  # it ran in a terminal (here: this process)
    assert (again.request.spec, again.request.image, again.request.rollout_id) == (
        DEMO_SPEC,
        BAD_IMAGE,
        "web-retry",
    )
    assert again.request.triggered_by == (
        "retry of web-retry (RolledBack) by ana@laptop: the error budget alert was a false alarm"
    )
    second = run_request(again.request, runtime)
    assert (second.rollout_id, second.result) == ("web-retry", "rolled-back")  # the same image fails again
    assert stack.cluster.read(stack.target).stable.image == STABLE_IMAGE


def test_a_promoted_or_unknown_rollout_is_refused(rollout_of: Callable[..., Any]) -> None:
    from flows.control import retry_request

    assert rollout_of(GOOD_IMAGE, rollout_id="web-good").result().result == "promoted"
    with pytest.raises(
        InputError, match=r"'web-good' was promoted .*: nothing to retry; `canaryflow undo SPEC`"
    ):
        retry_request("web-good", "again", by="ana")
    with pytest.raises(InputError, match="no rollout 'web-nothing' in Prefect"):
        retry_request("web-nothing", "again", by="ana")


def test_a_demo_rollout_is_refused_its_stack_ended_with_the_demo(rollout_of: Callable[..., Any]) -> None:
    from flows.control import retry_request

    assert rollout_of(BAD_IMAGE, rollout_id="web-demo", triggered_by=BY_DEMO).result().result == "rolled-back"
    with pytest.raises(InputError, match=r"'web-demo' was run by `canaryflow demo`, .*: nothing to retry"):
        retry_request("web-demo", "again", by="ana")
    # a cell's rollout of a release the demo started (`canaryflow demo --cells N`)
    cell_run = rollout_of(BAD_IMAGE, rollout_id="web-demo-cell", triggered_by=by_release("r1", BY_DEMO))
    assert cell_run.result().result == "rolled-back"
    with pytest.raises(InputError, match=r"'web-demo-cell' was run by `canaryflow demo`"):
        retry_request("web-demo-cell", "again", by="ana")


def test_a_rollout_run_by_a_deployment_gets_a_new_run_of_that_deployment(
    prefect_harness: Any, runtime: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_engine import run_flow

    from flows import rollout, use_runtime
    from flows.control import retry_request, start_on_deployment

    deployment_id = rollout.to_deployment(name="retry-test").apply()
    request = RolloutRequest(
        spec=DEMO_SPEC,
        image=BAD_IMAGE,
        rollout_id="web-deployed",
        triggered_by="release r1",
        cell=CellTarget(name="eu-1"),
    )
    # A release's cell runs with the cell's environment (`canaryflow.cells`): so must its retry.
    cell_env = {"env": {"CANARYFLOW_KUBE_CONTEXT": "eu-1", "CANARYFLOW_PROMETHEUS_LABELS": "cluster=eu-1"}}
    run = run_deployment(
        name=deployment_id,
        parameters={"request": request.model_dump(mode="json")},
        timeout=0,
        as_subflow=False,
        job_variables=cell_env,
    )
    with use_runtime(runtime):
        run_flow(rollout, flow_run=run, parameters={"request": request}, return_type="state")
    # The cell it ran in is in its report, its history record and Prefect's (status, get and
    # history show it: several cells can share one namespace/deployment name).
    from canaryflow.history import read_history
    from canaryflow.reports import read_status
    from flows.records import prefect_history

    assert read_status(runtime.reports_dir / "web-deployed" / "status.json").cell == "eu-1"
    assert [r.cell for r in read_history(runtime.reports_dir).records] == ["eu-1"]
    assert [r.cell for r in prefect_history() if r.rollout_id == "web-deployed"] == ["eu-1"]

    again = retry_request("web-deployed", "flaky dependency", by="ana")
    assert again.deployment_id == deployment_id
    new_run = start_on_deployment(
        again.deployment_id,
        again.request,
        work_queue_name=again.work_queue_name,
        job_variables=again.job_variables,
    )

    with get_client(sync_client=True) as client:
        created = client.read_flow_run(new_run)
    assert created.deployment_id == deployment_id
    assert created.state is not None
    assert created.state.is_scheduled()
    assert (
        created.parameters["request"]["triggered_by"]
        == "retry of web-deployed (RolledBack) by ana: flaky dependency"
    )
    assert created.parameters["request"]["image"] == BAD_IMAGE
    assert created.parameters["request"]["cell"] == {"name": "eu-1"}
    assert created.job_variables == cell_env


def test_the_command_refuses_in_one_line(prefect_harness: Any, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect_harness.api.url),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "canaryflow", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    unknown = run("retry", "web-nothing", "--reason", "again")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        "canaryflow: error: no rollout 'web-nothing' in Prefect (`canaryflow status` lists the rollouts)"
    ]
    no_reason = run("retry", "web-nothing")
    assert no_reason.returncode == 2
    assert "--reason" in no_reason.stderr
