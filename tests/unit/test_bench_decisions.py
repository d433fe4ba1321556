"""``bench/decisions.py --logs DIR`` judges held-out logs, including families and metrics it has never
seen, and reports them in every table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.logs import dump_log, parse_log
from bench.decisions import Case, main, write_logs


def test_held_out_logs_of_unseen_families_and_metrics_are_judged_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_logs([Case("plain", 10, False, seed=3), Case("errors-x5", 10, True, seed=4)], tmp_path)
    labels_path = tmp_path / "labels.json"
    labels = json.loads(labels_path.read_text())
    for label in labels.values():  # families the benchmark does not generate
        label["family"] = "held-out-bad" if label["bad"] else "held-out-good"
    labels_path.write_text(json.dumps(labels))
    # A log of another service: its own metric name, no label (good by its file name).
    good = next(name for name in labels if name.startswith("good"))
    log = parse_log((tmp_path / good).read_bytes())
    document = dump_log(log)
    document["metrics"] = {"errors-5xx": document["metrics"]["error-rate"]}
    document["intervals"] = [{"errors-5xx": row["error-rate"]} for row in document["intervals"]]
    (tmp_path / "good-other-service.json").write_text(json.dumps(document))
    (tmp_path / "bad-truncated.json").write_text(json.dumps(document)[:200])

    assert main(["--logs", str(tmp_path), "--jobs", "1"]) == 0

    out, err = capsys.readouterr()
    assert err.startswith(f"skipped {tmp_path / 'bad-truncated.json'}: not JSON")
    assert "| held-out-good | 10 |" in out  # good canaries per family
    assert "| good: held-out-good | 10 | 1 |" in out  # per family, with every judge
    assert "| bad: held-out-bad | 10 | 1 |" in out
    assert "| good: good | 0 | 1 |" in out  # the unlabelled log


def test_query_gaps_counts_come_back_at_the_metrics_next_look_with_data_and_scrape_gaps_do_not() -> None:
    from analysis.observations import HistogramCounts, RatioCounts
    from bench.scenarios import INTERVAL_SECONDS, generate

    rps = 200.0

    def looks(family: str, name: str) -> list[tuple[int, float]]:
        """(intervals missed before, canary requests) of each look with data."""
        out, missed = [], 0
        for row in generate(family, rps, 11).log.intervals:
            seen = row[name]
            if seen is None:
                missed += 1
                continue
            canary = seen.canary
            assert isinstance(canary, RatioCounts | HistogramCounts)
            out.append((missed, canary.total if isinstance(canary, RatioCounts) else canary.counts[-1]))
            missed = 0
        return out

    for name in ("error-rate", "latency"):
        caught_up = looks("query-gaps", name)
        assert sum(missed > 0 for missed, _ in caught_up) >= 3  # the test saw gaps
        for missed, total in caught_up:  # the traffic varies by 10 % around its level
            assert 0.8 <= total / ((missed + 1) * rps * INTERVAL_SECONDS) <= 1.2
        for _, total in looks("scrape-gaps", name):  # never scraped: lost
            assert 0.8 <= total / (rps * INTERVAL_SECONDS) <= 1.2
