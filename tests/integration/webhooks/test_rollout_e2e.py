"""End to end: a signed git push becomes a finished rollout on the simulated cluster.

The real rollout flow is deployed to the test run's Prefect API under the name the routes file
gives; the receiver (`build_app`, as ``canaryflow webhook serve`` builds it) runs on a real socket
with the real `PrefectRolloutStarter`; the flow run it creates is executed in-process the way a
worker would, on the simulated stack (cluster, traffic and metrics on a manual clock). The working
directory holds the routes file, the rollout spec the route names and the delivery database, as it
would for the receiver and the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from canaryflow.clock import ManualClock
from canaryflow.dev.stacks import SimulatedStack, simulated_stack
from canaryflow.routes import load_routes
from canaryflow.triggers.prefect_runs import PrefectRolloutStarter
from canaryflow.webhooks.handling import push_key
from canaryflow.webhooks.pushes import parse_github_push
from canaryflow.webhooks.serve import build_app
from tests.integration.webhooks.conftest import serving, unused_loopback_url
from tests.unit.webhooks import payloads as p

SECRET = "e2e-webhook-secret"
SPEC = "rollouts/web-webhook.yaml"
IMAGE = "registry.example.com/shop/web:{sha}"

# config/rollouts/demo.yaml for shop/web (the simulated stack's target); its intervals pass on the
# manual clock, so the whole rollout takes no real waiting.
SPEC_TEXT = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {name: web-webhook}
spec:
  target: {namespace: shop, deployment: web, container: web, service: web}
  baseline: true
  progressDeadline: 1m
  steps:
    - setWeight: 20
    - analyze: {interval: 5s, maxDuration: 1m}
    - setWeight: 50
    - analyze: {interval: 5s, maxDuration: 1m}
  failurePolicy: {onFailure: rollback, onInconclusive: rollback}
  analysis: {alpha: 0.05, minExposureSeconds: 15, minIntervals: 3}
"""

ROUTES_TEXT = """\
deployment: {deployment}
deliveries: state/deliveries.sqlite3
routes:
  - repository: {repository}
    branch: master
    rollout: {spec}
    image: {image}
"""


@dataclass(frozen=True)
class Deployed:
    """The rollout flow's deployment: its full name (``rollout/<name>``), id and API."""

    flow: Any
    name: str
    id: uuid.UUID
    api_url: str


@pytest.fixture
def deployed(prefect_harness: Any) -> Deployed:
    """The real rollout flow, deployed under a name of this test's own (so its flow runs are its own)."""
    from flows.rollout import rollout

    name = f"webhook-e2e-{uuid.uuid4().hex[:8]}"
    deployment: Any = rollout.to_deployment(name=name)  # sync here: a RunnerDeployment
    deployment_id = deployment.apply()
    return Deployed(rollout, f"{rollout.name}/{name}", deployment_id, prefect_harness.api.url)


@pytest.fixture
def workdir(deployed: Deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: the routes file (naming `deployed`) and the spec its route names."""
    (tmp_path / SPEC).parent.mkdir(parents=True)
    (tmp_path / SPEC).write_text(SPEC_TEXT)
    (tmp_path / "routes.yaml").write_text(
        ROUTES_TEXT.format(deployment=deployed.name, repository=p.REPOSITORY, spec=SPEC, image=IMAGE)
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _starter(workdir: Path, api_url: str) -> PrefectRolloutStarter:
    """The Prefect starter for the deployment the routes file names."""
    return PrefectRolloutStarter(load_routes(workdir / "routes.yaml").deployment, api_url=api_url)


def _push(base_url: str, delivery: str, sha: str) -> httpx.Response:
    """A GitHub push of `sha` to master, signed with the receiver's secret."""
    body = p.body_of(p.github_push(after=sha))
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    return httpx.post(f"{base_url}/hooks/github", content=body, headers=headers, timeout=30)


def _flow_runs(deployed: Deployed) -> list[Any]:
    """Every flow run of the deployment, as the Prefect API has them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployed.id]))
        )


def _execute(deployed: Deployed, run: Any, stack: SimulatedStack, reports: Path) -> tuple[Any, Any]:
    """Run the created flow run in-process on `stack`, as a worker would; its state and the API's run."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    from flows.runtime import Runtime, use_runtime

    runtime = Runtime(
        cluster=stack.cluster,
        metrics=stack.metrics,
        clock=stack.clock,
        reports_dir=reports,
        retry_delays=(0.0, 0.0),
        approval_poll_seconds=1,
        slot_lease_seconds=60.0,
    )
    with use_runtime(runtime):
        state = run_flow(deployed.flow, flow_run=run, return_type="state")
    with get_client(sync_client=True) as client:
        finished = client.read_flow_run(run.id)
    return state, finished


def _assert_promoted(stack: SimulatedStack, state: Any, finished: Any, image: str) -> None:
    """The run completed with a promotion, and the stable alone is left, on `image`."""
    assert finished.state is not None
    assert finished.state.is_completed(), finished.state
    outcome = state.result()
    assert (outcome.result, outcome.image) == ("promoted", image), outcome.reason
    assert finished.name == outcome.rollout_id
    status = stack.cluster.read(stack.target)
    assert status.canary is None
    assert status.baseline is None
    assert status.state is None
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (image, 10, 10)


def test_a_signed_push_is_rolled_out_once(deployed: Deployed, workdir: Path) -> None:
    sha = secrets.token_hex(20)
    image = f"registry.example.com/shop/web:{sha}"
    delivery = str(uuid.uuid4())
    app = build_app(
        workdir / "routes.yaml",
        environ={"CANARYFLOW_GITHUB_SECRET": SECRET},
        starter=_starter(workdir, deployed.api_url),
    )
    with serving(app) as base_url:
        response = _push(base_url, delivery, sha)
        assert response.status_code == 202, response.text
        key = push_key(parse_github_push(p.github_push(after=sha)))
        started = app.state.handler.dispatcher.settle(key, 60, retries=True)  # the reply waits < 1 s
        assert started is not None
        (run,) = _flow_runs(deployed)
        assert list(started.flow_run_ids) == [str(run.id)]
        if response.json()["status"] == "started":
            assert response.json()["flow_run_id"] == str(run.id)
        else:
            assert response.json()["status"] == "accepted"
        assert run.parameters["request"]["image"] == image
        assert run.parameters["request"]["spec"] == SPEC
        assert run.state is not None
        assert run.state.is_scheduled()

        clock = ManualClock()
        stack = simulated_stack(clock)
        clock.advance(60.0)  # the target has been serving: the preflight sees its traffic
        state, finished = _execute(deployed, run, stack, workdir / "reports")
        _assert_promoted(stack, state, finished, image)

        # GitHub redelivers the same delivery (same id): answered from the store, nothing new started.
        again = _push(base_url, delivery, sha)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["flow_run_id"]) == ("duplicate", str(run.id))
    assert [r.id for r in _flow_runs(deployed)] == [run.id]


def test_a_push_accepted_while_prefect_is_down_is_rolled_out_when_it_is_back(
    deployed: Deployed, workdir: Path
) -> None:
    sha = secrets.token_hex(20)
    image = f"registry.example.com/shop/web:{sha}"
    delivery = str(uuid.uuid4())
    starter = _starter(workdir, unused_loopback_url())
    app = build_app(workdir / "routes.yaml", environ={"CANARYFLOW_GITHUB_SECRET": SECRET}, starter=starter)
    with serving(app) as base_url:
        down = _push(base_url, delivery, sha)
        assert (down.status_code, down.json()["status"]) == (202, "accepted"), down.text
        assert _flow_runs(deployed) == []

        starter.api_url = deployed.api_url  # Prefect is back: no redelivery needed
        key = push_key(parse_github_push(p.github_push(after=sha)))
        started = app.state.handler.dispatcher.settle(key, 60, retries=True)
        assert started is not None
        again = _push(base_url, delivery, sha)
    assert again.status_code == 200, again.text
    (run,) = _flow_runs(deployed)
    assert list(started.flow_run_ids) == [again.json()["flow_run_id"]] == [str(run.id)]

    clock = ManualClock()
    stack = simulated_stack(clock)
    clock.advance(60.0)
    state, finished = _execute(deployed, run, stack, workdir / "reports")
    _assert_promoted(stack, state, finished, image)
