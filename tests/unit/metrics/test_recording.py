"""The observation log recorder writes exactly the DESIGN.md §4 format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from analysis.logs import parse_log
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts, Samples
from canaryflow.errors import ObservationLogError
from canaryflow.metrics import MetricQuery, ObservationRecorder
from tests.fixtures.observation_log import DESIGN_EXAMPLE

ERRORS = MetricQuery("error-rate", "ratio", {"bad": "b", "total": "t"})
LATENCY = MetricQuery("latency", "histogram", {"query": "q"}, unit="seconds")
CPU = MetricQuery("cpu", "samples", {"query": "q"})
LE = (0.05, 0.1, 0.25, 0.5, 1.0, math.inf)


def example_recorder() -> ObservationRecorder:
    recorder = ObservationRecorder([ERRORS, LATENCY, CPU], interval_seconds=30)
    recorder.record(
        {
            "error-rate": PairedObservation(RatioCounts(3, 600), RatioCounts(4, 598)),
            "latency": PairedObservation(
                HistogramCounts(LE, (300, 500, 580, 597, 600, 600)),
                HistogramCounts(LE, (280, 490, 577, 595, 598, 598)),
            ),
            "cpu": PairedObservation(Samples((0.21, 0.25)), Samples((0.22, 0.31))),
        }
    )
    recorder.record({"error-rate": None, "latency": None})  # cpu missing: null too
    return recorder


def test_the_design_example_is_reproduced(tmp_path: Path) -> None:
    recorder = example_recorder()
    assert len(recorder) == 2
    assert recorder.to_dict() == DESIGN_EXAMPLE
    written = recorder.write(tmp_path / "log.json")
    assert json.loads(written.read_text()) == DESIGN_EXAMPLE
    assert [p.name for p in tmp_path.iterdir()] == ["log.json"]  # no temporary file left


def test_fractional_counts_stay_fractional_and_whole_ones_integers() -> None:
    recorder = ObservationRecorder([ERRORS], interval_seconds=2.5)
    recorder.record({"error-rate": PairedObservation(RatioCounts(2.5, 600.0), RatioCounts(0.0, 598.25))})
    text = recorder.dumps()
    assert '"baseline": {"bad": 2.5, "total": 600}' in text
    assert '"canary": {"bad": 0, "total": 598.25}' in text
    assert '"interval_seconds": 2.5' in text


def test_a_changed_bucket_layout_is_refused_with_its_place() -> None:
    recorder = ObservationRecorder([LATENCY], interval_seconds=30)
    h = HistogramCounts(LE, (1, 2, 3, 4, 5, 6))
    recorder.record({"latency": PairedObservation(h, h)})
    other = HistogramCounts((0.1, math.inf), (1, 6))
    with pytest.raises(ObservationLogError, match=r"intervals\[1\]\.latency\.canary: le"):
        recorder.record({"latency": PairedObservation(h, other)})


def test_a_histogram_without_data_declares_only_the_inf_bucket() -> None:
    recorder = ObservationRecorder([LATENCY], interval_seconds=30)
    recorder.record({"latency": None})
    assert recorder.to_dict()["metrics"]["latency"] == {
        "type": "histogram",
        "unit": "seconds",
        "le": ["+Inf"],
    }
    assert parse_log(recorder.dumps()).intervals == ({"latency": None},)


def test_what_was_recorded_parses_back_to_the_same_observations() -> None:
    recorder = example_recorder()
    parsed = parse_log(recorder.dumps())
    assert parsed.interval_seconds == 30
    assert parsed.intervals == recorder.log().intervals
    assert parsed.intervals[1] == {"error-rate": None, "latency": None, "cpu": None}


def test_a_log_the_judge_would_reject_is_refused() -> None:
    recorder = ObservationRecorder([MetricQuery("bad name!", "samples", {"query": "q"})], interval_seconds=30)
    with pytest.raises(ObservationLogError, match="would not parse"):
        recorder.dumps()


def test_wrong_types_and_unknown_metrics_are_refused() -> None:
    recorder = ObservationRecorder([ERRORS], interval_seconds=30)
    with pytest.raises(ObservationLogError, match="a Samples for a ratio metric"):
        recorder.record({"error-rate": PairedObservation(Samples((1.0,)), Samples((1.0,)))})
    with pytest.raises(ValueError, match="not declared"):
        recorder.record({"cpu": None})
    with pytest.raises(ObservationLogError, match="finite"):
        recorder.record({"error-rate": PairedObservation(RatioCounts(math.nan, 1), RatioCounts(0, 1))})
    with pytest.raises(ValueError, match="unique"):
        ObservationRecorder([ERRORS, ERRORS], interval_seconds=30)


def test_the_warm_up_dispersion_the_judge_was_given_is_in_the_header() -> None:
    recorder = ObservationRecorder(
        [ERRORS, LATENCY, CPU],
        interval_seconds=30,
        dispersion={"error-rate": 0.03, "latency": {0.25: 0.2, 0.1: 0.4}, "cpu": 0.1},
    )
    log = parse_log(recorder.dumps())

    assert log.metrics["error-rate"].dispersion == 0.03
    assert log.metrics["latency"].dispersion == ((0.1, 0.4), (0.25, 0.2))
    assert log.metrics["cpu"].dispersion is None
    assert ObservationRecorder([ERRORS], interval_seconds=30).log().metrics["error-rate"].dispersion is None
