"""The change detector: evidence since the most telling start, and when it blocks a promotion."""

from __future__ import annotations

import math

import pytest

from analysis.detection import Detector, detector_threshold


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
