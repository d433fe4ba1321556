"""Contract: the target's lock is a Kubernetes Lease, held by one holder at a time, renewed by it,
taken over only once it expired (or from a holder named dead), and a holder it was taken from is
fenced out of every write, even one it based on a read made before the takeover."""

from __future__ import annotations

from datetime import timedelta

import pytest

from canaryflow.cluster.port import RolloutId
from canaryflow.errors import FencedError
from canaryflow.replicas import plan_split
from tests.contract.harness import Harness

DEADLINE = timedelta(seconds=60)
HOLD = timedelta(minutes=5)
A, B = "web-v2/run-a", "web-v3/run-b"


def test_one_holder_at_a_time_a_renewal_keeps_it_and_a_release_frees_it(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    first, second = cluster_factory.cluster(), cluster_factory.cluster()

    taken = first.lock(target, identity=A, details={"host": "a", "pid": "1"}, duration=HOLD)
    refused = second.lock(target, identity=B, details={}, duration=HOLD)
    renewed = first.lock(target, identity=A, details={"host": "a", "pid": "1"}, duration=HOLD)

    assert (taken.granted, taken.token, taken.took_over) == (True, 0, None)
    assert not refused.granted
    assert refused.holder is not None
    assert (refused.holder.identity, dict(refused.holder.details)) == (A, {"host": "a", "pid": "1"})
    assert refused.holder.expires_at is not None
    assert (renewed.granted, renewed.token) == (True, 0)

    first.unlock(target, identity=B)  # not its lock: nothing happens
    assert not second.lock(target, identity=B, details={}, duration=HOLD).granted
    first.unlock(target, identity=A)
    after = second.lock(target, identity=B, details={}, duration=HOLD)
    assert (after.granted, after.token, after.took_over) == (True, 1, None)  # given back: no takeover


def test_an_expired_lock_is_taken_over_and_the_old_holder_is_fenced_out(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    old, new = cluster_factory.cluster(), cluster_factory.cluster()
    assert old.lock(target, identity=A, details={}, duration=HOLD).granted
    split = plan_split(4, 25, baseline=True)
    old.apply_split(
        target, split, rollout_id=RolloutId("web-v2"), image="web:2", step=0, progress_deadline=DEADLINE
    )
    assert old.lock(target, identity=A, details={}, duration=timedelta(seconds=3)).granted  # last renewal

    taken = new.lock(target, identity=B, details={}, duration=HOLD)
    assert not taken.granted  # not before it expired
    while not taken.granted:
        cluster_factory.let_time_pass(0.5)
        taken = new.lock(target, identity=B, details={}, duration=HOLD)

    assert (taken.token, taken.took_over) == (1, A)
    with pytest.raises(FencedError, match="another holder took its lock"):
        old.promote(target, rollout_id=RolloutId("web-v2"), progress_deadline=DEADLINE)
    assert not old.lock(target, identity=A, details={}, duration=HOLD).granted  # and cannot renew it
    status = new.rollback(target, rollout_id=RolloutId("web-v2"), progress_deadline=DEADLINE)
    assert (status.stable.image, status.stable.ready, status.canary, status.baseline) == (
        "web:1",
        4,
        None,
        None,
    )


def test_a_holder_whose_clock_is_behind_keeps_its_lock_while_it_renews(cluster_factory: Harness) -> None:
    """Expiry is measured on the reader's own clock from what it saw, not by comparing the holder's
    renewTime with the reader's wall clock: the holder's clock is an hour behind here, so every
    renewTime it writes looks an hour old, and still nobody takes its Lease while it renews."""
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    behind, reader = cluster_factory.cluster_with_clock_off(-3600), cluster_factory.cluster()
    short = timedelta(seconds=4)
    assert behind.lock(target, identity=A, details={}, duration=short).granted

    for _ in range(4):  # 8 s of renewals every 2 s: twice the Lease's duration
        refused = reader.lock(target, identity=B, details={}, duration=HOLD)
        assert not refused.granted
        assert refused.holder is not None
        assert refused.holder.identity == A
        cluster_factory.let_time_pass(2)
        assert behind.lock(target, identity=A, details={}, duration=short, renew_only=True).granted

    taken = reader.lock(target, identity=B, details={}, duration=HOLD)  # the holder stops renewing
    assert not taken.granted  # a full duration after the last renewal it saw, not at once
    while not taken.granted:
        cluster_factory.let_time_pass(0.5)
        taken = reader.lock(target, identity=B, details={}, duration=HOLD)
    assert (taken.token, taken.took_over) == (1, A)


def test_a_holder_named_dead_is_taken_over_at_once(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    dead, heir = cluster_factory.cluster(), cluster_factory.cluster()
    assert dead.lock(target, identity=A, details={"pid": "4242"}, duration=HOLD).granted

    assert not heir.lock(target, identity=B, details={}, duration=HOLD, take_over="someone-else").granted
    taken = heir.lock(target, identity=B, details={}, duration=HOLD, take_over=A)

    assert (taken.granted, taken.token, taken.took_over) == (True, 1, A)


def test_a_takeover_between_the_old_holders_read_and_its_write_fences_the_write(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    old, new = cluster_factory.cluster(), cluster_factory.cluster()
    assert old.lock(target, identity=A, details={}, duration=HOLD).granted
    taken: list[int] = []

    def take_over_now(verb: str, name: str) -> None:
        if not taken and verb == "create" and name == "web-canary":  # old has read, and writes
            cluster_factory.write_hook = None
            taken.append(new.lock(target, identity=B, details={}, duration=HOLD, take_over=A).token)

    cluster_factory.write_hook = take_over_now
    with pytest.raises(FencedError):
        old.apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RolloutId("web-v2"),
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )

    assert taken == [1]
    status = new.read(target)
    assert (status.stable.replicas, status.stable.image) == (4, "web:1")  # the stable was never shrunk
    # The create in flight landed (the new holder converges what it finds); nothing after it did.
    assert status.canary is not None
    assert status.baseline is None


def test_a_takeover_between_the_old_holders_read_and_its_delete_fences_the_delete(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    old, new = cluster_factory.cluster(), cluster_factory.cluster()
    assert old.lock(target, identity=A, details={}, duration=HOLD).granted
    old.apply_split(
        target,
        plan_split(4, 25, baseline=True),
        rollout_id=RolloutId("web-v2"),
        image="web:2",
        step=0,
        progress_deadline=DEADLINE,
    )
    taken: list[int] = []

    def take_over_now(verb: str, name: str) -> None:
        if not taken and verb == "delete":  # old has read its tracks, found them its own, deletes
            cluster_factory.write_hook = None
            taken.append(new.lock(target, identity=B, details={}, duration=HOLD, take_over=A).token)

    cluster_factory.write_hook = take_over_now
    with pytest.raises(FencedError):
        old.rollback(target, rollout_id=RolloutId("web-v2"), progress_deadline=DEADLINE)

    assert taken == [1]
    status = new.read(target)
    # Neither delete landed: the tracks are the new holder's to converge.
    assert status.canary is not None
    assert status.baseline is not None


def test_a_takeover_between_the_old_holders_read_and_its_hpa_patch_fences_the_patch(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=4)
    cluster_factory.set_hpa("web", 4, min_replicas=4, max_replicas=8)
    old, new = cluster_factory.cluster(), cluster_factory.cluster()
    assert old.lock(target, identity=A, details={}, duration=HOLD).granted
    taken: list[int] = []

    def take_over_now(verb: str, name: str) -> None:
        if not taken and verb == "patch" and name.startswith("horizontalpodautoscalers/"):
            cluster_factory.write_hook = None  # old lends the HPA bounds, from a read made before
            taken.append(new.lock(target, identity=B, details={}, duration=HOLD, take_over=A).token)

    cluster_factory.write_hook = take_over_now
    with pytest.raises(FencedError):
        old.apply_split(
            target,
            plan_split(4, 25, baseline=True),
            rollout_id=RolloutId("web-v2"),
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )

    assert taken == [1]
    assert cluster_factory.hpa_bounds("web") == (4, 8)  # the old holder's lending never landed
    assert new.read(target).stable.replicas == 4


def test_a_lease_deleted_by_somebody_starts_again_above_the_fences_it_left(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    first, second, third = cluster_factory.cluster(), cluster_factory.cluster(), cluster_factory.cluster()
    assert first.lock(target, identity=A, details={}, duration=HOLD).granted
    assert second.lock(target, identity=B, details={}, duration=HOLD, take_over=A).token == 1  # stamped

    cluster_factory.person_deletes_lease("canaryflow-web")
    again = third.lock(target, identity="web-v4/run-c", details={}, duration=HOLD)

    assert (again.granted, again.token) == (True, 2)  # above fence 1: its old holders are fenced out
    third.apply_split(  # so its writes are not refused by the fence of the lock's earlier life
        target,
        plan_split(2, 50, baseline=True),
        rollout_id=RolloutId("web-v4"),
        image="web:4",
        step=0,
        progress_deadline=DEADLINE,
    )
    assert third.read(target).canary is not None


def test_a_supersede_request_reaches_the_holder_it_names_and_no_later_one(cluster_factory: Harness) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    first, second = cluster_factory.cluster(), cluster_factory.cluster()
    assert second.supersede(target, "web:3") is None  # nobody holds the lock: nobody to ask
    assert first.lock(target, identity=A, details={"image": "web:2"}, duration=HOLD).granted

    assert second.supersede(target, "web:2") is None  # the holder rolls that image out itself
    asked = second.supersede(target, "web:3")

    assert asked is not None
    assert (asked.identity, asked.superseded_by) == (A, "web:3")
    assert first.lock(target, identity=A, details={"image": "web:2"}, duration=HOLD).granted  # renewed
    held = first.lock_holder(target)
    assert held is not None
    assert held.superseded_by == "web:3"  # a renewal keeps the request
    first.unlock(target, identity=A)
    assert second.lock_holder(target) is None
    assert second.lock(target, identity=B, details={"image": "web:3"}, duration=HOLD).granted
    held = second.lock_holder(target)
    assert held is not None
    assert (held.identity, held.superseded_by) == (B, None)  # the request named the holder before


def test_a_holder_that_lost_its_lock_cannot_renew_it_back_even_once_it_is_free(
    cluster_factory: Harness,
) -> None:
    target = cluster_factory.create_app("web", image="web:1", replicas=2)
    old, new = cluster_factory.cluster(), cluster_factory.cluster()
    assert old.lock(target, identity=A, details={}, duration=HOLD).granted
    assert new.lock(target, identity=B, details={}, duration=HOLD, take_over=A).granted
    new.unlock(target, identity=B)  # the new holder converged the target and gave the Lease back

    renewal = old.lock(target, identity=A, details={}, duration=HOLD, renew_only=True)

    assert not renewal.granted  # what the old holder's renewal thread does: it finds it lost
    assert old.lock_holder(target) is None  # and takes nothing
    with pytest.raises(FencedError):
        old.apply_split(
            target,
            plan_split(2, 50, baseline=True),
            rollout_id=RolloutId("web-v2"),
            image="web:2",
            step=0,
            progress_deadline=DEADLINE,
        )
