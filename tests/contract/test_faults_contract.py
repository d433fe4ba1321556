"""Contract: conflicts, progress deadlines, HPAs, and bad input (a clear error, no change)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.errors import (
    ClusterError,
    ConflictError,
    NotFoundError,
    ProgressDeadlineError,
    RolloutInProgressError,
)
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness, Observed

DEADLINE = timedelta(seconds=60)
RID = RolloutId("web-v2")


def _snapshot(harness: Harness) -> dict[str, Observed | None]:
    return {name: harness.observe(name) for name in harness.deployments()}


def test_a_concurrent_writer_is_outlasted_by_rereading(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    interfered: list[str] = []

    def interfere(verb: str, name: str) -> None:
        if verb == "patch" and len(interfered) < 2:
            interfered.append(name)
            cluster_factory.concurrent_write(name)  # our patch now carries a stale resourceVersion

    cluster_factory.write_hook = interfere
    split = plan_split(4, 25, baseline=True)
    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )

    assert interfered == ["web", "web"]  # the stable's scale-down lost twice, then went through
    assert (status.stable.replicas, status.stable.ready) == (split.stable, split.stable)


def test_endless_conflicts_end_in_conflict_error(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    cluster_factory.write_hook = lambda verb, name: (
        cluster_factory.concurrent_write(name) if verb == "patch" else None
    )

    with pytest.raises(ConflictError, match="still conflicting"):
        cluster.apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )
    observed = cluster_factory.observe("web")
    assert observed is not None
    assert observed.replicas == 4


def test_pods_that_never_become_ready_hit_the_progress_deadline(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster_factory.block_new_pods()
    cluster = cluster_factory.cluster()

    with pytest.raises(ProgressDeadlineError, match=r"web-canary 0/1 ready|ProgressDeadlineExceeded"):
        cluster.apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:2",
            step=0,
            progress_deadline=timedelta(seconds=3),
        )
    stable = cluster_factory.observe("web")
    assert stable is not None
    assert stable.replicas == 4
    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)
    assert status.canary is None
    assert status.baseline is None
    assert status.stable.ready == 4


def test_an_hpa_lends_its_capacity_to_the_split_and_gets_its_own_bounds_back(
    cluster_factory: Harness,
) -> None:
    """50 % with a baseline on a stable an HPA holds at 12 (min 12, max 15): out of reach while
    the HPA's bounds were respected, reached now that they are lent; the HPA does not fight it."""
    target = cluster_factory.create_app("web", image="web:1", replicas=12)
    cluster_factory.set_hpa("web", 12, min_replicas=12, max_replicas=15)
    cluster = cluster_factory.cluster()
    status = cluster.read(target)
    assert (status.hpa_replicas, status.hpa_bounds, status.capacity) == (12, (12, 15), 12)
    split = plan_split(status.capacity, 50, baseline=True)
    assert (split.canary, split.baseline, split.stable) == (6, 6, 0)

    cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)

    assert cluster_factory.hpa_synced("web") == 0  # the HPA saw the stable at its share and left it
    assert cluster_factory.hpa_bounds("web") == (1, 1)
    status = cluster.read(target)
    assert status.hpa_bounds == (12, 15)  # its own, recorded on it while lent
    assert status.effective_weight == 50.0
    assert [t.ready for t in status.tracks] == [0, 6, 6]

    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert cluster_factory.hpa_bounds("web") == (12, 15)  # given back exactly
    assert cluster_factory.hpa_synced("web") == 12
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:2", 12, 12)
    assert status.canary is None
    assert status.baseline is None
    assert "canaryflow/hpa-bounds" not in str(cluster.read(target))


def test_the_hpa_scaling_during_a_rollout_keeps_the_weight(cluster_factory: Harness) -> None:
    """Load rises mid-rollout: the HPA grows the stable within the bounds lent to it, the next
    split grows canary and baseline by the same factor, the rollback keeps the grown capacity."""
    target = cluster_factory.create_app("web", image="web:1", replicas=10)
    cluster_factory.set_hpa("web", 10, min_replicas=10, max_replicas=20)
    cluster = cluster_factory.cluster()
    split = plan_split(10, 20, baseline=True)
    assert (split.canary, split.baseline, split.stable) == (2, 2, 6)
    cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)
    assert cluster_factory.hpa_bounds("web") == (6, 12)  # 6 of 10 pods: at most 6/10 of 20

    cluster_factory.hpa_wants("web", 13)  # the HPA may grow the stable to 12, not beyond

    assert cluster_factory.hpa_synced("web") == 12
    status = cluster.read(target)
    assert status.rescaled
    assert status.capacity == 20  # 10 * 12 / 6: the whole target grows with its stable
    split = plan_split(status.capacity, 20, baseline=True)
    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )
    assert [t.ready for t in status.tracks] == [12, 4, 4]
    assert status.effective_weight == 20.0
    assert cluster_factory.hpa_bounds("web") == (12, 12)  # the target is at the HPA's maximum
    assert cluster_factory.hpa_synced("web") == 12

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert cluster_factory.hpa_bounds("web") == (10, 20)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:1", 20, 20)
    assert cluster_factory.hpa_synced("web") == 20


def test_canary_and_baseline_growing_around_a_stable_of_the_same_size_move_the_hpas_maximum(
    cluster_factory: Harness,
) -> None:
    """From 9 + 9 + 2 pods to 10 + 10 + 2 (an analysis raising 45 % to 46 %) and back: the stable
    keeps its 2 pods, and the maximum lent to its HPA follows its share of the HPA's own 40 among
    22 pods (3, not the 4 of 20), so that the HPA cannot grow the target past its own maximum, and
    among 20 again (4)."""
    target = cluster_factory.create_app("web", image="web:1", replicas=20)
    cluster_factory.set_hpa("web", 20, min_replicas=20, max_replicas=40)
    cluster = cluster_factory.cluster()
    for weight, bounds in ((45, (2, 4)), (46, (2, 3)), (45, (2, 4))):
        split = plan_split(20, weight, baseline=True)
        assert split.stable == 2
        cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)
        assert cluster_factory.hpa_bounds("web") == bounds

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert cluster_factory.hpa_bounds("web") == (20, 40)
    assert (status.stable.image, status.stable.replicas) == ("web:1", 20)


def test_a_stable_that_grows_mid_rollout_is_never_cut_back_by_its_hpa(cluster_factory: Harness) -> None:
    """From 50 % (the stable at 0, its HPA lent ``[1, 1]``) back to 20 %: the stable grows to 6.
    The HPA controller may sync between any two writes (here it does before each write to the HPA,
    as during an API-server outage that holds the second write back): its maximum must already
    allow the new size when the stable grows, or it cuts the stable back to 1."""
    target = cluster_factory.create_app("web", image="web:1", replicas=10)
    cluster_factory.set_hpa("web", 10, min_replicas=10, max_replicas=20)
    cluster = cluster_factory.cluster()
    cluster.apply_split(
        target,
        plan_split(10, 50, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    assert cluster_factory.hpa_bounds("web") == (1, 1)
    synced: list[int] = []

    def hpa_syncs_first(verb: str, name: str) -> None:
        if verb == "patch" and name == "horizontalpodautoscalers/web":
            synced.append(cluster_factory.hpa_syncs("web"))

    cluster_factory.write_hook = hpa_syncs_first
    split = plan_split(10, 20, baseline=True)
    assert (split.canary, split.baseline, split.stable) == (2, 2, 6)
    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=1, progress_deadline=DEADLINE
    )
    cluster_factory.write_hook = None

    assert synced  # the HPA synced while the stable grew
    assert all(size in (0, 6) for size in synced)  # before the growth, or after it: never cut to 1
    # Its minimum the new share; its maximum 6/16 of its own 20 while canary and baseline still
    # had 5 each when the stable grew (7), then 6/10 of it once they shrank to 2 each.
    assert cluster_factory.hpa_bounds("web") == (6, 12)
    assert cluster_factory.hpa_syncs("web") == 6
    assert [t.ready for t in status.tracks] == [6, 2, 2]
    assert status.capacity == 10


def test_a_missing_target_is_not_found_and_nothing_changes(cluster_factory: Harness) -> None:
    cluster_factory.create_app("web", image="web:1", replicas=4)
    before = _snapshot(cluster_factory)
    missing = TargetRef(namespace=cluster_factory.namespace, deployment="api", container="api", service="web")

    with pytest.raises(NotFoundError, match="api"):
        cluster_factory.cluster().apply_split(
            missing,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="api:2",
            step=0,
            progress_deadline=DEADLINE,
        )
    assert _snapshot(cluster_factory) == before


@pytest.mark.parametrize(
    ("selector", "service", "error", "match"),
    [
        ({"app": "other"}, "web", NotFoundError, "does not select the pods"),
        ({"app": "web"}, "missing", NotFoundError, "missing does not exist"),
        ({"app": "web", "track": "stable"}, "web", ClusterError, "selects on label 'track'"),
    ],
)
def test_a_deployment_no_service_selects_is_refused_and_nothing_changes(
    cluster_factory: Harness, selector: dict[str, str], service: str, error: type[Exception], match: str
) -> None:
    cluster_factory.create_app("web", image="web:1", replicas=4, service_selector=selector)
    target = TargetRef(
        namespace=cluster_factory.namespace, deployment="web", container="web", service=service
    )
    before = _snapshot(cluster_factory)

    with pytest.raises(error, match=match):
        cluster_factory.cluster().apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )
    assert _snapshot(cluster_factory) == before


def test_a_missing_container_is_not_found(cluster_factory: Harness) -> None:
    cluster_factory.create_app("web", image="web:1", replicas=4)
    target = TargetRef(
        namespace=cluster_factory.namespace, deployment="web", container="sidecar", service="web"
    )

    with pytest.raises(NotFoundError, match="no container 'sidecar'"):
        cluster_factory.cluster().read(target)


def test_a_target_in_another_rollout_is_refused_and_nothing_changes(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    cluster.apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    before = _snapshot(cluster_factory)
    other = RolloutId("web-v3")

    with pytest.raises(RolloutInProgressError, match="web-v2") as caught:
        cluster.apply_split(
            target,
            plan_split(4, 50, baseline=True),
            rollout_id=other,
            image="web:3",
            step=0,
            progress_deadline=DEADLINE,
        )
    with pytest.raises(RolloutInProgressError):
        cluster.promote(target, rollout_id=other, progress_deadline=DEADLINE)
    with pytest.raises(RolloutInProgressError):
        cluster.rollback(target, rollout_id=other, progress_deadline=DEADLINE)
    assert caught.value.rollout_id == RID
    assert _snapshot(cluster_factory) == before
