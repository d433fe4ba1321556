"""The window a count metric is read over after looks without its data (`flows.judging`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows.judging import CATCH_UP_INTERVALS, catch_up_windows

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
