"""The target's lock in the cluster, seen from the rollout flow (simulated cluster, the real
Prefect harness): a rollout waits, writing nothing, while another controller holds the target's
Lease, and starts once it is given back; a rollout whose Lease another controller took over is
fenced out: it writes nothing more and ends Cancelled, the target left to the new holder."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from canaryflow.cluster.actuation import lease_name
from canaryflow.cluster.simulated import SimulatedCluster
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from tests.e2e.test_people_edits import EditDuringAnalysis

OTHER = "other-controller/7"


def test_a_rollout_waits_for_another_controllers_lock_and_writes_nothing_meanwhile(
    stack: SimulatedStack, rollout_of: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = SimulatedCluster(stack.world)
    # A controller with a Prefect server of its own: its flow run is unknown to ours, which proves
    # nothing about whether it is alive.
    foreign = {"flow_run_id": str(uuid.uuid4()), "host": "elsewhere", "pid": "7"}
    assert other.lock(stack.target, identity=OTHER, details=foreign, duration=timedelta(hours=1)).granted
    writes: list[str] = []
    stack.world.before_write = lambda verb, namespace, name: writes.append(f"{verb} {name}")
    asked, given_back = threading.Event(), threading.Event()
    seen_before_release: list[list[str]] = []
    lock = stack.cluster.lock
    calls = [0]

    def counting_lock(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:  # refused twice: it is waiting
            asked.set()
        return lock(*args, **kwargs)

    def give_back() -> None:
        asked.wait(timeout=120)
        seen_before_release.append(list(writes))
        other.unlock(stack.target, identity=OTHER)
        given_back.set()

    monkeypatch.setattr(stack.cluster, "lock", counting_lock)
    helper = threading.Thread(target=give_back)
    helper.start()
    outcome = rollout_of(GOOD_IMAGE).result()
    helper.join(timeout=10)

    assert given_back.is_set()
    assert seen_before_release == [[]]  # nothing written while the other controller held it
    assert outcome.result == "promoted", outcome.reason
    lease = stack.world.lease("shop", lease_name(stack.target))
    assert lease is not None
    assert lease.holder == ""  # given back at the end


def test_a_rollout_whose_lock_is_taken_over_is_fenced_out_and_ends_cancelled(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    other = SimulatedCluster(stack.world)
    taken: list[int] = []

    def take_over() -> None:
        holder = stack.world.lease("shop", lease_name(stack.target))
        assert holder is not None
        lock = other.lock(
            stack.target, identity=OTHER, details={}, duration=timedelta(hours=1), take_over=holder.holder
        )
        taken.append(lock.token)

    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, take_over))

    state = rollout_of(GOOD_IMAGE)

    assert taken == [1]
    assert state.is_cancelled()
    assert "another holder took its lock" in (state.state.message or "")
    status = stack.cluster.read(stack.target)
    assert status.stable.image == STABLE_IMAGE  # not promoted by the fenced-out run
    assert status.canary is not None  # nor rolled back: the new holder converges it
    lease = stack.world.lease("shop", lease_name(stack.target))
    assert lease is not None
    assert lease.holder == OTHER
