"""The change detector: the alarm on the sum over windows of the latest intervals, the CUSUM
since the most telling start (the alarm where no windows are given), and when it blocks a
promotion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.detection import Detector, detector_threshold
from analysis.judge import SequentialJudge
from analysis.observations import PairedObservation, RatioCounts
from analysis.ratio import RatioState
from bench.increase import settings as increase_settings


def _after(*evalues: float) -> Detector:
    detector = Detector()
    for e in evalues:
        detector = detector.step(math.log(e))
    return detector


def test_the_detector_keeps_the_evidence_since_the_most_telling_start() -> None:
    # W_t = max(W_{t-1}, 1) * e_t: good intervals before a change do not dilute it
    assert math.exp(_after(0.5, 0.5, 4.0, 4.0).log_w) == pytest.approx(16.0)
    assert math.exp(_after(4.0, 0.1, 4.0).log_w) == pytest.approx(4.0)
    assert _after(1000.0, 1000.0).alarm(detector_threshold(40, 0.01))
    assert not _after(1000.0).alarm(detector_threshold(40, 0.01))


def test_substantial_recent_evidence_of_a_regression_blocks_a_promotion() -> None:
    # 5 to 1 for "worse since some interval" (substantial on Jeffreys' scale) blocks; 4 to 1, which
    # a good canary's last intervals give now and then by chance, does not (each interval below 3).
    assert not _after(2.0, 2.0).blocks_promotion
    assert _after(2.5, 2.5).blocks_promotion
    assert _after(1.5, 1.5, 2.5).blocks_promotion
    assert not _after(10.0, 0.2).blocks_promotion
    assert not Detector().blocks_promotion


def test_the_latest_interval_alone_blocks_a_promotion_from_3_to_1() -> None:
    # Good intervals before keep W_t low, but an interval that alone leans bad at 3 to 1 blocks.
    assert _after(0.1, 0.1, 3.0).blocks_promotion
    assert not _after(0.1, 0.1, 2.9).blocks_promotion
    assert not _after(3.0, 0.5).blocks_promotion  # the next interval agrees no more: W_t = 1.5


def test_the_alarm_sums_the_evidence_of_the_windows_of_the_latest_intervals() -> None:
    # Ten good intervals, then x3 errors at 10 req/s (9 against 3 of 300 a track). A product of
    # one-interval mixtures pays the mixture's price in every interval; one mixture over a window's
    # sums pays it once, and the sum over the windows adds those that reach a little before the
    # change. At the sixth bad interval only the sum has reached the alarm level of a 40-interval
    # analysis at 0.75 %: neither the CUSUM nor the largest window alone has.
    threshold = detector_threshold(40, 0.0075)
    process = RatioState.initial(tolerance=0.5, direction="increase", kappa_start=0.0)
    windows, products = Detector(), Detector()
    alarms: dict[str, int] = {}
    for interval in range(1, 21):
        process = process.step(3 if interval <= 10 else 9, 300, 3, 300)
        windows = windows.step(process.last_log_evalue(), process.change_log_evalue())
        products = products.step(process.last_log_evalue())
        for name, detector in (("windows", windows), ("products", products)):
            if detector.alarm(threshold):
                alarms.setdefault(name, interval - 10)
        if interval == 16:
            assert float(np.max(process.sides[0].window_log_evalues())) < threshold
    assert alarms["windows"] == 6
    assert alarms["products"] > 6
    assert windows.log_w == pytest.approx(products.log_w)  # the CUSUM that blocks is the same


def test_the_judge_alarms_on_the_windows_sum() -> None:
    judge = SequentialJudge(increase_settings(None), interval_seconds=30.0)
    for interval in range(14):
        bad = 3.0 if interval < 10 else 9.0
        judge.update({"error-rate": PairedObservation(RatioCounts(3.0, 300.0), RatioCounts(bad, 300.0))})
    history = judge.state.histories[0]
    assert isinstance(history.process, RatioState)
    assert history.detector.log_change == pytest.approx(history.process.change_log_evalue())
    assert history.detector.log_change > history.detector.log_w + 0.5  # not the CUSUM


def test_an_interval_without_traffic_on_a_track_leaves_the_alarm_statistic_as_it_was() -> None:
    process = RatioState.initial(tolerance=0.5, direction="increase", kappa_start=0.0)
    process = process.step(12, 300, 3, 300)
    before = process.change_log_evalue()
    process = process.step(5, 0, 3, 300)  # no canary traffic: nothing to compare
    assert process.change_log_evalue() == before


def test_a_window_statistic_that_cannot_be_computed_leaves_the_alarm_as_it_was() -> None:
    detector = Detector().step(math.log(10.0), 5.0).step(0.0, math.nan)
    assert detector.log_change == 5.0  # not the CUSUM's, which the windows' level does not cover
    assert detector.log_w == pytest.approx(math.log(10.0))


def test_each_start_counts_once_while_the_analysis_is_shorter_than_the_windows() -> None:
    # After one interval the sum is that interval's own e-value, not forty copies of it.
    process = RatioState.initial(tolerance=0.5, direction="increase", kappa_start=0.0)
    process = process.step(12, 300, 3, 300)
    assert process.change_log_evalue() == pytest.approx(process.last_log_evalue())
    process = process.step(12, 300, 3, 300)
    assert process.change_log_evalue() > process.last_log_evalue()
