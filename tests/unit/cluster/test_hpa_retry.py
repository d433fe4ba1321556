"""An HPA's growth of the stable is taken in once, however often a split is retried (simulated
cluster): the growth is measured against the capacity written together with the stable's size,
not against the rollout state, which the first attempt already grew."""

from __future__ import annotations

from datetime import timedelta

from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.replicas import plan_split

TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")
DEADLINE = timedelta(minutes=5)


def test_a_split_retried_after_a_conflict_does_not_count_the_hpas_growth_twice() -> None:
    world = SimulatedWorld()
    world.add_deployment("shop", "web", image="web:1", replicas=6, labels={"app": "web"})
    world.add_service("shop", "web", {"app": "web"})
    world.set_hpa("shop", "web", 6, min_replicas=6, max_replicas=20)
    cluster = SimulatedCluster(world)
    split = plan_split(6, 25, baseline=True)
    assert (split.canary, split.baseline, split.stable) == (2, 2, 4)
    cluster.apply_split(
        TARGET, split, rollout_id=RolloutId("v2"), image="web:2", step=0, progress_deadline=DEADLINE
    )
    world.autoscale("shop", "web", 7)  # load rose: the HPA grows the stable's share from 4 to 7
    status = cluster.read(TARGET)
    assert status.capacity == 11  # 6 * 7 / 4, rounded up
    touched: list[str] = []

    def lose_the_race_once(verb: str, namespace: str, name: str) -> None:
        if name == "web" and not touched:
            touched.append(name)
            world.touch("shop", "web")  # the stable changed since it was read: this patch gets a 409

    world.before_write = lose_the_race_once
    status = cluster.apply_split(
        TARGET,
        plan_split(status.capacity, 25, baseline=True),
        rollout_id=RolloutId("v2"),
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )

    assert touched == ["web"]
    assert status.capacity == 11  # not 11 * 7 / 4 = 20 after the retry
    assert sum(t.replicas for t in status.tracks) == plan_split(11, 25, baseline=True).total
