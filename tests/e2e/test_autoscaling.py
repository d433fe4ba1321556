"""A target an HPA scales (simulated cluster whose HPA keeps its bounds as the real controller does,
the real Prefect harness): the rollout shares the HPA's capacity instead of piling canary and
baseline on top of it, the HPA's scaling during the analysis keeps the weight, and the HPA gets its
own bounds back at the end. The same mechanics run on the real API server and HPA controller in
tests/contract/test_faults_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from canaryflow.dev.stacks import GOOD_IMAGE, SimulatedStack
from canaryflow.replicas import plan_split
from tests.e2e.test_people_edits import EditDuringAnalysis


def _canary_at_promotion(stack: SimulatedStack) -> list[int]:
    """Fills with the canary's replicas in place when the promotion begins."""
    seen: list[int] = []

    def record(verb: str, namespace: str, name: str) -> None:
        canary = stack.world.record("shop", "web-canary")
        if not seen and canary is not None and "promoting" in canary.annotations.values():
            seen.append(canary.replicas)

    stack.world.before_write = record
    return seen


def _tracks(stack: SimulatedStack) -> tuple[int, ...]:
    """Replicas of stable, canary and baseline (-1: not there)."""
    records = [stack.world.record("shop", name) for name in ("web", "web-canary", "web-baseline")]
    return tuple(r.replicas if r else -1 for r in records)


def test_a_rollout_shares_the_capacity_an_hpa_holds_and_gives_the_hpa_its_bounds_back(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    # The case that used to roll a good canary back mid-rollout: 50 % with a baseline is out of
    # reach when canary and baseline can only come on top of 12 stable pods.
    stack.world.set_hpa("shop", "web", 12, min_replicas=12, max_replicas=15)
    at_promotion = _canary_at_promotion(stack)
    first: list[tuple[int, ...]] = []
    look = EditDuringAnalysis(stack.metrics, lambda: first.append(_tracks(stack)), at=2)
    object.__setattr__(runtime, "metrics", look)

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted", outcome.reason
    assert first == [(9, 3, 3)]  # 20 % of 12 pods (3 of 15): the HPA did not take the stable back to 12
    assert at_promotion == [plan_split(12, 50, baseline=True).canary] == [6]
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas, status.stable.ready) == (GOOD_IMAGE, 12, 12)
    assert stack.world.hpa_bounds("shop", "web") == (12, 15)
    assert (status.canary, status.baseline) == (None, None)


def test_the_hpa_growing_the_stable_during_the_analysis_keeps_the_weight(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any]
) -> None:
    stack.world.set_hpa("shop", "web", 10, min_replicas=10, max_replicas=30)
    looks = [0]
    seen: list[tuple[int, ...]] = []

    def load_rises_then_look() -> None:
        looks[0] += 1
        if looks[0] == 3:  # the first analysis, at 20 %: 2 canary, 2 baseline, 6 stable
            stack.world.autoscale("shop", "web", 9)  # load rose by half
        if looks[0] == 6:
            seen.append(_tracks(stack))

    object.__setattr__(runtime, "metrics", EditDuringAnalysis(stack.metrics, load_rises_then_look, at=None))

    outcome = rollout_of(GOOD_IMAGE).result()

    assert outcome.result == "promoted", outcome.reason
    assert seen == [(9, 3, 3)]  # 20 % of 15 pods: canary and baseline grew with the stable
    status = stack.cluster.read(stack.target)
    assert (status.stable.image, status.stable.replicas) == (GOOD_IMAGE, 15)  # the grown capacity
    assert stack.world.hpa_bounds("shop", "web") == (10, 30)
