"""The samples test (per-interval log-ratio of means, scale-invariant t mixture)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.samples import log_ratios, samples_test


def _tracks(
    rng: np.random.Generator, intervals: int, ratio: float
) -> tuple[list[list[float]], list[list[float]]]:
    level = 0.2 * rng.lognormal(0.0, 0.3, intervals)  # shared load, cancels in the ratio
    canary = [list(lv * ratio * rng.lognormal(0.0, 0.1, 2)) for lv in level]
    baseline = [list(lv * rng.lognormal(0.0, 0.1, 2)) for lv in level]
    return canary, baseline


def test_log_ratios_skip_intervals_without_positive_means() -> None:
    d, nc, nb = log_ratios([[1.0, 3.0], [], [0.0]], [[1.0, 1.0], [2.0], [1.0]])
    assert d.tolist() == pytest.approx([math.log(2.0)])
    assert (nc, nb) == (2, 2)


@pytest.mark.parametrize(
    ("canary", "baseline", "estimate"),
    [
        ([[1e308, 1e308], [1e308]], [[1e-10], [2e-10]], math.inf),  # a ratio beyond float's range
        ([[5e-324], [5e-324], [5e-324]], [[1.0], [2.0], [3.0]], 0.0),  # subnormal means
        ([[1e300], [1.0], [1e-300]], [[1e-300], [1.0], [1e300]], 1.0),
        ([[1.0, -1.0, 5e-324]] * 2, [[1.0]] * 2, 5e-324 / 3),  # a mean below the smallest float
    ],
)
def test_means_at_the_edges_of_float_give_numbers_not_errors(
    canary: list[list[float]], baseline: list[list[float]], estimate: float
) -> None:
    result = samples_test(canary, baseline)
    assert result.estimate == pytest.approx(estimate, abs=1e-300)
    assert result.interval[0] <= result.estimate <= result.interval[1]
    assert not math.isnan(result.evalue)
    assert not math.isnan(result.promote_evalue)


def test_aa_false_alarms_stay_below_alpha_under_continuous_monitoring() -> None:
    rng = np.random.default_rng(21)
    alpha, reps, crossed = 0.05, 150, 0
    for _ in range(reps):
        canary, baseline = _tracks(rng, 30, 1.0)
        for t in range(2, 31):
            if samples_test(canary[:t], baseline[:t]).evalue >= 1 / alpha:
                crossed += 1
                break
    assert crossed / reps <= alpha


def test_a_thirty_percent_increase_is_caught_and_a_good_canary_passes() -> None:
    rng = np.random.default_rng(22)
    canary, baseline = _tracks(rng, 8, 1.3)
    bad = samples_test(canary, baseline, tolerance=0.2, alpha=0.025)
    assert bad.evalue >= 40
    assert bad.promote_evalue < 1
    assert bad.interval[0] <= 1.3 <= bad.interval[1]
    canary, baseline = _tracks(rng, 10, 1.0)
    good = samples_test(canary, baseline, tolerance=0.2)
    assert good.promote_evalue >= 20
    assert good.evalue < 1


def test_swapping_tracks_flips_the_direction() -> None:
    rng = np.random.default_rng(23)
    canary, baseline = _tracks(rng, 6, 1.25)
    up = samples_test(canary, baseline, direction="increase")
    down = samples_test(baseline, canary, direction="decrease")
    assert down.evalue == pytest.approx(up.evalue, rel=1e-9)
    assert down.estimate == pytest.approx(1 / up.estimate)


def test_more_identical_intervals_never_weaken_the_evidence() -> None:
    rows = [([0.30, 0.34], [0.25, 0.27]), ([0.31, 0.33], [0.26, 0.25]), ([0.29, 0.35], [0.24, 0.27])]
    previous = 0.0
    for repeat in range(1, 6):
        canary = [c for c, _ in rows] * repeat
        baseline = [b for _, b in rows] * repeat
        e = samples_test(canary, baseline).evalue
        assert e >= previous
        previous = e
