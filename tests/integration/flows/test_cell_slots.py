"""The target slot of a release's cell on the real Prefect API: a run holding the slot of
shop/web in one cell leaves the slot of shop/web in another cell free (their clusters differ, so
do their Leases), and the holder is recorded under its cell's slot."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from canaryflow.cluster.port import TargetRef
from canaryflow.cluster.simulated import SimulatedCluster
from canaryflow.dev.stacks import GOOD_IMAGE
from canaryflow.errors import TransientError
from canaryflow.plan import RolloutPlan, plan_rollout
from canaryflow.requests import CellTarget, RolloutRequest

SPEC = "config/rollouts/demo.yaml"


def _plan(cell: str) -> RolloutPlan:
    return plan_rollout(RolloutRequest(spec=SPEC, image=GOOD_IMAGE, cell=CellTarget(name=cell)))


def _active_slots(name: str) -> int:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:  # no run has asked for this slot yet
            return 0
    return int(limit.active_slots)


def test_a_cell_holding_its_target_leaves_the_same_target_in_another_cell_free(
    prefect_harness: Any, tmp_path: Path
) -> None:
    from prefect.variables import Variable

    from flows.slots import slot_name, target_slot

    suffix = uuid.uuid4().hex[:6]  # cells of their own in this session's Prefect database
    eu, us = _plan(f"eu-{suffix}"), _plan(f"us-{suffix}")
    eu_cluster, us_cluster = SimulatedCluster(), SimulatedCluster()
    with target_slot(eu, lease_seconds=60, cluster=eu_cluster):
        assert _active_slots(slot_name(eu.target, eu.cell)) == 1
        assert Variable.get(slot_name(eu.target, eu.cell))["holder"]["rollout_id"] == eu.rollout_id
        # The other cell's slot is free, and it takes it at once.
        assert _active_slots(slot_name(us.target, us.cell)) == 0
        with target_slot(us, lease_seconds=60, cluster=us_cluster):
            assert _active_slots(slot_name(us.target, us.cell)) == 1
            assert _active_slots(slot_name(eu.target, eu.cell)) == 1
    assert _active_slots(slot_name(eu.target, eu.cell)) == 0
    assert _active_slots(slot_name(us.target, us.cell)) == 0


def test_a_prefect_api_failing_as_the_rollout_ends_does_not_fail_it(prefect_harness: Any) -> None:
    # The Prefect API answered 503 under load just after a rollout had promoted; clearing the slot's
    # holder record then raised and turned the finished rollout into a failed run. Giving the slot
    # back is bookkeeping: with the API unreachable as the slot is left, leaving it does not raise,
    # and the record and the lease stay until the next holder or the lease's expiry.
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.variables import Variable

    from flows.slots import slot_name, target_slot

    plan = _plan(f"eu-{uuid.uuid4().hex[:6]}")
    slot = target_slot(plan, lease_seconds=60, cluster=SimulatedCluster())
    slot.__enter__()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens there
        assert slot.__exit__(None, None, None) is False
    name = slot_name(plan.target, plan.cell)
    assert Variable.get(name)["holder"]["rollout_id"] == plan.rollout_id
    assert _active_slots(name) == 1


class _UnlockFails(SimulatedCluster):
    """A cluster whose API server fails as the rollout gives its Lease back."""

    def unlock(self, target: TargetRef, *, identity: str) -> None:
        raise TransientError("the API server answered 503")


def test_an_api_server_failing_as_the_lock_is_given_back_does_not_fail_the_rollout(
    prefect_harness: Any,
) -> None:
    # The cluster Lease expires by itself; leaving the slot outside a flow run (as the dev commands
    # and these tests do) must log that, not raise for want of a run logger.
    from flows.slots import target_slot

    plan = _plan(f"eu-{uuid.uuid4().hex[:6]}")
    cluster = _UnlockFails()
    with target_slot(plan, lease_seconds=60, cluster=cluster):
        pass
    assert cluster.lock_holder(plan.target) is not None  # left to expire
