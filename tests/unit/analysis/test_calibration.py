"""End to end: the default judge on the benchmark's scenarios (fixed seeds), A/A and bad canaries.

What a user of the default policy gets (one look per 30 s interval, 20 minutes, two metrics at
alpha 0.05): false rollbacks of canaries that behave like their baseline, in every good family
(independent per-track overdispersion, shared overdispersion, shared incidents, scrape gaps,
counts extrapolated by Prometheus's increase(), traffic that doubles and bursts) at
ordinary and high traffic; and bad canaries (from the start, turning bad in the middle of the
analysis, crashing for one interval) rolled back, never promoted. Slow: about 2,000 analyses.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from analysis.backtest import judge_log
from analysis.logs import MetricHeader, ObservationLog
from analysis.observations import HistogramCounts, PairedObservation
from analysis.settings import AnalysisSettings
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import INTERVAL_SECONDS, LE, MAX_INTERVALS, MIDWAY_INTERVAL, Truth, generate
from bench.tolerance import BOUNDARY_CELLS, LATENCY_TOLERANCE, decision

# The first test computes the module's outcomes (about 4 minutes of one core; longer while the
# other pytest worker keeps the second core busy): the timeout covers that fixture too.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

RUNS = 120
ALPHA = 0.05
BETA = 0.05


def _decisions(family: str, rps: float, runs: int, seed: int) -> list[tuple[str, int, int | None]]:
    """(decision, 1-based interval of the decision, 1-based first interval the canary is bad in)."""
    out = []
    for i in range(runs):
        scenario = generate(family, rps, seed + i)
        final = list(judge_log(scenario.log, PRODUCT_SETTINGS))[-1]
        turned = None if scenario.bad_from is None else scenario.bad_from + 1
        out.append((final.decision, final.interval, turned))
    return out


CELLS = [
    (family, rps)
    for family in (
        "plain",
        "overdispersed",
        "independent-overdispersion",
        "shared-incident",
        "scrape-gaps",
        "extrapolated",
        "error-free",
    )
    for rps in (10.0, 50.0)
] + [
    ("independent-overdispersion", 500.0),
    ("overdispersed", 500.0),
    # the largest jitter the judge is built for: 50 % on each track's error rate, 20 % on its
    # latency scale, every interval, nothing shared
    ("strong-independent-overdispersion", 10.0),
    ("strong-independent-overdispersion", 50.0),
    ("strong-independent-overdispersion", 500.0),
    # counts read through increase() with a 15 s scrape and 30 s intervals: each is twice a count
    # of half the interval (twice the binomial variance); lumpiest where events are few
    ("extrapolated", 2.0),
    ("extrapolated", 500.0),
    # the traffic doubles twice and bursts x20 for one interval, each track jittering on its own:
    # intervals of very unequal weight
    ("uneven-traffic", 10.0),
    ("uneven-traffic", 50.0),
    ("uneven-traffic", 500.0),
]


@pytest.fixture(scope="module")
def good_outcomes() -> dict[tuple[str, float], list[str]]:
    return {
        cell: [d for d, _, _ in _decisions(*cell, RUNS, seed=90_000 + 1_000 * index)]
        for index, cell in enumerate(CELLS)
    }


@pytest.mark.parametrize("cell", CELLS, ids=[f"{f} {r:g} rps" for f, r in CELLS])
def test_aa_false_rollbacks_stay_below_alpha_in_every_good_family(
    cell: tuple[str, float], good_outcomes: dict[tuple[str, float], list[str]]
) -> None:
    decisions = good_outcomes[cell]
    rate = decisions.count("rollback") / len(decisions)
    assert rate <= ALPHA, f"{cell}: {rate:.3f} false rollbacks"


def test_aa_false_rollbacks_over_all_good_families_stay_below_two_percent(
    good_outcomes: dict[tuple[str, float], list[str]],
) -> None:
    decisions = [d for cell in CELLS for d in good_outcomes[cell]]
    assert decisions.count("rollback") / len(decisions) <= 0.02
    assert "promote" in decisions  # and good canaries do get promoted at these traffic levels


@pytest.mark.parametrize(
    ("family", "rps", "within"),
    [
        ("outage", 2.0, 3),
        ("outage", 10.0, 2),
        ("errors-x5", 10.0, 8),
        ("errors-x2", 50.0, 20),
        # Latency is slower to convict than errors: its buckets allow for a larger jitter until
        # their own dispersion is known (`analysis.histogram.KAPPA_MAX_BUCKETS`).
        ("tail-only", 10.0, 14),
        ("latency+25%", 10.0, 18),
    ],
)
def test_bad_canaries_are_rolled_back(family: str, rps: float, within: int) -> None:
    results = _decisions(family, rps, 40, seed=91_000)
    assert all(d == "rollback" and t <= within for d, t, _ in results), results


@pytest.mark.parametrize("rps", [10.0, 50.0])
def test_a_canary_that_turns_bad_midway_is_never_promoted_and_caught_almost_as_fast_as_from_the_start(
    rps: float,
) -> None:
    # The canary is good for MIDWAY_INTERVAL intervals, then its errors go up fivefold. The earlier
    # good evidence must not shield it: the number of bad intervals the judge needs is within two
    # of what it needs when the canary is bad from the start.
    midway = _decisions("errors-x5-midway", rps, RUNS, seed=92_000)
    assert all(d == "rollback" for d, _, _ in midway), [r for r in midway if r[0] != "rollback"]
    assert {turned for _, _, turned in midway} == {MIDWAY_INTERVAL + 1}
    bad_seen = [t - MIDWAY_INTERVAL for _, t, _ in midway]
    assert min(bad_seen) >= 1  # never before the change
    from_start = [t for d, t, _ in _decisions("errors-x5", rps, RUNS, seed=92_000)]
    assert statistics.median(bad_seen) <= statistics.median(from_start) + 2, (bad_seen, from_start)
    assert max(bad_seen) <= 15


def test_a_canary_is_not_promoted_on_the_interval_it_turns_bad() -> None:
    # Found among 2,400 held-out canaries turning bad later than the benchmark's: good for 28
    # intervals amid independent overdispersion, then x5 errors (50 against 15 in the 29th), when
    # the latency had just been shown within tolerance. The detector's W_t stayed below 5 to 1;
    # the latest interval alone leaning bad (analysis.detection.LAST_BLOCK) keeps the promotion back.
    log = generate(
        "independent-overdispersion", 10.0, 528_051, truth=Truth(error_factor=5.0, from_interval=28)
    ).log
    verdicts = list(judge_log(log, PRODUCT_SETTINGS))
    assert all(v.decision != "promote" for v in verdicts)
    assert verdicts[-1].decision == "rollback"


@pytest.mark.parametrize("rps", [10.0, 50.0])
def test_a_one_interval_crash_is_never_promoted_and_rolled_back_at_once(rps: float) -> None:
    results = _decisions("one-interval-crash", rps, RUNS, seed=93_000)
    assert all(d == "rollback" for d, _, _ in results), [r for r in results if r[0] != "rollback"]
    at_once = [turned is not None and turned <= t <= turned + 1 for _, t, turned in results]
    assert sum(at_once) >= 0.95 * len(results), results


@pytest.mark.parametrize("cell", BOUNDARY_CELLS, ids=[f"{w} {f} {r:g} rps" for w, f, r in BOUNDARY_CELLS])
def test_a_canary_at_its_tolerance_is_promoted_in_at_most_beta_of_runs(cell: tuple[str, str, float]) -> None:
    # Both promotion routes count: the anytime e-value and the final look at 20 minutes.
    # The cells are those of bench/tolerance.py, which runs them 1000 times.
    decisions = [decision(cell, 94_000 + i) for i in range(RUNS)]
    assert decisions.count("promote") / len(decisions) <= BETA, cell


def test_good_canaries_of_ordinary_services_get_a_decision(
    good_outcomes: dict[tuple[str, float], list[str]],
) -> None:
    # The final look decides what the anytime bound could not: at 10 and 50 req/s per track most
    # good canaries are promoted within the 20 minutes (inconclusive counts as not promoted).
    for family, rps, share in (
        ("plain", 10.0, 0.75),
        ("plain", 50.0, 0.95),
        ("shared-incident", 10.0, 0.6),
        ("shared-incident", 50.0, 0.95),
        ("error-free", 10.0, 0.95),
        ("error-free", 50.0, 0.95),
    ):
        decisions = good_outcomes[(family, rps)]
        assert decisions.count("promote") / len(decisions) >= share, (family, rps)


def _mixture(x: np.ndarray) -> np.ndarray:
    # cache hits near 20 ms, misses near 200 ms
    fast, slow = stats.lognorm(0.3, scale=0.02).cdf(x), stats.lognorm(0.3, scale=0.2).cdf(x)
    return np.asarray(0.7 * fast + 0.3 * slow)


#: Latency distributions other than the benchmark's log-normal with sigma 0.5, each stretched by each
#: of `SCALES` (medians: log-normal and log-logistic 30-220 ms, gamma 25-185 ms, Weibull 28-207 ms,
#: two modes 7-52 ms).
SHAPES = {
    "log-normal sigma 1": stats.lognorm(1.0, scale=0.1).cdf,
    "gamma shape 2": stats.gamma(2.0, scale=0.05).cdf,
    "log-logistic shape 4": stats.fisk(4.0, scale=0.1).cdf,
    "Weibull shape 1.5": stats.weibull_min(1.5, scale=0.12).cdf,
    "two modes": _mixture,
}
SCALES = (0.3, 0.7, 1.0, 2.2)
#: Each track's latency scale varies on its own, every interval, by a mean-one log-normal factor
#: with this sigma (as in the strong independent-overdispersion family): the rollback test allows
#: for it, so that many of the canaries (about half) reach the final look instead of being rolled
#: back within a few intervals (with 0.1, 28 of 800 did at +20 %: the test would say nothing).
JITTER = 0.2
REQUESTS = 1500


def _histogram_log(cdf: Callable[[np.ndarray], np.ndarray], scale: float, seed: int) -> ObservationLog:
    """40 intervals of `REQUESTS` per track (50 req/s); every canary request slower by exactly the
    default latency tolerance (+20 %)."""
    finite = np.array(LE[:-1])
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(MAX_INTERVALS):
        jitter = rng.lognormal(-(JITTER**2) / 2, JITTER, 2)
        cells = [
            np.diff(np.concatenate([[0.0], cdf(finite / (scale * f * j)), [1.0]]))
            for f, j in zip((1.0, 1.0 + LATENCY_TOLERANCE), jitter, strict=True)
        ]
        baseline, canary = (
            HistogramCounts(le=LE, counts=tuple(float(c) for c in np.cumsum(rng.multinomial(REQUESTS, p))))
            for p in cells
        )
        rows.append({"latency": PairedObservation(baseline=baseline, canary=canary)})
    header = MetricHeader(type="histogram", unit="seconds", le=LE)
    return ObservationLog(
        interval_seconds=INTERVAL_SECONDS, metrics={"latency": header}, intervals=tuple(rows)
    )


def test_a_canary_at_the_latency_tolerance_is_not_promoted_whatever_the_latency_shape() -> None:
    # The buckets do not say where within them requests fall, so the promotion test interpolates
    # (analysis.histogram), which is exact only for some shapes; the intersection over the resolved
    # bounds keeps it valid when the uppermost one errs towards "worse", as log-linear
    # interpolation does above the mode. Canaries exactly at the default tolerance (+20 %), with
    # the product's latency settings and share of alpha. Following a log-normal within every
    # bucket (exact for the benchmark's) promoted 1-7 % of the gamma and Weibull ones per scale
    # (at +10 % and all of alpha on latency, 3-10 % of the Weibull ones); following it only where
    # the canary's probit slopes do not rise around the bucket, 2 in 2,000 runs over the five
    # shapes at seeds 196,000 on, both log-logistic (log-linear everywhere: none; with the slopes
    # allowed to rise by 10 %, 8).
    latency = tuple(m for m in PRODUCT_SETTINGS.metrics if m.name == "latency")
    # alone it would get all of alpha: the product's default gives it half (two metrics of one weight)
    settings = AnalysisSettings(metrics=latency, alpha=PRODUCT_SETTINGS.alpha / len(PRODUCT_SETTINGS.metrics))
    runs = 40
    promoted = {}
    reached_the_end = 0
    for (name, cdf), scale in itertools.product(SHAPES.items(), SCALES):
        logs = (_histogram_log(cdf, scale, 96_000 + i) for i in range(runs))
        decisions = [list(judge_log(log, settings))[-1].decision for log in logs]
        promoted[(name, scale)] = decisions.count("promote")
        reached_the_end += len(decisions) - decisions.count("rollback")
    # Not vacuous: a canary rolled back early never had a promotion to refuse.
    assert reached_the_end >= 0.25 * runs * len(SHAPES) * len(SCALES), reached_the_end
    for name in SHAPES:
        assert sum(n for (shape, _), n in promoted.items() if shape == name) <= BETA * runs * len(SCALES), (
            promoted
        )
    # Tails lighter than a log-normal's, where following one within a bucket would count too few
    # requests above the tolerance: the interpolation stays log-linear there.
    lighter = ("gamma shape 2", "Weibull shape 1.5")
    assert sum(n for (shape, _), n in promoted.items() if shape in lighter) <= 1, promoted
