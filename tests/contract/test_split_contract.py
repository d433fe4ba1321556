"""Contract: creating the split and changing weights, on every adapter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness

DEADLINE = timedelta(seconds=60)
RID = RolloutId("web-v2")


def test_first_split_creates_canary_and_baseline_from_the_stable_template(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=10)
    cluster = cluster_factory.cluster()
    split = plan_split(10, 10, baseline=True)

    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )

    assert (split.canary, split.baseline, split.stable) == (1, 1, 8)
    assert status.rolled_out
    assert status.canary is not None
    assert status.baseline is not None
    assert (status.canary.ready, status.baseline.ready, status.stable.ready) == (1, 1, 8)
    assert status.effective_weight == pytest.approx(10.0)
    canary, baseline = cluster_factory.observe("web-canary"), cluster_factory.observe("web-baseline")
    assert canary is not None
    assert baseline is not None
    assert canary.images == {"web": "web:2"}
    assert baseline.images == {"web": "web:1"}
    # Every label of the stable's pods, the track overridden: the Service (app=web) selects them all.
    assert canary.pod_labels == {"app": "web", "track": "canary"}
    assert baseline.pod_labels == {"app": "web", "track": "baseline"}


def test_pods_show_each_track_with_its_image(cluster_factory: Harness) -> None:
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

    pods = [p for p in cluster.pods(target.namespace, "web") if p.ready]

    by_track = {
        track: sorted(p.image for p in pods if p.track == track) for track in ("stable", "canary", "baseline")
    }
    assert by_track == {"stable": ["web:1", "web:1"], "canary": ["web:2"], "baseline": ["web:1"]}


def test_weights_go_up_and_down_and_capacity_never_drops(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=10)
    cluster = cluster_factory.cluster()
    for step, weight in enumerate([10, 50, 20]):
        split = plan_split(10, weight, baseline=True)
        status = cluster.apply_split(
            target, split, rollout_id=RID, image="web:2", step=step, progress_deadline=DEADLINE
        )
        assert status.canary is not None
        assert status.baseline is not None
        assert (status.stable.replicas, status.canary.replicas, status.baseline.replicas) == (
            split.stable,
            split.canary,
            split.baseline,
        )
        assert status.effective_weight == pytest.approx(split.effective_weight)
        assert sum(t.ready for t in status.tracks) >= 10
        assert status.state is not None
        assert (status.state.step, status.state.weight) == (step, weight)


def test_split_without_a_baseline_creates_only_the_canary(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    split = plan_split(4, 25, baseline=False)

    status = cluster.apply_split(
        target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
    )

    assert status.baseline is None
    assert cluster_factory.observe("web-baseline") is None
    assert status.effective_weight == pytest.approx(25.0)


def test_a_fresh_adapter_reads_the_rollout_state_from_the_cluster(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster_factory.cluster().apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=3,
        progress_deadline=DEADLINE,
    )

    state = cluster_factory.cluster().read(target).state

    assert state is not None
    assert (state.rollout_id, state.step, state.weight, state.phase) == (RID, 3, 25, "progressing")
    assert (state.canary_image, state.stable_image, state.stable_replicas) == ("web:2", "web:1", 4)
    assert state.started_at.tzinfo is not None


def test_stable_without_a_track_label_works_too(cluster_factory: Harness) -> None:
    """A stable selected by ``app`` alone: its selector also matches canary pods; ownership keeps
    the Deployments apart, and pods without a track label count as stable."""
    target = cluster_factory.create_app("web", image="web:1", replicas=4, track_label=False)
    cluster = cluster_factory.cluster()
    cluster.apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )

    status = cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert status.canary is None
    assert status.baseline is None
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:2", 4, 4)
    assert cluster_factory.observe("web") is not None


def test_at_every_write_the_service_keeps_at_least_the_capacity_ready(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    seen: list[tuple[str, str, int]] = []
    cluster_factory.write_hook = lambda verb, name: seen.append((verb, name, cluster_factory.serving("web")))
    for step, weight in enumerate([25, 50, 25]):
        split = plan_split(4, weight, baseline=True)
        cluster.apply_split(
            target, split, rollout_id=RID, image="web:2", step=step, progress_deadline=DEADLINE
        )
    cluster.promote(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert len(seen) >= 6
    assert [entry for entry in seen if entry[2] < 4] == []


def test_a_persons_scale_down_and_a_deleted_canary_never_end_below_the_starting_capacity(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    cluster = cluster_factory.cluster()
    split = plan_split(2, 20, baseline=True)
    assert split.stable == 2  # this split leaves the stable's size alone
    cluster.apply_split(target, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE)
    cluster_factory.person_scales("web", 1)
    cluster_factory.person_deletes("web-canary")

    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:1", 2, 2)
