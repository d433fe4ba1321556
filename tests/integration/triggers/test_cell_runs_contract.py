"""The `CellRuns` contract, run against the in-memory adapter and the Prefect adapter on the real
Prefect API (the test run's harness).

What a release flow relies on: a cell's rollout starts once per release however often it is
asked; each cell's phase is read back from its runs (running, promoted, rolled back, failed,
undone); an abort ends a run that has not ended and leaves an ended one alone; an undo starts
once, again only after a failed one; releases do not see each other's cells. On Prefect the runs
are created on each cell pool's deployments (stand-in flows named ``rollout`` and ``undo``) and
end the way a worker ends them: their states are set through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canaryflow.cells import CellRun, cell_run
from canaryflow.spec.loading import load_release_text
from canaryflow.triggers.memory import InMemoryCellRuns
from canaryflow.triggers.port import CellRuns, RunState, UndoRuns
from tests.fixtures.cellpools import deploy_stand_ins

IMAGE = "registry.example.com/shop/web:1.3.0"
POOL = "cells-contract"
RELEASE = load_release_text(
    f"""\
apiVersion: canaryflow/v1
kind: Release
metadata: {{name: web}}
spec:
  rollout: config/rollouts/web.yaml
  cells:
    - {{name: eu-1, context: eu-1, workPool: {POOL}, prometheus: "http://prom-eu-1:9090"}}
    - name: us-1
      context: us-1
      workPool: {POOL}
      prometheus: "http://prom-us-1:9090"
      target: {{namespace: shop-us}}
  waves:
    - {{cells: [eu-1]}}
    - {{cells: [us-1]}}
"""
)


def _run(cell: str) -> CellRun:
    return cell_run(RELEASE, cell, image=IMAGE, triggered_by="release r1")


@dataclass
class Adapter:
    runs: CellRuns
    end: Callable[[str, RunState], None]


@pytest.fixture(scope="module")
def deployed(prefect_harness: Any) -> None:
    deploy_stand_ins(POOL)


def _end_in_prefect(flow_run_id: str, state: RunState) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Crashed, Failed, Running

    final = {
        "completed": Completed(),
        "not-promoted": Failed(name="RolledBack", message="rolled-back: errors"),
        "failed": Crashed(message="the worker's process died"),
        "active": Running(),
    }[state]
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(flow_run_id), Running(), force=True)
        client.set_flow_run_state(uuid.UUID(flow_run_id), final, force=True)


@pytest.fixture(params=["memory", "prefect"])
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    if request.param == "memory":
        memory = InMemoryCellRuns()
        yield Adapter(memory, memory.end)
        return
    request.getfixturevalue("deployed")
    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    yield Adapter(PrefectCellRuns(), _end_in_prefect)


def _release() -> str:
    return f"r-{uuid.uuid4().hex[:8]}"


def test_a_cell_starts_once_and_runs(adapter: Adapter) -> None:
    release = _release()
    assert adapter.runs.phases(release) == {}

    first = adapter.runs.start(release, _run("eu-1"))
    again = adapter.runs.start(release, _run("eu-1"))

    assert again == first
    assert adapter.runs.phases(release) == {"eu-1": "running"}


@pytest.mark.parametrize(
    ("end", "phase"), [("completed", "promoted"), ("not-promoted", "rolled-back"), ("failed", "failed")]
)
def test_each_cell_phase_is_read_from_how_its_run_ended(adapter: Adapter, end: RunState, phase: str) -> None:
    release = _release()
    eu = adapter.runs.start(release, _run("eu-1"))
    adapter.runs.start(release, _run("us-1"))

    adapter.end(eu, end)

    assert adapter.runs.phases(release) == {"eu-1": phase, "us-1": "running"}
    assert adapter.runs.start(release, _run("eu-1")) == eu  # an ended cell is not started again


def test_when_each_cells_rollout_ended_is_known_once_it_ended(adapter: Adapter) -> None:
    release = _release()
    eu = adapter.runs.start(release, _run("eu-1"))
    adapter.runs.start(release, _run("us-1"))
    assert adapter.runs.ended(release) == {}
    before = datetime.now(UTC) - timedelta(seconds=5)  # the Prefect server's clock is this one

    adapter.end(eu, "completed")
    adapter.runs.abort(release, "us-1", "wave 1 failed")

    ended = adapter.runs.ended(release)
    assert set(ended) == {"eu-1", "us-1"}
    assert all(before <= at <= datetime.now(UTC) + timedelta(seconds=5) for at in ended.values())


def test_when_each_cells_first_rollout_was_created_is_known_from_its_start(adapter: Adapter) -> None:
    release = _release()
    assert adapter.runs.began(release) == {}
    before = datetime.now(UTC) - timedelta(seconds=5)  # the Prefect server's clock is this one
    eu = adapter.runs.start(release, _run("eu-1"))
    began = adapter.runs.began(release)
    assert set(began) == {"eu-1"}
    assert before <= began["eu-1"] <= datetime.now(UTC) + timedelta(seconds=5)

    adapter.end(eu, "completed")
    adapter.runs.start(release, _run("us-1"))
    assert adapter.runs.began(release)["eu-1"] == began["eu-1"]  # the first run's, whatever follows
    assert set(adapter.runs.began(release)) == {"eu-1", "us-1"}
    assert adapter.runs.began(_release()) == {}  # another release's cells are not its


def test_an_abort_ends_a_waiting_run_and_leaves_an_ended_one(adapter: Adapter) -> None:
    release = _release()
    adapter.runs.start(release, _run("eu-1"))
    us = adapter.runs.start(release, _run("us-1"))
    adapter.end(us, "completed")

    adapter.runs.abort(release, "eu-1", "wave 2: us-1 rolled back")
    adapter.runs.abort(release, "us-1", "wave 2: us-1 rolled back")

    assert adapter.runs.phases(release) == {"eu-1": "rolled-back", "us-1": "promoted"}


def test_an_undo_starts_once_and_again_only_after_a_failed_one(adapter: Adapter) -> None:
    release = _release()
    eu = adapter.runs.start(release, _run("eu-1"))
    adapter.end(eu, "completed")

    assert adapter.runs.undos(release) == {}
    undo = adapter.runs.undo(release, _run("eu-1"), "wave 2 rolled back", "web-1a2b3c4d")
    assert adapter.runs.undo(release, _run("eu-1"), "wave 2 rolled back", "web-1a2b3c4d") == undo
    assert adapter.runs.phases(release) == {"eu-1": "promoted"}  # until the undo has completed
    assert adapter.runs.undos(release) == {"eu-1": UndoRuns(1, None)}

    before = datetime.now(UTC) - timedelta(seconds=5)
    adapter.end(undo, "failed")
    assert adapter.runs.phases(release) == {"eu-1": "promoted"}
    failed = adapter.runs.undos(release)["eu-1"]
    assert failed.count == 1
    assert failed.failed_at is not None
    assert before <= failed.failed_at <= datetime.now(UTC) + timedelta(seconds=5)
    second = adapter.runs.undo(release, _run("eu-1"), "wave 2 rolled back", "web-1a2b3c4d")
    assert second != undo
    assert adapter.runs.undos(release) == {"eu-1": UndoRuns(2, None)}  # the latest runs

    adapter.end(second, "completed")
    assert adapter.runs.phases(release) == {"eu-1": "undone"}
    assert adapter.runs.undos(release) == {"eu-1": UndoRuns(2, None)}


def test_a_failed_cell_is_cleaned_up_once_and_stays_failed(adapter: Adapter) -> None:
    release = _release()
    eu = adapter.runs.start(release, _run("eu-1"))
    adapter.end(eu, "failed")

    cleanup = adapter.runs.cleanup(release, _run("eu-1"), "web-1a2b3c4d")
    assert adapter.runs.cleanup(release, _run("eu-1"), "web-1a2b3c4d") == cleanup
    adapter.end(cleanup, "completed")

    assert adapter.runs.phases(release) == {"eu-1": "failed"}


def test_releases_do_not_see_each_others_cells(adapter: Adapter) -> None:
    one, other = _release(), _release()
    first = adapter.runs.start(one, _run("eu-1"))
    adapter.end(first, "completed")

    second = adapter.runs.start(other, _run("eu-1"))

    assert second != first
    assert adapter.runs.phases(one) == {"eu-1": "promoted"}
    assert adapter.runs.phases(other) == {"eu-1": "running"}


def test_a_prefect_cell_run_carries_the_cells_request_and_environment(deployed: None) -> None:
    from prefect.client.orchestration import get_client

    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    release = _release()
    runs = PrefectCellRuns()
    us = _run("us-1")
    flow_run_id = runs.start(release, us)
    undo_id = runs.undo(release, us, "wave 2 rolled back", "web-1a2b3c4d")

    with get_client(sync_client=True) as client:
        started = client.read_flow_run(uuid.UUID(flow_run_id))
        undo = client.read_flow_run(uuid.UUID(undo_id))
    assert started.parameters["request"] == us.request.model_dump(mode="json", exclude_none=True)
    assert started.parameters["request"]["cell"] == {"name": "us-1", "namespace": "shop-us"}
    assert started.job_variables == {"env": dict(us.env)}
    assert us.env["CANARYFLOW_KUBE_CONTEXT"] == "us-1"
    assert undo.parameters["request"] == {
        "spec": "config/rollouts/web.yaml",
        "reason": "wave 2 rolled back",
        "by": f"release {release}",
        "rollout_id": "web-1a2b3c4d",
        "cell": {"name": "us-1", "namespace": "shop-us"},
    }
    assert undo.job_variables == {"env": dict(us.env)}

    cleanup_id = runs.cleanup(release, us, "web-1a2b3c4d")
    with get_client(sync_client=True) as client:
        cleanup = client.read_flow_run(uuid.UUID(cleanup_id))
    assert cleanup.parameters["target"] == {
        "spec": "config/rollouts/web.yaml",
        "rollout_id": "web-1a2b3c4d",
        "cell": {"name": "us-1", "namespace": "shop-us"},
    }
    assert cleanup.job_variables == {"env": dict(us.env)}


def test_a_missing_cell_deployment_is_named_with_what_to_do(deployed: None) -> None:
    from canaryflow.errors import TriggerUnavailableError
    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    runs = PrefectCellRuns(rollout_deployment="rollout/{pool}-nowhere")
    with pytest.raises(TriggerUnavailableError, match=rf"'rollout/{POOL}-nowhere' does not exist: deploy"):
        runs.start(_release(), _run("eu-1"))


def test_a_prefect_abort_asks_a_running_run_to_stop_once(deployed: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Running

    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    release = _release()
    runs = PrefectCellRuns()
    flow_run_id = uuid.UUID(runs.start(release, _run("eu-1")))
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Running(), force=True)

        runs.abort(release, "eu-1", "wave 1 failed")
        asked = client.read_flow_run(flow_run_id).state
        runs.abort(release, "eu-1", "wave 1 failed, again")
        still = client.read_flow_run(flow_run_id).state
        assert asked is not None
        assert still is not None
        assert (asked.type.value, asked.message) == ("CANCELLING", "wave 1 failed")
        assert still.id == asked.id  # not asked again
        assert runs.phases(release) == {"eu-1": "running"}  # until its cancellation hook has converged

        client.set_flow_run_state(flow_run_id, Cancelled(message="the canary was rolled back"), force=True)
    assert runs.phases(release) == {"eu-1": "rolled-back"}


def test_the_deployments_a_cell_pool_lacks_are_named_before_anything_starts(deployed: None) -> None:
    from canaryflow.triggers.prefect_cells import PrefectCellRuns

    assert PrefectCellRuns().missing([_run("eu-1"), _run("us-1")]) == []
    nowhere = PrefectCellRuns(undo_deployment="undo/{pool}-nowhere")
    assert nowhere.missing([_run("eu-1"), _run("us-1")]) == [
        f"the work pool '{POOL}' has no deployment undo/{POOL}-nowhere: deploy the undo flow(s) to it "
        "(deployments/prefect.yaml ends with a cell pool's template)"
    ]
