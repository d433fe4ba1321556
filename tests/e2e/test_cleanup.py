"""The cleanup flow on the simulated stack: what a crashed rollout leaves behind is converged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.demo import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.replicas import plan_split
from tests.e2e.conftest import DEMO_SPEC

DEADLINE = timedelta(minutes=1)
LEFT = RolloutId("web-left")


class Killed(BaseException):
    """The controller process dying between two writes."""


def _left_mid_split(stack: SimulatedStack, weight: int = 50) -> None:
    """A rollout that set a `weight` % split and then lost its process."""
    status = stack.cluster.read(stack.target)
    split = plan_split(status.capacity, weight, baseline=True, stable_fixed=False)
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
    again = cleanup_of(spec=DEMO_SPEC).result()  # idempotent: a clean target stays as it is
    assert (again.action, again.rollout_id) == ("nothing", None)
    _assert_only_stable(stack, STABLE_IMAGE)


def test_an_interrupted_promotion_is_finished(stack: SimulatedStack, cleanup_of: Callable[..., Any]) -> None:
    _left_mid_split(stack)
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


def test_a_request_names_its_target_once() -> None:
    from pydantic import ValidationError

    from flows.cleanup import CleanupRequest

    with pytest.raises(ValidationError, match="not both"):
        CleanupRequest(spec=DEMO_SPEC, namespace="shop")
    with pytest.raises(ValidationError, match="missing: container, service"):
        CleanupRequest(namespace="shop", deployment="web")
