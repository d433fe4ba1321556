"""The observation types answer what every consumer asks (quantiles, rates, data or not), and the
tests refuse a direction they do not know instead of guessing."""

from __future__ import annotations

import math

import pytest

from analysis.histogram import histogram_test
from analysis.kayenta import classify
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples, percent
from analysis.ratio import ratio_test
from analysis.samples import samples_test

LE = (0.1, 0.25, 0.5, math.inf)


def test_histogram_quantile_follows_promql() -> None:
    h = HistogramCounts(LE, (50.0, 80.0, 95.0, 100.0))
    assert h.quantile(0.5) == pytest.approx(0.1)
    assert h.quantile(0.65) == pytest.approx(0.175)
    assert h.quantile(0.99) == 0.5  # +Inf bucket: the last finite bound
    assert math.isnan(HistogramCounts(LE, (0.0, 0.0, 0.0, 0.0)).quantile(0.5))
    assert math.isnan(HistogramCounts((math.inf,), (10.0,)).quantile(0.5))  # no finite bound at all
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        h.quantile(1.5)


def test_each_type_says_whether_it_has_data_and_what_the_judge_keeps() -> None:
    assert RatioCounts(3, 600).row == (3, 600)
    assert RatioCounts(3, 600).rate == pytest.approx(0.005)
    assert not RatioCounts(0, 0).has_data
    assert math.isnan(RatioCounts(0, 0).rate)
    assert HistogramCounts(LE, (1, 2, 3, 4)).row == (1, 2, 3, 4)
    assert not HistogramCounts(LE, (0, 0, 0, 0)).has_data
    assert Samples((0.2, 0.4)).mean == pytest.approx(0.3)
    assert not Samples(()).has_data
    assert not Samples((1.0, math.inf)).finite
    assert RatioCounts(3, 600).describe() == "3/600 (0.50 %)"
    # increase() extrapolates: whole counts, no exponent, and a low rate not shown as 0.00 %
    assert RatioCounts(232.5, 2_491_000.4).describe() == "232/2,491,000 (0.0093 %)"
    assert RatioCounts(0.4, 0.6).describe() == "0.4/0.6 (66.67 %)"
    assert Samples((0.2, 0.4)).describe() == "mean 0.3 of 2"


def test_a_pair_is_of_one_kind() -> None:
    pair = PairedObservation(RatioCounts(1, 10), RatioCounts(2, 10))
    assert pair.kind == "ratio"
    assert pair.has_data
    assert not PairedObservation(RatioCounts(0, 0), RatioCounts(2, 10)).has_data
    with pytest.raises(ValueError, match="one kind"):
        PairedObservation(RatioCounts(1, 10), Samples((1.0,)))


def test_a_pair_covers_one_interval_unless_counts_were_read_back_over_more() -> None:
    assert PairedObservation(RatioCounts(1, 10), RatioCounts(2, 10)).span == 1
    assert PairedObservation(RatioCounts(3, 30), RatioCounts(6, 30), span=3).span == 3
    for span in (0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="span must be a finite number of intervals >= 1"):
            PairedObservation(RatioCounts(1, 10), RatioCounts(2, 10), span=span)
    with pytest.raises(ValueError, match="they cover no span"):
        PairedObservation(Samples((1.0,)), Samples((2.0,)), span=2)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: ratio_test([1], [100], [1], [100], direction=d),
        lambda d: histogram_test(LE, [[50, 80, 95, 100]], [[50, 80, 95, 100]], direction=d),
        lambda d: samples_test([[1.0, 2.0]], [[1.0, 2.0]], direction=d),
        lambda d: classify([1.0, 2.0], [3.0, 4.0], direction=d),
    ],
    ids=["ratio", "histogram", "samples", "kayenta"],
)
def test_an_unknown_direction_is_refused(call: object) -> None:
    with pytest.raises(ValueError, match="direction must be one of increase, decrease, either; got 'up'"):
        call("up")  # type: ignore[operator]


def test_ratio_test_tests_either_direction() -> None:
    worse = ratio_test([15] * 10, [300] * 10, [3] * 10, [300] * 10, direction="either")
    better = ratio_test([3] * 10, [300] * 10, [15] * 10, [300] * 10, direction="either")
    only_up = ratio_test([3] * 10, [300] * 10, [15] * 10, [300] * 10, direction="increase")
    assert worse.evalue > 1000
    assert better.evalue > 1000  # a drop is bad too with "either"
    assert only_up.evalue < 1


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (0.0093, "0.93 %"),
        (0.001, "0.10 %"),
        (0.00005, "0.0050 %"),
        (1e-20, "1.0e-18 %"),
        (0.0, "0.00 %"),
        (math.nan, "n/a"),
    ],
)
def test_rates_in_percent_keep_two_significant_digits_below_a_tenth(rate: float, shown: str) -> None:
    assert percent(rate) == shown
