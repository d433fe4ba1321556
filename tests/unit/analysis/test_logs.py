"""The public observation log, ``canaryflow/observations@1`` (DESIGN.md §4): parse, validate, write."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from analysis.logs import FORMAT, LogFormatError, cross_checks, dump_log, parse_log
from analysis.observations import HistogramCounts, RatioCounts, Samples
from tests.fixtures.observation_log import DESIGN_EXAMPLE_TEXT as EXAMPLE


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE)
    return document


def test_the_design_example_parses() -> None:
    log = parse_log(EXAMPLE)
    assert log.interval_seconds == 30
    assert [(name, h.type) for name, h in log.metrics.items()] == [
        ("error-rate", "ratio"),
        ("latency", "histogram"),
        ("cpu", "samples"),
    ]
    assert log.metrics["latency"].le == (0.05, 0.1, 0.25, 0.5, 1.0, math.inf)
    assert log.metrics["latency"].unit == "seconds"
    first, second = log.intervals
    ratio = first["error-rate"]
    assert ratio is not None
    assert ratio.canary == RatioCounts(bad=4, total=598)
    latency = first["latency"]
    assert latency is not None
    assert isinstance(latency.baseline, HistogramCounts)
    assert latency.baseline.total == 600
    cpu = first["cpu"]
    assert cpu is not None
    assert cpu.canary == Samples(values=(0.22, 0.31))
    assert dict(second) == {"error-rate": None, "latency": None, "cpu": None}


def test_dump_then_parse_round_trips() -> None:
    log = parse_log(EXAMPLE)
    again = parse_log(json.dumps(dump_log(log)))
    assert again == log
    assert dump_log(again)["format"] == FORMAT
    assert dump_log(again)["metrics"]["latency"]["le"][-1] == "+Inf"  # type: ignore[index]


def test_unknown_keys_are_ignored_everywhere() -> None:
    document = example()
    document["recorded_by"] = "someone"
    document["metrics"]["cpu"]["help"] = "per-pod CPU"
    document["intervals"][0]["start"] = "2026-01-01T00:00:00Z"
    document["intervals"][0]["error-rate"]["canary"]["scrape"] = {"ok": True}
    document["intervals"][0]["not-declared"] = {"baseline": 1, "canary": 2}
    assert parse_log(document) == parse_log(EXAMPLE)


def test_missing_metrics_null_tracks_and_null_samples_mean_no_data() -> None:
    document = example()
    del document["intervals"][0]["cpu"]
    document["intervals"][0]["latency"]["canary"] = None
    document["intervals"][1] = None
    log = parse_log(document)
    assert log.intervals[0]["cpu"] is None
    assert log.intervals[0]["latency"] is None
    assert dict(log.intervals[1]) == {"error-rate": None, "latency": None, "cpu": None}


def test_fractional_counts_and_missing_samples_are_accepted() -> None:
    document = example()
    document["intervals"][0]["error-rate"]["canary"] = {"bad": 3.7, "total": 597.9}
    document["intervals"][0]["cpu"]["canary"] = [0.2, None, 0.3]
    log = parse_log(document)
    pair = log.intervals[0]["error-rate"]
    assert pair is not None
    assert pair.canary == RatioCounts(bad=3.7, total=597.9)
    cpu = log.intervals[0]["cpu"]
    assert cpu is not None
    assert cpu.canary == Samples(values=(0.2, 0.3))


def _break(path: str, value: object) -> dict[str, Any]:
    document = example()
    *parents, last = path.split("/")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


MALFORMED = [
    ("intervals/0/error-rate/span", 0.5, "intervals[0].error-rate.span: expected a number of intervals >= 1"),
    ("intervals/0/latency/span", "2", "intervals[0].latency.span: expected a number of intervals >= 1"),
    ("intervals/0/cpu/span", 2, "intervals[0].cpu.span: samples are values at the end of an interval"),
    ("format", "canaryflow/observations@2", 'format: expected "canaryflow/observations@1", got the string'),
    ("interval_seconds", 0, "interval_seconds: expected a positive number, got the number 0"),
    ("interval_seconds", "30s", "interval_seconds: expected a positive number"),
    ("metrics/cpu/type", "gauge", "metrics.cpu.type: expected one of ratio, histogram, samples"),
    (
        "metrics/latency/le",
        [0.1, 0.05, "+Inf"],
        "metrics.latency.le: bucket bounds must be strictly increasing",
    ),
    ("metrics/latency/le", [0.1, 0.5], 'metrics.latency.le: must end with "+Inf"'),
    (
        "metrics/latency/dispersion",
        0.1,
        "metrics.latency.dispersion: expected a list of [bound, number] pairs",
    ),
    ("metrics/latency/dispersion", [[0.1]], "metrics.latency.dispersion[0]: expected a pair [bound, number]"),
    (
        "metrics/latency/dispersion",
        [[0.1, -1]],
        "metrics.latency.dispersion[0]: expected a pair [bound, number]",
    ),
    (
        "metrics/latency/dispersion",
        [[0.1, 1], [0.1, 2]],
        "metrics.latency.dispersion: a bucket bound is given twice",
    ),
    (
        "metrics/cpu/dispersion",
        0.1,
        "metrics.cpu.dispersion: only ratio and histogram metrics have a warm-up",
    ),
    ("metrics/error-rate/dispersion", -0.1, "metrics.error-rate.dispersion: expected a number >= 0"),
    ("metrics/error-rate/dispersion", "0.1", "metrics.error-rate.dispersion: expected a number >= 0"),
    ("intervals", {"0": {}}, "intervals: expected a list, got an object"),
    ("intervals/0/error-rate/canary/bad", 700, "intervals[0].error-rate.canary: bad exceeds total"),
    ("intervals/0/error-rate/canary/bad", -1, "intervals[0].error-rate.canary.bad: negative count"),
    ("intervals/0/error-rate/canary/total", "598", "intervals[0].error-rate.canary.total: expected a number"),
    ("intervals/0/error-rate/baseline", {"bad": 3}, 'intervals[0].error-rate.baseline: missing "total"'),
    (
        "intervals/0/error-rate",
        {"canary": {"bad": 1, "total": 2}},
        'intervals[0].error-rate: missing "baseline"',
    ),
    (
        "intervals/0/latency/canary/counts",
        [280, 490, 477, 595, 598, 598],
        "intervals[0].latency.canary.counts: not cumulative",
    ),
    ("intervals/0/latency/canary/counts", [1, 2, 3], "intervals[0].latency.canary.counts: expected 6 counts"),
    ("intervals/0/cpu/canary", [0.2, "high"], "intervals[0].cpu.canary[1]: expected a number"),
    ("intervals/0/cpu/canary", {"values": [0.2]}, "intervals[0].cpu.canary: expected a list of numbers"),
    ("intervals/1", [1, 2], "intervals[1]: expected an object, got a list"),
    # What the judge could not use is rejected here, not turned into NaN or a crash later.
    ("metrics", {}, "metrics: the log declares no metrics: nothing to judge"),
    (
        "metrics/latency/le",
        ["+Inf"],
        "intervals[0].latency.baseline: data, but the header's le has no finite",
    ),
    ("interval_seconds", 5e-324, "interval_seconds: 4.94e-324 is outside 0.001-86400 seconds"),
    ("interval_seconds", 1e9, "interval_seconds: 1e+09 is outside 0.001-86400 seconds"),
    (
        "intervals/0/error-rate/canary/total",
        1e300,
        "intervals[0].error-rate.canary.total: 1e+300 is more than 2^53",
    ),
    (
        "intervals/0/error-rate/canary/total",
        2**53 + 1,  # as a float it would round to 2^53
        "intervals[0].error-rate.canary.total: 9.01e+15 is more than 2^53",
    ),
    ("intervals/0/cpu/canary", [0.2, -1e101], "intervals[0].cpu.canary[1]: -1e+101 is beyond 1e100"),
    (
        "intervals/0/latency/canary/le",
        [0.05, 0.1, 0.2, 0.5, 1.0, "+Inf"],
        "intervals[0].latency.canary.le: differs from the header's bucket bounds",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), MALFORMED, ids=[m[2].split(":")[0] for m in MALFORMED])
def test_malformed_logs_name_the_place(path: str, value: object, message: str) -> None:
    with pytest.raises(LogFormatError) as caught:
        parse_log(_break(path, value))
    assert str(caught.value).startswith(message)
    assert caught.value.path == message.split(": ")[0]


@pytest.mark.parametrize(
    ("place", "message"),
    [
        ('"total": 600}, "canary"', "intervals[0].error-rate.baseline.total: not a finite number"),
        ('"interval_seconds": 30', "interval_seconds: expected a positive number, got the number inf"),
        ("[0.21, 0.25]", "intervals[0].cpu.baseline[1]: not a finite number"),
    ],
)
@pytest.mark.parametrize("digits", [400, 5000])
def test_integers_beyond_float_are_refused_by_name_in_the_text(place: str, message: str, digits: int) -> None:
    text = json.dumps(example())
    huge = "1" + "0" * digits
    assert place in text
    edited = place.replace("600", huge).replace("30", huge).replace("0.25", huge)
    with pytest.raises(LogFormatError) as caught:
        parse_log(text.replace(place, edited, 1))
    assert str(caught.value) == message


def test_not_cumulative_in_a_later_interval_names_that_interval() -> None:
    document = example()
    document["intervals"].append(copy.deepcopy(document["intervals"][0]))
    document["intervals"].append(copy.deepcopy(document["intervals"][0]))
    document["intervals"].append(copy.deepcopy(document["intervals"][0]))
    document["intervals"][3]["latency"]["canary"]["counts"] = [280, 490, 577, 595, 598, 597]
    with pytest.raises(LogFormatError, match=r"^intervals\[3\]\.latency\.canary\.counts: not cumulative$"):
        parse_log(document)


def test_text_that_is_not_json_is_rejected_with_its_position() -> None:
    with pytest.raises(LogFormatError, match=r"not JSON: .* line 1 column"):
        parse_log("{format: 1}")


def test_json_nested_too_deeply_is_malformed_not_a_crash() -> None:
    with pytest.raises(LogFormatError, match=r"nested too deeply"):
        parse_log("[" * 100_000 + "]" * 100_000)


def test_a_metric_name_ending_in_a_newline_is_malformed() -> None:
    document = example()
    document["metrics"]["error-rate\n"] = document["metrics"].pop("error-rate")
    with pytest.raises(LogFormatError, match=r"invalid metric name"):
        parse_log(document)


def test_counts_up_to_2_to_the_53_and_a_track_repeating_the_header_bounds_are_accepted() -> None:
    document = example()
    document["intervals"][0]["error-rate"]["canary"] = {"bad": 1, "total": 2**53}
    document["intervals"][0]["latency"]["canary"]["le"] = [0.05, 0.1, 0.25, 0.5, 1.0, "+Inf"]
    ratio = parse_log(document).intervals[0]["error-rate"]
    assert ratio is not None
    assert ratio.canary == RatioCounts(bad=1, total=float(2**53))


def test_cross_checks_name_metrics_that_disagree_on_a_tracks_requests() -> None:
    document = example()
    document["intervals"] = [copy.deepcopy(document["intervals"][0]) for _ in range(3)]
    assert cross_checks(parse_log(document)) == ()
    for row in document["intervals"]:
        row["error-rate"]["canary"] = {"bad": 40, "total": 5980}  # 10x the latency histogram's 598
    assert cross_checks(parse_log(document)) == (
        "metrics.error-rate and metrics.latency disagree on the canary's requests "
        "(17940 vs 1794 over the log): do they count the same requests?",
    )


def test_a_histogram_that_never_had_data_is_declared_with_inf_alone() -> None:
    document = example()
    document["metrics"]["latency"]["le"] = ["+Inf"]
    for row in document["intervals"]:
        row["latency"] = None
    assert parse_log(document).metrics["latency"].le == (math.inf,)


def test_a_log_with_no_intervals_is_valid() -> None:
    document = example()
    document["intervals"] = []
    assert parse_log(document).intervals == ()


def test_the_warm_up_dispersion_round_trips_and_is_optional() -> None:
    document = example()
    document["metrics"]["error-rate"]["dispersion"] = 0.02
    document["metrics"]["latency"]["dispersion"] = [[0.1, 0.3], [0.25, 0]]
    log = parse_log(document)

    assert log.metrics["error-rate"].dispersion == 0.02
    assert log.metrics["latency"].dispersion == ((0.1, 0.3), (0.25, 0.0))
    assert parse_log(EXAMPLE).metrics["error-rate"].dispersion is None
    assert parse_log(json.dumps(dump_log(log))) == log
    assert "dispersion" not in dump_log(parse_log(EXAMPLE))["metrics"]["error-rate"]  # type: ignore[index]


def test_a_value_read_back_over_looks_without_data_says_its_span_and_round_trips() -> None:
    document = example()
    document["intervals"][0]["error-rate"]["span"] = 2.5  # a late look: not a whole number
    log = parse_log(document)
    first = log.intervals[0]["error-rate"]
    assert first is not None
    assert first.span == 2.5
    latency = log.intervals[0]["latency"]
    assert latency is not None
    assert latency.span == 1  # absent: one interval
    out = dump_log(log)
    assert out["intervals"][0]["error-rate"]["span"] == 2.5  # type: ignore[index]
    assert "span" not in out["intervals"][0]["latency"]  # type: ignore[index]
    assert parse_log(json.dumps(out)) == log


def test_cross_checks_compare_two_metrics_only_over_the_same_windows() -> None:
    document = example()
    document["intervals"] = [copy.deepcopy(document["intervals"][0]) for _ in range(3)]
    document["intervals"][0]["latency"] = None
    document["intervals"][1]["latency"] = None
    caught_up = document["intervals"][2]["latency"]
    caught_up["span"] = 3
    for track in ("baseline", "canary"):  # three intervals' requests in one look
        caught_up[track]["counts"] = [3 * c for c in caught_up[track]["counts"]]
    for row in document["intervals"]:  # and an error rate counting ten times as many requests
        row["error-rate"]["canary"] = {"bad": 40, "total": 5980}
    assert cross_checks(parse_log(document)) == ()  # no interval where both cover the same window
    caught_up["span"] = 1
    assert cross_checks(parse_log(document)) != ()


@pytest.mark.parametrize("digits", [400, 5000])
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("intervals/0/error-rate/canary/total", "intervals[0].error-rate.canary.total: expected a number"),
        ("intervals/0/error-rate/span", "intervals[0].error-rate.span: expected a number of intervals >= 1"),
        ("interval_seconds", "interval_seconds: expected a positive number"),
    ],
)
def test_an_already_decoded_log_with_an_integer_beyond_float_is_malformed_not_a_crash(
    path: str, message: str, digits: int
) -> None:
    with pytest.raises(LogFormatError) as caught:
        parse_log(_break(path, 10**digits))
    assert str(caught.value) == f"{message}, got an integer beyond float's range"


def test_a_span_that_reaches_back_over_intervals_with_data_is_named() -> None:
    document = example()
    document["intervals"] = [copy.deepcopy(document["intervals"][0]) for _ in range(4)]
    document["intervals"][1]["error-rate"] = None
    document["intervals"][2]["error-rate"] = None
    document["intervals"][3]["error-rate"]["span"] = 3  # over the two without data: consistent
    assert cross_checks(parse_log(document)) == ()
    document["intervals"][3]["error-rate"]["span"] = 4.5  # over intervals[0] too, which has data
    assert cross_checks(parse_log(document)) == (
        "intervals[3].error-rate: its span 4.5 covers intervals[0], which has data for it too: are its "
        "requests counted twice?",
    )
    document["intervals"][0]["error-rate"] = None  # a span reaching before the log's start says nothing
    assert cross_checks(parse_log(document)) == ()
