"""The count tests' dispersion bound: how fast it may fall, and what a learned bound caps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from analysis.counts import KAPPA_FALL, KAPPA_MAX
from analysis.ratio import RatioState, ratio_test
from bench.final_look import final_look_level

# A good canary's error counts from a demo run through a real Prometheus (5 s intervals, read with
# increase(), hence the quarters): four intervals a little better than its baseline, then three a
# little worse; 0.97 % against 0.94 % over all seven.
CANARY_BAD = [238.75, 242.5, 235.0, 221.25, 261.25, 256.25, 241.25]
CANARY_TOTAL = [25026.25, 25047.5, 25075.0, 24793.75, 25282.5, 25097.5, 24883.75]
BASELINE_BAD = [253.8415, 268.75, 262.5, 253.75, 197.5, 213.75, 200.0]
BASELINE_TOTAL = [24818.8415, 24988.75, 24975.0, 25177.5, 25076.25, 24991.25, 24722.5]


def test_the_dispersion_bound_does_not_fall_to_binomial_at_once() -> None:
    # The three good-side residuals of intervals 2-4 happen to be small, so the upper estimate of
    # the dispersion is 0 after them. Taken at once, the first four intervals (divided by the
    # warm-up bound) counted for nothing against the next three (divided by 1): e-value 199, a
    # ratio estimate of 1.22, and the demo rolled its good canary back.
    result = ratio_test(CANARY_BAD, CANARY_TOTAL, BASELINE_BAD, BASELINE_TOTAL, tolerance=0.5)
    raw = (sum(CANARY_BAD) / sum(CANARY_TOTAL)) / (sum(BASELINE_BAD) / sum(BASELINE_TOTAL))
    assert result.evalue < 5.0
    assert abs(result.estimate / raw - 1.0) < 0.15, (result.estimate, raw)
    assert result.interval[0] < 1.0 < result.interval[1]


def test_the_dispersion_bound_halves_at_most_and_still_comes_down_to_the_data() -> None:
    # Binomial counts, a canary like its baseline: from the warm-up bound the dispersion factor
    # halves at most per interval, and within twenty intervals it is down to a few (binomial: 1).
    for seed in range(6):
        rng = np.random.default_rng(seed)
        state = RatioState.initial(tolerance=0.5)
        kappas = [float(state.sides[0].kappa[0])]
        for _ in range(20):
            state = state.step(rng.binomial(25_000, 0.01), 25_000, rng.binomial(25_000, 0.01), 25_000)
            kappas.append(float(state.sides[0].kappa[0]))
        assert kappas[0] == KAPPA_MAX
        assert all(later >= KAPPA_FALL * earlier for earlier, later in itertools.pairwise(kappas))
        assert 1.0 + kappas[-1] * 25_000 * 0.02 * 0.25 < 6.0, (seed, kappas)


def test_intervals_without_information_do_not_bring_the_bound_down() -> None:
    # Quiet intervals (traffic, no errors) after the fourth say nothing about the dispersion: the
    # bound must not keep falling through them, or the noisy three that follow carry the test
    # alone again.
    quiet = 10
    canary_bad = [*CANARY_BAD[:4], *[0.0] * quiet, *CANARY_BAD[4:]]
    canary_total = [*CANARY_TOTAL[:4], *[100.0] * quiet, *CANARY_TOTAL[4:]]
    baseline_bad = [*BASELINE_BAD[:4], *[0.0] * quiet, *BASELINE_BAD[4:]]
    baseline_total = [*BASELINE_TOTAL[:4], *[100.0] * quiet, *BASELINE_TOTAL[4:]]
    result = ratio_test(canary_bad, canary_total, baseline_bad, baseline_total, tolerance=0.5)
    assert result.evalue < 5.0, (result.evalue, result.estimate)


def _interval_dispersion(jitter: float, requests: int, rate: float, rng: np.random.Generator) -> float:
    """The variance of the canary's count given the pooled count, over its binomial variance, for
    equal tracks whose rates each take their own mean-one log-normal factor (sd `jitter`) every
    interval: simulated over 200,000 intervals."""
    factors = rng.lognormal(-jitter * jitter / 2, jitter, (2, 200_000))
    x = rng.binomial(requests, np.minimum(1.0, rate * factors[0]))
    pooled = x + rng.binomial(requests, np.minimum(1.0, rate * factors[1]))
    finite = (2 * requests - pooled) / (2 * requests - 1)
    return float(np.var(x - pooled / 2) / np.mean(pooled / 4 * finite))


@pytest.mark.parametrize(
    ("jitter", "requests", "rate"), [(0.0, 3000, 0.05), (0.5, 3000, 0.05), (0.5, 300, 0.05), (0.3, 300, 0.01)]
)
def test_the_plans_dispersion_is_the_one_the_counts_have(jitter: float, requests: int, rate: float) -> None:
    """The dispersion factor the evidence plan takes after 40 intervals (`plan_dispersion`), on
    average over 150 analyses, is within 20 % of the variance the counts really have (at least 1:
    a factor below it would plan too short, as the plan did when it assumed binomial traffic)."""
    rng = np.random.default_rng(11)
    truth = _interval_dispersion(jitter, requests, rate, rng)
    found = []
    for _ in range(150):
        state = RatioState.initial(tolerance=0.5)
        for factor_c, factor_b in rng.lognormal(-jitter * jitter / 2, jitter, (40, 2)):
            canary = rng.binomial(requests, min(1.0, rate * factor_c))
            baseline = rng.binomial(requests, min(1.0, rate * factor_b))
            state = state.step(canary, requests, baseline, requests)
        found.append(state.result(final=False).plan_dispersion)
    assert min(found) >= 1.0
    assert 0.8 * truth <= float(np.mean(found)) <= 1.25 * max(truth, 1.0), (truth, np.mean(found))


def test_with_either_direction_the_plan_takes_the_larger_sides_dispersion() -> None:
    """Each side counts only its own good-side residuals, so the two estimates differ; the plan
    takes the larger, as a histogram does over its sides."""
    rng = np.random.default_rng(0)  # the decrease side's is the larger here
    state = RatioState.initial(tolerance=0.5, direction="either")
    for factor_c, factor_b in rng.lognormal(-0.125, 0.5, (40, 2)):
        state = state.step(
            rng.binomial(3000, 0.05 * factor_c), 3000, rng.binomial(3000, 0.05 * factor_b), 3000
        )
    sides = [float(side.plan_dispersion()[0]) for side in state.sides]

    assert sides[1] > sides[0]
    assert state.result(final=False).plan_dispersion == max(sides)


def test_a_learned_bound_caps_the_running_one_until_the_analysis_contradicts_it() -> None:
    # 15,000 requests per track and interval at 1 % errors. Learned from a quiet stable, the bound
    # is 0.002; the analysis's own upper estimate from a few binomial intervals is several times
    # that, and it used to take over after three of them. It now stays at most the learned bound
    # while the counts agree with it, and rises above it once each track's rate jitters (50 %)
    # far more than the history said.
    for seed in range(4):
        rng = np.random.default_rng(seed)
        state = RatioState.initial(tolerance=0.5, kappa_start=0.002)
        agreeing = []
        for _ in range(12):
            state = state.step(rng.binomial(15_000, 0.01), 15_000, rng.binomial(15_000, 0.01), 15_000)
            agreeing.append(float(state.sides[0].kappa[0]))
        assert max(agreeing) <= 0.002, (seed, agreeing)
        contradicting = []
        for _ in range(12):
            canary, baseline = (0.01 * rng.lognormal(-0.125, 0.5) for _ in range(2))
            state = state.step(rng.binomial(15_000, canary), 15_000, rng.binomial(15_000, baseline), 15_000)
            contradicting.append(float(state.sides[0].kappa[0]))
        assert contradicting[-1] > 5 * 0.002, (seed, contradicting)


@pytest.mark.slow
def test_the_final_look_holds_its_level_where_traffic_is_uneven_and_each_track_jitters_on_its_own() -> None:
    """The final look's variance comes from the intervals' own scores. Where one interval holds
    far more traffic than the others, or the baseline is larger, and each track's rate varies on
    its own, squares around the fitted shift (tried, not kept) let canaries at the tolerance
    through above the nominal 2.5 %: up to 4.1 % in these cells divided by one less the largest
    interval's share of the events; divided by its square, 3.0 % on average over the 8 cells below
    with the larger baseline and no burst. The squares around zero stay at it
    (``bench/final_look.py``, 108 cells of 4,000 runs: unweighted, mean 1.34 %, the largest
    2.55 %, whose 95 % interval 2.1-3.1 % holds 2.5 %; weighted as today, mean 1.74 %, the
    largest 2.35 %). 2,000 canaries per cell at +50 % errors, 40 intervals, the traffic doubling
    at the 11th and 21st interval, with or without a x20 burst at the 6th."""
    cells = itertools.product((0.01, 0.05), (10.0, 500.0), (1.0, 3.0), (0.3, 0.5), (-1, 5))
    levels = {cell: final_look_level(*cell, runs=2_000, seed=index) for index, cell in enumerate(cells)}
    # each cell within three standard errors of 2.5 % (one is 0.35 points at 2,000 runs: a loose
    # bound against one cell's noise), all together below it
    assert max(levels.values()) <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 2_000), levels
    assert sum(levels.values()) / len(levels) <= 0.025, levels
    # where the baseline is three times the canary the scores are skewed (the canary's share of
    # the events is a third): the cells where the squared variant reached 3.0 % on average
    skewed = [level for (_, _, sizes, _, burst), level in levels.items() if sizes == 3.0 and burst < 0]
    assert sum(skewed) / len(skewed) <= 0.025, levels


@pytest.mark.slow
@pytest.mark.parametrize(("sigma", "burst"), [(0.3, 25), (0.5, 5)])
def test_the_final_look_shows_a_good_canary_where_its_busiest_intervals_are_no_more_informative(
    sigma: float, burst: int
) -> None:
    """Where each track's rate jitters on its own, an interval's information stops growing with
    its traffic: the final look weights each interval by the inverse of the dispersion factor its
    traffic predicts, so a burst of 20 times the traffic, or the doubled traffic of the last intervals,
    does not drown the others. Unweighted, the sum counted each interval by its events and showed
    these canaries (like their baseline, 5 % errors, 500 req/s per track at the start) within
    tolerance in 51 % (sigma 0.3, the burst at the 26th interval) and 71 % (sigma 0.5, at the
    6th) of runs; weighted, in 100 % and 89 %."""
    shown = final_look_level(0.05, 500.0, 1.0, sigma, burst, runs=1_000, seed=7, ratio=1.0)
    assert shown >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "rps"), [(0.05, 500.0), (0.3, 50.0)])
def test_the_final_look_holds_its_level_when_fewer_events_are_worse(rate: float, rps: float) -> None:
    """For ``direction="decrease"`` the test rejects for a large score rather than a small one,
    and the first interval's weight takes the canary's rate instead of the baseline's so that
    its term still leans away from a promotion. Canaries exactly at the bound (a third fewer
    events), each track's rate jittering with sigma 0.5, traffic doubling as in
    ``bench/final_look.py``, 40 intervals: within three standard errors of 2.5 % (measured 2.1 %
    and 1.6 %). A guard of this direction's level as a whole: the first interval's choice moves
    it by about 0.2 points, which 4,000 runs cannot see."""
    runs = 4_000
    shown = final_look_level(rate, rps, 1.0, 0.5, -1, runs=runs, seed=11, direction="decrease")
    assert shown <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / runs)


def test_the_final_look_weighs_a_look_over_k_intervals_by_the_jitter_of_k_intervals() -> None:
    """A look read back over looks without data (span 4) weighs like one interval with a quarter of
    its requests and the same events: its own jitter is that of four intervals, not of one with all
    their traffic (the weight stays a function of traffic known before the counts)."""
    start = RatioState.initial(tolerance=0.5, kappa_start=0.05).step(30, 3000, 25, 3000)

    def final_score(state: RatioState) -> float:
        return float(state.sides[0].final_s[0] - start.sides[0].final_s[0])

    spanned = final_score(start.step(120, 12_000, 100, 12_000, span=4))
    assert spanned == pytest.approx(final_score(start.step(120, 3000, 100, 3000)), rel=1e-12)
    assert abs(spanned) > 1.5 * abs(final_score(start.step(120, 12_000, 100, 12_000)))


def test_a_look_over_k_intervals_counts_a_kth_of_its_level_in_the_dispersion_estimate() -> None:
    """Its residual shows the jitter of its span's intervals (kappa * level / span over the
    binomial): with its whole level in the denominator the estimate would come out too low."""
    state = RatioState.initial(tolerance=0.5, kappa_start=0.05)
    for bad in (30, 28, 33, 31):
        state = state.step(bad, 3000, 30, 3000)
    before = float(state.sides[0].good_level[0])
    good_side = (100, 12_000, 140, 12_000)  # the canary below the baseline: a good-side residual

    def added(span: float) -> float:
        return float(state.step(*good_side, span=span).sides[0].good_level[0]) - before

    assert added(1) > 0
    assert added(4) == pytest.approx(added(1) / 4, rel=1e-12)
