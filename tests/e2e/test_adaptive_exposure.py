"""Adaptive exposure in the rollout flow, on the simulated stack: a service with little traffic whose
analysis at 10 % could not decide in 20 minutes gets its canary raised (``maxWeight``) and a
decision; without ``maxWeight`` the same canary ends inconclusive and is rolled back. A small
``riskBudget`` holds the raise below ``maxWeight``. A run that dies after a raise is resumed at the
step's own weight. A raise leaves an HPA room to grow the target, and a person's scale during a raise
is split at the raised weight."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analysis.logs import parse_log
from canaryflow.clock import ManualClock
from canaryflow.cluster.port import Track
from canaryflow.dev.stacks import GOOD_IMAGE, SimulatedStack, simulated_stack
from tests.e2e.conftest import write_spec
from tests.e2e.test_people_edits import EditDuringAnalysis


@pytest.fixture
def stack() -> SimulatedStack:
    """The example target on 20 pods at 1 request per second per pod: at 10 % its canary and
    baseline get two pods each, and the analysis would need far more than the 40 intervals of
    30 s it has to show the canary within tolerance; at 50 %, ten pods each, well within them.
    (At 2 requests per second per pod the final look, since it has 0.8 of beta, can promote
    without a raise.)"""
    serving = simulated_stack(ManualClock(), replicas=20, rate_per_pod=1.0)
    serving.clock.advance(60.0)
    return serving


def _canary_requests(reports: Path) -> list[float]:
    (observed,) = reports.rglob("observations-step2.json")
    log = parse_log(observed.read_text())
    out = []
    for interval in log.intervals:
        pair = interval["error-rate"]
        out.append(0.0 if pair is None else pair.canary.row[1])
    return out


@pytest.mark.parametrize("raise_weight", [True, False], ids=["maxWeight 50", "no maxWeight"])
def test_a_quiet_service_gets_a_decision_by_raising_its_canary(
    stack: SimulatedStack, rollout_of: Callable[..., Any], tmp_path: Path, raise_weight: bool
) -> None:
    most = ", maxWeight: 50, riskBudget: 100000" if raise_weight else ""
    spec = write_spec(
        tmp_path, ["{setWeight: 10}", f"{{analyze: {{interval: 30s, maxDuration: 20m{most}}}}}"]
    )

    state = rollout_of(GOOD_IMAGE, spec)

    outcome = state.result()
    canary = _canary_requests(tmp_path / "reports")
    if not raise_weight:
        assert outcome.result == "rolled-back"
        assert "Inconclusive" in outcome.reason
        assert max(canary) < 2 * min(c for c in canary if c > 0)  # one pod's traffic throughout
        return
    assert outcome.result == "promoted", outcome.reason
    assert sum(canary[-3:]) >= 3 * sum(canary[:3])  # raised from 10 % (two pods) towards 50 %
    status = json.loads(next((tmp_path / "reports").rglob("status.json")).read_text())
    assert status["result"] == "promoted"


@pytest.mark.parametrize(
    ("budget", "held"), [(10, True), (100_000, False)], ids=["budget 10", "budget 100000"]
)
def test_the_risk_budget_holds_a_raise_below_max_weight(
    stack: SimulatedStack,
    rollout_of: Callable[..., Any],
    tmp_path: Path,
    budget: int,
    held: bool,
) -> None:
    # The weights the flow sets, read off the cluster before each of its writes: with a budget of
    # 10 extra failed requests (were the canary as bad as still plausible) the raise stops short
    # of maxWeight, with a large one it goes all the way.
    weights: list[float] = []

    def snapshot(_verb: str, namespace: str, _name: str) -> None:
        replicas = {}
        for name in stack.world.deployment_names(namespace):
            record = stack.world.record(namespace, name)
            replicas[name] = 0 if record is None else record.replicas
        canary = replicas.get(stack.target.track_name("canary"), 0)
        weights.append(100.0 * canary / max(sum(replicas.values()), 1))

    stack.world.before_write = snapshot
    spec = write_spec(
        tmp_path,
        [
            "{setWeight: 10}",
            f"{{analyze: {{interval: 30s, maxDuration: 20m, maxWeight: 50, riskBudget: {budget}}}}}",
        ],
    )

    rollout_of(GOOD_IMAGE, spec).result()

    if held:
        assert 10.0 < max(weights) < 50.0, weights
    else:
        assert max(weights) == 50.0, weights


def raising_spec(tmp_path: Path, max_weight: int, *, duration: str = "20m") -> str:
    """A spec whose analysis at 10 % may raise the canary to `max_weight`, with a large risk budget."""
    most = f"maxWeight: {max_weight}, riskBudget: 100000"
    analyze = f"{{analyze: {{interval: 30s, maxDuration: {duration}, {most}}}}}"
    return write_spec(tmp_path, ["{setWeight: 10}", analyze])


def watching(stack: SimulatedStack, look: Callable[[int, int], None]) -> EditDuringAnalysis:
    """The stack's metrics, calling `look(canary, stable)` with the pods of the canary and the
    stable before each of the analysis's reads of the canary or the baseline (`look` may raise)."""
    return EditDuringAnalysis(
        stack.metrics, lambda: look(pods_of(stack, "canary"), pods_of(stack, "stable")), at=None
    )


def pods_of(stack: SimulatedStack, track: Track) -> int:
    record = stack.world.record(stack.target.namespace, stack.target.track_name(track))
    return 0 if record is None else record.replicas


def test_a_run_that_dies_after_a_raise_is_resumed_at_the_steps_own_weight(
    stack: SimulatedStack,
    runtime: Any,
    rollout_of: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The raise was justified by the dead run's evidence, which the next run does not have: it
    # starts the analysis again at the step's 10 % (two pods), raises again on its own evidence
    # and decides.
    pods: list[int] = []  # the canary's at each read of it

    def dies_after_the_raise(canary: int, _stable: int) -> None:
        pods.append(canary)
        if canary > 2 and not died:  # mid-analysis, after a raise: the run fails
            died.append(True)
            raise RuntimeError("the worker died after the raise")

    died: list[bool] = []
    object.__setattr__(runtime, "metrics", watching(stack, dies_after_the_raise))
    spec = raising_spec(tmp_path, 50, duration="40m")
    first = rollout_of(GOOD_IMAGE, spec)
    assert died
    assert first.state.is_failed()
    assert pods_of(stack, "canary") > 2  # left raised by the dead run
    pods.clear()
    caplog.clear()

    outcome = rollout_of(GOOD_IMAGE, spec).result()

    assert outcome.result == "promoted", outcome.reason
    said = [r.getMessage() for r in caplog.records]
    assert any("resuming at step 1 (weight 10%; an analysis had raised it to" in m for m in said), said
    assert pods[0] == 2, pods  # the resumed analysis starts at the step's weight
    assert max(pods) > 2, pods  # and raises again on its own evidence


def test_a_raise_keeps_room_for_the_hpa_to_grow_the_target(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    # The flow chooses a raise on its own: unlike a spec's setWeight 50, it must not take the
    # HPA's room to grow the target away (an HPA leaves a stable at 0 alone, and one whose lent
    # maximum is its size cannot grow it), neither at the raise nor when it splits the grown
    # target again.
    stack.world.set_hpa("shop", "web", 20, min_replicas=20, max_replicas=40)
    seen: list[tuple[int, int]] = []  # (canary, stable) at each read of the canary
    rises: list[tuple[int, int]] = []  # (canary, stable) when the load rose

    def load_rises_after_the_raise(canary: int, stable: int) -> None:
        seen.append((canary, stable))
        # Load rises by half after the raise, and again once the target has grown with it.
        if canary > 2 and len(rises) < 2 and (not rises or canary > rises[-1][0]):
            rises.append((canary, stable))
            stack.world.autoscale("shop", "web", stable * 3 // 2)

    object.__setattr__(runtime, "metrics", watching(stack, load_rises_after_the_raise))
    spec = raising_spec(tmp_path, 50)

    outcome = rollout_of(GOOD_IMAGE, spec).result()

    assert outcome.result == "promoted", outcome.reason
    # Raised to 45.5 % (10 + 10 + 2; its HPA lent at most 3), not 50 % with no stable pod. The HPA
    # grows the stable to 3 and the target to 30 pods, split again at 44 % (14 + 14 + 4, at most 5),
    # not at 46 % (16 + 16 + 3, at most 3): the second rise grows the target again, to 38 pods.
    assert rises == [(10, 2), (14, 4)], seen
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas) == (GOOD_IMAGE, 38)  # the grown capacity
    assert stack.world.hpa_bounds("shop", "web") == (20, 40)  # its own bounds back


def test_a_person_scaling_a_raised_target_keeps_the_raised_weight(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any], tmp_path: Path
) -> None:
    # Somebody scales the target from 20 to 40 pods while the canary is raised: the flow takes
    # the scale in and splits the grown target at the raised weight (not the step's own), and
    # promotes at that size.
    seen: list[tuple[int, int, int]] = []  # (canary, stable, the canary's weight) at each read

    def scaled_after_the_raise(canary: int, stable: int) -> None:
        seen.append((canary, stable, round(100 * canary / (2 * canary + stable))))
        if canary > 2 and sum(c > 2 for c, _s, _w in seen) == 1:
            stack.world.scale("shop", "web", 40)  # kubectl scale to twice the capacity

    object.__setattr__(runtime, "metrics", watching(stack, scaled_after_the_raise))
    spec = raising_spec(tmp_path, 30)

    outcome = rollout_of(GOOD_IMAGE, spec).result()

    assert outcome.result == "promoted", outcome.reason
    first = next(read for read in seen if read[0] > 2)  # the first read after the raise
    grown = next(i for i, (c, _s, _w) in enumerate(seen) if c > first[0])  # the split taking it in
    after = seen[grown:]
    assert min(c for c, _s, _w in seen[seen.index(first) :]) == first[0], seen  # not back to 10 %
    assert {c for c, _s, _w in after} == {2 * first[0]}, seen  # grew with the scale, never fell back
    assert {s for _c, s, _w in after} == {2 * first[1]}, seen
    assert {w for _c, _s, w in after} == {first[2]}, seen  # the raised weight held
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas) == (GOOD_IMAGE, 40)  # 20 pods grown by 2
