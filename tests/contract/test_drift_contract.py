"""Contract: people change the target between the rollout's writes (`kubectl scale`, `kubectl set
image`). A scale of the stable is honoured and kept; an image set on the stable stops the rollout
before it writes anything more, and the rollback keeps that image."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.errors import DriftError
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness, rollout_under_way

DEADLINE = timedelta(seconds=90)
RID = RolloutId("web-v2")


def test_a_person_scaling_the_stable_up_sets_the_capacity_the_promotion_keeps(
    cluster_factory: Harness,
) -> None:
    target, cluster = rollout_under_way(cluster_factory)
    cluster_factory.person_scales("web", 8)

    status = cluster.read(target)
    assert status.capacity == 8  # the next split is computed on the person's capacity
    split = plan_split(status.capacity, 50, baseline=True)
    cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=1, progress_deadline=DEADLINE)
    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas) == ("web:2", 8)
    observed = cluster_factory.observe("web")
    assert observed is not None
    assert "canaryflow/replicas-set" not in observed.annotations  # nothing of the rollout is left


def test_the_rollouts_own_resizing_is_not_taken_for_a_person(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    for step, weight in enumerate((25, 50)):
        split = plan_split(4, weight, baseline=True)
        cluster.apply_split(
            target, split, rollout_id=RID, image="web:2", step=step, progress_deadline=DEADLINE
        )
        assert cluster.read(target).capacity == 4

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert (status.stable.image, status.stable.replicas) == ("web:1", 4)


@pytest.mark.parametrize("then", ["split", "promote"])
def test_an_image_a_person_set_on_the_stable_stops_the_rollout_and_survives_the_rollback(
    cluster_factory: Harness, then: str
) -> None:
    target, cluster = rollout_under_way(cluster_factory)
    cluster_factory.person_sets_image("web", "web", "web:hotfix")
    writes: list[str] = []
    cluster_factory.write_hook = lambda verb, name: writes.append(f"{verb} {name}")

    def act() -> object:
        if then == "split":
            split = plan_split(4, 50, baseline=True)
            return cluster.apply_split(
                target, split, rollout_id=RID, image="web:2", step=1, progress_deadline=DEADLINE
            )
        return cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    with pytest.raises(
        DriftError, match=r"somebody set the image of .*/web to web:hotfix during rollout web-v2"
    ):
        act()
    assert writes == []  # refused before any write

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas) == ("web:hotfix", 4)


def test_a_deleted_canary_is_drift_and_the_rollback_gives_the_stable_its_capacity_back(
    cluster_factory: Harness,
) -> None:
    from canaryflow.cluster.drift import drift

    target, cluster = rollout_under_way(cluster_factory, weight=50)
    assert drift(cluster.read(target)) is None
    cluster_factory.person_deletes("web-canary")

    status = cluster.read(target)
    assert (status.state, status.capacity) == (None, 4)  # the capacity survives on the stable
    found = drift(status)
    assert found is not None
    assert "somebody deleted Deployment" in str(found)
    assert "web-canary" in str(found)

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:1", 4, 4)
    observed = cluster_factory.observe("web")
    assert observed is not None
    assert not [key for key in observed.annotations if key.startswith("canaryflow/")]
