"""Query results -> observations, or the error that says why not (canaryflow.metrics.vectors)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from analysis.observations import HistogramCounts, RatioCounts, Samples
from canaryflow.errors import NoDataError, QueryError
from canaryflow.metrics.vectors import histogram_from_result, ratio_from_results, samples_from_result


def vec(*values: str, **labels: str) -> list[dict[str, Any]]:
    return [{"metric": dict(labels), "value": [1700000000.0, v]} for v in values]


def buckets(**by_le: str) -> list[dict[str, Any]]:
    return [
        {"metric": {"le": le.replace("_", ".").replace("inf", "+Inf")}, "value": [0, v]}
        for le, v in by_le.items()
    ]


def ratio(bad: Any, total: Any) -> RatioCounts:
    return ratio_from_results(bad, total, bad_query="B", total_query="T")


def test_fractional_counts_are_kept_as_they_are() -> None:
    assert ratio(vec("2.5"), vec("599.75")) == RatioCounts(bad=2.5, total=599.75)


def test_a_scalar_result_is_one_value() -> None:
    assert ratio([1700000000.0, "1"], [1700000000.0, "10"]) == RatioCounts(1.0, 10.0)


@pytest.mark.parametrize(("bad", "total"), [(vec("1"), []), (vec("1"), vec("NaN")), (vec("NaN"), vec("10"))])
def test_empty_or_nan_is_no_data(bad: Any, total: Any) -> None:
    with pytest.raises(NoDataError):
        ratio(bad, total)


def test_no_events_is_no_data_not_a_zero_ratio() -> None:
    with pytest.raises(NoDataError, match="total is 0"):
        ratio(vec("0"), vec("0"))


def test_an_empty_bad_query_with_traffic_means_no_bad_events() -> None:
    assert ratio([], vec("120")) == RatioCounts(bad=0.0, total=120.0)


def test_bad_may_exceed_total_by_extrapolation_only() -> None:
    assert ratio(vec("100.4"), vec("100")) == RatioCounts(bad=100.0, total=100.0)
    with pytest.raises(QueryError, match="subset"):
        ratio(vec("150"), vec("100"))


def test_ratio_queries_must_be_aggregated() -> None:
    with pytest.raises(QueryError, match="one series, got 2") as info:
        ratio(vec("1"), vec("5", "6"))
    assert info.value.query == "T"


@pytest.mark.parametrize("value", ["-1", "+Inf"])
def test_negative_or_infinite_counts_are_query_errors(value: str) -> None:
    with pytest.raises(QueryError, match="finite count"):
        ratio(vec("0"), vec(value))


def test_a_range_vector_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="instant vector"):
        ratio([], [{"metric": {}, "values": [[0, "1"], [1, "2"]]}])


def test_histogram_is_sorted_by_le_with_inf_last() -> None:
    h = histogram_from_result(buckets(inf="10", **{"0_1": "4", "0_5": "9.5"}), query="Q")
    assert h == HistogramCounts(le=(0.1, 0.5, math.inf), counts=(4.0, 9.5, 10.0))


def test_histogram_dips_from_extrapolation_are_made_monotonic() -> None:
    h = histogram_from_result(buckets(**{"0_1": "4.2", "0_5": "4.1", "inf": "10"}), query="Q")
    assert h.counts == (4.2, 4.2, 10.0)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (buckets(**{"0_1": "1", "0_5": "2"}), r"no \+Inf bucket"),
        (vec("1"), "without an le label"),
        (buckets(inf="1") + buckets(inf="2"), "two series with le"),
        ([{"metric": {"le": "fast"}, "value": [0, "1"]}], "not a number"),
    ],
)
def test_malformed_histograms_are_query_errors(result: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        histogram_from_result(result, query="Q")


@pytest.mark.parametrize(
    "result", [[], buckets(**{"0_1": "0", "inf": "0"}), buckets(**{"0_1": "NaN", "inf": "1"})]
)
def test_histograms_without_events_are_no_data(result: Any) -> None:
    with pytest.raises(NoDataError):
        histogram_from_result(result, query="Q")


def test_samples_are_ordered_by_labels_without_nan() -> None:
    result = [
        {"metric": {"pod": "b"}, "value": [0, "0.2"]},
        {"metric": {"pod": "a"}, "value": [0, "0.1"]},
        {"metric": {"pod": "c"}, "value": [0, "NaN"]},
    ]
    assert samples_from_result(result, query="Q") == Samples(values=(0.1, 0.2))


@pytest.mark.parametrize("result", [[], vec("NaN", "+Inf")])
def test_samples_without_finite_values_are_no_data(result: Any) -> None:
    with pytest.raises(NoDataError):
        samples_from_result(result, query="Q")
