"""The absolute tolerance (``maxIncrease``): its bounds are valid at the margin under the jitter and
incidents the judge is built for, and it lets a service with few errors promote where a relative
tolerance cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from analysis.ceiling import _BOUND_GRID, CeilingState, RateBound
from analysis.increase import FINAL_LEVEL_FACTOR, IncreaseSums, final_log_pvalue
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


#: (baseline rate, margin, req/s per track, jitter sd per track, shared x5 incidents, intervals)
FINAL_CELLS = (
    (0.0005, 0.002, 0.5, 0.5, False, 240),
    (0.0005, 0.002, 2.0, 0.5, False, 120),
    (0.0005, 0.002, 10.0, 0.0, False, 40),
    (0.0001, 0.001, 50.0, 0.5, False, 40),
    (0.01, 0.005, 50.0, 0.5, False, 40),
    (0.01, 0.005, 10.0, 0.8, False, 40),
    (0.01, 0.005, 500.0, 0.5, False, 40),
    (0.002, 0.002, 500.0, 0.5, False, 240),
    (0.002, 0.002, 500.0, 0.8, False, 240),
    (0.002, 0.002, 500.0, 0.3, True, 240),
    (0.05, 0.01, 500.0, 0.5, True, 240),
)


def _cell_id(cell: tuple[float, float, float, float, bool, int]) -> str:
    rate, margin, rps, jitter, incidents, intervals = cell
    shared = " incidents" if incidents else ""
    return f"{rate:g} +{margin:g} {rps:g} rps jitter {jitter:g}{shared} {intervals} looks"


def _final_looks(
    cell: tuple[float, float, float, float, bool, int], *, share: float, excess: float, runs: int, seed: int
) -> np.ndarray:
    """The final look's p-values of `runs` analyses (vectorized `IncreaseSums`): each track's rate
    jittered on its own by a mean-one log-normal factor, a shared x5 incident in 5 % of intervals,
    the canary's traffic `share` times the baseline's and its rate the baseline's plus `excess`."""
    rate, margin, rps, jitter, incidents, intervals = cell
    rng = np.random.default_rng(seed)
    shape = (runs, intervals)
    n = rng.poisson(rps * 30.0 * share, shape).astype(float)
    m = rng.poisson(rps * 30.0, shape).astype(float)

    def jittered(r: float, shared: np.ndarray) -> np.ndarray:
        factor = rng.lognormal(-(jitter**2) / 2, jitter, shape) if jitter else 1.0
        return np.minimum(r * factor * shared, 1.0)

    shared = np.where(rng.random(shape) < 0.05, 5.0, 1.0) if incidents else np.ones(shape)
    x = rng.binomial(n.astype(np.int64), jittered(rate + excess, shared)).astype(float)
    y = rng.binomial(m.astype(np.int64), jittered(rate, shared)).astype(float)
    counted = (n > 0) & (m > 0)
    total = np.where(counted, n + m, 1.0)
    w = np.where(counted, n * m / total, 0.0)
    d = np.where(counted, (x * m - y * n - margin * n * m) / total, 0.0)
    log_p = final_log_pvalue(
        d.sum(axis=1), (d * d).sum(axis=1), counted.sum(axis=1).astype(float),
        (w * w / np.maximum(n, 1.0)).sum(axis=1), (w * w / np.maximum(m, 1.0)).sum(axis=1),
        (y * counted).sum(axis=1) / (m * counted).sum(axis=1), margin,
    )  # fmt: skip
    return np.exp(log_p)


@pytest.mark.parametrize("share", [1.0, 0.25, 4.0], ids=["equal", "canary a quarter", "canary four times"])
@pytest.mark.parametrize("cell", FINAL_CELLS, ids=[_cell_id(c) for c in FINAL_CELLS])
def test_the_final_look_shows_a_canary_at_the_margin_within_it_in_at_most_its_share(
    cell: tuple[float, float, float, float, bool, int], share: float
) -> None:
    # The final look's share of beta: half of the absolute tolerance's half; it rejects at
    # FINAL_LEVEL_FACTOR of it (skew), and what it spends must stay within the share.
    level = BETA / 4
    runs = 4000
    p = _final_looks(cell, share=share, excess=cell[1], runs=runs, seed=41)
    within = float(np.mean(p <= level * FINAL_LEVEL_FACTOR))
    assert within <= level + 3 * math.sqrt(level * (1 - level) / runs), within


def test_the_final_look_decides_for_good_canaries_where_the_traffic_allows() -> None:
    # The power the final look is for: 0.05 % errors, +0.2 pp, an hour at 2 req/s per track.
    cell = (0.0005, 0.002, 2.0, 0.5, False, 120)
    p = _final_looks(cell, share=1.0, excess=0.0, runs=400, seed=42)
    assert float(np.mean(p <= BETA / 4 * FINAL_LEVEL_FACTOR)) >= 0.8


def test_the_sums_stepped_one_interval_at_a_time_give_the_vectorized_p_value() -> None:
    rng = np.random.default_rng(8)
    sums = IncreaseSums(0.002)
    rows = []
    for _ in range(60):
        n, m = float(rng.poisson(300)), float(rng.poisson(200))
        row = (float(rng.binomial(int(n), 0.003)), n, float(rng.binomial(int(m), 0.001)), m)
        rows.append(row)
        sums = sums.step(*row)
    x, n, y, m = (np.array(column) for column in zip(*rows, strict=True))
    w = n * m / (n + m)
    d = (x * m - y * n - 0.002 * n * m) / (n + m)
    expected = final_log_pvalue(
        d.sum(), (d * d).sum(), 60.0, (w * w / n).sum(), (w * w / m).sum(), y.sum() / m.sum(), 0.002
    )
    assert sums.final_pvalue() == pytest.approx(math.exp(float(expected)))
    assert sums.increase == pytest.approx(float((w * (x / n - y / m)).sum() / w.sum()))
    assert sums.step(1.0, 0.0, 0.0, 100.0) is sums  # a track without requests adds nothing
    assert sums.step(math.nan, 300.0, 0.0, 200.0).final_pvalue() == 1.0
    assert IncreaseSums(0.002).final_pvalue() == 1.0


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
    assert promoted >= 18, [v.decision for v in absolute]
    assert promoted - relative.count("promote") >= 10, relative
    reasons = [v.metrics["error-rate"].reason for v in absolute if v.decision == "promote"]
    # both routes decide: the anytime bound before the end, the final look at it
    assert any("within +0.2 pp of the baseline's rate: at most +0." in r for r in reasons), reasons
    final = "within +0.2 pp of the baseline's rate at the final look: increase "
    assert any(final in r and "p " in r for r in reasons), reasons


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
    # half for the final look; three anytime bounds (the ratio's, the baseline's, the canary's),
    # each at a third of the other half
    assert plan.increase_final_beta == pytest.approx(BETA / 4)
    assert history.baseline_bound.level == history.canary_bound.level == pytest.approx(BETA / 4 / 3)
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
