"""The target's lock on the simulated cluster: a takeover whose fencing stamp an outage cut short
is finished by the next call of the same holder, before that call reports the lock as held."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId, TargetRef
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.errors import ClusterUnavailableError, FencedError
from canaryflow.replicas import plan_split

TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")
HOLD = timedelta(minutes=5)


def test_a_stamp_cut_short_by_an_outage_is_finished_before_the_lock_is_held() -> None:
    world = SimulatedWorld()
    world.add_deployment("shop", "web", image="web:1", replicas=4, labels={"app": "web"})
    world.add_service("shop", "web", {"app": "web"})
    old, new = SimulatedCluster(world), SimulatedCluster(world)
    assert old.lock(TARGET, identity="a", details={}, duration=HOLD).granted
    split = plan_split(4, 25, baseline=True)
    old.apply_split(TARGET, split, rollout_id=RolloutId("v2"), image="web:2", step=0, progress_deadline=HOLD)
    cut = [False]

    def outage_at_the_stamp(verb: str, namespace: str, name: str) -> None:
        if not cut[0]:
            cut[0] = True
            raise ClusterUnavailableError("simulated API outage: connection refused")

    world.before_write = outage_at_the_stamp
    with pytest.raises(ClusterUnavailableError):
        new.lock(TARGET, identity="b", details={}, duration=HOLD, take_over="a")
    world.before_write = None
    lease = world.lease("shop", "canaryflow-web")
    assert lease is not None
    assert lease.holder == "b"  # taken, but the old holder is not fenced out yet
    stable = world.record("shop", "web")
    assert stable is not None
    assert "canaryflow/fence" not in stable.annotations

    again = new.lock(TARGET, identity="b", details={}, duration=HOLD)

    assert (again.granted, again.token) == (True, 1)
    with pytest.raises(FencedError):
        old.promote(TARGET, rollout_id=RolloutId("v2"), progress_deadline=HOLD)
    status = new.rollback(TARGET, rollout_id=RolloutId("v2"), progress_deadline=HOLD)
    assert (status.stable.image, status.canary, status.baseline) == ("web:1", None, None)
