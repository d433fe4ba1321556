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
from bench.scenarios import generate, read_back
from canaryflow.errors import SpecError
from canaryflow.exposure import MARGIN, RaiseAccount, next_weight
from canaryflow.spec.loading import load_spec_text

PATIENT = PRODUCT_SETTINGS.model_copy(update={"min_chance": 0.0})


def _account(verdict: Verdict, raised: float = 0.0) -> RaiseAccount:
    """The step's account at 10 % all along, `raised` error-rate requests served above it."""
    per = _per_percent(verdict)
    return RaiseAccount(
        base=10, per_percent={"error-rate": per, "latency": per}, raised={"error-rate": raised}
    )


def _per_percent(verdict: Verdict, weight: float = 10) -> float:
    """The canary's requests per interval per percent, at `weight` all along."""
    errors = verdict.metrics["error-rate"]
    return errors.canary_count / errors.covered / weight


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

    raised = next_weight(
        verdict,
        weight=10,
        max_weight=50,
        risk_budget=10_000,
        account=_account(verdict),
    )

    assert raised is not None
    assert raised.weight == 50  # what the plan asks for is far above: held at maxWeight
    assert raised.reason.startswith(
        f"the analysis needs {plan.needed_intervals} intervals of data at the traffic"
    )
    assert "raising the canary to 50 % (held there by maxWeight or the risk budget" in raised.reason


def test_a_plan_that_counts_an_absolute_tolerance_raises_nothing() -> None:
    # Raises were measured on the relative route only: a plan that counts maxIncrease's final
    # look is reported, not raised on (the same verdict raises without the flag).
    verdict = _verdict("plain", 2.0, 3, 10)
    errors = verdict.metrics["error-rate"]
    assert errors.plan is not None
    latency = replace(verdict.metrics["latency"], status="within", leans_worse=False)

    def raised(absolute: bool) -> object:
        metrics = {
            "error-rate": replace(errors, plan=replace(errors.plan, absolute=absolute)),
            "latency": latency,
        }
        return next_weight(
            replace(verdict, metrics=metrics), weight=10, max_weight=50, risk_budget=10_000,
            account=_account(verdict),
        )  # fmt: skip

    assert raised(False) is not None
    assert raised(True) is None


def test_the_raise_is_what_the_plan_needs_with_its_margin() -> None:
    verdict = _verdict("plain", 10.0, 3, 20)  # the plan (33 intervals) fits, with no margin to spare
    plan = verdict.metrics["error-rate"].plan
    assert plan is not None
    assert plan.needed_intervals is not None
    left = plan.final_interval - verdict.interval
    # MARGIN times the plan's data in all, the missing part in the intervals left, at 10 % now
    wanted = int(10 * (MARGIN * plan.needed_intervals - verdict.interval) / left)

    raised = next_weight(
        verdict,
        weight=10,
        max_weight=50,
        risk_budget=10_000,
        account=_account(verdict),
    )

    assert raised is not None
    assert raised.weight == wanted
    assert 10 < raised.weight < 50
    # after a raise the traffic per percent is measured now, not averaged with the weight before
    later = next_weight(
        verdict,
        weight=wanted,
        max_weight=50,
        risk_budget=10_000,
        account=_account(verdict),
    )
    assert later is None  # the same evidence at the raised weight asks for nothing more


def test_counts_read_back_over_looks_without_data_are_averaged_over_the_intervals_they_cover() -> None:
    log = read_back(generate("plain", 10.0, 3).log, 4)  # the first three looks had no data
    verdict = next(v for v in judge_log(log, PATIENT) if v.interval == 10)
    errors = verdict.metrics["error-rate"]
    assert (errors.intervals, errors.covered) == (7, 10)
    assert errors.plan is not None
    assert errors.plan.needed_intervals is not None
    left = errors.plan.final_interval - verdict.interval
    # as above: the traffic per interval is the count over the 10 intervals it covers, not the 7 looks
    wanted = int(10 * (MARGIN * errors.plan.needed_intervals - verdict.interval) / left)

    raised = next_weight(verdict, weight=10, max_weight=50, risk_budget=10_000, account=_account(verdict))

    assert raised is not None
    assert raised.weight == wanted


def test_the_risk_budget_caps_the_raise_and_an_unbounded_ratio_raises_nothing() -> None:
    verdict = _verdict("plain", 2.0, 3, 10)
    generous = next_weight(
        verdict,
        weight=10,
        max_weight=50,
        risk_budget=10_000,
        account=_account(verdict),
    )
    modest = next_weight(
        verdict,
        weight=10,
        max_weight=50,
        risk_budget=400,
        account=_account(verdict),
    )
    assert generous is not None
    assert modest is not None
    assert 10 < modest.weight < generous.weight
    assert "held there by maxWeight or the risk budget of 400 requests" in modest.reason
    # the cap: at the worst plausible ratio, the extra failures of the traffic above the step's own
    # 10 % (that served so far, none here, and that of the intervals left) are within the budget
    errors = verdict.metrics["error-rate"]
    left = 40 - verdict.interval
    excess = (errors.interval[1] - 1) * errors.baseline_rate

    def risked(weight: int, raised: float = 0.0) -> float:
        return excess * (raised + _per_percent(verdict) * (weight - 10) * left)

    assert risked(modest.weight) <= 400 < risked(modest.weight + 1)
    # what the raises served already counts: the same budget with 2,000 raised requests behind it
    served = next_weight(
        verdict, weight=10, max_weight=50, risk_budget=400, account=_account(verdict, raised=2000.0),
    )  # fmt: skip
    assert served is not None
    assert served.weight < modest.weight
    assert risked(served.weight, 2000.0) <= 400 < risked(served.weight + 1, 2000.0)
    assert (
        next_weight(
            verdict,
            weight=10,
            max_weight=50,
            risk_budget=0,
            account=_account(verdict),
        )
        is None
    )
    # a budget the raised requests have spent raises nothing more
    spent = next_weight(
        verdict, weight=20, max_weight=50, risk_budget=400, account=_account(verdict, raised=400 / excess),
    )  # fmt: skip
    assert spent is None
    early = _verdict("plain", 2.0, 3, 4)  # the ratio's interval is still unbounded above
    assert early.metrics["error-rate"].interval[1] == float("inf")
    assert next_weight(early, weight=10, max_weight=50, risk_budget=10_000, account=_account(verdict)) is None
    # nor is anything raised while the error rate's traffic per percent is unknown
    blind = RaiseAccount(base=10, per_percent={"latency": _per_percent(verdict)})
    assert next_weight(verdict, weight=10, max_weight=50, risk_budget=10_000, account=blind) is None


def test_the_account_charges_the_traffic_above_the_steps_own_weight_every_interval() -> None:
    account = RaiseAccount(base=10)
    account.record({"error-rate": 300.0, "latency": 300.0}, 10)  # at the step's own weight: nothing
    assert account.raised == {}
    assert account.per_percent == {"error-rate": 30.0, "latency": 30.0}
    account.record({"error-rate": 750.0, "latency": 750.0}, 25)  # raised: 15 of the 25 points
    assert account.raised == {"error-rate": 450.0, "latency": 450.0}
    # an interval without data is charged at the latest traffic per percent, not skipped
    account.record({"error-rate": None, "latency": None}, 25)
    assert account.raised == {"error-rate": 900.0, "latency": 900.0}
    # each metric on its own count (payments are not requests)
    account.record({"error-rate": 250.0, "latency": 750.0}, 25)
    assert account.raised == {"error-rate": 1050.0, "latency": 1350.0}


def test_a_count_read_back_over_looks_without_data_is_per_interval_over_its_span() -> None:
    account = RaiseAccount(base=10)
    account.record({"error-rate": 750.0, "latency": 750.0}, 25)
    account.record({"error-rate": None, "latency": 750.0}, 25)  # its gap charged at 30 per percent
    assert account.raised == {"error-rate": 900.0, "latency": 900.0}
    # the error rate's next look reads both intervals: the same traffic per interval, charged once
    account.record({"error-rate": 1500.0, "latency": 750.0}, 25, spans={"error-rate": 2.0})
    assert account.per_percent == {"error-rate": 30.0, "latency": 30.0}
    assert account.raised == {"error-rate": 1350.0, "latency": 1350.0}


def test_raised_gaps_before_any_traffic_was_known_are_charged_at_the_first_measured() -> None:
    account = RaiseAccount(base=10)  # an earlier step's raise to 25 % is still in place
    account.record({"error-rate": None}, 25)
    account.record({"error-rate": None}, 25)
    assert account.raised == {}
    account.record({"error-rate": 2250.0}, 25, spans={"error-rate": 3.0})  # read back over all three
    assert account.per_percent == {"error-rate": 30.0}
    assert account.raised == {"error-rate": 1350.0}  # 3 intervals of 15 points at 30 per percent
    account.record({"error-rate": 750.0}, 25)
    assert account.raised == {"error-rate": 1800.0}


def test_a_canary_under_suspicion_unknown_or_at_its_maximum_gets_no_more_traffic() -> None:
    verdict = _verdict("plain", 2.0, 3, 10)
    unseen = replace(
        verdict, metrics={**verdict.metrics, "latency": replace(verdict.metrics["latency"], status="no_data")}
    )
    assert (
        next_weight(
            unseen,
            weight=10,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )
    endless = replace(
        verdict,
        metrics={
            **verdict.metrics,
            "error-rate": replace(
                verdict.metrics["error-rate"],
                plan=replace(verdict.metrics["error-rate"].plan, needed_intervals=None),
            ),
        },
    )
    assert (
        next_weight(
            endless,
            weight=10,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )
    latency_only = replace(verdict, metrics={"latency": verdict.metrics["latency"]})
    assert (
        next_weight(
            latency_only,
            weight=10,
            max_weight=50,
            risk_budget=0,
            account=RaiseAccount(base=10, per_percent={"latency": 1.0}),
        )
        is None
    )
    leaning = replace(
        verdict,
        metrics={**verdict.metrics, "latency": replace(verdict.metrics["latency"], leans_worse=True)},
    )
    regressed = replace(
        verdict,
        metrics={**verdict.metrics, "latency": replace(verdict.metrics["latency"], status="regressed")},
    )
    assert (
        next_weight(
            leaning,
            weight=10,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )
    assert (
        next_weight(
            regressed,
            weight=10,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )
    assert (
        next_weight(
            verdict,
            weight=50,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )
    final = list(judge_log(generate("errors-x5", 10.0, 3).log, PATIENT))[-1]
    assert final.decision == "rollback"
    assert (
        next_weight(
            final,
            weight=10,
            max_weight=50,
            risk_budget=10_000,
            account=_account(verdict),
        )
        is None
    )


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
            "x.yaml:8 spec.steps[1].analyze.maxWeight: must be at most 50: a raise takes at most half the "
            "pods (a canary beyond is a promotion without a verdict)",
        ),
        (
            "150",
            "x.yaml:8 spec.steps[1].analyze.maxWeight: must be at most 50: a raise takes at most half the "
            "pods (a canary beyond is a promotion without a verdict)",
        ),
    ],
)
def test_a_max_weight_that_cannot_raise_is_refused_where_it_is_written(most: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec_text(SPEC.replace("MOST", most), source="x.yaml")
    assert caught.value.problems == [problem]


def test_a_max_weight_over_half_the_pods_is_refused_with_the_other_field_problems() -> None:
    spec = SPEC.replace("MOST", "60").replace("interval: 30s", "interval: 30x")
    with pytest.raises(SpecError) as caught:
        load_spec_text(spec, source="x.yaml")
    assert [p.split(":", 2)[1].split()[-1] for p in caught.value.problems] == [
        "spec.steps[1].analyze.interval",
        "spec.steps[1].analyze.maxWeight",
    ]


def test_an_analysis_that_may_raise_never_gives_up_early() -> None:
    spec = load_spec_text(SPEC.replace("MOST", "50"), source="x.yaml")
    step = spec.spec.steps[1].analyze
    assert step is not None
    assert (step.max_weight, step.risk_budget) == (50, 100)
    assert spec.analysis_settings(step).min_chance == 0.0  # its chance is at the traffic before a raise
    assert spec.analysis_settings(None).min_chance > 0.0


@pytest.mark.slow
@pytest.mark.parametrize(("rps", "jitter"), [(2.0, 0.0), (10.0, 0.0), (2.0, 0.5), (10.0, 0.5)])
def test_a_canary_at_its_tolerance_is_promoted_in_at_most_beta_of_runs_with_raises(
    rps: float, jitter: float
) -> None:
    # The weight is chosen from the data seen (the plan, the ratio's interval): the anytime tests
    # keep their level with sizes chosen from the past; the final look is checked here. A canary
    # exactly at +50 % errors (the tolerance), raised without a risk limit, with binomial traffic
    # and with each track's error rate jittered on its own (log-normal, sd 0.5) every interval.
    runs = 400
    promoted = sum(
        run(rps=rps, canary_rate=0.015, max_weight=50, risk_budget=math.inf, seed=10_000 + s, jitter=jitter)[
            0
        ]
        == "promote"
        for s in range(runs)
    )
    assert promoted / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), promoted


def test_a_max_weight_needs_an_error_rate_and_no_ratio_of_the_other_direction() -> None:
    def metric(direction: str) -> str:
        return (
            f"      - {{name: m-{direction}, type: ratio, direction: {direction}, "
            "bad: 'x{track=\"{track}\"}', total: 'y{track=\"{track}\"}'}\n"
        )

    conversions = SPEC.replace("MOST", "50") + "  analysis:\n    metrics:\n" + metric("decrease")
    with pytest.raises(SpecError) as caught:
        load_spec_text(conversions, source="x.yaml")
    assert caught.value.problems == [
        "x.yaml:8 spec.steps[1].analyze.maxWeight: needs a ratio metric with direction increase (an error "
        "rate): a raise's risk is counted in failed requests",
        "x.yaml:8 spec.steps[1].analyze.maxWeight: cannot go with a ratio metric whose direction is not "
        "increase: its risk is not counted",
    ]
    both = SPEC.replace("MOST", "50") + "  analysis:\n    metrics:\n" + metric("increase") + metric("either")
    with pytest.raises(SpecError) as caught:
        load_spec_text(both, source="x.yaml")
    assert len(caught.value.problems) == 1
