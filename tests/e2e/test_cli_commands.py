"""``canaryflow status``, ``promote`` and ``abort`` from a terminal, against a rollout paused for approval.

The rollout runs in a thread of this process under the Prefect test harness; the commands run as
separate processes (``python -m canaryflow``) that reach the same Prefect API through
``PREFECT_API_URL`` and read the same reports directory, as an operator's shell would.
"""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.errors import InputError
from tests.e2e.conftest import write_spec

ROLLOUT_ID = "web-cli"


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(prefect_harness: Any, runtime: Any, tmp_path: Path) -> Run:
    """Run ``canaryflow ARGS`` in a new process on this test's Prefect API and reports directory."""
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect_harness.api.url),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "CANARYFLOW_REPORTS_DIR": str(runtime.reports_dir),
        "COLUMNS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "canaryflow", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture
def paused_rollout(rollout_of: Callable[..., Any], tmp_path: Path) -> Iterator[Future[Any]]:
    """A rollout of the good image at weight 20, paused for approval (10 minutes) when yielded."""
    from flows.approval import paused_run_of

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {approval: true, timeout: 10m}}"])
    finished: Future[Any] = Future()

    def run() -> None:
        try:
            finished.set_result(rollout_of(GOOD_IMAGE, spec=spec, rollout_id=ROLLOUT_ID))
        except BaseException as exc:  # handed to the test through the future
            finished.set_exception(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while paused_run_of(ROLLOUT_ID) is None:  # the pause is a state on the server: poll the API
        assert not finished.done(), f"the rollout ended before it paused: {finished.result()}"
        assert time.monotonic() < deadline, "the rollout did not pause within 60 s"
        time.sleep(0.2)
    yield finished
    if not finished.done():  # a failed test: let the run end rather than leave it paused
        from flows.approval import answer_paused_rollout

        answer_paused_rollout(ROLLOUT_ID, "reject", "test cleanup")
    thread.join(timeout=60)


def test_status_shows_the_paused_rollout(paused_rollout: Future[Any], cli: Run) -> None:
    shown = cli("status", ROLLOUT_ID)

    assert shown.returncode == 0, shown.stderr
    assert ROLLOUT_ID in shown.stdout
    assert "shop/web" in shown.stdout
    assert "waiting for approval" in shown.stdout
    assert "20.0% (requested 20%)" in shown.stdout
    assert "2/2" in shown.stdout  # the pause is the second of two steps


def test_promote_approves_the_paused_rollout(
    paused_rollout: Future[Any], cli: Run, stack: SimulatedStack
) -> None:
    answered = cli("promote", ROLLOUT_ID, "--by", "ana@laptop")

    assert answered.returncode == 0, answered.stderr
    assert f"approved {ROLLOUT_ID}" in answered.stdout
    outcome = paused_rollout.result(timeout=60).result()
    assert outcome.result == "promoted"
    assert "approved by ana@laptop: approved with canaryflow promote" in outcome.reason
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE
    assert "promoted" in cli("status", ROLLOUT_ID).stdout


def test_abort_rolls_the_paused_rollout_back_with_who_and_why(
    paused_rollout: Future[Any], cli: Run, stack: SimulatedStack
) -> None:
    answered = cli("abort", ROLLOUT_ID, "--reason", "checkout p99 looks off", "--by", "alice")

    assert answered.returncode == 0, answered.stderr
    assert f"aborted {ROLLOUT_ID}" in answered.stdout
    outcome = paused_rollout.result(timeout=60).result()
    assert outcome.result == "aborted"
    assert outcome.reason == "aborted by alice: checkout p99 looks off"
    status = stack.cluster.read(stack.target)
    assert status.stable.image == STABLE_IMAGE
    assert status.canary is None
    assert "aborted" in cli("status", ROLLOUT_ID).stdout


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("promote", "no paused rollout 'web-nothing-paused' is waiting for approval"),
        ("abort", "no running or paused rollout 'web-nothing-paused'"),
    ],
)
def test_answering_a_rollout_that_is_not_paused_is_a_clear_error(
    command: str, message: str, cli: Run
) -> None:
    answered = cli(command, "web-nothing-paused")

    assert answered.returncode == InputError.exit_code == 1  # invalid input: no such rollout
    (line,) = answered.stderr.strip().splitlines()
    assert line.startswith(f"canaryflow: error: {message}")
