"""Signed pushes over real HTTP start flow runs of a real Prefect deployment (the test run's API):
the rollout deployment, or the release deployment for a route with a release spec.

The rollout flow itself lands later; a stand-in flow named ``rollout`` with the same parameter
(``request: RolloutRequest``) is deployed here, and a created flow run is executed in-process the
way a worker would, so the parameters are shown to reach the flow as a `RolloutRequest`.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from canaryflow.plan import plan_rollout
from canaryflow.requests import ReleaseRequest, RolloutRequest
from canaryflow.triggers.prefect_runs import PrefectRolloutStarter
from canaryflow.webhooks.handling import push_key
from canaryflow.webhooks.pushes import parse_github_push
from tests.integration.webhooks.conftest import AppFactory, serving, unused_loopback_url
from tests.unit.webhooks import payloads as p

DEPLOYMENT = "rollout/webhook-test"
SPEC = "config/rollouts/web.yaml"
#: How long a reply here waits for its run to be started (it comes as soon as it is): the real
#: Prefect API of a busy CI machine took longer than the tests' usual 2 s to create one.
STARTED_WITHIN = 30.0


@dataclass(frozen=True)
class Deployed:
    flow: Any
    id: uuid.UUID
    api_url: str


@pytest.fixture(scope="module")
def deployed(prefect_harness: Any) -> Deployed:
    from prefect import flow

    @flow(name="rollout")
    def rollout(request: RolloutRequest) -> str:
        return f"rolled out {request.image} per {request.spec}"

    deployment_id = rollout.to_deployment(name="webhook-test").apply()
    return Deployed(rollout, deployment_id, prefect_harness.api.url)


def _flow_runs(deployed: Deployed, delivery: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployed.id]))
        )
    return [run for run in runs if run.idempotency_key == f"{_key(delivery)}:{SPEC}"]


def _sha(delivery: str) -> str:
    """A commit of its own per test (the tests share one Prefect deployment, and the idempotency
    key is the push's)."""
    return hashlib.sha1(delivery.encode()).hexdigest()


def _key(delivery: str) -> str:
    return push_key(parse_github_push(p.github_push(after=_sha(delivery))))


def _push(base_url: str, delivery: str) -> httpx.Response:
    body = p.body_of(p.github_push(after=_sha(delivery)))
    headers = p.github_headers(body, delivery=delivery)
    return httpx.post(f"{base_url}/hooks/github", content=body, headers=headers, timeout=30)


def test_a_signed_push_runs_the_rollout_deployment(deployed: Deployed, make_app: AppFactory) -> None:
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow

    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter(DEPLOYMENT, api_url=deployed.api_url)
    with serving(make_app(starter=starter, deployment=DEPLOYMENT, reply_wait=STARTED_WITHIN)) as base_url:
        response = _push(base_url, delivery)
    assert response.status_code == 202, response.text
    (run,) = _flow_runs(deployed, delivery)
    assert response.json()["flow_run_id"] == str(run.id)
    image = f"registry.example.com/hello/world:{_sha(delivery)}"
    (rollout_id,) = response.json()["rollout_ids"]
    assert rollout_id == plan_rollout(RolloutRequest(spec=SPEC, image=image)).rollout_id
    expected = RolloutRequest(
        spec=SPEC,
        image=image,
        rollout_id=rollout_id,  # the id the reply names
        triggered_by=f"github push {_sha(delivery)[:7]} (delivery {delivery})",
        committed_at=datetime.fromisoformat("2019-05-15T15:20:41-04:00"),  # the pushed commit's time
    )
    assert run.parameters == {"request": expected.model_dump(mode="json", exclude_none=True)}
    assert run.deployment_id == deployed.id
    assert run.state is not None
    assert run.state.is_scheduled()

    state = run_flow(deployed.flow, flow_run=run, return_type="state")  # what a worker would do
    assert state.result() == f"rolled out {expected.image} per {SPEC}"
    with get_client(sync_client=True) as client:
        finished = client.read_flow_run(run.id)
    assert finished.state is not None
    assert finished.state.is_completed()


def test_a_push_accepted_while_prefect_is_down_runs_when_prefect_is_back(
    deployed: Deployed, make_app: AppFactory
) -> None:
    # No 503 and no redelivery: the receiver queues the push and starts it once Prefect answers.
    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter(DEPLOYMENT, api_url=unused_loopback_url())
    app = make_app(starter=starter, deployment=DEPLOYMENT)
    with serving(app) as base_url:
        down = _push(base_url, delivery)
        assert down.status_code == 202
        assert down.json()["status"] == "accepted"
        assert "cannot be reached" in down.json()["last_error"]
        pushed = RolloutRequest(spec=SPEC, image=f"registry.example.com/hello/world:{_sha(delivery)}")
        assert down.json()["rollout_ids"] == [plan_rollout(pushed).rollout_id]  # known before it starts
        assert _flow_runs(deployed, delivery) == []
        starter.api_url = deployed.api_url  # Prefect is back
        started = app.state.handler.dispatcher.settle(_key(delivery), 60, retries=True)
    assert started is not None
    (run,) = _flow_runs(deployed, delivery)
    assert list(started.flow_run_ids) == [str(run.id)]


def test_a_missing_deployment_keeps_the_push_queued_and_says_why(
    deployed: Deployed, make_app: AppFactory
) -> None:
    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter("rollout/not-deployed", api_url=deployed.api_url)
    with serving(make_app(starter=starter, deployment="rollout/not-deployed")) as base_url:
        first = _push(base_url, delivery)
        health = httpx.get(f"{base_url}/healthz").json()
    assert (first.status_code, first.json()["status"]) == (202, "accepted")
    assert "does not exist" in first.json()["last_error"]
    assert health["queued"] == 1
    assert "does not exist" in health["last_error"]


def test_the_same_delivery_twice_is_one_flow_run(
    deployed: Deployed, make_app: AppFactory, tmp_path: Any
) -> None:
    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter(DEPLOYMENT, api_url=deployed.api_url)
    with serving(make_app(starter=starter, deployment=DEPLOYMENT, reply_wait=STARTED_WITHIN)) as base_url:
        first = _push(base_url, delivery)
        second = _push(base_url, delivery)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert second.json()["flow_run_id"] == first.json()["flow_run_id"]
    # Even a receiver that lost its delivery store gets the same flow run: the idempotency key.
    assert (
        starter.start(
            RolloutRequest(spec=SPEC, image="registry.example.com/hello/world:other"),
            idempotency_key=f"{_key(delivery)}:{SPEC}",
        )
        == first.json()["flow_run_id"]
    )
    assert len(_flow_runs(deployed, delivery)) == 1


def test_concurrent_copies_of_a_delivery_start_one_flow_run(deployed: Deployed, make_app: AppFactory) -> None:
    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter(DEPLOYMENT, api_url=deployed.api_url)
    barrier = threading.Barrier(6)
    replies: list[httpx.Response] = []
    lock = threading.Lock()
    with serving(make_app(starter=starter, deployment=DEPLOYMENT, reply_wait=STARTED_WITHIN)) as base_url:

        def send() -> None:
            barrier.wait()
            reply = _push(base_url, delivery)
            with lock:
                replies.append(reply)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Each copy is accepted (or found started); one flow run, and every reply that names a flow
    # run names that one.
    statuses = [(r.status_code, r.json()["status"]) for r in replies]
    assert set(statuses) <= {(202, "started"), (202, "accepted"), (200, "duplicate")}, statuses
    (run,) = _flow_runs(deployed, delivery)
    assert {r.json()["flow_run_id"] for r in replies if "flow_run_id" in r.json()} == {str(run.id)}


@pytest.fixture(scope="module")
def deployed_release(prefect_harness: Any) -> Deployed:
    from prefect import flow

    @flow(name="release")
    def release(request: ReleaseRequest) -> str:
        return f"released {request.image} per {request.spec}"

    deployment_id = release.to_deployment(name="webhook-test").apply()
    return Deployed(release, deployment_id, prefect_harness.api.url)


def test_a_signed_push_to_a_release_route_runs_the_release_deployment(
    deployed: Deployed, deployed_release: Deployed, make_app: AppFactory
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.flow_engine import run_flow

    delivery = str(uuid.uuid4())
    starter = PrefectRolloutStarter(
        DEPLOYMENT, release_deployment="release/webhook-test", api_url=deployed.api_url
    )
    routes = (
        f"deployment: {DEPLOYMENT}\n"
        "releaseDeployment: release/webhook-test\n"
        "routes:\n"
        f"  - {{repository: {p.REPOSITORY}, branch: master, release: config/releases/web.yaml, "
        "image: 'registry.example.com/hello/world:{sha}'}\n"
    )
    with serving(make_app(starter=starter, routes_yaml=routes, reply_wait=STARTED_WITHIN)) as base_url:
        response = _push(base_url, delivery)

    assert response.status_code == 202, response.text
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployed_release.id]))
        )
    (run,) = [r for r in runs if r.idempotency_key == f"{_key(delivery)}:release:config/releases/web.yaml"]
    assert response.json()["flow_run_id"] == str(run.id)
    expected = ReleaseRequest(
        spec="config/releases/web.yaml",
        image=f"registry.example.com/hello/world:{_sha(delivery)}",
        triggered_by=f"github push {_sha(delivery)[:7]} (delivery {delivery})",
    )
    assert run.parameters == {"request": expected.model_dump(mode="json", exclude_none=True)}
    assert _flow_runs(deployed, delivery) == []  # no rollout run: the release runs the cells
    state = run_flow(deployed_release.flow, flow_run=run, return_type="state")  # what a worker would do
    assert state.result() == f"released {expected.image} per config/releases/web.yaml"
