"""The ``undo`` flow a release runs in each promoted cell it takes back (`flows.undo`): the real
flow under the Prefect test harness on the simulated stack. After a promotion the stable runs the
image from before it again, with who and why on the stable and in the history; run again it
changes nothing; while a rollout holds the target it is refused and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from canaryflow.cli.getview import render_rollout
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.errors import RolloutInProgressError
from canaryflow.history import read_history
from canaryflow.reports import read_status
from canaryflow.requests import CellTarget, UndoRequest
from tests.e2e.conftest import DEMO_SPEC


def test_the_undo_flow_takes_the_promotion_back_once(
    rollout_of: Any, runtime: Any, stack: SimulatedStack
) -> None:
    from flows import use_runtime
    from flows.undo import undo

    promoted = rollout_of(GOOD_IMAGE, rollout_id="demo-v2").result()
    assert promoted.result == "promoted"
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE
    request = UndoRequest(spec=DEMO_SPEC, reason="wave 2: eu-2 rolled back", by="release demo-r1")

    with use_runtime(runtime):
        done = undo(request)

    assert (done.rollout_id, done.image) == ("demo-v2", STABLE_IMAGE)
    status = stack.cluster.read(stack.target)
    assert status.stable.image == STABLE_IMAGE
    undone = [r for r in read_history(runtime.reports_dir).records if r.result == "undone"]
    assert [(r.rollout_id, r.image, r.reason, r.triggered_by) for r in undone] == [
        ("demo-v2", GOOD_IMAGE, "by release demo-r1: wave 2: eu-2 rolled back", "release demo-r1")
    ]
    # the rollout's report says so too: status and get show it, get --watch exits 6
    report = read_status(runtime.reports_dir / "demo-v2" / "status.json")
    assert report.result == "promoted"
    assert report.undone is not None
    assert report.undone.startswith("by release demo-r1: wave 2: eu-2 rolled back (")
    shown = render_rollout(report)
    assert "Phase:     promoted, then undone" in shown
    assert f"Undone:    {report.undone}" in shown

    with use_runtime(runtime):
        again = undo(request)
    assert stack.cluster.read(stack.target).stable.image == STABLE_IMAGE
    assert again.image == STABLE_IMAGE


def test_the_undo_flow_is_refused_while_a_rollout_holds_the_target(
    rollout_of: Any, runtime: Any, stack: SimulatedStack
) -> None:
    from flows import use_runtime
    from flows.undo import undo

    assert rollout_of(GOOD_IMAGE, rollout_id="demo-v2").result().result == "promoted"
    held = stack.cluster.lock(stack.target, identity="demo-v3/run-1", details={}, duration=timedelta(hours=1))
    assert held.granted

    with use_runtime(runtime), pytest.raises(RolloutInProgressError, match="demo-v3/run-1 holds its lock"):
        undo(UndoRequest(spec=DEMO_SPEC, reason="x"))

    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE


def test_a_release_undo_takes_back_only_its_own_rollouts_promotion(
    rollout_of: Any, runtime: Any, stack: SimulatedStack
) -> None:
    from flows import use_runtime
    from flows.undo import undo

    assert rollout_of(GOOD_IMAGE, rollout_id="demo-v2").result().result == "promoted"

    with use_runtime(runtime):
        other = undo(UndoRequest(spec=DEMO_SPEC, reason="wave 2 rolled back", rollout_id="demo-v1"))
    assert (other.rollout_id, other.image) == (None, GOOD_IMAGE)  # demo-v2 promoted since: left alone
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE

    with use_runtime(runtime):
        own = undo(
            UndoRequest(
                spec=DEMO_SPEC,
                reason="wave 2 rolled back",
                rollout_id="demo-v2",
                cell=CellTarget(name="eu-1"),
            )
        )
    assert (own.rollout_id, own.image) == ("demo-v2", STABLE_IMAGE)
    # The release's cell is recorded with the undo, also when this machine's history lacks it.
    assert [r.cell for r in read_history(runtime.reports_dir).records if r.result == "undone"] == ["eu-1"]
