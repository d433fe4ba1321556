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


def test_an_hpa_sets_the_capacity_and_the_stable_is_left_to_it(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    cluster_factory.set_hpa("web", 4)
    cluster = cluster_factory.cluster()
    status = cluster.read(target)
    assert (status.hpa_replicas, status.capacity) == (4, 4)
    split = plan_split(status.capacity, 20, baseline=True, stable_fixed=True)
    writes: list[tuple[str, str]] = []
    cluster_factory.write_hook = lambda verb, name: writes.append((verb, name))

    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )
    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert not [w for w in writes if w[1] == "web"]  # never a write to the stable
    assert (status.stable.replicas, status.stable.ready) == (4, 4)


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
