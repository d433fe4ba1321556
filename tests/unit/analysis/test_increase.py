"""The absolute tolerance (``maxIncrease``): its bounds are valid at the margin under the jitter and
incidents the judge is built for, and it lets a service with few errors promote where a relative
tolerance cannot."""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import pytest
from pydantic import ValidationError

from analysis.ceiling import _BOUND_GRID, CeilingState, RateBound
from analysis.counts import KAPPA_MAX
from analysis.evidence import MetricPlan
from analysis.increase import FINAL_LEVEL_FACTOR, IncreaseSums, final_log_pvalue, increase_weight
from analysis.judge import SequentialJudge
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts
from analysis.outlook import increase_chance, increase_intervals
from analysis.settings import AnalysisSettings, MetricSettings
from analysis.verdicts import Verdict
from bench.increase import BOUNDARY, UNEVEN
from bench.increase import run as _analysis
from bench.increase import settings as _settings
from bench.scenarios import SPIKE, UNEVEN_STEPS

BETA = 0.05


def _plan(margin: float | None) -> MetricPlan:
    return SequentialJudge(_settings(margin), interval_seconds=30.0).plan.metrics[0]


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


#: (baseline rate, margin, req/s per track, the canary's and the baseline's jitter sd, shared x5
#: incidents, intervals)
FINAL_CELLS = (
    (0.0005, 0.002, 0.5, 0.5, 0.5, False, 240),
    (0.0005, 0.002, 2.0, 0.5, 0.5, False, 120),
    (0.0005, 0.002, 10.0, 0.0, 0.0, False, 40),
    (0.0001, 0.001, 50.0, 0.5, 0.5, False, 40),
    (0.01, 0.005, 50.0, 0.5, 0.5, False, 40),
    (0.01, 0.005, 10.0, 0.5, 0.0, False, 40),
    (0.01, 0.005, 500.0, 0.5, 0.0, False, 40),
    (0.01, 0.005, 500.0, 0.0, 0.5, False, 40),
    (0.002, 0.002, 500.0, 0.5, 0.0, False, 40),
    (0.002, 0.002, 500.0, 0.5, 0.5, False, 240),
    (0.002, 0.002, 500.0, 0.3, 0.3, True, 240),
    (0.05, 0.01, 500.0, 0.5, 0.0, False, 240),
    (0.05, 0.01, 500.0, 0.5, 0.5, True, 240),
)

Cell: TypeAlias = tuple[float, float, float, float, float, bool, int]


def _cell_id(cell: Cell) -> str:
    rate, margin, rps, canary, baseline, incidents, intervals = cell
    shared = " incidents" if incidents else ""
    return f"{rate:g} +{margin:g} {rps:g} rps jitter {canary:g}/{baseline:g}{shared} {intervals} looks"


def _final_looks(
    cell: Cell,
    *,
    share: float,
    excess: float,
    runs: int,
    seed: int,
    dispersion: float = KAPPA_MAX,
    traffic: np.ndarray | None = None,
) -> np.ndarray:
    """The final look's p-values of `runs` analyses (vectorized `IncreaseSums`, weights under the
    bound `dispersion`): each track's rate jittered on its own by a mean-one log-normal factor, a
    shared x5 incident in 5 % of intervals, the canary's traffic `share` times the baseline's and
    its rate the baseline's plus `excess`; `traffic`, one factor per interval, scales both tracks'."""
    rate, margin, rps, canary_jitter, baseline_jitter, incidents, intervals = cell
    rng = np.random.default_rng(seed)
    shape = (runs, intervals)
    scale = np.ones(intervals) if traffic is None else traffic
    n = rng.poisson(rps * 30.0 * share * scale, shape).astype(float)
    m = rng.poisson(rps * 30.0 * scale, shape).astype(float)

    def jittered(r: float, jitter: float, shared: np.ndarray) -> np.ndarray:
        factor = rng.lognormal(-(jitter**2) / 2, jitter, shape) if jitter else 1.0
        return np.minimum(r * factor * shared, 1.0)

    shared = np.where(rng.random(shape) < 0.05, 5.0, 1.0) if incidents else np.ones(shape)
    x = rng.binomial(n.astype(np.int64), jittered(rate + excess, canary_jitter, shared)).astype(float)
    y = rng.binomial(m.astype(np.int64), jittered(rate, baseline_jitter, shared)).astype(float)
    counted = (n > 0) & (m > 0)
    # The rate predicted for each interval: the pooled rate of the counted intervals before it,
    # the baseline's own in the first one (analysis.increase, the weights).
    events, requests = np.where(counted, x + y, 0.0), np.where(counted, n + m, 0.0)
    seen = np.cumsum(requests, axis=1) - requests
    past = (np.cumsum(events, axis=1) - events + 0.5) / (seen + 1.0)
    predicted = np.where(seen > 0, past, (y + 0.5) / (m + 1.0))
    w = np.where(counted, increase_weight(np.maximum(n, 1.0), np.maximum(m, 1.0), predicted, dispersion), 0.0)
    d = np.where(counted, w * (x / np.maximum(n, 1.0) - y / np.maximum(m, 1.0) - margin), 0.0)
    log_p = final_log_pvalue(
        d.sum(axis=1), (d * d).sum(axis=1), counted.sum(axis=1).astype(float),
        (w * w / np.maximum(n, 1.0)).sum(axis=1), (w * w / np.maximum(m, 1.0)).sum(axis=1),
        (y * counted).sum(axis=1) / (m * counted).sum(axis=1), margin,
    )  # fmt: skip
    return np.exp(log_p)


@pytest.mark.parametrize("share", [1.0, 0.25, 4.0], ids=["equal", "canary a quarter", "canary four times"])
@pytest.mark.parametrize("cell", FINAL_CELLS, ids=[_cell_id(c) for c in FINAL_CELLS])
def test_the_final_look_shows_a_canary_at_the_margin_within_it_in_at_most_its_share(
    cell: Cell, share: float
) -> None:
    # The final look's share of beta (three quarters of the absolute tolerance's half); it rejects at
    # FINAL_LEVEL_FACTOR of it (skew), and what it spends must stay within the share.
    level = _plan(0.002).increase_final_beta
    runs = 4000
    p = _final_looks(cell, share=share, excess=cell[1], runs=runs, seed=41)
    within = float(np.mean(p <= level * FINAL_LEVEL_FACTOR))
    # No Monte Carlo slack: the worst cell is 1.2 % of 1.875 % (at half the share instead of a
    # quarter it is 2.1 %, over the share, and the test fails).
    assert within <= level, within


@pytest.mark.parametrize("share", [1.0, 0.25, 4.0], ids=["equal", "canary a quarter", "canary four times"])
def test_beyond_the_design_range_the_final_look_spends_at_most_about_one_and_a_half_times_its_share(
    share: float,
) -> None:
    # The canary's rate alone jittering with sd 0.8 (the judge is built for 0.5): the excess the
    # docstring and BENCHMARKS state (about 2.6 % for the 1.875 % share), bounded here.
    level = _plan(0.002).increase_final_beta
    worst = 0.0
    for cell in ((0.002, 0.002, 500.0, 0.8, 0.0, False, 40), (0.05, 0.01, 50.0, 0.8, 0.0, False, 40)):
        p = _final_looks(cell, share=share, excess=cell[1], runs=4000, seed=41)
        worst = max(worst, float(np.mean(p <= level * FINAL_LEVEL_FACTOR)))
    assert level < worst <= 0.03, worst


def _uneven(intervals: int, burst: int | None) -> np.ndarray:
    """Traffic that doubles twice (as adaptive exposure raises it) and may burst x20 in one interval,
    as in the decision benchmark's uneven-traffic family."""
    factor = np.array([2.0 ** sum(i >= step for step in UNEVEN_STEPS) for i in range(intervals)])
    if burst is not None:
        factor[burst] *= SPIKE
    return factor


UNEVEN_CELLS = (
    (0.0005, 0.002, 2.0, 0.5, 0.5, False, 120),
    (0.01, 0.005, 500.0, 0.5, 0.0, False, 40),
    (0.002, 0.002, 500.0, 0.5, 0.0, False, 40),
    (0.05, 0.01, 500.0, 0.5, 0.5, True, 240),
)


@pytest.mark.parametrize("dispersion", [KAPPA_MAX, 0.1], ids=["fixed bound", "learned 0.1"])
@pytest.mark.parametrize("burst", [None, 5, 25], ids=["doubling", "burst early", "burst late"])
@pytest.mark.parametrize("share", [1.0, 0.25], ids=["equal", "canary a quarter"])
@pytest.mark.parametrize("cell", UNEVEN_CELLS, ids=[_cell_id(c) for c in UNEVEN_CELLS])
def test_where_traffic_doubles_or_bursts_the_weighted_look_keeps_its_share(
    cell: Cell, share: float, burst: int | None, dispersion: float
) -> None:
    # The weights are predicted from the traffic and the intervals before (and, in the first, from
    # the baseline's own count): the look keeps its level where one interval carries twenty times
    # the traffic of the others. Over the 13 cells above, three sizes, steady traffic, doubling and
    # bursts and the bound at 0, 0.1 and 0.5 (468 cells), the worst was 1.4 % of the 1.875 % share.
    level = _plan(0.002).increase_final_beta
    traffic = _uneven(cell[-1], burst)
    p = _final_looks(
        cell, share=share, excess=cell[1], runs=4000, seed=44, traffic=traffic, dispersion=dispersion
    )
    assert float(np.mean(p <= level * FINAL_LEVEL_FACTOR)) <= level


@pytest.mark.parametrize(
    "cell",
    [(0.0005, 0.005, 10.0, 0.3, 0.3, False, 40), (0.01, 0.005, 50.0, 0.3, 0.3, False, 40)],
    ids=_cell_id,
)
def test_one_interval_of_twenty_times_the_traffic_does_not_silence_the_final_look(cell: Cell) -> None:
    # A good canary whose traffic, already doubled twice, bursts x20 in the 26th of 40 intervals,
    # each track jittering on its own. With the Mantel-Haenszel weights (dispersion 0) that interval
    # is most of the sum, the sandwich sees one cluster and the look passes in 0 % and 26 % of runs;
    # weighted by its predicted dispersion, in 100 % and 99.9 %.
    level = _plan(0.002).increase_final_beta * FINAL_LEVEL_FACTOR
    traffic = _uneven(cell[-1], 25)
    weighted = _final_looks(cell, share=1.0, excess=0.0, runs=1000, seed=45, traffic=traffic)
    plain = _final_looks(cell, share=1.0, excess=0.0, runs=1000, seed=45, traffic=traffic, dispersion=0.0)
    assert float(np.mean(plain <= level)) < 0.5
    assert float(np.mean(weighted <= level)) >= 0.9


def test_the_final_look_decides_for_good_canaries_where_the_traffic_allows() -> None:
    # The power the final look is for: 0.05 % errors, +0.2 pp, an hour at 2 req/s per track.
    cell = (0.0005, 0.002, 2.0, 0.5, 0.5, False, 120)
    p = _final_looks(cell, share=1.0, excess=0.0, runs=400, seed=42)
    assert float(np.mean(p <= _plan(0.002).increase_final_beta * FINAL_LEVEL_FACTOR)) >= 0.7


@pytest.mark.parametrize(
    "cell",
    [
        (0.0005, 0.002, 2.0, 0.0, 0.0, False, 120),
        (0.0005, 0.002, 0.5, 0.0, 0.0, False, 240),
        (0.01, 0.005, 10.0, 0.0, 0.0, False, 20),
    ],
    ids=_cell_id,
)
def test_the_plans_chance_is_the_final_looks_pass_rate(cell: Cell) -> None:
    # The evidence plan's chance for the absolute route (analysis.outlook.increase_chance) against
    # the simulated look, for good canaries (80 %, 5.5 %, 12 %): a normal approximation to a look
    # on few events, rough but reported only (neither exposure nor the give-up rule acts on it).
    rate, margin, rps, _, _, _, intervals = cell
    level = _plan(0.002).increase_final_beta * FINAL_LEVEL_FACTOR
    simulated = float(np.mean(_final_looks(cell, share=1.0, excess=0.0, runs=1000, seed=43) <= level))
    chance = increase_chance(
        rate=rate, canary_per_interval=rps * 30, baseline_per_interval=rps * 30, intervals=intervals,
        margin=margin, level=level,
    )  # fmt: skip
    assert chance == pytest.approx(simulated, abs=0.12)
    assert chance >= simulated / 2  # not 0 where the look does pass


def test_a_metric_with_an_absolute_tolerance_reports_the_shorter_of_its_two_plans() -> None:
    # 0.2 % errors at 10 req/s: both routes have a plan; "+50 %" needs far more intervals than
    # "+0.2 pp", and the metric reports the shorter (either route suffices).
    def plan_after(margin: float | None, intervals: int = 10) -> tuple[int | None, bool, str]:
        rng = np.random.default_rng(12)
        judge = SequentialJudge(_settings(margin), interval_seconds=30.0)
        for _ in range(intervals):
            nb, nc = float(rng.poisson(300)), float(rng.poisson(300))
            pair = PairedObservation(
                RatioCounts(float(rng.binomial(int(nb), 0.002)), nb),
                RatioCounts(float(rng.binomial(int(nc), 0.002)), nc),
            )
            verdict = judge.update({"error-rate": pair})
        evidence = verdict.metrics["error-rate"]
        assert evidence.status == "undecided"
        assert evidence.plan is not None
        return evidence.plan.needed_intervals, evidence.plan.absolute, evidence.reason

    relative, absolute = plan_after(None), plan_after(0.002)
    assert relative[0] is not None
    assert absolute[0] is not None
    assert 11 <= absolute[0] < relative[0] / 3
    assert (relative[1], absolute[1]) == (False, True)
    assert f"it needs about {absolute[0]} intervals" in absolute[2]


def test_the_plan_is_never_shorter_than_the_fewest_intervals_the_look_can_pass_on() -> None:
    # The statistic is at most sqrt(T): at 100 req/s without baseline errors the normal
    # approximation alone said 7 intervals, where the look needs 11 at the default beta.
    level = _plan(0.002).increase_final_beta * FINAL_LEVEL_FACTOR
    need = increase_intervals(
        rate=0.0, canary_per_interval=3000.0, baseline_per_interval=3000.0, margin=0.002, level=level
    )
    assert need == 11
    eleven = IncreaseSums(0.002)
    for _ in range(11):
        eleven = eleven.step(0.0, 3000.0, 0.0, 3000.0)
    assert eleven.final_pvalue() <= level
    ten = IncreaseSums(0.002)
    for _ in range(10):
        ten = ten.step(0.0, 3000.0, 0.0, 3000.0)
    assert ten.final_pvalue() > level


def test_a_count_that_fits_no_rate_leaves_the_metric_without_a_plan() -> None:
    # A non-finite count gives the counts a non-finite dispersion: no plan, rather than an error,
    # for a relative tolerance as for an absolute one.
    for margin in (None, 0.002):
        judge = SequentialJudge(_settings(margin), interval_seconds=30.0)
        judge.update({"error-rate": PairedObservation(RatioCounts(3.0, 300.0), RatioCounts(math.nan, 300.0))})
        for _ in range(5):
            verdict = judge.update(
                {"error-rate": PairedObservation(RatioCounts(3.0, 300.0), RatioCounts(3.0, 300.0))}
            )
        assert verdict.metrics["error-rate"].plan is None


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
    # By hand: two intervals of 1,000 requests per track, 2 and 0 errors, then 1 and 1; margin
    # 0.01. w = 500; d = (2000 - 0 - 10000) / 2000 = -4, then (1000 - 1000 - 10000) / 2000 = -5;
    # sum d^2 = 41; the floor at the baseline's 0.05 % and the canary's 1.05 %:
    # 2 * 500^2 * (0.0105 * 0.9895 + 0.0005 * 0.9995) / 1000 = 5.4447; T = 9 / sqrt(41) on 1 df.
    two = IncreaseSums(0.01).step(2.0, 1000.0, 0.0, 1000.0).step(1.0, 1000.0, 1.0, 1000.0)
    t = 9.0 / math.sqrt(41.0)
    assert two.final_pvalue() == pytest.approx(0.5 - math.atan(t) / math.pi)  # Student's t on 1 df
    assert two.increase == pytest.approx((2 / 1000 + 0 / 1000) / 2)
    assert sums.step(math.nan, 300.0, 0.0, 200.0).final_pvalue() == 1.0
    assert IncreaseSums(0.002).final_pvalue() == 1.0
    # Weighted: each interval's weight from the pooled rate of the intervals before it, the first
    # from the baseline's own rate.
    weighted = IncreaseSums(0.002, dispersion=0.5)
    for row in rows:
        weighted = weighted.step(*row)
    events = np.cumsum(x + y) - (x + y)
    seen = np.cumsum(n + m) - (n + m)
    rate = np.where(seen > 0, (events + 0.5) / (seen + 1.0), (y + 0.5) / (m + 1.0))
    w = increase_weight(n, m, rate, 0.5)
    d = w * (x / n - y / m - 0.002)
    expected = final_log_pvalue(
        d.sum(), (d * d).sum(), 60.0, (w * w / n).sum(), (w * w / m).sum(), y.sum() / m.sum(), 0.002
    )
    assert weighted.final_pvalue() == pytest.approx(math.exp(float(expected)))
    assert weighted.final_pvalue() != pytest.approx(sums.final_pvalue())


def test_the_final_look_decides_only_at_the_maximum_duration() -> None:
    # A run whose absolute tolerance is shown only by the final look: before the last interval the
    # same sums already pass, yet the judge waits; at it, it promotes on the final look.
    rng = np.random.default_rng(0)
    judge = SequentialJudge(_settings(0.002), interval_seconds=30.0)
    level = _plan(0.002).increase_final_beta * FINAL_LEVEL_FACTOR
    passing_early = []
    for _ in range(40):
        nb, nc = int(rng.poisson(300)), int(rng.poisson(300))
        pair = PairedObservation(
            baseline=RatioCounts(float(rng.binomial(nb, 0.0005)), float(nb)),
            canary=RatioCounts(float(rng.binomial(nc, 0.0005)), float(nc)),
        )
        verdict = judge.update({"error-rate": pair})
        if verdict.final:
            break
        sums = judge.state.histories[0].increase
        assert sums is not None
        passing_early.append(sums.final_pvalue() <= level)
    assert verdict.final
    assert verdict.interval == 40
    assert sum(passing_early) >= 5  # the look would have passed well before the end
    assert verdict.decision == "promote"
    assert "at the final look: increase" in verdict.metrics["error-rate"].reason


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
    assert any(final in r for r in reasons), reasons


def test_where_traffic_bursts_the_judge_still_promotes_through_the_absolute_tolerance() -> None:
    # 0.2 % errors, +0.2 pp, 10 req/s per track that doubles twice and bursts x20 in the 26th of 40
    # intervals, each track jittering with sd 0.3: the final look decides most of these. With the
    # Mantel-Haenszel weights 54 % of 150 such canaries were promoted; weighted, 93 %.
    settings = _settings(0.002)
    verdicts = [
        _analysis(
            settings, baseline_rate=0.002, canary_rate=0.002, rps=10.0, seed=3000 + i, jitter=0.3,
            traffic=UNEVEN,
        )
        for i in range(60)
    ]  # fmt: skip
    promoted = [v for v in verdicts if v.decision == "promote"]
    assert len(promoted) >= 48, [v.decision for v in verdicts]
    final = "within +0.2 pp of the baseline's rate at the final look"
    assert sum(final in v.metrics["error-rate"].reason for v in promoted) >= 24


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
    # three quarters for the final look; three anytime bounds (the ratio's, the baseline's, the
    # canary's), each at a third of the last quarter
    assert plan.increase_final_beta == pytest.approx(BETA / 2 * 0.75)
    assert history.baseline_bound.level == history.canary_bound.level == pytest.approx(BETA / 8 / 3)
    without = SequentialJudge(_settings(None), interval_seconds=30.0).plan.metrics[0]
    assert (without.increase_beta, without.final_beta + without.promote_beta) == (0.0, pytest.approx(BETA))


@pytest.mark.parametrize(
    ("learned", "expected"),
    [(None, KAPPA_MAX), (0.1, 0.1), (0.0, 0.0), (0.8, KAPPA_MAX), (math.nan, KAPPA_MAX)],
    ids=["nothing learned", "learned", "learned none", "above the fixed bound", "nan"],
)
def test_the_final_looks_weights_take_the_bound_the_relative_test_starts_from(
    learned: float | None, expected: float
) -> None:
    # The weights' bound is the one fixed before the analysis: learned from the stable's history
    # where the flow learned one, at most the fixed bound, the fixed bound where nothing was learned.
    dispersion = None if learned is None else {"error-rate": learned}
    judge = SequentialJudge(_settings(0.002), interval_seconds=30.0, dispersion=dispersion)
    judge.update({"error-rate": PairedObservation(RatioCounts(1.0, 300.0), RatioCounts(1.0, 300.0))})
    sums = judge.state.histories[0].increase
    assert sums is not None
    assert sums.dispersion == pytest.approx(expected)


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


def test_a_look_over_k_intervals_weighs_k_times_one_with_a_kth_of_its_requests() -> None:
    for k in (1.0, 2.5, 4.0):
        spanned = increase_weight(8000.0, 6000.0, 0.02, 0.3, k)
        assert float(spanned) == pytest.approx(k * float(increase_weight(8000.0 / k, 6000.0 / k, 0.02, 0.3)))
    assert float(increase_weight(8000.0, 6000.0, 0.02, 0.3, 4.0)) > float(
        increase_weight(8000.0, 6000.0, 0.02, 0.3)
    )


def test_the_absolute_tolerances_sums_weigh_a_look_by_its_span() -> None:
    first = IncreaseSums(0.005, dispersion=0.3).step(60, 6000, 55, 6000)

    def added(*row: float, span: float = 1.0) -> float:
        return first.step(*row, span=span).weight - first.weight

    assert added(240, 24_000, 220, 24_000, span=4) == pytest.approx(4 * added(240, 6000, 220, 6000))
