"""Contract: promote and roll back, both idempotent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import Cluster, RolloutId, TargetRef
from canaryflow.errors import RolloutInProgressError
from canaryflow.replicas import plan_split
from canaryflow.status import RolloutPhase
from tests.contract.harness import Harness

DEADLINE = timedelta(seconds=60)
RID = RolloutId("web-v2")


def _started(harness: Harness, weight: int = 50) -> tuple[Cluster, TargetRef]:
    target = harness.create_app("web", image="web:1", replicas=4)
    cluster = harness.cluster()
    cluster.apply_split(
        target,
        plan_split(4, weight, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    return cluster, target


def test_promote_gives_the_stable_the_canary_image_then_removes_canary_and_baseline(
    cluster_factory: Harness,
) -> None:
    cluster, target = _started(cluster_factory)

    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert status.canary is None
    assert status.baseline is None
    assert status.state is None
    assert (status.stable.image, status.stable.replicas) == ("web:2", 4)
    assert status.stable.rolled_out
    assert cluster_factory.deployments() == ["web"]
    stable = cluster_factory.observe("web")
    assert stable is not None
    assert stable.images == {"web": "web:2"}


def test_rollback_restores_the_stable_at_full_size(cluster_factory: Harness) -> None:
    cluster, target = _started(cluster_factory)
    stable = cluster_factory.observe("web")
    assert stable is not None
    assert stable.replicas < 4

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert status.canary is None
    assert status.baseline is None
    assert status.state is None
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:1", 4, 4)
    assert cluster_factory.deployments() == ["web"]


def test_promote_and_rollback_are_idempotent(cluster_factory: Harness) -> None:
    cluster, target = _started(cluster_factory)
    first = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)
    writes: list[tuple[str, str]] = []
    cluster_factory.write_hook = lambda verb, name: writes.append((verb, name))

    again = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)
    back = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert writes == []  # nothing left to do: no write at all
    assert again.stable.image == first.stable.image == back.stable.image == "web:2"
    assert again.canary is None
    assert back.canary is None


def test_pods_of_the_app_end_on_the_promoted_image(cluster_factory: Harness) -> None:
    cluster, target = _started(cluster_factory, weight=25)
    cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    status = cluster.read(target)

    assert status.stable.rolled_out

    def only_promoted_pods() -> bool:
        ready = [p for p in cluster.pods(target.namespace, "web") if p.ready]
        return len(ready) == 4 and {(p.track, p.image) for p in ready} == {("stable", "web:2")}

    cluster_factory.eventually(only_promoted_pods, "four Ready stable pods on web:2 and nothing else")


def test_a_decision_is_recorded_first_and_only_on_the_rollouts_own_state(cluster_factory: Harness) -> None:
    cluster, target = _started(cluster_factory)
    writes: list[tuple[str, str]] = []
    cluster_factory.write_hook = lambda verb, name: writes.append((verb, name))

    cluster.decide(target, rollout_id=RID, phase=RolloutPhase.ROLLING_BACK)
    cluster.decide(target, rollout_id=RID, phase=RolloutPhase.ROLLING_BACK)  # idempotent

    assert writes == [("patch", "web-canary")]  # the state lives on the canary; nothing else moved
    status = cluster.read(target)
    assert status.state is not None
    assert status.state.phase == RolloutPhase.ROLLING_BACK
    assert [t.replicas for t in status.tracks] == [0, 2, 2]
    with pytest.raises(RolloutInProgressError):
        cluster.decide(target, rollout_id=RolloutId("other"), phase=RolloutPhase.ROLLING_BACK)
    with pytest.raises(ValueError, match="promote or to roll back"):
        cluster.decide(target, rollout_id=RID, phase=RolloutPhase.PROGRESSING)

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)  # a resumed run's
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert (status.stable.image, status.stable.ready) == ("web:1", 4)
