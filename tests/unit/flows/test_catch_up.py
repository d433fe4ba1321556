"""The window a count metric is read over after looks without its data (`flows.judging`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analysis.observations import PairedObservation, RatioCounts
from canaryflow.metrics import MetricQuery
from canaryflow.metrics.port import TEMPLATE_NAMES, MetricType
from flows.judging import CATCH_UP_INTERVALS, catch_up_windows, look_spans, record_missed

END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=30)


def test_a_metric_that_missed_looks_reaches_back_to_its_last_data_and_no_further_than_the_cap() -> None:
    since = {
        "error-rate": END - 3 * INTERVAL,  # missed the two looks before this one
        "latency": END - 40 * INTERVAL,  # a long outage
        "queue": END - INTERVAL / 2,  # a late look never shortens the window below one interval
    }

    windows = catch_up_windows(since, end=END, interval=INTERVAL)

    assert windows == {
        "error-rate": 3 * INTERVAL,
        "latency": CATCH_UP_INTERVALS * INTERVAL,
        "queue": INTERVAL,
    }


def test_metrics_that_had_data_keep_the_interval() -> None:
    assert catch_up_windows({}, end=END, interval=INTERVAL) == {}


def _query(name: str, kind: MetricType) -> MetricQuery:
    return MetricQuery(name=name, type=kind, templates=dict.fromkeys(TEMPLATE_NAMES[kind], "x{track}"))


def test_a_missed_count_metric_reaches_back_to_the_previous_looks_end_and_samples_are_not_caught_up() -> None:
    queries = [_query("error-rate", "ratio"), _query("latency", "histogram"), _query("cpu", "samples")]
    since: dict[str, datetime] = {}
    previous = END - 2 * INTERVAL  # the last look with data ended here
    late = END - INTERVAL / 2  # the next look ended half an interval late, without data

    record_missed(since, queries, dict.fromkeys(("error-rate", "latency", "cpu")), start=previous)
    assert since == {"error-rate": previous, "latency": previous}  # not late - INTERVAL: no hole

    # Missed again at END: the window of the look after it still reaches back to the first gap's start.
    record_missed(since, queries, dict.fromkeys(("error-rate", "latency", "cpu")), start=late)
    later = END + INTERVAL
    assert catch_up_windows(since, end=later, interval=INTERVAL) == {
        "error-rate": 3 * INTERVAL,
        "latency": 3 * INTERVAL,
    }

    seen = PairedObservation(baseline=RatioCounts(bad=1, total=10), canary=RatioCounts(bad=1, total=10))
    record_missed(since, queries, {"error-rate": seen, "latency": None, "cpu": None}, start=later)
    assert since == {"latency": previous}  # data again: back to one interval


def test_a_caught_up_metric_with_data_covers_its_windows_intervals_one_still_without_data_none() -> None:
    seen = PairedObservation(baseline=RatioCounts(bad=1, total=30), canary=RatioCounts(bad=1, total=30))
    windows = {"error-rate": 3 * INTERVAL, "latency": 2 * INTERVAL}

    spans = look_spans(windows, {"error-rate": seen, "latency": None, "cpu": None}, interval=INTERVAL)

    assert spans == {"error-rate": 3.0}  # the others cover this interval or nothing
