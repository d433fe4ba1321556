"""Record a live analysis (Prometheus scraping the simulator) as an observation log and read it back.

The log must have the shape of DESIGN.md §4 (``canaryflow/observations@1``) and parse with the
judge's reader (`analysis.logs.parse_log`) back to exactly what was observed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analysis.logs import parse_log
from canaryflow.metrics import MetricQuery, ObservationRecorder, observe_interval
from tests.integration.metrics.conftest import ERROR_RATE, LATENCY, POD_ERROR_RATIO, SELECTOR, Live

pytestmark = pytest.mark.prometheus

INTERVAL = 5.0
ABSENT = MetricQuery(
    "absent",
    "ratio",
    {
        "bad": "sum(increase(no_such_total{" + SELECTOR + "}[{interval}]))",
        "total": "sum(increase(no_such_total{" + SELECTOR + "}[{interval}]))",
    },
)
QUERIES = (ERROR_RATE, LATENCY, POD_ERROR_RATIO, ABSENT)


def _record(live: Live, path: Path) -> tuple[ObservationRecorder, Path]:
    recorder = ObservationRecorder(QUERIES, interval_seconds=INTERVAL)
    last_end = live.safe_end()
    for k in (2, 1, 0):
        end = datetime.fromtimestamp(last_end - k * INTERVAL, tz=UTC)
        recorder.record(
            observe_interval(
                live.source,
                QUERIES,
                namespace="metrics-live",
                app="web",
                end=end,
                window=timedelta(seconds=INTERVAL),
            )
        )
    return recorder, recorder.write(path)


def _check_counts(entry: dict[str, Any], le: list[Any]) -> None:
    ratio, hist, samples = entry["error-rate"], entry["latency"], entry["pod-error-ratio"]
    for track in ("baseline", "canary"):
        assert 0 <= ratio[track]["bad"] <= ratio[track]["total"]
        counts = hist[track]["counts"]
        assert len(counts) == len(le)
        assert counts == sorted(counts)
        assert math.isclose(counts[-1], ratio[track]["total"], rel_tol=0.05)
        assert len(samples[track]) == 1
        assert 0.0 <= samples[track][0] <= 1.0
    assert entry["absent"] is None


def test_a_live_recording_has_the_documented_shape(live: Live, tmp_path: Path) -> None:
    log = json.loads(_record(live, tmp_path / "observations.json")[1].read_text())
    assert log["format"] == "canaryflow/observations@1"
    assert log["interval_seconds"] == 5
    assert log["metrics"]["error-rate"] == {"type": "ratio"}
    assert log["metrics"]["pod-error-ratio"] == {"type": "samples"}
    latency = log["metrics"]["latency"]
    assert latency["type"] == "histogram"
    assert latency["unit"] == "seconds"
    assert latency["le"][-1] == "+Inf"
    assert latency["le"][:-1] == list(live.simulator.le[:-1])
    assert len(log["intervals"]) == 3
    for entry in log["intervals"]:
        assert set(entry) == {"error-rate", "latency", "pod-error-ratio", "absent"}
        _check_counts(entry, latency["le"])


def test_a_live_recording_parses_back_to_what_was_observed(live: Live, tmp_path: Path) -> None:
    recorder, path = _record(live, tmp_path / "observations.json")
    parsed = parse_log(path.read_text())
    assert parsed.interval_seconds == INTERVAL
    assert parsed.metrics["latency"].le == live.simulator.le
    assert parsed.intervals == recorder.log().intervals


def test_a_live_recording_replays(live: Live, tmp_path: Path) -> None:
    """``canaryflow replay LOG`` re-judges the recording (the CLI contract of DESIGN.md §4)."""
    _, path = _record(live, tmp_path / "observations.json")
    run = subprocess.run(
        [sys.executable, "-m", "canaryflow", "replay", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3
    last = lines[-1]
    assert last["final"] is True
    assert last["decision"] in {"promote", "rollback", "inconclusive"}
    assert 1 <= last["interval"] <= 3
