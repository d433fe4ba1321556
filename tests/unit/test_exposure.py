"""Adaptive exposure (`canaryflow.exposure.next_weight`) on the real judge's verdicts: a raise when the
analysis would not decide in time, sized by its evidence plan and capped by the risk budget; never
for a canary under suspicion, at a final verdict, or past ``maxWeight``."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from analysis.backtest import judge_log
from analysis.verdicts import Verdict
from bench.decisions import PRODUCT_SETTINGS
from bench.exposure import run
from bench.scenarios import generate
from canaryflow.errors import SpecError
from canaryflow.exposure import MARGIN, next_weight
from canaryflow.spec.loading import load_spec_text

PATIENT = PRODUCT_SETTINGS.model_copy(update={"min_chance": 0.0})


def _verdict(family: str, rps: float, seed: int, at: int) -> Verdict:
    for verdict in judge_log(generate(family, rps, seed).log, PATIENT):
        if verdict.interval == at:
            return verdict
    raise AssertionError(f"the analysis ended before interval {at}")


def test_an_analysis_that_would_not_decide_in_time_is_given_more_traffic() -> None:
    # 2 req/s per track: the error rate's plan needs about 140 intervals of the 40 there are.
    verdict = _verdict("plain", 2.0, 3, 10)
    plan = verdict.metrics["error-rate"].plan
    assert plan is not None
    assert plan.needed_intervals is not None
    assert plan.needed_intervals > 100

    raised = next_weight(verdict, weight=10, max_weight=50, risk_budget=10_000)

    assert raised is not None
    assert raised.weight == 50  # what the plan asks for is far above: capped at maxWeight
    assert raised.reason.startswith(f"the analysis needs {plan.needed_intervals} intervals of data at 10 %")
    assert raised.reason.endswith("raising the canary to 50 %")


def test_the_raise_is_what_the_plan_needs_with_its_margin() -> None:
    verdict = _verdict("plain", 10.0, 3, 20)  # the plan (33 intervals) fits, with no margin to spare
    plan = verdict.metrics["error-rate"].plan
    assert plan is not None
    assert plan.needed_intervals is not None
    left = plan.final_interval - verdict.interval
    wanted = -(-10 * MARGIN * (plan.needed_intervals - verdict.interval) // left)  # ceil

    raised = next_weight(verdict, weight=10, max_weight=50, risk_budget=10_000)

    assert raised is not None
    assert raised.weight == int(wanted)
    assert 10 < raised.weight < 50


def test_the_risk_budget_caps_the_raise_and_an_unbounded_ratio_raises_nothing() -> None:
    verdict = _verdict("plain", 2.0, 3, 10)
    generous = next_weight(verdict, weight=10, max_weight=50, risk_budget=10_000)
    modest = next_weight(verdict, weight=10, max_weight=50, risk_budget=400)
    assert generous is not None
    assert modest is not None
    assert 10 < modest.weight < generous.weight
    assert "capped at" in modest.reason
    assert "by the risk budget of 400 requests" in modest.reason
    assert next_weight(verdict, weight=10, max_weight=50, risk_budget=0) is None
    early = _verdict("plain", 2.0, 3, 4)  # the ratio's interval is still unbounded above
    assert early.metrics["error-rate"].interval[1] == float("inf")
    assert next_weight(early, weight=10, max_weight=50, risk_budget=10_000) is None


def test_a_canary_under_suspicion_or_at_its_maximum_gets_no_more_traffic() -> None:
    verdict = _verdict("plain", 2.0, 3, 10)
    leaning = replace(
        verdict,
        metrics={**verdict.metrics, "latency": replace(verdict.metrics["latency"], leans_worse=True)},
    )
    regressed = replace(
        verdict,
        metrics={**verdict.metrics, "latency": replace(verdict.metrics["latency"], status="regressed")},
    )
    assert next_weight(leaning, weight=10, max_weight=50, risk_budget=10_000) is None
    assert next_weight(regressed, weight=10, max_weight=50, risk_budget=10_000) is None
    assert next_weight(verdict, weight=50, max_weight=50, risk_budget=10_000) is None
    final = list(judge_log(generate("errors-x5", 10.0, 3).log, PATIENT))[-1]
    assert final.decision == "rollback"
    assert next_weight(final, weight=10, max_weight=50, risk_budget=10_000) is None


SPEC = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {name: web}
spec:
  target: {namespace: shop, deployment: web, container: web, service: web}
  steps:
    - setWeight: 20
    - analyze: {interval: 30s, maxDuration: 20m, maxWeight: MOST}
"""


@pytest.mark.parametrize(
    ("most", "problem"),
    [
        ("20", "x.yaml:8 spec.steps[1].analyze.maxWeight: must be above the weight in effect here (20)"),
        (
            "60",
            "x.yaml:8 spec.steps[1].analyze.maxWeight: must be at most 50 with a baseline (canary and "
            "baseline have the same size)",
        ),
    ],
)
def test_a_max_weight_that_cannot_raise_is_refused_where_it_is_written(most: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(SPEC.replace("MOST", most), source="x.yaml")
    assert caught.value.problems == [problem]


def test_an_analysis_that_may_raise_never_gives_up_early() -> None:
    spec = load_spec_text(SPEC.replace("MOST", "50"), source="x.yaml")
    step = spec.spec.steps[1].analyze
    assert step is not None
    assert (step.max_weight, step.risk_budget) == (50, 100)
    assert spec.analysis_settings(step).min_chance == 0.0  # its chance is at the traffic before a raise
    assert spec.analysis_settings(None).min_chance > 0.0


@pytest.mark.slow
@pytest.mark.parametrize("rps", [2.0, 10.0])
def test_a_canary_at_its_tolerance_is_promoted_in_at_most_beta_of_runs_with_raises(rps: float) -> None:
    # The weight is chosen from the data seen (the plan, the ratio's interval): the anytime tests
    # keep their level with sizes chosen from the past; the final look is checked here. A canary
    # exactly at +50 % errors (the tolerance), raised without a risk limit.
    runs = 400
    promoted = sum(
        run(rps=rps, canary_rate=0.015, max_weight=50, risk_budget=math.inf, seed=10_000 + s)[0] == "promote"
        for s in range(runs)
    )
    assert promoted / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), promoted
