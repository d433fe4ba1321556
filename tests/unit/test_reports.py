"""A rollout's report directory keeps every attempt that ended: a new attempt moves the files of
the one before into ``attempt-<K>/``; an attempt that did not end is left for its resume."""

from __future__ import annotations

from pathlib import Path

from canaryflow.reports import STATUS_FILE, archive_attempt, read_status, write_status
from canaryflow.status import RolloutPhase, RolloutStatus


def _status(phase: RolloutPhase, run: str) -> RolloutStatus:
    return RolloutStatus(
        rollout_id="web-1", target="shop/web", image="shop/web:2", spec="web.yaml",
        triggered_by="test", flow_run_id=run, steps=2, phase=phase,
    )  # fmt: skip


def test_attempts_that_ended_are_kept_one_directory_each(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    assert archive_attempt(report) is None  # nothing yet
    write_status(report, _status(RolloutPhase.ROLLED_BACK, "run-1"))
    (report / "observations-step2.json").write_text("{}")

    assert archive_attempt(report) == report / "attempt-1"
    assert sorted(p.name for p in (report / "attempt-1").iterdir()) == [
        "observations-step2.json",
        STATUS_FILE,
    ]
    assert not (report / STATUS_FILE).exists()

    write_status(report, _status(RolloutPhase.PROMOTED, "run-2"))
    assert archive_attempt(report) == report / "attempt-2"
    assert read_status(report / "attempt-2" / STATUS_FILE).flow_run_id == "run-2"
    assert read_status(report / "attempt-1" / STATUS_FILE).flow_run_id == "run-1"


def test_an_attempt_that_did_not_end_stays_for_its_resume(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    write_status(report, _status(RolloutPhase.PROGRESSING, "run-1"))
    assert archive_attempt(report) is None
    assert read_status(report / STATUS_FILE).flow_run_id == "run-1"


def test_an_unreadable_status_is_set_aside_not_mixed_with_the_new_attempt(tmp_path: Path) -> None:
    report = tmp_path / "web-1"
    report.mkdir()
    (report / STATUS_FILE).write_text("{torn")
    assert archive_attempt(report) == report / "attempt-1"
    assert (report / "attempt-1" / STATUS_FILE).read_text() == "{torn"
