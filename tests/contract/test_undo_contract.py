"""Contract: `undo` puts the stable back on the image before the last promotion, once, and refuses
what it must not touch (a rollout under way, an image somebody changed since, nothing to undo)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import Cluster, LastPromotion, RolloutId, TargetRef
from canaryflow.errors import DriftError, NothingToUndoError, RolloutInProgressError
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness, rollout_under_way

DEADLINE = timedelta(seconds=60)
RID = RolloutId("web-v2")


def _promoted(harness: Harness) -> tuple[Cluster, TargetRef]:
    target, cluster = rollout_under_way(harness)
    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert status.last_promotion == LastPromotion(previous_image="web:1", image="web:2", rollout_id=RID)
    return cluster, target


def test_undo_puts_the_stable_back_on_the_image_before_the_promotion(cluster_factory: Harness) -> None:
    cluster, target = _promoted(cluster_factory)

    status = cluster.undo(target, note="by ana: 5xx after the release", progress_deadline=DEADLINE)

    assert (status.stable.image, status.stable.replicas) == ("web:1", 4)
    assert status.stable.rolled_out
    assert status.last_promotion is None
    observed = cluster_factory.observe("web")
    assert observed is not None
    assert observed.images == {"web": "web:1"}
    assert cluster_factory.deployments() == ["web"]
    # idempotent: the same undo again (a retry whose first answer was lost) converges, no error
    assert (
        cluster.undo(target, note="by ana: 5xx after the release", progress_deadline=DEADLINE).stable.image
        == "web:1"
    )
    # once: another undo has nothing to undo and says what the last one did
    with pytest.raises(
        NothingToUndoError, match=r"no promotion by canaryflow to undo \(last undo: web:2 of "
    ):
        cluster.undo(target, note="again", progress_deadline=DEADLINE)
    assert cluster.read(target).stable.image == "web:1"


def test_undo_refuses_an_image_somebody_set_since_the_promotion(cluster_factory: Harness) -> None:
    cluster, target = _promoted(cluster_factory)
    cluster_factory.person_sets_image("web", "web", "web:hotfix")

    with pytest.raises(DriftError, match="runs web:hotfix, not web:2 that web-v2 promoted"):
        cluster.undo(target, note="by ana", progress_deadline=DEADLINE)

    assert cluster.read(target).stable.image == "web:hotfix"


def test_undo_refuses_while_a_rollout_is_under_way_and_without_a_promotion(cluster_factory: Harness) -> None:
    target, cluster = rollout_under_way(cluster_factory)
    with pytest.raises(RolloutInProgressError, match="is in rollout web-v2: abort that rollout instead"):
        cluster.undo(target, note="by ana", progress_deadline=DEADLINE)
    assert cluster.read(target).canary is not None  # untouched
    cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    with pytest.raises(NothingToUndoError, match="has no promotion by canaryflow to undo"):
        cluster.undo(target, note="by ana", progress_deadline=DEADLINE)


def test_a_rollback_keeps_the_last_promotion_to_undo(cluster_factory: Harness) -> None:
    cluster, target = _promoted(cluster_factory)
    rid = RolloutId("web-v3")
    cluster.apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=rid,
        image="web:3",
        step=0,
        progress_deadline=DEADLINE,
    )
    status = cluster.rollback(target, rollout_id=rid, progress_deadline=DEADLINE)
    assert status.last_promotion == LastPromotion(previous_image="web:1", image="web:2", rollout_id=RID)
    assert cluster.undo(target, note="by ana", progress_deadline=DEADLINE).stable.image == "web:1"
