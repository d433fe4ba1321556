"""Approval pauses end to end: approve promotes, reject and timeout roll back (never promote)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from tests.e2e.conftest import APPROVAL_ROLLOUT_ID as ROLLOUT_ID
from tests.e2e.conftest import write_spec


def _spec(tmp_path: Path, timeout: str = "1m") -> str:
    return write_spec(tmp_path, ["{setWeight: 20}", f"{{pause: {{approval: true, timeout: {timeout}}}}}"])


def test_approve_promotes_and_records_who_approved_after_seeing_the_context(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    answer_when_paused: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    seen = answer_when_paused("approve", "dashboards look fine", by="ana@laptop")

    outcome = rollout_of(GOOD_IMAGE, spec=_spec(tmp_path), rollout_id=ROLLOUT_ID).result()

    assert outcome.result == "promoted"
    assert "step 2 approved by ana@laptop: dashboards look fine" in outcome.reason
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE
    shown = seen["description"]
    assert shown.startswith(f"**Go on with rollout {ROLLOUT_ID} after step 2?**")
    for line in (
        f"| image | `{GOOD_IMAGE}` |",
        "| step | 2 of 2 |",
        "| canary | 20 % requested, 20.0 % of the Ready pods |",
        "| evidence so far | no analysis yet |",
        f"`canaryflow promote {ROLLOUT_ID} --reason WHY`",
    ):
        assert line in shown, shown
    assert "UTC: rejected (rolled back) if nobody answers" in shown


def test_reject_rolls_back_with_the_reason(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    answer_when_paused: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    answer_when_paused("reject", "checkout is slow")

    outcome = rollout_of(GOOD_IMAGE, spec=_spec(tmp_path), rollout_id=ROLLOUT_ID).result()

    assert outcome.result == "rolled-back"
    assert outcome.reason == "not approved: checkout is slow"
    assert stack.cluster.read(stack.target).stable.image == STABLE_IMAGE


def test_an_approval_timeout_rolls_back(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    state = rollout_of(GOOD_IMAGE, spec=_spec(tmp_path, timeout="2s"), rollout_id=ROLLOUT_ID)

    assert (state.type.value, state.name) == ("FAILED", "RolledBack")  # not promoted: not a success
    outcome = state.result()

    assert outcome.result == "rolled-back"
    assert "nobody approved" in outcome.reason
    status = stack.cluster.read(stack.target)
    assert status.stable.image == STABLE_IMAGE
    assert status.canary is None
