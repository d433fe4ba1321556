"""Contract: a rollout leaves Kubernetes Events on the stable Deployment (what ``kubectl describe``,
Argo CD and alerting rules read), and an Event that cannot be written never stops a rollout."""

from __future__ import annotations

from datetime import timedelta

from canaryflow.cluster.port import RolloutCondition, RolloutId
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness

DEADLINE = timedelta(seconds=60)


def test_split_promotion_rollback_and_undo_are_recorded_as_events(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    split = plan_split(4, 25, baseline=True)
    v2, v3 = RolloutId("web-v2"), RolloutId("web-v3")
    cluster.apply_split(target, split, rollout_id=v2, image="web:2", step=0, progress_deadline=DEADLINE)
    cluster.promote(target, rollout_id=v2, progress_deadline=DEADLINE)
    cluster.apply_split(target, split, rollout_id=v3, image="web:3", step=1, progress_deadline=DEADLINE)
    cluster.rollback(target, rollout_id=v3, progress_deadline=DEADLINE)
    cluster.announce(target, "RolloutRolledBack", "web-v3 rolled-back: error-rate regressed", warning=True)
    cluster.undo(target, note="by ana: 5xx", progress_deadline=DEADLINE)

    assert cluster_factory.events("web") == [
        (
            "CanarySplit",
            "web-v2 step 1: canary web:2 on 25 % of the ready pods (1 canary, 1 baseline, 2 stable)",
            "Normal",
        ),
        ("CanaryPromoted", "web-v2: the stable runs web:2 (4/4 ready)", "Normal"),
        (
            "CanarySplit",
            "web-v3 step 2: canary web:3 on 25 % of the ready pods (1 canary, 1 baseline, 2 stable)",
            "Normal",
        ),
        ("CanaryRolledBack", "web-v3: the stable runs web:2 (4/4 ready); canary removed", "Warning"),
        ("RolloutRolledBack", "web-v3 rolled-back: error-rate regressed", "Warning"),
        ("PromotionUndone", "by ana: 5xx; the stable runs web:1", "Warning"),
    ]


def test_a_rollout_goes_on_when_events_cannot_be_written(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster_denied({("create", "events")})  # credentials without it
    rid = RolloutId("web-v2")
    split = plan_split(4, 25, baseline=True)
    cluster.apply_split(target, split, rollout_id=rid, image="web:2", step=0, progress_deadline=DEADLINE)
    status = cluster.promote(target, rollout_id=rid, progress_deadline=DEADLINE)
    cluster.announce(target, "RolloutPromoted", "never written")

    assert status.stable.image == "web:2"
    assert cluster_factory.events("web") == []


def test_the_canary_condition_is_kept_beside_the_deployment_controllers_own(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    v2 = RolloutId("web-v2")
    assert cluster_factory.condition("web") is None

    cluster.set_condition(target, RolloutCondition("Unknown", "Progressing", "web-v2 (web:2): setWeight 25"))
    split = plan_split(4, 25, baseline=True)
    cluster.apply_split(target, split, rollout_id=v2, image="web:2", step=0, progress_deadline=DEADLINE)
    assert cluster_factory.condition("web") == ("Unknown", "Progressing", "web-v2 (web:2): setWeight 25")

    cluster.promote(target, rollout_id=v2, progress_deadline=DEADLINE)  # the controller rewrites status
    cluster.set_condition(
        target, RolloutCondition("True", "Promoted", "web-v2 promoted web:2: within tolerance")
    )

    assert cluster_factory.condition("web") == ("True", "Promoted", "web-v2 promoted web:2: within tolerance")
    assert cluster.read(target).stable.ready == 4
    cluster.rollback(target, rollout_id=RolloutId("web-v3"), progress_deadline=DEADLINE)  # a no-op
    assert cluster_factory.condition("web") == ("True", "Promoted", "web-v2 promoted web:2: within tolerance")
