"""Contract: a controller that dies after any write leaves a state a fresh one converges from.

The crash is injected by the write hook: it lets `k` writes through and fails the next one, for
k = 0, 1, 2, ... until the operation completes without reaching the hook's limit. After each crash
a *new* adapter (nothing in memory) reads the state from the cluster and finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from canaryflow.cluster.port import Cluster, RolloutId, RolloutState, TargetRef, TargetStatus
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness

DEADLINE = timedelta(seconds=60)
MAX_WRITES = 12
PHASE = {"split": "progressing", "promote": "promoting", "rollback": "rolling-back"}


class ControllerDiedError(Exception):
    """The controller process died here."""


def _split(cluster: Cluster, target: TargetRef, rid: RolloutId, image: str) -> TargetStatus:
    split = plan_split(4, 50, baseline=True)
    return cluster.apply_split(target, split, rollout_id=rid, image=image, step=1, progress_deadline=DEADLINE)


def _operation(name: str, target: TargetRef, rid: RolloutId, image: str) -> Callable[[Cluster], object]:
    if name == "split":
        return lambda cluster: _split(cluster, target, rid, image)
    if name == "promote":
        return lambda cluster: cluster.promote(target, rollout_id=rid, progress_deadline=DEADLINE)
    return lambda cluster: cluster.rollback(target, rollout_id=rid, progress_deadline=DEADLINE)


def _run_crashing(harness: Harness, allowed: int, operation: Callable[[Cluster], object]) -> bool:
    """Run `operation` on a fresh adapter that dies before write number `allowed` + 1; crashed?"""
    done: list[str] = []

    def hook(verb: str, name: str) -> None:
        if len(done) >= allowed:
            raise ControllerDiedError(f"after {allowed} write(s), before {verb} {name}")
        done.append(f"{verb} {name}")

    harness.write_hook = hook
    try:
        operation(harness.cluster())
    except ControllerDiedError:
        return True
    finally:
        harness.write_hook = None
    return False


def _assert_capacity_kept(harness: Harness, capacity: int) -> None:
    """Wanted replicas of all tracks together never fall below the stable's capacity."""
    observed = [harness.observe(name) for name in ("web", "web-canary", "web-baseline")]
    assert sum(o.replicas for o in observed if o is not None) >= capacity


def _assert_state(state: RolloutState | None, rid: RolloutId, operation: str, allowed: int) -> None:
    if state is None:
        return
    assert state.rollout_id == rid
    phases = {PHASE[operation]} | ({"progressing"} if allowed == 0 else set())
    assert state.phase in phases


@pytest.mark.parametrize("operation", ["split", "promote", "rollback"])
def test_crash_after_every_write_converges_with_a_fresh_adapter(
    cluster_factory: Harness, operation: str
) -> None:
    target = cluster_factory.create_app("web", image="web:0", replicas=4)
    stable_image = "web:0"
    for allowed in range(MAX_WRITES):
        rid, image = RolloutId(f"web-r{allowed}"), f"web:{allowed + 1}"
        if operation != "split":
            _split(cluster_factory.cluster(), target, rid, image)

        crashed = _run_crashing(cluster_factory, allowed, _operation(operation, target, rid, image))

        _assert_capacity_kept(cluster_factory, 4)
        fresh = cluster_factory.cluster()
        _assert_state(fresh.read(target).state, rid, operation, allowed)
        if operation == "split":
            resumed = _split(fresh, target, rid, image)  # the same step again
            assert resumed.rolled_out
            assert resumed.canary is not None
            assert resumed.canary.image == image
            final = fresh.rollback(target, rollout_id=rid, progress_deadline=DEADLINE)
        elif operation == "promote":
            final = fresh.promote(target, rollout_id=rid, progress_deadline=DEADLINE)
            stable_image = image
        else:
            final = fresh.rollback(target, rollout_id=rid, progress_deadline=DEADLINE)
        assert final.canary is None
        assert final.baseline is None
        assert final.state is None
        assert (final.stable.image, final.stable.replicas, final.stable.ready) == (stable_image, 4, 4)
        if not crashed:
            assert allowed > 0
            return
    pytest.fail(f"{operation} still crashing after {MAX_WRITES} writes")


def test_a_half_done_promote_can_still_be_rolled_back(cluster_factory: Harness) -> None:
    """The stable already runs the canary's image when the controller dies; a rollback decided by the
    next process puts the original image back (it is recorded in the canary's annotations)."""
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    rid = RolloutId("web-v2")
    _split(cluster_factory.cluster(), target, rid, "web:2")

    crashed = _run_crashing(cluster_factory, 2, _operation("promote", target, rid, "web:2"))  # mark, stable

    assert crashed
    half = cluster_factory.observe("web")
    assert half is not None
    assert half.images == {"web": "web:2"}
    fresh = cluster_factory.cluster()
    state = fresh.read(target).state
    assert state is not None
    assert (state.phase, state.stable_image) == ("promoting", "web:1")
    final = fresh.rollback(target, rollout_id=rid, progress_deadline=DEADLINE)
    assert (final.stable.image, final.stable.replicas, final.stable.ready) == ("web:1", 4, 4)
    assert final.canary is None
    assert final.baseline is None
