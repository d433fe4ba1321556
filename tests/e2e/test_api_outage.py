"""The rollout flow through an API-server outage (simulated cluster, a manual clock, the real Prefect
harness): a short outage does not kill a good rollout, a decided promotion or rollback is finished
once the server answers (no person needed), and an outage longer than ``apiOutageTolerance`` stops
the rollout with that reason and converges the target when the server is back.

The outage starts just before a chosen write (the world's write hook) and lasts a given time on
the world's clock; the controller's backoff sleeps move that clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, STABLE_IMAGE, SimulatedStack
from tests.e2e.conftest import write_spec

STEPS = ["{setWeight: 20}", "{analyze: {interval: 5s, maxDuration: 1m}}", "{setWeight: 50}",
         "{analyze: {interval: 5s, maxDuration: 1m}}"]  # fmt: skip


def _outage_before(stack: SimulatedStack, seconds: float, when: Callable[[str, str], bool]) -> list[str]:
    """The API server goes away for `seconds` just before the first write for which `when(verb,
    name)` holds; returns the writes that started an outage (one at most)."""
    started: list[str] = []

    def hook(verb: str, namespace: str, name: str) -> None:
        if not started and when(verb, name):
            started.append(f"{verb} {name}")
            stack.world.outage(seconds)
            stack.world.call()  # this very write finds the server gone

    stack.world.before_write = hook
    return started


def _converged(stack: SimulatedStack, image: str) -> None:
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (image, 10, 10)


def _spec(tmp_path: Path, tolerance: str | None = None) -> str:
    path = write_spec(tmp_path, STEPS)
    if tolerance is not None:
        text = (
            Path(path)
            .read_text()
            .replace(
                "  progressDeadline: 1m\n", f"  progressDeadline: 5m\n  apiOutageTolerance: {tolerance}\n"
            )
        )
        Path(path).write_text(text)
    return path


def test_a_45s_outage_during_a_set_weight_does_not_stop_a_good_rollout(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    started = _outage_before(stack, 45.0, lambda verb, name: (verb, name) == ("patch", "web-canary"))

    outcome = rollout_of(GOOD_IMAGE, _spec(tmp_path)).result()

    assert started == ["patch web-canary"]  # the second setWeight's first write
    assert outcome.result == "promoted", outcome.reason
    _converged(stack, GOOD_IMAGE)


def test_an_outage_during_promotion_is_finished_by_the_run_itself(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    promoting: list[bool] = []

    def during_promotion(verb: str, name: str) -> bool:
        state = stack.world.record("shop", "web-canary")
        promoting.append(state is not None and "promoting" in str(state.annotations))
        return verb == "patch" and name == "web" and promoting[-1]

    started = _outage_before(stack, 600.0, during_promotion)  # 10 minutes: far beyond the old retries

    outcome = rollout_of(GOOD_IMAGE, _spec(tmp_path)).result()

    assert started == ["patch web"]  # the stable's image, after the phase was marked
    assert outcome.result == "promoted", outcome.reason
    _converged(stack, GOOD_IMAGE)


def test_an_outage_as_the_rollback_starts_still_takes_the_bad_canary_out(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    started = _outage_before(stack, 600.0, lambda verb, name: (verb, name) == ("patch", "web-canary"))

    outcome = rollout_of(BAD_IMAGE, _spec(tmp_path)).result()

    assert started == ["patch web-canary"]  # the rollback's phase mark (the analysis rolled back at 20 %)
    assert outcome.result == "rolled-back"
    _converged(stack, STABLE_IMAGE)


def test_an_outage_longer_than_the_tolerance_stops_the_rollout_and_converges_when_the_server_is_back(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    started = _outage_before(stack, 150.0, lambda verb, name: (verb, name) == ("patch", "web-canary"))

    outcome = rollout_of(GOOD_IMAGE, _spec(tmp_path, tolerance="2m")).result()

    assert started == ["patch web-canary"]
    assert outcome.result == "rolled-back"
    assert outcome.reason.startswith("ClusterOutageError: the API server did not answer for 2m")
    assert "apiOutageTolerance 2m" in outcome.reason
    _converged(stack, STABLE_IMAGE)
