"""The simulated cluster's own behaviour: pod readiness over time, image faults, API faults."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.clock import ManualClock
from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.cluster.simulated import ImageBehaviour, SimulatedCluster, SimulatedWorld
from canaryflow.errors import ClusterError, ClusterUnavailableError, ProgressDeadlineError
from canaryflow.replicas import plan_split

TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")
RID = RolloutId("web-v2")
DEADLINE = timedelta(minutes=1)


def _world(delay: float = 2.0) -> tuple[SimulatedWorld, ManualClock]:
    clock = ManualClock()
    world = SimulatedWorld(clock=clock, pod_ready_delay=delay)
    world.add_deployment("shop", "web", image="web:1", replicas=4, labels={"app": "web"})
    world.add_service("shop", "web", {"app": "web"})
    return world, clock


def test_pods_become_ready_after_the_delay_on_the_injected_clock() -> None:
    world, clock = _world(delay=5.0)
    cluster = SimulatedCluster(world)
    split = plan_split(4, 25, baseline=True)

    cluster.apply_split(TARGET, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)

    assert 5.0 <= clock.monotonic() <= 6.0  # waited, on the manual clock, just as long as pods took
    assert {(p.track, p.image, p.ready) for p in cluster.pods("shop", "web")} == {
        ("stable", "web:1", True),
        ("canary", "web:2", True),
        ("baseline", "web:1", True),
    }


def test_an_image_that_never_becomes_ready_misses_the_deadline() -> None:
    world, clock = _world()
    world.set_image_behaviour("web:bad", ImageBehaviour(never_ready=True))
    cluster = SimulatedCluster(world)

    with pytest.raises(ProgressDeadlineError, match="web-canary 0/1 ready"):
        cluster.apply_split(
            TARGET,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:bad",
            step=0,
            progress_deadline=timedelta(seconds=30),
        )
    assert clock.monotonic() == pytest.approx(30.0)
    assert [p.ready for p in cluster.pods("shop", "web") if p.track == "canary"] == [False]


def test_pods_that_crash_after_a_while_stop_being_ready() -> None:
    world, clock = _world(delay=1.0)
    world.set_image_behaviour("web:flaky", ImageBehaviour(crash_after=10.0))
    cluster = SimulatedCluster(world)
    cluster.apply_split(
        TARGET,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:flaky",
        step=0,
        progress_deadline=DEADLINE,
    )
    assert cluster.read(TARGET).rolled_out

    clock.advance(10.0)

    status = cluster.read(TARGET)
    assert status.canary is not None
    assert status.canary.ready == 0
    assert not status.rolled_out


def test_slow_images_take_their_own_time() -> None:
    world, clock = _world(delay=1.0)
    world.set_image_behaviour("web:slow", ImageBehaviour(ready_after=40.0))
    cluster = SimulatedCluster(world)
    cluster.apply_split(
        TARGET,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:slow",
        step=0,
        progress_deadline=DEADLINE,
    )
    assert clock.monotonic() >= 40.0


def test_the_deployment_controller_reports_progress_deadline_exceeded() -> None:
    world, clock = _world()
    world.set_image_behaviour("web:bad", ImageBehaviour(never_ready=True))
    cluster = SimulatedCluster(world)
    with pytest.raises(ProgressDeadlineError):
        cluster.apply_split(
            TARGET,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:bad",
            step=0,
            progress_deadline=timedelta(seconds=5),
        )
    clock.advance(1)
    status = cluster.read(TARGET)
    assert status.canary is not None
    assert status.canary.deadline_exceeded
    with pytest.raises(
        ProgressDeadlineError, match="ProgressDeadlineExceeded"
    ):  # at once, not after DEADLINE
        cluster.apply_split(
            TARGET,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:bad",
            step=0,
            progress_deadline=DEADLINE,
        )


def test_api_timeouts_are_cluster_unavailable_and_retryable() -> None:
    world, _ = _world()
    cluster = SimulatedCluster(world)
    world.timeouts = 1

    with pytest.raises(ClusterUnavailableError):
        cluster.read(TARGET)
    assert cluster.read(TARGET).stable.ready == 4  # the next call goes through


def test_injected_conflicts_are_retried() -> None:
    world, _ = _world()
    cluster = SimulatedCluster(world, conflict_attempts=3)
    world.conflicts = 2

    status = cluster.apply_split(
        TARGET,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    assert world.conflicts == 0
    assert status.canary is not None


def test_an_hpa_sets_the_deployments_replicas() -> None:
    world, _ = _world()
    world.set_hpa("shop", "web", 6)
    status = SimulatedCluster(world).read(TARGET)
    assert (status.hpa_replicas, status.stable.replicas, status.capacity) == (6, 6, 6)
    world.set_hpa("shop", "web", None)
    assert SimulatedCluster(world).read(TARGET).hpa_replicas is None


def test_a_rolling_update_keeps_old_pods_until_new_ones_are_ready() -> None:
    world, clock = _world(delay=3.0)
    record = world.record("shop", "web")
    assert record is not None

    world.patch("shop", "web", record.resource_version, None, ("web", "web:2"), None)
    clock.advance(1.0)
    during = {(p.image, p.ready) for p in world.pods("shop", "web")}
    mid = world.record("shop", "web")
    clock.advance(2.5)
    after = [(p.image, p.ready) for p in world.pods("shop", "web")]

    assert during == {("web:1", True), ("web:2", False)}
    assert mid is not None
    assert (mid.current, mid.updated, mid.ready, mid.replicas) == (8, 4, 4, 4)
    assert after == [("web:2", True)] * 4


def test_a_deployment_named_like_a_canary_but_not_ours_is_left_alone() -> None:
    world, _ = _world()
    world.add_deployment(
        "shop", "web-canary", image="web:x", replicas=1, container="web", labels={"app": "web"}
    )
    cluster = SimulatedCluster(world)
    with pytest.raises(ClusterError, match="without canaryflow annotations"):
        cluster.apply_split(
            TARGET,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )
    with pytest.raises(ClusterError, match="without canaryflow annotations"):
        cluster.rollback(TARGET, rollout_id=RID, progress_deadline=DEADLINE)
    assert world.deployment_names("shop") == ["web", "web-canary"]


def test_no_new_split_while_promoting() -> None:
    world, _ = _world()
    cluster = SimulatedCluster(world)
    split = plan_split(4, 25, baseline=True)
    cluster.apply_split(TARGET, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)
    world.before_write = _die_on_stable_write
    with pytest.raises(RuntimeError):
        cluster.promote(TARGET, rollout_id=RID, progress_deadline=DEADLINE)
    world.before_write = None

    with pytest.raises(ClusterError, match="is promoting; finish it first"):
        cluster.apply_split(TARGET, split, rollout_id=RID, image="web:2", step=1, progress_deadline=DEADLINE)


def _die_on_stable_write(verb: str, namespace: str, name: str) -> None:
    if name == "web":
        raise RuntimeError("the controller died")


def test_malformed_annotations_are_a_cluster_error() -> None:
    world, _ = _world()
    cluster = SimulatedCluster(world)
    cluster.apply_split(
        TARGET,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    record = world.record("shop", "web-canary")
    assert record is not None
    world.patch("shop", "web-canary", record.resource_version, None, None, {"canaryflow/step": "two"})

    with pytest.raises(ClusterError, match="shop/web-canary: malformed canaryflow annotations"):
        cluster.read(TARGET)


def test_the_progress_deadline_counts_only_time_the_api_server_answered() -> None:
    world, clock = _world(delay=40.0)  # new pods are Ready 40 s after they start: 5 s answering
    cluster = SimulatedCluster(world)
    started = clock.monotonic()
    world.outage(30.0, after=1.0)  # the writes go through; the wait's reads meet a 30 s outage

    status = cluster.apply_split(
        TARGET, plan_split(4, 25, baseline=True), rollout_id=RID, image="web:2", step=0,
        progress_deadline=timedelta(seconds=8), outage_tolerance=timedelta(minutes=1),
    )  # fmt: skip

    assert clock.monotonic() - started >= 40.0  # longer than the deadline in all, within it answering
    assert status.canary is not None
    assert status.canary.ready == 1


def test_without_an_outage_the_same_deadline_is_kept() -> None:
    world, _ = _world(delay=10.0)
    with pytest.raises(ProgressDeadlineError, match="not ready within 0:00:08"):
        SimulatedCluster(world).apply_split(
            TARGET, plan_split(4, 25, baseline=True), rollout_id=RID, image="web:2", step=0,
            progress_deadline=timedelta(seconds=8),
        )  # fmt: skip
