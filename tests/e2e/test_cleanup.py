"""The cleanup flow on the simulated stack: what a crashed rollout leaves behind is converged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.history import read_history
from canaryflow.replicas import plan_split
from canaryflow.reports import read_status, write_status
from canaryflow.status import RolloutPhase, RolloutStatus
from tests.e2e.conftest import DEMO_SPEC

DEADLINE = timedelta(minutes=1)
LEFT = RolloutId("web-left")


class Killed(BaseException):
    """The controller process dying between two writes."""


def _left_mid_split(stack: SimulatedStack, weight: int = 50) -> None:
    """A rollout that set a `weight` % split and then lost its process."""
    status = stack.cluster.read(stack.target)
    split = plan_split(status.capacity, weight, baseline=True)
    stack.cluster.apply_split(
        stack.target, split, rollout_id=LEFT, image=GOOD_IMAGE, step=2, progress_deadline=DEADLINE
    )


def _assert_only_stable(stack: SimulatedStack, image: str) -> None:
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert status.stable.image == image
    assert (status.stable.replicas, status.stable.ready) == (10, 10)


@pytest.fixture
def cleanup_of(prefect_harness: Any, runtime: Any) -> Callable[..., Any]:
    """Run the cleanup flow on this test's runtime for shop/web (by name, or by `spec`)."""
    from flows import use_runtime
    from flows.cleanup import CleanupRequest, cleanup

    def run(**fields: Any) -> Any:
        if "spec" not in fields:
            fields = {
                "namespace": "shop",
                "deployment": "web",
                "container": "web",
                "service": "web",
                **fields,
            }
        with use_runtime(runtime):
            return cleanup(CleanupRequest(**fields), return_state=True)

    return run


def test_a_target_left_mid_split_is_rolled_back(
    stack: SimulatedStack, cleanup_of: Callable[..., Any]
) -> None:
    _left_mid_split(stack)
    left = stack.cluster.read(stack.target)
    assert left.state is not None
    assert left.state.phase == "progressing"
    assert left.canary is not None
    assert left.canary.replicas == 5

    outcome = cleanup_of(spec=DEMO_SPEC).result()

    assert (outcome.action, outcome.rollout_id) == ("roll-back", LEFT)
    _assert_only_stable(stack, STABLE_IMAGE)
    condition = stack.world.record("shop", "web").condition  # type: ignore[union-attr]
    assert condition is not None
    assert (condition.status, condition.reason) == ("False", "RolledBack")
    assert condition.message.startswith(f"{LEFT} rolled back by the cleanup: rolled back ")
    again = cleanup_of(spec=DEMO_SPEC).result()  # idempotent: a clean target stays as it is
    assert (again.action, again.rollout_id) == ("nothing", None)
    _assert_only_stable(stack, STABLE_IMAGE)


def _report_left(runtime: Any, flow_run_id: str | None = None) -> Path:
    """The report the crashed run left: it was at its second step, progressing."""
    directory = runtime.reports_dir / LEFT
    write_status(
        directory,
        RolloutStatus(
            rollout_id=LEFT,
            target="shop/web",
            image=GOOD_IMAGE,
            spec=DEMO_SPEC,
            triggered_by="alice",
            flow_run_id=flow_run_id,
            steps=5,
            step=2,
            phase=RolloutPhase.PROGRESSING,
            weight=50,
        ),
    )
    return directory / "status.json"


def test_the_report_and_the_history_say_how_the_cleanup_ended_the_rollout(
    stack: SimulatedStack, cleanup_of: Callable[..., Any], runtime: Any
) -> None:
    """The crashed run cannot say it: without this, status and get showed it progressing forever."""
    _left_mid_split(stack)
    report = _report_left(runtime, flow_run_id=str(uuid4()))  # a run the API does not know

    cleanup_of(spec=DEMO_SPEC, rollout_id=LEFT).result()

    ended = read_status(report)
    assert (ended.phase, ended.result) == (RolloutPhase.ROLLED_BACK, "rolled-back")
    assert ended.reason is not None
    assert ended.reason.startswith(
        f"its run ended before the rollout did; the cleanup rolled back {GOOD_IMAGE}"
    )
    (record,) = read_history(runtime.reports_dir).records
    assert (record.rollout_id, record.result, record.triggered_by) == (LEFT, "rolled-back", "alice")
    assert record.reason == ended.reason
    cleanup_of(spec=DEMO_SPEC, rollout_id=LEFT).result()  # again: nothing to converge, nothing added
    assert len(read_history(runtime.reports_dir).records) == 1


def test_a_crashed_rollout_whose_canary_is_gone_is_reported_ended(
    stack: SimulatedStack, cleanup_of: Callable[..., Any], runtime: Any
) -> None:
    """Its run removed the canary (or a later rollout did) and died before its report said so."""
    report = _report_left(runtime)

    outcome = cleanup_of(rollout_id=LEFT).result()

    assert outcome.action == "nothing"
    ended = read_status(report)
    assert (ended.phase, ended.result) == (RolloutPhase.ROLLED_BACK, "rolled-back")
    assert ended.reason == (
        f"its run ended before the rollout did; the cleanup found no canary of it on shop/web, "
        f"and the stable runs {STABLE_IMAGE}"
    )
    assert [r.rollout_id for r in read_history(runtime.reports_dir).records] == [LEFT]


def test_an_interrupted_promotion_is_finished(
    stack: SimulatedStack, cleanup_of: Callable[..., Any], runtime: Any
) -> None:
    _left_mid_split(stack)
    report = _report_left(runtime)
    writes: list[tuple[str, str]] = []

    def die_after_the_stable_took_the_image(verb: str, namespace: str, name: str) -> None:
        writes.append((verb, name))
        if verb == "delete":
            raise Killed

    stack.world.before_write = die_after_the_stable_took_the_image
    with pytest.raises(Killed):
        stack.cluster.promote(stack.target, rollout_id=LEFT, progress_deadline=DEADLINE)
    stack.world.before_write = None
    left = stack.cluster.read(stack.target)
    assert left.state is not None
    assert left.state.phase == "promoting"
    assert left.stable.image == GOOD_IMAGE
    assert ("patch", "web") in writes

    outcome = cleanup_of(rollout_id=LEFT).result()

    assert (outcome.action, outcome.rollout_id) == ("promote", LEFT)
    _assert_only_stable(stack, GOOD_IMAGE)
    ended = read_status(report)
    assert (ended.phase, ended.result) == (RolloutPhase.PROMOTED, "promoted")
    assert ended.reason == f"its run ended before the rollout did; the cleanup {outcome.reason}"


def test_an_interrupted_rollback_is_finished(stack: SimulatedStack, cleanup_of: Callable[..., Any]) -> None:
    _left_mid_split(stack, weight=20)

    def die_before_the_stable_changes(verb: str, namespace: str, name: str) -> None:
        if name == "web":
            raise Killed

    stack.world.before_write = die_before_the_stable_changes
    with pytest.raises(Killed):
        stack.cluster.rollback(stack.target, rollout_id=LEFT, progress_deadline=DEADLINE)
    stack.world.before_write = None
    state = stack.cluster.read(stack.target).state
    assert state is not None
    assert state.phase == "rolling-back"

    assert cleanup_of().result().action == "roll-back"
    _assert_only_stable(stack, STABLE_IMAGE)


def test_a_clean_target_is_not_touched(stack: SimulatedStack, cleanup_of: Callable[..., Any]) -> None:
    writes: list[str] = []
    stack.world.before_write = lambda verb, namespace, name: writes.append(f"{verb} {name}")

    state = cleanup_of()

    assert state.is_completed()
    assert state.result().action == "nothing"
    assert writes == []
    _assert_only_stable(stack, STABLE_IMAGE)


def test_another_rollout_is_left_alone(stack: SimulatedStack, cleanup_of: Callable[..., Any]) -> None:
    _left_mid_split(stack)
    before = stack.cluster.read(stack.target)

    outcome = cleanup_of(rollout_id="web-crashed").result()

    assert (outcome.action, outcome.rollout_id) == ("leave", LEFT)
    assert stack.cluster.read(stack.target) == before


@pytest.fixture
def slot_held_by_a_rollout_run(
    prefect_harness: Any, stack: SimulatedStack
) -> Iterator[Callable[[Any], None]]:
    """Lease the target's slot to a rollout run in a given state, recorded as the slot's holder by
    a process on another host (so only the run's state tells whether the holder is alive). The
    lease and the record are given back afterwards: later tests use the same target."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
    from prefect.variables import Variable

    from flows.slots import slot_name

    @flow(name="rollout")
    def stand_in() -> None:
        """Never runs: its flow run stands for the rollout run that holds the slot."""

    name = slot_name(stack.target)
    leases: list[UUID] = []

    def hold(state: Any) -> None:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(stand_in, name=LEFT, state=state)
            client.upsert_global_concurrency_limit_by_name(name, 1)
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=300
            )
        leases.append(ConcurrencyLimitWithLeaseResponse.model_validate(response.json()).lease_id)
        holder = {
            "flow_run_id": str(run.id),
            "lease_id": str(leases[-1]),
            "rollout_id": LEFT,
            "host": "elsewhere",
        }
        Variable.set(name, {"holder": holder, "superseded_by": None}, overwrite=True)

    yield hold
    with get_client(sync_client=True) as client:
        for lease in leases:
            client.release_concurrency_slots_with_lease(lease)  # a no-op for a lease already released
    Variable.set(name, {"holder": None, "superseded_by": None}, overwrite=True)


def test_the_slot_of_a_crashed_rollout_run_is_taken_at_once(
    stack: SimulatedStack, cleanup_of: Callable[..., Any], slot_held_by_a_rollout_run: Callable[[Any], None]
) -> None:
    from prefect.states import Crashed

    _left_mid_split(stack)
    slot_held_by_a_rollout_run(Crashed(message="its process was killed"))

    outcome = cleanup_of(spec=DEMO_SPEC, slot_timeout_seconds=5).result()

    assert (outcome.action, outcome.rollout_id) == ("roll-back", LEFT)
    _assert_only_stable(stack, STABLE_IMAGE)


def test_a_live_holder_keeps_the_slot_and_the_target(
    stack: SimulatedStack, cleanup_of: Callable[..., Any], slot_held_by_a_rollout_run: Callable[[Any], None]
) -> None:
    from prefect.states import Running

    _left_mid_split(stack)
    slot_held_by_a_rollout_run(Running())
    before = stack.cluster.read(stack.target)

    outcome = cleanup_of(spec=DEMO_SPEC, slot_timeout_seconds=1).result()

    assert outcome.action == "leave"
    assert "a live run held shop/web for 1 s" in outcome.reason
    assert stack.cluster.read(stack.target) == before


def test_a_request_names_its_target_once() -> None:
    from pydantic import ValidationError

    from flows.cleanup import CleanupRequest

    with pytest.raises(ValidationError, match="not both"):
        CleanupRequest(spec=DEMO_SPEC, namespace="shop")
    with pytest.raises(ValidationError, match="missing: container, service"):
        CleanupRequest(namespace="shop", deployment="web")
    named = {"namespace": "shop", "deployment": "web", "container": "web", "service": "web"}
    with pytest.raises(ValidationError, match="a cell needs the spec"):
        CleanupRequest(**named, cell={"name": "eu-1"})


def test_a_cell_request_cleans_the_cells_target_in_the_cells_slot(
    stack: SimulatedStack, cleanup_of: Callable[..., Any]
) -> None:
    """What a release's cell left is converged through that cell's slot (the one its rollout run
    held, `flows.slots.slot_name`), on the cell's own target."""
    from prefect import get_client

    from flows.cleanup import CleanupRequest

    _left_mid_split(stack)
    outcome = cleanup_of(spec=DEMO_SPEC, rollout_id=LEFT, cell={"name": "eu-1"}).result()

    assert (outcome.action, outcome.rollout_id) == ("roll-back", LEFT)
    _assert_only_stable(stack, STABLE_IMAGE)
    with get_client(sync_client=True) as client:
        slot = client.read_global_concurrency_limit_by_name("rollout-shop-web_eu-1")
    assert slot.active_slots == 0  # taken for the cleanup, and given back
    moved = CleanupRequest(spec=DEMO_SPEC, cell={"name": "eu-2", "deployment": "api", "service": "api"})
    target, _ = moved.resolve()
    assert (target.namespace, target.deployment, target.container, target.service) == (
        "shop",
        "api",
        "web",
        "api",
    )
