"""Approval pauses end to end: approve promotes, reject and timeout roll back (never promote)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from tests.e2e.conftest import write_spec

ROLLOUT_ID = "web-approval"


@pytest.fixture
def answer_when_paused() -> Iterator[Callable[..., dict[str, Any]]]:
    """Answer the rollout's pause from another thread (as a person in the UI would), once it waits;
    what the form showed above it is recorded in the returned dict under ``"description"``."""
    threads: list[threading.Thread] = []

    def start(decision: str, reason: str, by: str = "") -> dict[str, Any]:
        from prefect import get_client
        from prefect.input.actions import read_flow_run_input
        from prefect.input.run_input import keyset_from_paused_state

        from flows.approval import answer_paused_rollout, paused_run_of

        seen: dict[str, Any] = {}

        def answer() -> None:
            deadline = time.monotonic() + 60
            while (run_id := paused_run_of(ROLLOUT_ID)) is None and time.monotonic() < deadline:
                time.sleep(0.2)  # polling the Prefect API: the pause is a state on the server
            assert run_id is not None
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run_id).state
            assert state is not None
            seen["description"] = read_flow_run_input(
                keyset_from_paused_state(state)["description"], flow_run_id=run_id
            )
            answer_paused_rollout(ROLLOUT_ID, decision, reason, by=by)  # type: ignore[arg-type]

        thread = threading.Thread(target=contextvars.copy_context().run, args=(answer,), daemon=True)
        thread.start()
        threads.append(thread)
        return seen

    yield start
    for thread in threads:
        thread.join(timeout=60)


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
