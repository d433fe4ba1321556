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
def answer_when_paused() -> Iterator[Callable[[str, str], None]]:
    """Answer the rollout's pause from another thread (as a person in the UI would), once it waits."""
    threads: list[threading.Thread] = []

    def start(decision: str, reason: str) -> None:
        from flows.approval import answer_paused_rollout, paused_run_of

        def answer() -> None:
            deadline = time.monotonic() + 60
            while paused_run_of(ROLLOUT_ID) is None and time.monotonic() < deadline:
                time.sleep(0.2)  # polling the Prefect API: the pause is a state on the server
            answer_paused_rollout(ROLLOUT_ID, decision, reason)  # type: ignore[arg-type]

        thread = threading.Thread(target=contextvars.copy_context().run, args=(answer,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=60)


def _spec(tmp_path: Path, timeout: str = "1m") -> str:
    return write_spec(tmp_path, ["{setWeight: 20}", f"{{pause: {{approval: true, timeout: {timeout}}}}}"])


def test_approve_promotes(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    answer_when_paused: Callable[[str, str], None],
    tmp_path: Path,
) -> None:
    answer_when_paused("approve", "dashboards look fine")

    outcome = rollout_of(GOOD_IMAGE, spec=_spec(tmp_path), rollout_id=ROLLOUT_ID).result()

    assert outcome.result == "promoted"
    assert "dashboards look fine" in outcome.reason
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE


def test_reject_rolls_back_with_the_reason(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    answer_when_paused: Callable[[str, str], None],
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
