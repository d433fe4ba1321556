"""The warm-up dispersion learned from the stable's history (`analysis.dispersion`), and what the judge
does with it: bounds that cover the truth, analyses that keep their level, and gross regressions
rolled back sooner.

The A/A runs draw the stable's history and the analysis from one model: binomial counts, counts read
through ``increase()`` (twice the binomial variance), independent per-track jitter (the stable's own
factor as large as each track's) and shared incidents. The stable serves 80 % and each track 10 %.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from analysis.counts import KAPPA_MAX, CountState
from analysis.dispersion import bucket_dispersion, spread_for_weight, stable_dispersion
from analysis.histogram import KAPPA_MAX_BUCKETS
from analysis.judge import SequentialJudge
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts
from analysis.settings import AnalysisSettings, MetricSettings
from bench.history import HISTORY, LOOKS, SETTINGS, WEIGHT
from bench.history import analysis as _analysis
from bench.history import counts as _counts
from bench.scenarios import LE, bucket_probabilities


def test_binomial_history_bounds_the_dispersion_near_zero_and_says_what_it_learned() -> None:
    rng = np.random.default_rng(1)
    total = np.full(60, 3000.0)

    bound = stable_dispersion(rng.binomial(3000, 0.01, 60), total)

    assert bound.learned
    assert bound.intervals == 60
    assert 0.0 <= bound.kappa < 0.05
    assert "bound the per-track dispersion at" in bound.describe()


def test_the_bound_covers_a_jittered_stables_dispersion_in_nearly_every_history() -> None:
    # Per-track jitter of 30 %: kappa = 2 (exp(0.09) - 1) = 0.19 for two tracks like the stable.
    rng = np.random.default_rng(2)
    truth = 2 * math.expm1(0.3**2)
    covered = 0
    for _ in range(200):
        bad = [_counts(rng, 3000.0, 0.02, 0.3, 1.0)[0] for _ in range(HISTORY)]
        covered += stable_dispersion(bad, [3000.0] * HISTORY).kappa >= truth
    assert covered >= 190  # at 97.5 % confidence, 195 expected


def test_spread_multiplies_the_bound_and_kappa_max_caps_it() -> None:
    rng = np.random.default_rng(3)
    bad = [_counts(rng, 3000.0, 0.02, 0.1, 1.0)[0] for _ in range(HISTORY)]
    one = stable_dispersion(bad, [3000.0] * HISTORY)
    ten = stable_dispersion(bad, [3000.0] * HISTORY, spread=(10.0, 10.0))

    assert 0 < one.kappa < ten.kappa
    assert ten.kappa == pytest.approx(min(10 * one.kappa, KAPPA_MAX))
    assert stable_dispersion(bad, [3000.0] * HISTORY, spread=(100.0, 100.0)).kappa == KAPPA_MAX


@pytest.mark.parametrize(
    ("bad", "total"),
    [
        ([1.0, 2.0, 1.0, 0.0], [100.0] * 4),  # four intervals
        ([0.0] * 30, [100.0] * 30),  # no bad event
        ([1.0, 0.0, 1.0] + [0.0] * 27, [100.0] * 30),  # two
        ([], []),
    ],
)
def test_a_history_too_short_or_without_errors_leaves_the_bound_fixed_in_advance(
    bad: list[float], total: list[float]
) -> None:
    bound = stable_dispersion(bad, total)

    assert not bound.learned
    assert bound.kappa == KAPPA_MAX
    assert "too short" in bound.describe()


def test_intervals_without_requests_are_left_out() -> None:
    bound = stable_dispersion([3.0, 0.0, 2.0, 4.0, 0.0, 3.0, 2.0], [300.0, 0.0, 300, 300, 0, 300, 300])

    assert bound.intervals == 5


@pytest.mark.parametrize(
    ("bad", "total", "spread", "problem"),
    [
        ([1.0, 2.0], [100.0], (1.0, 1.0), "same length"),
        ([5.0], [4.0], (1.0, 1.0), "0 <= bad <= total"),
        ([-1.0], [4.0], (1.0, 1.0), "0 <= bad <= total"),
        ([math.nan], [4.0], (1.0, 1.0), "finite"),
        ([1.0], [4.0], (0.5, 1.0), "spread"),
        ([1.0], [4.0], (math.inf, 1.0), "spread"),
    ],
)
def test_bad_input_is_refused_by_name(
    bad: list[float], total: list[float], spread: tuple[float, float], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        stable_dispersion(bad, total, spread=spread)


def test_spread_for_weight_is_the_most_the_stable_can_outnumber_the_track() -> None:
    assert spread_for_weight(10) == 10
    assert spread_for_weight(50) == 2
    for wrong in (0.0, -5.0, 101.0, math.nan):
        with pytest.raises(ValueError, match="weight"):
            spread_for_weight(wrong)


def test_the_count_tests_warm_up_from_kappa_start_within_the_bound_fixed_in_advance() -> None:
    assert CountState.initial(1, tolerance=0.5, direction="increase").kappa[0] == KAPPA_MAX
    assert CountState.initial(1, tolerance=0.5, direction="increase", kappa_start=0.02).kappa[0] == 0.02
    assert CountState.initial(1, tolerance=0.5, direction="increase", kappa_start=3.0).kappa[0] == KAPPA_MAX
    with pytest.raises(ValueError, match="kappa_start"):
        CountState.initial(1, tolerance=0.5, direction="increase", kappa_start=-0.1)


@pytest.mark.parametrize(
    ("rps", "factor", "learned_at_most", "fixed_at_least"),
    [(10.0, 5.0, 2.5, 4), (50.0, 5.0, 1, 3), (10.0, 2.0, 15, 17)],
    ids=["x5-at-10", "x5-at-50", "x2-at-10"],
)
def test_a_clean_history_brings_the_rollback_forward(
    rps: float, factor: float, learned_at_most: float, fixed_at_least: float
) -> None:
    # The same runs (same seeds) with and without what the history taught: median look of rollback.
    looks = {}
    for learn in (True, False):
        rng = np.random.default_rng(11)
        runs = [_analysis(rng, rps, factor=factor, learn=learn) for _ in range(40)]
        assert all(decision == "rollback" for decision, _ in runs)
        looks[learn] = statistics.median(look for _, look in runs)
    assert looks[True] <= learned_at_most
    assert looks[False] >= fixed_at_least


@pytest.mark.parametrize(
    ("rps", "sigma", "inflation", "per_pod"),
    [(10.0, 0.0, 2.0, False), (500.0, 0.0, 2.0, False), (500.0, 0.5, 1.0, False), (500.0, 0.5, 1.0, True)],
    ids=["extrapolated-10", "extrapolated-500", "jitter-0.5-at-500", "per-pod-jitter-0.5-at-500"],
)
def test_a_learned_warm_up_keeps_the_level_quick(
    rps: float, sigma: float, inflation: float, per_pod: bool
) -> None:
    # 150 A/A runs: at most 4 % false rollbacks (these give 0-3 runs). A warm-up of 0 instead rolls
    # back about 8 % (extrapolated at 500) and 86 % (jitter) of such runs; without the spread
    # (100 / weight) the per-pod case rolls back 46 of these.
    rng = np.random.default_rng(5)
    runs = [_analysis(rng, rps, sigma=sigma, inflation=inflation, per_pod=per_pod) for _ in range(150)]
    assert sum(decision == "rollback" for decision, _ in runs) <= 6


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rps", "sigma", "inflation", "incidents", "per_pod"),
    [
        (0.5, 0.0, 1.0, False, False),
        (10.0, 0.0, 1.0, False, False),
        (10.0, 0.5, 1.0, False, False),
        (50.0, 0.5, 1.0, False, False),
        (500.0, 0.3, 1.0, False, False),
        (50.0, 0.5, 1.0, False, True),
        (500.0, 0.5, 1.0, False, True),
        (50.0, 0.0, 2.0, False, False),
        (10.0, 0.0, 1.0, True, False),
        (500.0, 0.0, 1.0, True, False),
    ],
)
def test_a_learned_warm_up_keeps_the_level(
    rps: float, sigma: float, inflation: float, incidents: bool, per_pod: bool
) -> None:
    # A/A, 400 runs of 40 looks each: at most 3 % false rollbacks (alpha is 5 %; the target
    # is 2 % over all families and 5 % in any one).
    rng = np.random.default_rng(int(rps * 10 + sigma * 100 + inflation + incidents + 7 * per_pod))
    runs = [
        _analysis(rng, rps, sigma=sigma, inflation=inflation, incidents=incidents, per_pod=per_pod)
        for _ in range(400)
    ]
    assert sum(decision == "rollback" for decision, _ in runs) <= 12


def test_a_replay_judges_with_the_dispersion_its_log_recorded() -> None:
    from analysis.backtest import judge_log
    from analysis.logs import MetricHeader, ObservationLog

    rng = np.random.default_rng(4)
    intervals = tuple(
        {
            "errors": PairedObservation(
                baseline=RatioCounts(*_counts(rng, 300.0, 0.01, 0.0, 1.0)),
                canary=RatioCounts(*_counts(rng, 300.0, 0.05, 0.0, 1.0)),
            )
        }
        for _ in range(LOOKS)
    )

    def rollback_look(header: MetricHeader) -> int:
        log = ObservationLog(interval_seconds=30, metrics={"errors": header}, intervals=intervals)
        final = list(judge_log(log, SETTINGS))[-1]
        assert final.decision == "rollback"
        return final.interval

    assert rollback_look(MetricHeader(type="ratio", dispersion=0.01)) < rollback_look(
        MetricHeader(type="ratio")
    )


# -- histograms: each finite bucket bound learns its own warm-up -----------------------------------

LATENCY = AnalysisSettings(
    metrics=[MetricSettings(name="latency", type="histogram", critical=True, tolerance=0.1)],
    max_duration_seconds=1200,
)


def _histogram(
    rng: np.random.Generator, n: float, scale: float, sigma: float, inflation: float
) -> HistogramCounts:
    """Latency log-normal around 100 ms (sigma 0.5) times `scale` and a mean-one jitter of the
    scale (sd `sigma`), in Prometheus's default buckets; `inflation` as in `_counts`."""
    jitter = rng.lognormal(-sigma * sigma / 2, sigma) if sigma else 1.0
    cells = rng.multinomial(
        int(n / inflation), np.diff(np.concatenate([[0.0], bucket_probabilities(scale * jitter)]))
    )
    return HistogramCounts(le=LE, counts=tuple(inflation * float(c) for c in np.cumsum(cells)))


def _latency_analysis(
    rng: np.random.Generator,
    rps: float,
    *,
    sigma: float = 0.0,
    inflation: float = 1.0,
    slower: float = 1.0,
    learn: bool = True,
) -> tuple[str, int]:
    """As `_analysis`, for the latency histogram alone; the canary `slower` times the baseline."""
    stable = rps * 30 * (100 - 2 * WEIGHT) / WEIGHT
    history = [_histogram(rng, stable, 1.0, sigma, inflation).counts for _ in range(HISTORY)]
    spread = spread_for_weight(WEIGHT)
    bounds = bucket_dispersion(LE, history, spread=(spread, spread))
    learned = {b: found.kappa for b, found in bounds.items() if found.learned}
    judge = SequentialJudge(LATENCY, interval_seconds=30, dispersion={"latency": learned} if learn else {})
    for i in range(LOOKS):
        baseline = _histogram(rng, rps * 30, 1.0, sigma, inflation)
        canary = _histogram(rng, rps * 30, slower, sigma, inflation)
        verdict = judge.update({"latency": PairedObservation(baseline=baseline, canary=canary)})
        if verdict.final:
            return verdict.decision, i + 1
    return judge.finish().decision, LOOKS


def test_each_bucket_bound_learns_its_own_bound_and_empty_ones_learn_nothing() -> None:
    rng = np.random.default_rng(6)
    history = [_histogram(rng, 2400.0, 1.0, 0.0, 1.0).counts for _ in range(HISTORY)]

    bounds = bucket_dispersion(LE, history)

    assert set(bounds) == set(LE[:-1])
    assert bounds[0.1].learned  # about half the requests above it
    assert bounds[0.1].kappa < 0.05
    assert not bounds[10.0].learned  # no request above 10 s: nothing to learn there
    assert bounds[10.0].kappa == KAPPA_MAX_BUCKETS
    with pytest.raises(ValueError, match="le must be increasing"):
        bucket_dispersion((0.1, 0.05, math.inf), [[1.0, 2.0, 3.0]])


def test_a_clean_history_brings_a_latency_rollback_forward() -> None:
    looks = {}
    for learn in (True, False):
        rng = np.random.default_rng(12)
        runs = [_latency_analysis(rng, 10.0, slower=1.25, learn=learn) for _ in range(30)]
        assert all(decision == "rollback" for decision, _ in runs)
        looks[learn] = statistics.median(look for _, look in runs)
    assert looks[True] <= 3
    assert looks[False] >= 8


@pytest.mark.parametrize(
    ("rps", "sigma", "inflation"),
    [(500.0, 0.2, 1.0), (500.0, 0.0, 2.0)],
    ids=["jitter-0.2-at-500", "extrapolated-500"],
)
def test_a_learned_latency_warm_up_keeps_the_level_quick(rps: float, sigma: float, inflation: float) -> None:
    # 100 A/A runs: at most 4 false rollbacks (these give 0-1). Starting the buckets from a warm-up
    # of 0 instead rolls back 99 of them (jitter) and 6 (extrapolated).
    rng = np.random.default_rng(8)
    runs = [_latency_analysis(rng, rps, sigma=sigma, inflation=inflation) for _ in range(100)]
    assert sum(decision == "rollback" for decision, _ in runs) <= 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rps", "sigma", "inflation"),
    [(2.0, 0.0, 1.0), (10.0, 0.1, 1.0), (50.0, 0.2, 1.0), (500.0, 0.1, 1.0), (50.0, 0.0, 2.0)],
)
def test_a_learned_latency_warm_up_keeps_the_level(rps: float, sigma: float, inflation: float) -> None:
    # A/A, 300 runs of 40 looks each: at most 3 % false rollbacks.
    rng = np.random.default_rng(int(rps * 10 + sigma * 100 + inflation))
    runs = [_latency_analysis(rng, rps, sigma=sigma, inflation=inflation) for _ in range(300)]
    assert sum(decision == "rollback" for decision, _ in runs) <= 9


def test_a_canary_that_turns_bad_just_before_its_promotion_is_held_back_then_rolled_back() -> None:
    # A benchmark scenario: good for 8 intervals at 50 req/s, then x5 errors. The error rate was
    # shown within tolerance at interval 7 and the learned warm-up lets the latency follow by
    # interval 10. Weighed by the running dispersion bound alone, the two bad intervals (66
    # errors against 20) passed for noise and the canary was nearly promoted. The first bad
    # interval leans towards a regression, which holds any promotion back, and the second now
    # sets the change detector off: the learned bound (0.04) caps the running one, which three
    # good-side residuals put at 0.37 (`analysis.counts`; the counts are binomial). Without the
    # cap the detector (a CUSUM of one-interval e-values then) alarmed at interval 15.
    from analysis.backtest import judge_log
    from bench.decisions import PRODUCT_SETTINGS
    from bench.scenarios import generate

    scenario = generate("errors-x5-midway", 50.0, 92_031)
    verdicts = list(judge_log(scenario.log, PRODUCT_SETTINGS))

    held = verdicts[8]  # interval 9, the first bad one
    assert held.decision == "continue"
    assert held.metrics["error-rate"].leans_worse
    assert "lean towards a regression" in held.metrics["error-rate"].reason
    final = verdicts[-1]
    assert (final.decision, final.interval) == ("rollback", 10)
    assert "changed for the worse" in final.metrics["error-rate"].reason
