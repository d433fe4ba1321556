"""The ratio (count) test: calibration under continuous monitoring, power, and its properties.

Calibration runs many replications at once (one column per replication) and looks after every
interval, as the judge does; a false alarm is the e-value ever reaching ``1/alpha``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.counts import confidence_sequence, count_evidence
from analysis.ratio import ratio_test

INTERVALS = 40


def _first_crossing(
    x: np.ndarray, y: np.ndarray, n: np.ndarray, m: np.ndarray, threshold: float, *, promote: bool = False
) -> np.ndarray:
    """Interval (1-based) at which each column's e-value first reaches `threshold`; 0 if never."""
    first = np.zeros(x.shape[1], dtype=int)
    for t in range(1, x.shape[0] + 1):
        ev = count_evidence(x[:t], y[:t], n[:t], m[:t], tolerance=0.5, direction="increase")
        log_e = ev.log_promote_evalue if promote else ev.log_evalue
        newly = (first == 0) & (log_e >= math.log(threshold))
        first[newly] = t
    return first


def _simulate(
    seed: int,
    reps: int,
    *,
    rate: float = 0.01,
    requests: float = 300.0,
    ratio: float = 1.0,
    own_cv: float = 0.0,
    shared_cv: float = 0.0,
    incident: tuple[int, int] | None = None,
    canary_share: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = rng.poisson(2 * requests, (INTERVALS, 1)).astype(float)
    n = np.round(total * canary_share)
    m = total - n
    shape = (INTERVALS, reps)
    shared = rng.gamma(1 / shared_cv**2, shared_cv**2, shape) if shared_cv else np.ones(shape)
    if incident is not None:
        shared[incident[0] : incident[1]] *= 8.0
    own_c = rng.gamma(1 / own_cv**2, own_cv**2, shape) if own_cv else np.ones(shape)
    own_b = rng.gamma(1 / own_cv**2, own_cv**2, shape) if own_cv else np.ones(shape)
    x = rng.poisson(n * rate * ratio * shared * own_c).astype(float)
    y = rng.poisson(m * rate * shared * own_b).astype(float)
    return x, y, n, m


CALIBRATION = {
    "binomial 2 rps": {"requests": 60.0},
    "binomial 10 rps": {"requests": 300.0},
    "binomial 50 rps": {"requests": 1500.0},
    "unequal split": {"requests": 300.0, "canary_share": 0.2},
    "shared overdispersion": {"requests": 1500.0, "shared_cv": 1.0},
    "overdispersed tracks": {"requests": 1500.0, "shared_cv": 0.5, "own_cv": 0.3},
    "shared incident": {"requests": 300.0, "incident": (12, 16)},
}


@pytest.mark.parametrize("case", list(CALIBRATION), ids=list(CALIBRATION))
def test_false_alarms_stay_below_alpha_under_continuous_monitoring(case: str) -> None:
    alpha = 0.05
    x, y, n, m = _simulate(seed=11, reps=400, **CALIBRATION[case])  # type: ignore[arg-type]
    crossed = _first_crossing(x, y, n, m, 1 / alpha)
    rate = float(np.mean(crossed > 0))
    assert rate <= alpha, f"{case}: {rate:.3f} of A/A runs crossed 1/alpha"


def test_doubled_error_rate_at_10_rps_is_caught_within_the_analysis() -> None:
    # 1 % -> 2 % at 10 requests/s per track, alpha 0.025 (one of two metrics' share of 0.05).
    # The dispersion bound fixed in advance (jitter up to 0.5) makes this slower than a binomial
    # test would be: about 5 times the 111 s information floor (see BENCHMARKS.md).
    x, y, n, m = _simulate(seed=12, reps=300, ratio=2.0)
    crossed = _first_crossing(x, y, n, m, 40.0)
    assert np.mean(crossed > 0) >= 0.97
    assert np.median(np.where(crossed > 0, crossed, 99)) <= 20


def test_five_times_the_error_rate_is_caught_within_three_minutes() -> None:
    x, y, n, m = _simulate(seed=13, reps=200, ratio=5.0)
    crossed = _first_crossing(x[:6], y[:6], n[:6], m[:6], 40.0)
    assert np.mean(crossed > 0) >= 0.95


def test_promotion_evidence_grows_for_a_good_canary_and_not_for_a_bad_one() -> None:
    x, y, n, m = _simulate(seed=14, reps=200, requests=1500.0)
    good = _first_crossing(x, y, n, m, 20.0, promote=True)
    assert np.mean(good > 0) >= 0.9
    x, y, n, m = _simulate(seed=15, reps=300, requests=1500.0, ratio=1.5)  # at the tolerance bound
    bad = _first_crossing(x, y, n, m, 20.0, promote=True)
    assert np.mean(bad > 0) <= 0.05


def test_swapping_canary_and_baseline_flips_the_direction() -> None:
    c_bad, c_total = [9, 7, 12, 8, 10], [600, 610, 590, 605, 600]
    b_bad, b_total = [4, 5, 3, 6, 4], [598, 602, 611, 590, 600]
    up = ratio_test(c_bad, c_total, b_bad, b_total, direction="increase")
    down = ratio_test(b_bad, b_total, c_bad, c_total, direction="decrease")
    assert down.evalue == pytest.approx(up.evalue, rel=1e-9)
    assert down.promote_evalue == pytest.approx(up.promote_evalue, rel=1e-9)
    assert down.estimate == pytest.approx(1 / up.estimate, rel=1e-9)
    assert down.interval[0] == pytest.approx(1 / up.interval[1], rel=1e-6)
    wrong_way = ratio_test(b_bad, b_total, c_bad, c_total, direction="increase")
    assert wrong_way.evalue < 1 < up.evalue


@pytest.mark.parametrize("ratio", [1.5, 2.0, 3.0])
def test_more_data_never_weakens_the_evidence_for_a_fixed_effect(ratio: float) -> None:
    base, total = 3.0, 300.0
    previous = 0.0
    for intervals in range(1, 25):
        r = ratio_test(
            [base * ratio] * intervals, [total] * intervals, [base] * intervals, [total] * intervals
        )
        assert r.evalue >= previous * (1 - 1e-12)
        previous = r.evalue
    doubled = ratio_test([2 * base * ratio] * 24, [2 * total] * 24, [2 * base] * 24, [2 * total] * 24)
    assert doubled.evalue >= previous


def test_the_confidence_interval_covers_the_true_ratio() -> None:
    x, y, n, m = _simulate(seed=16, reps=200, ratio=1.7, requests=1500.0)
    covered = 0
    for j in range(x.shape[1]):
        lo, hi = confidence_sequence(x[:, j], y[:, j], n[:, 0], m[:, 0], alpha=0.05)
        covered += lo <= 1.7 <= hi
    assert covered / x.shape[1] >= 0.95


def test_a_canary_only_jump_keeps_its_weight_and_a_shared_one_does_not_count_against_it() -> None:
    # The jump comes at the 10th interval, once the dispersion bound has come down from its
    # warm-up value (`analysis.counts.KAPPA_FALL`).
    calm = [3.0] * 12
    total = [300.0] * 12
    canary_jump = ratio_test([*calm[:9], 60.0, *calm[10:]], total, calm, total)
    shared_jump = ratio_test([*calm[:9], 60.0, *calm[10:]], total, [*calm[:9], 60.0, *calm[10:]], total)
    assert canary_jump.evalue > 1e5  # one interval in which only the canary failed is decisive
    assert shared_jump.evalue < 2  # both tracks failed alike: not the canary's fault


def test_no_events_at_all_gives_no_evidence_either_way() -> None:
    r = ratio_test([0] * 10, [300] * 10, [0] * 10, [300] * 10)
    assert r.evalue == pytest.approx(1.0)
    assert r.promote_evalue == pytest.approx(1.0)
    assert math.isnan(r.estimate)
    assert r.interval == (0.0, math.inf)


def test_intervals_without_traffic_on_a_track_are_skipped() -> None:
    with_gap = ratio_test([5, 3, 0, 6], [300, 300, 0, 300], [2, 3, 4, 1], [300, 300, 300, 300])
    without = ratio_test([5, 3, 6], [300, 300, 300], [2, 3, 1], [300, 300, 300])
    assert with_gap.intervals == 3
    assert with_gap.evalue == pytest.approx(without.evalue)
