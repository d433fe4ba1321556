"""The absolute tolerance (``maxIncrease``): its bounds are valid at the margin under the jitter and
incidents the judge is built for, and it lets a service with few errors promote where a relative
tolerance cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from analysis.ceiling import _BOUND_GRID, CeilingState, RateBound
from analysis.judge import SequentialJudge
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Verdict
from bench.increase import BOUNDARY
from bench.increase import run as _analysis
from bench.increase import settings as _settings

BETA = 0.05


@pytest.mark.slow
@pytest.mark.parametrize(
    ("baseline_rate", "margin", "rps", "jitter", "incidents", "intervals"),
    BOUNDARY,
    ids=["1 % +0.5 pp 50 rps jitter 0.5", "0.05 % +0.2 pp 10 rps", "500 rps incidents", "2 rps 240 looks"],
)
def test_a_canary_exactly_at_the_margin_is_promoted_in_at_most_beta_of_runs(
    baseline_rate: float, margin: float, rps: float, jitter: float, incidents: bool, intervals: int
) -> None:
    # The boundary of the null: the canary's rate is the baseline's plus the margin. Rollbacks are
    # switched off (alpha 1e-9) so that none hides a promotion; every promotion is an error.
    runs = 200 if intervals <= 40 else 60
    settings = _settings(margin, alpha=1e-9, intervals=intervals)
    promoted = sum(
        _analysis(
            settings, baseline_rate=baseline_rate, canary_rate=baseline_rate + margin, rps=rps,
            seed=900 + i, jitter=jitter, incidents=incidents, intervals=intervals,
        ).decision
        == "promote"
        for i in range(runs)
    )  # fmt: skip
    assert promoted / runs <= BETA + 3 * math.sqrt(BETA * (1 - BETA) / runs), promoted


def test_a_service_with_few_errors_promotes_with_an_absolute_tolerance_and_not_without() -> None:
    # 0.05 % errors at 10 req/s: about 6 errors per track in 20 minutes. "+50 %" can never be
    # shown from that; "+0.2 percentage points" can.
    def outcomes(margin: float | None) -> list[Verdict]:
        settings = _settings(margin)
        return [
            _analysis(settings, baseline_rate=0.0005, canary_rate=0.0005, rps=10.0, seed=s) for s in range(20)
        ]

    absolute = outcomes(0.002)
    relative = [v.decision for v in outcomes(None)]
    promoted = sum(v.decision == "promote" for v in absolute)
    assert promoted >= 14, [v.decision for v in absolute]  # 83 % in the benchmark's 200 runs
    assert promoted - relative.count("promote") >= 10, relative
    promoted = next(v for v in absolute if v.decision == "promote")
    assert "within +0.2 pp of the baseline's rate: at most +0." in promoted.metrics["error-rate"].reason


def test_a_canary_well_over_the_margin_is_never_promoted() -> None:
    settings = _settings(0.002)
    decisions = [
        _analysis(settings, baseline_rate=0.0005, canary_rate=0.006, rps=rps, seed=s).decision
        for rps in (2.0, 10.0, 50.0)
        for s in range(10)
    ]
    assert "promote" not in decisions
    assert decisions.count("rollback") >= 20, decisions


@pytest.mark.parametrize(("jitter", "runs"), [(0.0, 400), (0.5, 400)])
def test_the_rate_bound_is_rarely_below_the_rate(jitter: float, runs: int) -> None:
    # An anytime bound at level 0.05: below the true rate at some look in at most 5 % of runs.
    rng = np.random.default_rng(17)
    missed = 0
    for _ in range(runs):
        bound = RateBound(0.05)
        for _ in range(40):
            factor = rng.lognormal(-(jitter**2) / 2, jitter) if jitter else 1.0
            bound = bound.step(float(rng.binomial(300, 0.01 * factor)), 300.0)
            if bound.upper <= 0.01:
                missed += 1
                break
    assert missed / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs), missed


def test_the_rate_bound_is_the_ceiling_test_at_every_grid_point() -> None:
    rng = np.random.default_rng(3)
    bound = RateBound(0.05)
    ceilings = [CeilingState(float(s)) for s in _BOUND_GRID]
    for _ in range(30):
        n = float(rng.poisson(300))
        bad = float(rng.binomial(int(n), 0.01))
        bound = bound.step(bad, n)
        ceilings = [c.step(bad, n) for c in ceilings]
    assert list(bound.log_evalues) == pytest.approx([c.log_evalue for c in ceilings], abs=1e-9)


def test_a_non_finite_count_never_promotes_through_the_absolute_tolerance() -> None:
    # A count that fits no rate ratio empties the ratio's confidence sequence: no bound, not 0.
    rng = np.random.default_rng(5)
    judge = SequentialJudge(_settings(0.002), interval_seconds=30.0)
    decisions = []
    for i in range(40):
        nb, nc = float(rng.poisson(300)), float(rng.poisson(300))
        canary_bad = math.nan if i == 0 else float(rng.binomial(int(nc), 0.0005))
        pair = PairedObservation(
            RatioCounts(float(rng.binomial(int(nb), 0.0005)), nb), RatioCounts(canary_bad, nc)
        )
        decisions.append(judge.update({"error-rate": pair}).decision)
    assert "promote" not in decisions


def test_the_rate_bound_closes_in_on_the_rate_and_starts_at_one() -> None:
    bound = RateBound(0.01)
    assert bound.upper == 1.0
    bounds = []
    for _ in range(60):
        bound = bound.step(3.0, 300.0)
        bounds.append(bound.upper)
    assert bounds == sorted(bounds, reverse=True)
    assert 0.01 < bounds[-1] < 0.016  # 6,000 requests at 1 %: within a few grid steps of the rate
    assert bound.step(0.0, 0.0) is bound


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "samples"}, "an absolute tolerance applies to ratio and histogram metrics, not to samples"),
        ({"type": "ratio", "direction": "decrease"}, "it needs direction increase"),
        ({"type": "histogram", "direction": "either"}, "it needs direction increase"),
        ({"type": "ratio", "max_increase": 1.5}, "below 1: got 1.5"),
        ({"type": "histogram", "max_increase": float("inf")}, "finite"),
    ],
)
def test_an_absolute_tolerance_is_refused_where_it_means_nothing(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        MetricSettings.model_validate({"name": "m", "max_increase": 0.01, **fields})


def test_the_absolute_tolerance_takes_half_of_beta_and_the_relative_tests_the_rest() -> None:
    judge = SequentialJudge(_settings(0.002), interval_seconds=30.0)
    plan = judge.plan.metrics[0]
    assert plan.increase_beta == pytest.approx(BETA / 2)
    assert plan.final_beta + plan.promote_beta == pytest.approx(BETA / 2)
    judge.update({"error-rate": PairedObservation(RatioCounts(1.0, 300.0), RatioCounts(1.0, 300.0))})
    history = judge.state.histories[0]
    assert history.baseline_bound is not None
    assert history.canary_bound is not None
    # three bounds (the ratio's, the baseline's, the canary's), each at a third of its share
    assert history.baseline_bound.level == history.canary_bound.level == pytest.approx(BETA / 2 / 3)
    without = SequentialJudge(_settings(None), interval_seconds=30.0).plan.metrics[0]
    assert (without.increase_beta, without.final_beta + without.promote_beta) == (0.0, pytest.approx(BETA))


def test_a_latency_tolerance_in_its_unit_takes_no_share_of_beta_and_is_named_in_the_reason() -> None:
    latency = MetricSettings(name="latency", type="histogram", tolerance=0.1, max_increase=0.02)
    judge = SequentialJudge(
        AnalysisSettings(metrics=(latency,), min_exposure_seconds=0), interval_seconds=30.0,
        units={"latency": "seconds"},
    )  # fmt: skip
    plan = judge.plan.metrics[0]
    assert (plan.shift, plan.max_increase, plan.increase_beta) == (0.02, None, 0.0)
    assert plan.final_beta + plan.promote_beta == pytest.approx(BETA)
    le = (0.05, 0.1, 0.25, math.inf)
    same = HistogramCounts(le=le, counts=(150.0, 750.0, 1450.0, 1500.0))

    def promoted_at(judge: SequentialJudge) -> Verdict:
        for _ in range(40):
            verdict = judge.update({"latency": PairedObservation(same, same)})
            if verdict.decision != "continue":
                return verdict
        return judge.finish()

    shifted = promoted_at(judge)
    plain = AnalysisSettings(
        metrics=(latency.model_copy(update={"max_increase": None}),), min_exposure_seconds=0
    )
    relative = promoted_at(SequentialJudge(plain, interval_seconds=30.0, units={"latency": "seconds"}))
    assert shifted.decision == relative.decision == "promote"
    assert shifted.interval < relative.interval  # the shift is the larger tolerance at 50 and 100 ms
    assert "within +10 % or +20 ms tolerance" in shifted.metrics["latency"].reason
