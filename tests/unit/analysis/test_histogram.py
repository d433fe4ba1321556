"""The histogram test: tail and median regressions, tolerance on quantiles, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.histogram import HistogramState, histogram_test, interpolate_cumulative

LE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)


def _cumulative(scale: float, tail_share: float = 0.0, tail_seconds: float = 0.6) -> np.ndarray:
    le = np.array(LE[:-1])
    body = stats.lognorm.cdf(le, 0.5, scale=0.1 * scale)
    tail = stats.lognorm.cdf(np.maximum(le - tail_seconds, 1e-12), 0.5, scale=0.1 * scale) * (
        le > tail_seconds
    )
    return np.append((1 - tail_share) * body + tail_share * tail, 1.0)


def _draw(rng: np.random.Generator, intervals: int, requests: float, cumulative: np.ndarray) -> np.ndarray:
    cells = np.diff(np.concatenate([[0.0], cumulative]))
    rows = [np.cumsum(rng.multinomial(rng.poisson(requests), cells)) for _ in range(intervals)]
    return np.array(rows, dtype=float)


def test_interpolation_is_linear_in_the_first_bucket_and_log_linear_after() -> None:
    le = (0.1, 0.25, 0.5, math.inf)
    counts = np.array([[50.0, 80.0, 95.0, 100.0]])
    assert interpolate_cumulative(le, counts, 0.05)[0] == pytest.approx(25.0)
    assert interpolate_cumulative(le, counts, 0.2)[0] == pytest.approx(50 + 30 * math.log(2) / math.log(2.5))
    assert interpolate_cumulative(le, counts, 0.25)[0] == pytest.approx(80.0)
    assert interpolate_cumulative(le, counts, 0.7)[0] == 95.0  # beyond the last finite bound: conservative


def test_within_a_bucket_the_interpolation_follows_a_log_normal_where_the_shape_allows() -> None:
    """At a log-normal's median (100 ms, sigma 0.5) the share of requests at or below 120 ms is
    Phi(log 1.2 / 0.5) = 0.642; log-linear interpolation within 100-250 ms says 0.593. Given the
    distribution's own shares at the bounds the interpolation is exact. For a Weibull distribution
    (a lighter tail: its probit rises faster from bucket to bucket) a log-normal would count too
    few requests above 120 ms, and the interpolation stays log-linear; so it does for a tail only a
    little lighter than a log-normal's."""
    finite = np.array(LE[:-1])
    log_normal = stats.lognorm.cdf(finite, 0.5, scale=0.1)
    counts = np.append(log_normal, 1.0)[None, :] * 10_000
    assert interpolate_cumulative(LE, counts, 0.12)[0] == pytest.approx(5_930, abs=5)
    exact = 10_000 * stats.norm.cdf(math.log(1.2) / 0.5)
    assert interpolate_cumulative(LE, counts, 0.12, shape=log_normal)[0] == pytest.approx(exact)

    weibull = stats.weibull_min.cdf(finite, 1.5, scale=0.12)
    counts = np.append(weibull, 1.0)[None, :] * 10_000
    followed = interpolate_cumulative(LE, counts, 0.12, shape=weibull)[0]
    assert followed == interpolate_cumulative(LE, counts, 0.12)[0]
    assert followed < 10_000 * stats.weibull_min.cdf(0.12, 1.5, scale=0.12)  # counts more above

    # Nor where the probit's slope rises only a little: a log skew-normal with a lighter upper tail
    # (slopes rising 9 % and then 5 % across the buckets around 100-250 ms).
    skewed = stats.skewnorm.cdf(np.log(finite / 0.1304), -1, scale=0.5)
    counts = np.append(skewed, 1.0)[None, :] * 10_000
    linear = interpolate_cumulative(LE, counts, 0.12)[0]
    assert interpolate_cumulative(LE, counts, 0.12, shape=skewed)[0] == linear

    # A bound of 0 below the bucket (a log has no logarithm there): log-linear, no error.
    zero = (0.0, 0.05, 0.1, 0.25, 0.5, math.inf)
    shares = np.array([0.01, 0.08, 0.5, 0.97, 0.9997])
    counts = np.append(shares, 1.0)[None, :] * 10_000
    linear = interpolate_cumulative(zero, counts, 0.06)[0]
    assert interpolate_cumulative(zero, counts, 0.06, shape=shares)[0] == linear


def test_a_canary_like_its_baseline_is_shown_within_tolerance_sooner_where_the_buckets_fit_a_log_normal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both tracks exactly the benchmark's log-normal, 300 requests per interval, +20 % allowed:
    with the form within the bucket above the median taken from the canary's earlier intervals
    the promotion e-value reaches 20 sooner than with log-linear interpolation, and the plan
    credits the 100 ms bound with the whole of its margin (0.50 slower than 100 ms against
    0.36 slower than 120 ms: +40 % on the share, where log-linear interpolation says +23 %)."""
    expected = _cumulative(1.0) * 300

    def run() -> tuple[int, HistogramState]:
        state = HistogramState.initial(LE, tolerance=0.2)
        first = 0
        for interval in range(1, 41):
            state = state.step(expected, expected)
            if not first and state.result(final=False).promote_evalue >= 20:
                first = interval
        return first, state

    followed, state = run()
    margins = {round(share, 2): tolerance for share, tolerance, _ in state.result(final=False).planned}
    assert margins[0.5] == pytest.approx(0.5 / (1 - stats.norm.cdf(math.log(1.2) / 0.5)) - 1, abs=0.01)
    monkeypatch.setattr("analysis.histogram.CONCAVE_SLACK", -math.inf)  # log-linear everywhere
    linear, state = run()
    assert 0 < followed < linear
    margins = {round(share, 2): tolerance for share, tolerance, _ in state.result(final=False).planned}
    assert margins[0.5] == pytest.approx(0.23, abs=0.01)


def test_a_tail_only_regression_is_caught_at_the_tail() -> None:
    rng = np.random.default_rng(1)
    # 12 intervals: until the buckets' own dispersion is known, the test allows for a log-sd 1 jitter
    # of each track's share beyond each bound (`KAPPA_MAX_BUCKETS`), which slows it at first.
    base = _draw(rng, 12, 300, _cumulative(1.0))
    tail = _draw(rng, 12, 300, _cumulative(1.0, tail_share=0.05))
    r = histogram_test(LE, tail, base, alpha=0.025)
    assert r.evalue >= 40
    assert r.threshold in (0.5, 1.0)
    assert r.estimate > 5


def test_a_median_shift_is_caught_and_not_called_within_tolerance() -> None:
    # Twelve intervals: the buckets' dispersion bound comes down from its warm-up value over the
    # first eight or so (`analysis.histogram.KAPPA_FALL_BUCKETS`).
    rng = np.random.default_rng(2)
    base = _draw(rng, 12, 300, _cumulative(1.0))
    slow = _draw(rng, 12, 300, _cumulative(1.25))
    r = histogram_test(LE, slow, base, tolerance=0.1, alpha=0.025)
    assert r.evalue >= 40
    assert r.promote_evalue < 1


def test_a_good_canary_is_shown_within_tolerance_at_high_traffic() -> None:
    rng = np.random.default_rng(3)
    base = _draw(rng, 15, 1500, _cumulative(1.0))
    same = _draw(rng, 15, 1500, _cumulative(1.0))
    r = histogram_test(LE, same, base, tolerance=0.1)
    assert r.promote_evalue >= 20
    assert r.evalue < 20


def test_a_canary_slower_than_the_tolerance_is_not_shown_within_it() -> None:
    rng = np.random.default_rng(4)
    base = _draw(rng, 40, 1500, _cumulative(1.0))
    slow = _draw(rng, 40, 1500, _cumulative(1.15))
    assert histogram_test(LE, slow, base, tolerance=0.1).promote_evalue < 1


def test_swapping_tracks_flips_the_direction() -> None:
    rng = np.random.default_rng(5)
    base = _draw(rng, 6, 300, _cumulative(1.0))
    slow = _draw(rng, 6, 300, _cumulative(1.3))
    up = histogram_test(LE, slow, base, direction="increase")
    down = histogram_test(LE, base, slow, direction="decrease")
    assert down.evalue == pytest.approx(up.evalue, rel=1e-6)
    assert histogram_test(LE, base, slow, direction="increase").evalue < 1


@pytest.mark.parametrize(
    ("requests", "jitter"), [(300.0, 0.0), (1500.0, 0.03)], ids=["10 rps", "50 rps jittery"]
)
def test_aa_false_alarms_stay_below_alpha(requests: float, jitter: float) -> None:
    rng = np.random.default_rng(6)
    alpha, crossed = 0.05, 0
    reps = 60
    for _ in range(reps):
        shared = rng.lognormal(0.0, 0.1, 30)
        rows_c, rows_b = [], []
        for s in shared:
            rows_c.append(
                _draw(rng, 1, requests, _cumulative(s * rng.lognormal(0.0, jitter) if jitter else s))[0]
            )
            rows_b.append(
                _draw(rng, 1, requests, _cumulative(s * rng.lognormal(0.0, jitter) if jitter else s))[0]
            )
        c, b = np.array(rows_c), np.array(rows_b)
        for t in range(3, 31, 3):
            if histogram_test(LE, c[:t], b[:t]).evalue >= 1 / alpha:
                crossed += 1
                break
    assert crossed / reps <= alpha


def test_the_reported_interval_contains_the_reported_estimate() -> None:
    # Tracks that disagree everywhere (no ratio fits: every grid point is rejected) used to report
    # the best grid point as a one-point interval next to an interpolated estimate outside it.
    canary = [
        [0, 688, 2493], [915, 3841, 3960], [4453, 4453, 4453], [0, 4432, 4432], [136, 1718, 1724],
        [251, 641, 878], [1940, 3305, 4520], [941, 2096, 2661], [0, 1207, 1207],
    ]  # fmt: skip
    baseline = [
        [587, 1384, 3616], [736, 1654, 4721], [404, 868, 1281], [0, 4322, 4477], [1869, 2883, 3729],
        [164, 282, 376], [685, 1111, 3441], [1050, 1268, 1941], [752, 1833, 2494],
    ]  # fmt: skip
    r = histogram_test((0.1, 0.5, math.inf), np.array(canary, float), np.array(baseline, float))
    assert math.isfinite(r.estimate)
    assert r.interval[0] <= r.estimate <= r.interval[1]


def _shifted(rng: np.random.Generator, intervals: int, requests: float, shift: float) -> np.ndarray:
    """Draws from `_cumulative`'s log-normal with every request `shift` seconds slower."""
    le = np.array(LE[:-1]) - shift
    body = np.where(le > 0, stats.lognorm.cdf(np.maximum(le, 1e-12), 0.5, scale=0.1), 0.0)
    return _draw(rng, intervals, requests, np.append(body, 1.0))


def _promoted_at(canary: np.ndarray, baseline: np.ndarray, shift: float, level: float = 20.0) -> int | None:
    """The first look (1-based) at which the promotion e-value reached `level`, or None."""
    state = HistogramState.initial(LE, tolerance=0.1, shift=shift)
    for t, (c, b) in enumerate(zip(canary, baseline, strict=True), start=1):
        state = state.step(c, b)
        if state.result(final=False).promote_evalue >= level:
            return t
    return None


def test_an_absolute_latency_tolerance_shows_a_canary_like_its_baseline_sooner() -> None:
    # At 10 req/s per track the median bound decides: +10 % of 100 ms is 10 ms, +20 ms twice that.
    rng = np.random.default_rng(11)
    sooner = 0
    for _ in range(20):
        base, same = _draw(rng, 40, 300, _cumulative(1.0)), _draw(rng, 40, 300, _cumulative(1.0))
        relative, absolute = _promoted_at(same, base, 0.0), _promoted_at(same, base, 0.02)
        assert absolute is not None
        sooner += relative is None or absolute < relative
    assert sooner >= 18


def test_a_canary_within_the_absolute_tolerance_is_shown_within_it() -> None:
    rng = np.random.default_rng(12)
    base, slower = _draw(rng, 40, 1500, _cumulative(1.0)), _shifted(rng, 40, 1500, 0.008)
    assert _promoted_at(slower, base, 0.02) is not None
    assert histogram_test(LE, slower, base, tolerance=0.1, shift=0.02).promote_evalue >= 20


def test_a_canary_at_the_absolute_tolerance_is_rarely_shown_within_it_in_a_short_check() -> None:
    # The quick form of the calibration below (which the slow suite runs with 150 runs per cell).
    rng = np.random.default_rng(14)
    runs = 40
    crossed = sum(
        _promoted_at(_shifted(rng, 40, 300.0, 0.02), _draw(rng, 40, 300.0, _cumulative(1.0)), 0.02)
        is not None
        for _ in range(runs)
    )
    assert crossed <= 2


@pytest.mark.slow
@pytest.mark.parametrize(("shift", "requests"), [(0.02, 300.0), (0.02, 15_000.0), (0.05, 1500.0)])
def test_a_canary_exactly_at_the_absolute_tolerance_is_not_shown_within_it(
    shift: float, requests: float
) -> None:
    # Every request `shift` slower: at the bounds below 0.2 s (where the shift is the larger
    # tolerance) the canary is exactly at the null, looked at 40 times, 150 runs. beta is 0.05.
    rng = np.random.default_rng(13)
    runs = 150
    crossed = sum(
        _promoted_at(_shifted(rng, 40, requests, shift), _draw(rng, 40, requests, _cumulative(1.0)), shift)
        is not None
        for _ in range(runs)
    )
    assert crossed / runs <= 0.05


@pytest.mark.parametrize(
    ("shift", "direction", "message"),
    [
        (-0.01, "increase", "finite number >= 0"),
        (math.nan, "increase", "finite"),
        (0.02, "decrease", "increase"),
    ],
)
def test_a_shift_that_means_nothing_is_refused(shift: float, direction: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HistogramState.initial(LE, shift=shift, direction=direction)


def test_the_plan_counts_every_bound_the_promotion_needs() -> None:
    """A canary like its baseline, 2,000 requests per interval, +10 % latency allowed: the evidence
    plan counts the resolved bounds (pooled share slower than them within 5-95 %), each with the
    baseline's share slower than it and the tolerance +10 % latency gives that share: at 100 ms
    the share slower than 110 ms (interpolated within 100-250 ms, about 0.649 along a log-normal
    through the bucket's bounds, 0.648 log-linearly) is 8 % below the 0.7 slower than 100 ms; at
    250 ms, 13 %. Before any interval nothing is planned."""
    le = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]
    probabilities = np.array([0.02, 0.3, 0.8, 0.97, 0.999, 1.0])  # cumulative
    rng = np.random.default_rng(5)
    state = HistogramState.initial(le, tolerance=0.1)
    assert state.result(final=False).planned == ()
    for _ in range(10):
        cells = np.diff(np.concatenate([[0.0], probabilities]))
        canary, baseline = (np.cumsum(rng.multinomial(2_000, cells)).astype(float) for _ in range(2))
        state = state.step(canary, baseline)
    result = state.result(final=False)

    shares, tolerances, dispersions = zip(*result.planned, strict=True)
    assert [round(share, 2) for share in shares] == [0.7, 0.2]
    assert [round(tolerance, 2) for tolerance in tolerances] == [0.08, 0.13]
    assert all(dispersion >= 1.0 for dispersion in dispersions)


def test_a_bound_the_buckets_cannot_pass_is_planned_as_impossible_not_left_out() -> None:
    """The last finite bound resolved (30 % of requests slower than 250 ms, no bucket above it):
    its canary is counted above that same bound, so a canary like its baseline never passes it.
    The plan keeps it with no tolerance at all (the judge then says no amount of data passes),
    where a rounding of the shares had given it a tolerance of 2e-16 and a plan of 1e29
    intervals."""
    le = [0.1, 0.25, math.inf]
    state = HistogramState.initial(le, tolerance=0.1)
    for _ in range(10):
        state = state.step(np.array([400.0, 700.0, 1000.0]), np.array([400.0, 700.0, 1000.0]))
    planned = state.result(final=False).planned

    assert [(round(share, 2), round(tolerance, 3)) for share, tolerance, _ in planned] == [
        (0.6, 0.055),
        (0.3, 0.0),
    ]
    assert planned[1][1] == 0.0
