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


def test_an_edit_of_the_stables_template_stops_the_rollout_and_survives_the_rollback(
    cluster_factory: Harness,
) -> None:
    from canaryflow.cluster.drift import drift

    target, cluster = rollout_under_way(cluster_factory)
    before = cluster.read(target)
    assert drift(before, baseline=True) is None
    cluster_factory.person_sets_env("web", "web", "FEATURE_X", "on")
    writes: list[str] = []
    cluster_factory.write_hook = lambda verb, name: writes.append(f"{verb} {name}")

    status = cluster.read(target)
    assert status.stable.template != before.stable.template
    found = drift(status, baseline=True)
    assert found is not None
    assert "somebody edited the pod template of" in str(found)
    with pytest.raises(DriftError, match="edited the pod template"):
        cluster.apply_split(
            target, plan_split(4, 50, baseline=True), rollout_id=RID, image="web:2", step=1,
            progress_deadline=DEADLINE,
        )  # fmt: skip
    with pytest.raises(DriftError, match="edited the pod template"):
        cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert writes == []  # refused before any write

    cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert cluster_factory.deployments() == ["web"]
    rolled_back = cluster.read(target)
    assert rolled_back.stable.template == status.stable.template  # the person's edit is kept
    assert (rolled_back.stable.image, rolled_back.stable.replicas) == ("web:1", 4)


def test_a_promotion_changes_the_stables_image_but_is_no_template_edit(cluster_factory: Harness) -> None:
    from canaryflow.cluster.drift import drift

    target, cluster = rollout_under_way(cluster_factory)
    before = cluster.read(target).stable.template

    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert before != ""
    assert (status.stable.image, status.stable.template) == ("web:2", before)
    assert drift(status, baseline=True) is None


@pytest.mark.parametrize("track", ["web-canary", "web-baseline"])
def test_an_image_a_person_set_on_the_canary_or_baseline_is_drift(
    cluster_factory: Harness, track: str
) -> None:
    from canaryflow.cluster.drift import drift

    target, cluster = rollout_under_way(cluster_factory)
    cluster_factory.person_sets_image(track, "web", "web:other")

    found = drift(cluster.read(target), baseline=True)

    assert found is not None
    assert f"somebody set the image of {cluster_factory.namespace}/{track} to web:other" in str(found)
    writes: list[str] = []
    cluster_factory.write_hook = lambda verb, name: writes.append(f"{verb} {name}")
    split = plan_split(4, 50, baseline=True)
    with pytest.raises(DriftError, match=f"somebody set the image of .*/{track}"):
        cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=1, progress_deadline=DEADLINE)
    assert writes == []  # a split never overwrites the person's image
    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert (status.canary, status.baseline, status.stable.image) == (None, None, "web:1")


def test_a_deleted_baseline_is_drift_and_the_next_split_recreates_it(cluster_factory: Harness) -> None:
    from canaryflow.cluster.drift import drift
    from canaryflow.errors import BaselineLostError

    target, cluster = rollout_under_way(cluster_factory)
    cluster_factory.person_deletes("web-baseline")

    status = cluster.read(target)
    assert status.state is not None
    assert isinstance(drift(status, baseline=True), BaselineLostError)
    assert drift(status, baseline=False) is None  # a rollout without a baseline has none to lose

    split = plan_split(4, 25, baseline=True)
    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )
    assert status.baseline is not None
    assert (status.baseline.image, status.baseline.ready) == ("web:1", split.baseline)
    assert drift(status, baseline=True) is None


@pytest.mark.parametrize("selector", [{"app": "web", "version": "v1"}, None])
def test_a_service_that_no_longer_selects_the_tracks_is_drift(
    cluster_factory: Harness, selector: dict[str, str] | None
) -> None:
    from canaryflow.cluster.drift import drift

    target, cluster = rollout_under_way(cluster_factory)
    cluster_factory.person_sets_service("web", selector)

    found = drift(cluster.read(target), baseline=True)

    assert found is not None
    assert str(found).startswith("somebody changed the Service during rollout web-v2: Service")
    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)  # rollback still works
    assert (status.canary, status.stable.replicas) == (None, 4)


def test_a_persons_scale_is_flagged_until_the_split_is_computed_again(cluster_factory: Harness) -> None:
    target, cluster = rollout_under_way(cluster_factory)
    assert not cluster.read(target).rescaled
    cluster_factory.person_scales("web", 8)

    status = cluster.read(target)
    assert (status.rescaled, status.capacity) == (True, 8)
    split = plan_split(8, 25, baseline=True)
    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )

    assert not status.rescaled
    assert status.canary is not None
    assert (status.canary.replicas, status.stable.replicas) == (split.canary, split.stable)
