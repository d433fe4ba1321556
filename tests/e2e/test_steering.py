"""Steering a rollout under way: ``canaryflow abort`` and Prefect's Cancel stop it at any moment
(during an analysis, a timed pause or an approval), ``promote --full`` promotes it now, ``pause``
holds its split until ``resume``.

The rollout runs the real flow under the Prefect test harness on the simulated stack. Its clock is
a `ManualClock` that calls the test back when the flow waits, so the abort arrives at a chosen
moment from inside a wait, the way an operator's command arrives while the run sleeps; the
command itself is the real one (``flows.control.steer``, what ``canaryflow abort | pause |
promote --full`` call), and the flow notices it through the Prefect API.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from canaryflow.clock import ManualClock
from canaryflow.dev.stacks import GOOD_IMAGE, STABLE_IMAGE, SimulatedStack, simulated_stack
from canaryflow.errors import InputError
from canaryflow.reports import read_status
from canaryflow.status import RolloutPhase, RolloutStatus
from tests.e2e.conftest import write_spec

INTERVAL = 30.0


class CallingClock(ManualClock):
    """A manual clock that hands every wait to `on_sleep` (seconds, how many waits so far)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float, int], None] | None = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds, len(self.sleeps))
        super().sleep(seconds)


@pytest.fixture
def clock() -> CallingClock:
    return CallingClock()


@pytest.fixture
def stack(clock: CallingClock) -> SimulatedStack:
    """The conftest's stack on the calling clock (its `runtime` and `rollout_of` use this one)."""
    serving = simulated_stack(clock, rate_per_pod=200.0)
    serving.clock.advance(60.0)
    return serving


def _assert_rolled_back(stack: SimulatedStack) -> None:
    status = stack.cluster.read(stack.target)
    assert status.canary is None
    assert status.baseline is None
    assert status.stable.image == STABLE_IMAGE
    assert status.stable.replicas == 10


def test_abort_during_an_analysis_rolls_back_before_the_next_interval(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import steer

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 30s, maxDuration: 10m}}"])
    answers: list[tuple[str, str]] = []

    def abort_in_the_second_interval(seconds: float, count: int) -> None:
        if seconds == INTERVAL and not answers and clock.sleeps.count(INTERVAL) == 2:
            answers.append(steer("web-abort", "abort", "p99 looks off", by="alice@laptop"))

    clock.on_sleep = abort_in_the_second_interval
    state = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-abort")

    assert [what for what, _run in answers] == ["requested"]
    outcome = state.result()
    assert outcome.result == "aborted"
    assert outcome.reason == "aborted by alice@laptop: p99 looks off"
    assert clock.sleeps.count(INTERVAL) == 2  # the interval under way ends; no further one starts
    _assert_rolled_back(stack)


def test_ctrl_c_that_prefect_swallowed_rolls_back_at_the_next_checkpoint(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    """`canaryflow rollout` sets the flag on Ctrl-C besides raising KeyboardInterrupt; here only the
    flag arrives, as when the exception lands inside Prefect's own calls and is lost there."""
    from flows.stops import INTERRUPTED, interrupted_here

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 30s, maxDuration: 10m}}"])

    def ctrl_c_in_the_second_interval(seconds: float, count: int) -> None:
        if seconds == INTERVAL and clock.sleeps.count(INTERVAL) == 2:
            interrupted_here.set()

    clock.on_sleep = ctrl_c_in_the_second_interval
    try:
        outcome = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-ctrl-c").result()
    finally:
        interrupted_here.clear()

    assert (outcome.result, outcome.reason) == ("aborted", INTERRUPTED)
    assert clock.sleeps.count(INTERVAL) == 2  # the interval under way ends; no further one starts
    _assert_rolled_back(stack)


def test_abort_during_a_timed_pause_does_not_wait_for_the_pause_to_end(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import steer

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {duration: 1h}}", "{setWeight: 50}"])
    waited: list[float] = []

    def abort_after_a_minute(seconds: float, count: int) -> None:
        if seconds >= 1.0:  # the pause's waits (pods become ready in 1 s steps of 0.25 s)
            waited.append(seconds)
        if sum(waited) == 60.0:
            steer("web-pause", "abort", "wrong image", by="bob")

    clock.on_sleep = abort_after_a_minute
    state = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-pause")

    outcome = state.result()
    assert outcome.result == "aborted"
    assert outcome.reason == "aborted by bob: wrong image"
    assert sum(waited) <= 70.0  # one check interval after the abort, not the hour
    _assert_rolled_back(stack)


def test_abort_of_a_paused_rollout_rolls_back_at_once(
    rollout_of: Callable[..., Any], stack: SimulatedStack, tmp_path: Path
) -> None:
    from flows.approval import paused_run_of
    from flows.control import resume, steer

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {approval: true, timeout: 10m}}"])
    finished = _in_background(lambda: rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-paused"))
    deadline = time.monotonic() + 60
    while paused_run_of("web-paused") is None:  # the pause is a state on the server: poll the API
        assert not finished.done(), f"the rollout ended before it paused: {finished.result()}"
        assert time.monotonic() < deadline, "the rollout did not pause within 60 s"
        time.sleep(0.2)

    with pytest.raises(
        InputError, match=r"is not held by `canaryflow pause` .*answered with promote or abort"
    ):
        resume("web-paused", by="carol")  # an approval is answered, not resumed
    what, _run = steer("web-paused", "abort", "release freeze", by="carol")

    assert what == "rejected"
    outcome = finished.result(timeout=60).result()
    assert outcome.result == "aborted"
    assert outcome.reason == "aborted by carol: release freeze"
    _assert_rolled_back(stack)


def test_an_abort_names_the_run_so_a_later_attempt_is_not_stopped(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import steer

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {duration: 30s}}"])
    aborted: list[str] = []

    def abort_once(seconds: float, count: int) -> None:
        if seconds == 10.0 and not aborted:
            aborted.append(steer("web-again", "abort", "try later", by="dave")[1])

    clock.on_sleep = abort_once
    first = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-again").result()
    second = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-again").result()

    assert first.result == "aborted"
    assert second.result == "promoted"  # the same rollout id again: the old request is not its own
    assert stack.cluster.read(stack.target).stable.image == GOOD_IMAGE


def test_a_cancel_in_prefect_rolls_back_before_the_next_interval_and_ends_cancelled(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run
    from prefect.states import Cancelling

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{analyze: {interval: 30s, maxDuration: 10m}}"])
    cancelled: list[bool] = []

    def cancel_in_the_second_interval(seconds: float, count: int) -> None:
        if seconds == INTERVAL and not cancelled and clock.sleeps.count(INTERVAL) == 2:
            with get_client(sync_client=True) as client:  # what `prefect flow-run cancel` does
                client.set_flow_run_state(flow_run.get_id(), Cancelling(message="bad deploy window"))
            cancelled.append(True)

    clock.on_sleep = cancel_in_the_second_interval
    state = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-cancel")

    assert cancelled
    assert state.is_cancelled()
    assert state.message == "cancelled in Prefect: bad deploy window; the canary was rolled back"
    assert clock.sleeps.count(INTERVAL) == 2
    _assert_rolled_back(stack)


def test_aborting_a_rollout_that_does_not_run_is_a_clear_error(prefect_harness: Any) -> None:
    from flows.control import steer

    with pytest.raises(
        InputError, match=r"^no running or paused rollout 'web-nothing': none of that id has run \("
    ):
        steer("web-nothing", "abort", "why", by="erin")


def test_steering_a_rollout_whose_run_has_not_started_says_so_not_that_it_ended(
    prefect_harness: Any,
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from flows.control import resume, steer

    @flow(name="rollout")
    def later() -> None:  # never runs: its run waits for a worker, as a deployment's run does
        pass

    with get_client(sync_client=True) as client:
        client.create_flow_run(later, name="web-later", state=Scheduled())
    with pytest.raises(
        InputError, match=r"^no running or paused rollout 'web-later': its run is not running "
    ):
        steer("web-later", "abort", "why", by="erin")
    with pytest.raises(
        InputError, match=r"\(scheduled\); try again once it runs \(`canaryflow status web-later`"
    ):
        resume("web-later", by="erin")


ANALYSIS = ["{setWeight: 20}", "{analyze: {interval: 30s, maxDuration: 10m}}"]


def test_promote_in_full_skips_the_rest_of_the_analysis_and_the_steps(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import steer

    spec = write_spec(tmp_path, [*ANALYSIS, "{setWeight: 50}", "{pause: {approval: true, timeout: 1h}}"])
    asked: list[str] = []

    def promote_in_the_first_interval(seconds: float, count: int) -> None:
        if seconds == INTERVAL and not asked:
            asked.append(steer("web-full", "promote", "hotfix checked by hand", by="frank")[0])

    clock.on_sleep = promote_in_the_first_interval
    outcome = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-full").result()

    assert asked == ["requested"]
    assert outcome.result == "promoted"
    assert outcome.reason == "promoted in full by frank: hotfix checked by hand"
    assert clock.sleeps.count(INTERVAL) == 1  # no further interval, no 50 % step, no approval
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert status.stable.image == GOOD_IMAGE


def _in_background(work: Callable[[], Any]) -> Future[Any]:
    done: Future[Any] = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # handed to the test through the future
            done.set_exception(exc)

    threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True).start()
    return done


def _when_held(rollout_id: str, then: Callable[[], Any]) -> Callable[[], Any]:
    """Wait until the rollout's run waits in a `canaryflow pause` hold (its state on the Prefect
    server: poll the API), then do `then`."""

    def wait_then() -> Any:
        from flows.approval import active_run_of, held_key

        deadline = time.monotonic() + 60
        while True:
            run_id, paused = active_run_of(rollout_id)
            if paused and held_key(run_id) is not None:
                return then()
            assert time.monotonic() < deadline, "the rollout did not hold within 60 s"
            time.sleep(0.2)

    return wait_then


def test_pause_holds_the_split_until_resume_and_the_analysis_goes_on(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import answer, resume, steer

    spec = write_spec(tmp_path, ANALYSIS)
    held: list[Future[Any]] = []
    weights: list[int] = []
    reported: list[RolloutStatus] = []

    def pause_in_the_second_interval(seconds: float, count: int) -> None:
        if seconds == INTERVAL and not held and clock.sleeps.count(INTERVAL) == 2:
            steer("web-hold", "pause", "checking a dashboard", by="grace")

            def while_held() -> str:
                state = stack.cluster.read(stack.target).state
                weights.append(state.weight if state else -1)
                reported.append(read_status(tmp_path / "reports" / "web-hold" / "status.json"))
                with pytest.raises(InputError, match="already paused"):
                    steer("web-hold", "pause", "twice", by="grace")
                with pytest.raises(  # `canaryflow promote` answers approvals, never a hold
                    InputError, match=r"held by `canaryflow pause`, not waiting for approval: `canaryflow res"
                ):
                    answer("web-hold", "approve", "approved with canaryflow promote", by="grace")
                return resume("web-hold", by="grace")

            held.append(_in_background(_when_held("web-hold", while_held)))

    clock.on_sleep = pause_in_the_second_interval
    outcome = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-hold").result()

    assert held[0].result(timeout=60)  # the flow run id: the hold was resumed
    assert weights == [20]  # the split held while paused
    (paused,) = reported  # what `status` and `get` read while held: who paused, why, what ends it
    assert paused.phase == RolloutPhase.PAUSED
    assert paused.next is not None
    assert paused.next.startswith("paused by grace (checking a dashboard): the split holds until canaryflow")
    assert "canaryflow resume web-hold" in paused.next
    assert outcome.result == "promoted"  # the analysis went on after the hold
    assert clock.sleeps.count(INTERVAL) >= 3


def test_abort_while_held_by_a_pause_rolls_back(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import resume, steer

    spec = write_spec(tmp_path, ANALYSIS)
    held: list[Future[Any]] = []
    refused: list[str] = []

    def pause_then_abort(seconds: float, count: int) -> None:
        if seconds == INTERVAL and not held:
            try:
                resume("web-held", by="heidi")  # still running: nothing to resume
            except InputError as error:
                refused.append(str(error))
            steer("web-held", "pause", "look closer", by="heidi")
            held.append(
                _in_background(_when_held("web-held", lambda: steer("web-held", "abort", "bad", by="heidi")))
            )

    clock.on_sleep = pause_then_abort
    outcome = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-held").result()

    assert refused == [
        "rollout 'web-held' is running, not paused: there is nothing to resume "
        "(`canaryflow status web-held` shows its phase)"
    ]
    assert held[0].result(timeout=60)[0] == "rejected"
    assert outcome.result == "aborted"
    assert outcome.reason == "aborted by heidi: bad"
    _assert_rolled_back(stack)
    with pytest.raises(
        InputError,
        match=r"^no running or paused rollout 'web-held': it has ended \(aborted\); "
        r"`canaryflow status web-held` shows how$",
    ):
        resume("web-held", by="heidi")


def test_a_pause_asked_during_a_timed_pause_holds_at_once_and_the_rest_of_the_pause_follows(
    rollout_of: Callable[..., Any], stack: SimulatedStack, clock: CallingClock, tmp_path: Path
) -> None:
    from flows.control import resume, steer

    spec = write_spec(tmp_path, ["{setWeight: 20}", "{pause: {duration: 1h}}", "{setWeight: 50}"])
    waited: list[float] = []
    held: list[Future[Any]] = []

    def pause_after_a_minute(seconds: float, count: int) -> None:
        if seconds >= 1.0:  # the pause's waits (pods become ready in 1 s steps of 0.25 s)
            waited.append(seconds)
        if sum(waited) == 60.0 and not held:
            steer("web-timed", "pause", "a dashboard looks odd", by="ivan")

            def while_held() -> tuple[float, int]:
                state = stack.cluster.read(stack.target).state
                seen = (sum(waited), state.weight if state else -1)
                resume("web-timed", by="ivan")
                return seen

            held.append(_in_background(_when_held("web-timed", while_held)))

    clock.on_sleep = pause_after_a_minute
    outcome = rollout_of(GOOD_IMAGE, spec=spec, rollout_id="web-timed").result()

    waited_when_held, weight_when_held = held[0].result(timeout=60)
    assert waited_when_held <= 70.0  # held within one check interval, not after the hour
    assert weight_when_held == 20
    assert sum(waited) == 3600.0  # after the resume, the rest of the timed pause
    assert outcome.result == "promoted"
