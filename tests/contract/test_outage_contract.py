"""Contract: an API server that stops answering mid-operation (on the local control plane, the real
kube-apiserver killed and started again on etcd's data).

Shorter than the operation's tolerance, the outage is ridden out and the operation ends as if
nothing happened; longer, it ends in `ClusterOutageError` with how long the server was silent, and
the next operation converges the target once the server answers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.errors import ClusterOutageError, TransientError
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness, rollout_under_way

# Generous: after a restart the local control plane re-lists and re-watches before it makes new pods
# Ready (up to about a minute and a half seen); the test is about converging, not about speed.
DEADLINE = timedelta(minutes=4)
RID = RolloutId("web-v2")
OUTAGE_SECONDS = 6.0


def _outage_at_first(harness: Harness, verb: str, name: str) -> list[str]:
    """Make the API server go away just before the first `verb` of Deployment `name`."""
    fired: list[str] = []

    def hook(seen_verb: str, seen_name: str) -> None:
        if not fired and (seen_verb, seen_name) == (verb, name):
            fired.append(f"{seen_verb} {seen_name}")
            harness.outage(OUTAGE_SECONDS)

    harness.write_hook = hook
    return fired


def test_a_split_rides_out_an_outage_shorter_than_its_tolerance(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    fired = _outage_at_first(cluster_factory, "patch", "web")  # the stable's scale-down, after the growth
    split = plan_split(4, 25, baseline=True)

    status = cluster.apply_split(
        target,
        split,
        rollout_id=RID,
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
        outage_tolerance=timedelta(seconds=60),
    )

    assert fired == ["patch web"]
    assert (status.stable.replicas, status.stable.ready) == (split.stable, split.stable)
    assert status.canary is not None
    assert (status.canary.image, status.canary.ready) == ("web:2", split.canary)


def test_an_outage_longer_than_the_tolerance_is_an_outage_error_and_a_rollback_converges(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster = cluster_factory.cluster()
    _outage_at_first(cluster_factory, "patch", "web")

    with pytest.raises(
        ClusterOutageError, match=r"did not answer for \d+s during the split of step 1"
    ) as info:
        cluster.apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RID,
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
            outage_tolerance=timedelta(seconds=1),
        )
    assert isinstance(info.value, TransientError)
    assert info.value.outage_seconds >= 1

    cluster_factory.write_hook = None
    status = cluster.rollback(target, rollout_id=RID, progress_deadline=DEADLINE)  # rides the rest out

    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == ("web:1", 4, 4)


@pytest.mark.parametrize("finish", ["promote", "rollback"])
def test_a_promotion_or_rollback_rides_out_an_outage(cluster_factory: Harness, finish: str) -> None:
    target, cluster = rollout_under_way(cluster_factory)
    fired = _outage_at_first(cluster_factory, "patch", "web-canary")  # the phase mark, the first write

    act = cluster.promote if finish == "promote" else cluster.rollback
    status = act(target, rollout_id=RID, progress_deadline=DEADLINE)

    assert fired == ["patch web-canary"]
    image = "web:2" if finish == "promote" else "web:1"
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (image, 4, 4)
    cluster_factory.wait_answering()
